"""lvcrypt: LVM-style volume manager with encrypted logical volumes."""

__version__ = "0.1.0"
