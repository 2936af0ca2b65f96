"""Replacing a file so that readers see the old or the new content, never a mix."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from lvcrypt.errors import LvcryptError
from lvcrypt.command_mode import test_mode


def private_directory(path: Path, create: bool = True) -> Path | None:
    """`path` if it is a real directory of ours that nobody else may write (created 0700 when missing).

    Only the last component is checked: /run/lock, /tmp or $HOME above it are
    shared or owned by others on purpose.  Without `create`, a missing
    directory is None.  Anything else (a symbolic link, another owner, group
    or world write permission) is refused: files in it choose what lvcrypt
    locks, scans or restores.
    """
    try:
        if create:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = os.lstat(path)
    except FileNotFoundError:
        if create:
            raise LvcryptError(f"cannot create directory {path}: it vanished") from None
        return None
    except OSError as error:
        raise LvcryptError(f"cannot create directory {path}: {error.strerror}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise LvcryptError(f"{path} is not a directory (a symbolic link?); refusing to use it")
    if info.st_uid != os.geteuid():
        raise LvcryptError(f"{path} belongs to uid {info.st_uid}, not to uid {os.geteuid()}; refusing to use it")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise LvcryptError(f"{path} is writable by other users (mode {stat.S_IMODE(info.st_mode):04o}); "
                           "refusing to use it")
    return path


def write_atomically(path: str | Path, text: str, mode: int = 0o600) -> None:
    """Write beside the target, fsync, keep the target's mode (or `mode` for a new file), rename over it.

    Under lvm2's `-t` nothing is written (archives, backups and the devices file included).
    """
    if test_mode():
        return
    import tempfile  # with random: only commands that write a file pay for it

    target = Path(path)
    if target.exists():
        mode = target.stat().st_mode & 0o7777
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temp, mode)
        os.replace(temp, target)
    except BaseException:
        os.unlink(temp)
        raise
