"""Byte-level access to a PV for the store: `Disk` is the one PV file wrapper, lvcrypt.blockfile.BlockFile."""

from __future__ import annotations

from lvcrypt.blockfile import BlockFile as Disk

__all__ = ["Disk"]
