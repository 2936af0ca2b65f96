"""Activation: dm tables for LVs and the backends that run them (kernel device-mapper, userspace)."""
