"""Whether this command may write: lvm2's `-t/--test` and `-A/--autobackup n`, for the whole process.

A flag in the bottom layer because the writes it stops are spread over every layer
(labels and metadata, keystore areas, wiped data, archive and backup files), and all of
them go through two places that live here: `BlockFile.write_at` and `write_atomically`.
Checking there, rather than in each command, is what makes `-t` run a command through
all its checks and leave every PV byte for byte as it was.
"""

from __future__ import annotations

_state = {"test": False, "autobackup": True}

TEST_MODE_NOTICE = "  TEST MODE: Metadata will NOT be updated and volumes will not be (de)activated."


def set_test_mode(enabled: bool) -> None:
    _state["test"] = enabled


def test_mode() -> bool:
    """True under `-t`: writes to PVs and state files are skipped, reads still happen."""
    return _state["test"]


def set_autobackup(enabled: bool) -> None:
    _state["autobackup"] = enabled


def autobackup() -> bool:
    """False under `-A n`: the VG's backup file is not refreshed after a change (archives still are)."""
    return _state["autobackup"]
