"""One lock file per VG under the run directory, held with flock.

Commands that read then write a VG hold it exclusively from the read to the
last write; reporting commands hold it shared, so they never see a commit
half done.  Creating PVs and VGs takes the global "orphans" lock, as lvm2's
P_#orphans lock does.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from lvcrypt.errors import LockError

RUN_ENV = "LVCRYPT_RUN_DIR"
ORPHANS = "#orphans"


def run_dir() -> Path:
    configured = os.environ.get(RUN_ENV)
    if configured:
        return Path(configured)
    return Path("/run/lock/lvcrypt") if os.geteuid() == 0 else Path(f"/tmp/lvcrypt-{os.getuid()}")


class VgLock:
    """`with VgLock("vg0", exclusive=True):` blocks until the lock is held."""

    def __init__(self, name: str, exclusive: bool):
        self.name = name
        self.exclusive = exclusive
        self.fd = -1

    def __enter__(self) -> "VgLock":
        directory = run_dir()
        try:
            directory.mkdir(parents=True, exist_ok=True)
            path = directory / f"V_{self.name.replace('/', '_')}"
            self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            fcntl.flock(self.fd, fcntl.LOCK_EX if self.exclusive else fcntl.LOCK_SH)
        except OSError as error:
            if self.fd >= 0:
                os.close(self.fd)
                self.fd = -1
            raise LockError(f"cannot lock volume group {self.name} in {directory}: {error.strerror}") from None
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
