"""Kernel test tier: tests that run in a QEMU guest with a real device-mapper (see README.md)."""
