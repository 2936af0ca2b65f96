"""A stand-in for the kernel's crash_dm_crypt_keys configfs, as a FUSE file system in a child process.

It behaves as kernel/crash_dump_dm_crypt.c does where a user can see it:
first kernel: `crash_dm_crypt_keys/` with a read-only `count` and `reuse`;
mkdir makes an item whose `description` attribute refuses empty text and
more than 128 bytes (EINVAL), reads `(null)` until written; rmdir drops it;
regular files cannot be created.  kdump kernel: only `restore`; the first
write adds every saved key as a `user` key to the writer's user keyring
(@u is per uid, so the daemon, running as the same user, reaches the same
one) with the kernel's KEY_USR_ALL permissions before the write returns,
then takes the boolean.

What it cannot do is the kexec step: userspace cannot read a `logon` key's
payload, so `kexec_load` checks that each described logon key is reachable
from @u (the kernel's request_key would fail the load otherwise) and takes
the payloads from the test, which knows the volume keys.
"""

from __future__ import annotations

import errno
import multiprocessing
import os
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import mfusepy

from lvcrypt import keyring

MAX_KEYS = 128
KEY_USR_ALL = "0x003f0000"  # the permissions the kernel gives restored keys: everything for their user
MAX_DESCRIPTION = 128
SUBSYSTEM = "/crash_dm_crypt_keys"


class FakeConfigfs(mfusepy.Operations):  # type: ignore[misc]
    use_ns = True

    def __init__(self, saved: list[tuple[str, bytes]] | None):
        self.kdump = saved is not None
        self.saved = saved or []
        self.items: dict[str, str | None] = {}
        self.restored = False
        self.now = time.time_ns()

    # -- layout ------------------------------------------------------------------------------------

    def _attribute(self, path: str) -> str | None:
        """The text of an attribute file, or None if `path` is not one."""
        if self.kdump:
            return f"{int(self.restored)}\n" if path == f"{SUBSYSTEM}/restore" else None
        if path == f"{SUBSYSTEM}/count":
            return f"{len(self.items)}\n"
        if path == f"{SUBSYSTEM}/reuse":
            return "0\n"
        parent, _, name = path.rpartition("/")
        item = parent.rpartition("/")[2]
        if name == "description" and parent == f"{SUBSYSTEM}/{item}" and item in self.items:
            return f"{self.items[item] or '(null)'}\n"
        return None

    def _is_dir(self, path: str) -> bool:
        return path in ("/", SUBSYSTEM) or (not self.kdump and path.rpartition("/")[0] == SUBSYSTEM
                                            and path.rpartition("/")[2] in self.items)

    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        times = {"st_atime": self.now, "st_mtime": self.now, "st_ctime": self.now, "st_uid": 0, "st_gid": 0}
        if self._is_dir(path):
            return {**times, "st_mode": stat.S_IFDIR | 0o755, "st_nlink": 2}
        text = self._attribute(path)
        if text is None:
            raise mfusepy.FuseOSError(errno.ENOENT)
        mode = 0o444 if path.endswith("/count") else 0o644
        return {**times, "st_mode": stat.S_IFREG | mode, "st_nlink": 1, "st_size": len(text)}

    def readdir(self, path: str, fh: int) -> list[str]:
        if path == "/":
            return [".", "..", SUBSYSTEM[1:]]
        if path == SUBSYSTEM:
            return [".", "..", "restore"] if self.kdump else [".", "..", "count", "reuse", *self.items]
        if self._is_dir(path):
            return [".", "..", "description"]
        raise mfusepy.FuseOSError(errno.ENOTDIR)

    # -- items ---------------------------------------------------------------------------------------

    def mkdir(self, path: str, mode: int) -> int:
        parent, _, name = path.rpartition("/")
        if self.kdump or parent != SUBSYSTEM:
            raise mfusepy.FuseOSError(errno.EPERM)
        if name in self.items:
            raise mfusepy.FuseOSError(errno.EEXIST)
        if len(self.items) > MAX_KEYS:  # the kernel's own test, which lets a 129th item through
            raise mfusepy.FuseOSError(errno.EINVAL)
        self.items[name] = None
        return 0

    def rmdir(self, path: str) -> int:
        parent, _, name = path.rpartition("/")
        if parent != SUBSYSTEM or name not in self.items:
            raise mfusepy.FuseOSError(errno.ENOENT if parent == SUBSYSTEM else errno.EPERM)
        del self.items[name]
        return 0

    def create(self, path: str, mode: int, fi: Any = None) -> int:
        raise mfusepy.FuseOSError(errno.EPERM)

    def unlink(self, path: str) -> int:
        raise mfusepy.FuseOSError(errno.EPERM)

    # -- attributes ----------------------------------------------------------------------------------

    def open(self, path: str, flags: int) -> int:
        if self._attribute(path) is None:
            raise mfusepy.FuseOSError(errno.ENOENT)
        if flags & os.O_ACCMODE != os.O_RDONLY and path.endswith("/count"):
            raise mfusepy.FuseOSError(errno.EACCES)
        return 0

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        text = self._attribute(path)
        if text is None:
            raise mfusepy.FuseOSError(errno.ENOENT)
        return text.encode()[offset:offset + size]

    def truncate(self, path: str, length: int, fh: int | None = None) -> int:
        return 0

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        if path.endswith("/restore") and self.kdump:
            if not self.restored:
                for description, payload in self.saved:
                    serial = keyring.add_key("user", description, payload, "@u")
                    subprocess.run(["keyctl", "setperm", str(serial), KEY_USR_ALL], check=True)
            value = data.strip().lower()
            if value not in (b"1", b"y", b"yes", b"on", b"true", b"0", b"n", b"no", b"off", b"false"):
                raise mfusepy.FuseOSError(errno.EINVAL)
            self.restored = value in (b"1", b"y", b"yes", b"on", b"true")
            return len(data)
        if path.endswith("/description"):
            item = path.rpartition("/")[0].rpartition("/")[2]
            text = data.split(b"\n", 1)[0]
            if not text or len(text) > MAX_DESCRIPTION:
                raise mfusepy.FuseOSError(errno.EINVAL)
            self.items[item] = text.decode()
            return len(data)
        raise mfusepy.FuseOSError(errno.EPERM)


