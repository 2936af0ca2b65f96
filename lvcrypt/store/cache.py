"""A cache of converted VG models, so that report commands skip the text parser and the conversion (most of their time).

An entry is used only for exactly the text it was read from (its SHA-256 is
in the entry) and for exactly the code that converted it (the lvcrypt and
Python versions, and the size and time of every module of the metadata
package, which decides how a text becomes a model), so a changed VG or a
changed converter simply misses; a damaged or unreadable entry is ignored and
the text parsed again, never trusted over the disk.  Only models that
converted and validated are stored.

The entry is `marshal` data (stamp, digest, payload), checked before the
payload is looked at.  The payload is a pickle of the model, loaded by an
unpickler that resolves no global but the model's own data classes (no
function, no other class: a planted pickle cannot run code); the file is
named by a hash of the VG id, in a subdirectory of the private run directory
that is verified to be ours and writable by nobody else, opened without
following symbolic links, and the loaded object must be a `VolumeGroup`.
"""

from __future__ import annotations

import hashlib
import io
import marshal
import os
import pickle
import stat
import sys

from lvcrypt import __version__
from lvcrypt.atomic_file import private_directory
from lvcrypt.errors import LvcryptError
from lvcrypt.metadata import model, tree
from lvcrypt.metadata.gc_pause import gc_paused
from lvcrypt.metadata.model import VolumeGroup
from lvcrypt.store.lock import run_dir

_FORMAT = 3
_MAX_ENTRY = 64 << 20
# The only globals a payload may name: the model's classes and the tree's Section.
_CLASSES = {(module.__name__, name): value for module in (model, tree) for name, value in vars(module).items()
            if isinstance(value, type) and value.__module__ == module.__name__}
_FAILURES = (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
             RecursionError, MemoryError)


def _code_stamp() -> tuple[object, ...]:
    """What the conversion depends on: versions, and every metadata module's size and modification time."""
    folder = os.path.dirname(model.__file__)
    modules = sorted((entry.name, entry.stat().st_size, entry.stat().st_mtime_ns)
                     for entry in os.scandir(folder) if entry.name.endswith((".py", ".lark")))
    return (_FORMAT, __version__, sys.version_info[:2], tuple(modules))


class _ModelUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> type:
        found = _CLASSES.get((module, name))
        if found is None:
            raise pickle.UnpicklingError(f"{module}.{name} is not a model class")
        return found


def _directory() -> str | None:
    """The cache directory, created 0700; None when it or the run directory is not private to us."""
    try:
        private_directory(run_dir())
        return str(private_directory(run_dir() / "cache"))
    except LvcryptError:
        return None


def _name(vg_id: str) -> str:
    return hashlib.sha256(vg_id.encode("utf-8", "surrogateescape")).hexdigest()


def _read(path: str) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if (not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid()
                or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH) or info.st_size > _MAX_ENTRY):
            return None
        with os.fdopen(os.dup(fd), "rb") as f:
            return f.read()
    finally:
        os.close(fd)


def lookup(vg_id: str, text: bytes) -> VolumeGroup | None:
    """The model of exactly this text, converted and validated once by this code, or None."""
    directory = _directory()
    data = _read(os.path.join(directory, _name(vg_id))) if directory else None
    if data is None:
        return None
    try:
        stamp, digest, payload = marshal.loads(data)
        if stamp != _code_stamp() or digest != hashlib.sha256(text).digest() or type(payload) is not bytes:
            return None
        with gc_paused():  # thousands of new objects, none garbage (see gc_pause)
            vg = _ModelUnpickler(io.BytesIO(payload)).load()
    except _FAILURES:
        return None
    return vg if type(vg) is VolumeGroup else None


def store(vg_id: str, text: bytes, vg: VolumeGroup) -> None:
    """Remember the model of a text that converted and validated, before anyone changes it; failures only
    cost the next reader a parse."""
    directory = _directory()
    if directory is None:
        return
    path = os.path.join(directory, _name(vg_id))
    temp = f"{path}.{os.getpid()}.tmp"
    try:
        payload = pickle.dumps(vg, protocol=pickle.HIGHEST_PROTOCOL)
        data = marshal.dumps((_code_stamp(), hashlib.sha256(text).digest(), payload))
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(temp, path)
    except (OSError, ValueError, RecursionError, pickle.PicklingError):
        try:
            os.unlink(temp)
        except OSError:
            pass
