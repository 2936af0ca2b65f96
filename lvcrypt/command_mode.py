"""How this command runs, for the whole process: lvm2's `-t/--test`, `-A/--autobackup n` and `-v`.

A setting in the bottom layer because the writes `-t` stops are spread over every
layer (labels and metadata, keystore areas, wiped data, archive and backup files),
and all of them go through two places that live here: `BlockFile.write_at` and
`write_atomically`.  Checking there, rather than in each command, is what makes
`-t` run a command through all its checks and leave every PV byte for byte as it was.
"""

from __future__ import annotations

_DEFAULTS = {"test": False, "autobackup": True, "verbosity": 0}
_state = dict(_DEFAULTS)

TEST_MODE_NOTICE = "  TEST MODE: Metadata will NOT be updated and volumes will not be (de)activated."


def reset() -> None:
    """Back to a plain command: callers that run several commands in one process (tests, tools) start clean."""
    _state.update(_DEFAULTS)


def set_test_mode(enabled: bool) -> None:
    _state["test"] = enabled


def test_mode() -> bool:
    """True under `-t`: writes to PVs and state files are skipped, reads still happen."""
    return bool(_state["test"])


def set_autobackup(enabled: bool) -> None:
    _state["autobackup"] = enabled


def autobackup() -> bool:
    """False under `-A n`: the VG's backup file is not refreshed after a change (archives still are)."""
    return bool(_state["autobackup"])


def set_verbosity(level: int) -> None:
    _state["verbosity"] = level


def verbose(message: str, level: int = 1) -> None:
    """lvm2's `-v` lines (what a change does on the way), on stderr as lvm2 prints them."""
    if int(_state["verbosity"]) >= level:
        import sys

        print(f"  {message}", file=sys.stderr)