def _serve(mountpoint: str, saved: list[tuple[str, bytes]] | None) -> None:
    mfusepy.FUSE(FakeConfigfs(saved), mountpoint, foreground=True, nothreads=True, fsname="fake-configfs",
                 direct_io=True)


class FakeKernel:
    """The mounted fake: `first()` for the running kernel, `kdump(saved)` after the 'crash'."""

    def __init__(self, mountpoint: Path):
        self.mountpoint = mountpoint
        self.process: multiprocessing.Process | None = None

    def start(self, saved: list[tuple[str, bytes]] | None) -> Path:
        self.stop()
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        context = multiprocessing.get_context("fork")
        self.process = context.Process(target=_serve, args=(str(self.mountpoint), saved), daemon=True)
        self.process.start()
        deadline = time.monotonic() + 20
        while not os.path.ismount(self.mountpoint):
            if time.monotonic() > deadline or not self.process.is_alive():
                raise RuntimeError("the fake configfs did not mount")
            time.sleep(0.02)
        return self.mountpoint

    def stop(self) -> None:
        if self.process is None:
            return
        if os.path.ismount(self.mountpoint):
            subprocess.run(["fusermount3", "-u", str(self.mountpoint)], capture_output=True)
        self.process.join(10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.process = None

    def kexec_load(self, volume_keys: dict[str, bytes]) -> list[tuple[str, bytes]]:
        """What the kernel saves in crash memory: every item's description and that logon key's payload."""
        subsystem = self.mountpoint / SUBSYSTEM[1:]
        saved = []
        for item in sorted(path for path in subsystem.iterdir() if path.is_dir()):
            description = (item / "description").read_text().strip()
            if keyring.search("@u", "logon", description) is None:
                raise RuntimeError(f"kexec_file_load: no logon key {description} reachable (ENOKEY)")
            saved.append((description, volume_keys[description]))
        return saved
