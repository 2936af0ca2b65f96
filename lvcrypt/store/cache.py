"""A cache of converted VG models, so that report commands skip the text parser and the conversion (most of their time).

An entry is used only for exactly the text it was read from (its BLAKE2b is
in the entry) and for exactly the code that converted it (the lvcrypt and
Python versions, and the size and time of every module of the metadata
package, which decides how a text becomes a model), so a changed VG or a
changed converter simply misses; a damaged or unreadable entry is ignored and
the text parsed again, never trusted over the disk.  Only models that
converted and validated are stored.

The entry is `marshal` data (stamp, digest, payload) after the BLAKE2b of that
data, checked before marshal reads it (marshal believes the lengths it reads: a
damaged entry could make it allocate gigabytes); the stamp and digest are checked
before the payload is looked at.  The payload is two pickles: the VG's head (the VG
without its LVs and without the sections of its text: its own fields and its
PVs, a few objects) and the whole model (some 15 objects per LV), or an empty part
where the command that parsed the text needed no more than the head (a cold
`lvs`, whose own view is kept beside it: pickling the whole model was an eighth
of its instructions); the first command that needs the model parses the text
and stores the entry whole.  Finding a VG
and deciding whether to show it reads only the head; the whole model is
unpickled when a command first needs it (`lookup_head`), which a warm `lvs` of
thousands of LVs, answered by its own view (below), never does: the whole
model's unpickling was a quarter of its instructions.  Both are loaded by an
unpickler that resolves no global but the model's own data classes (no
function, no other class: a planted pickle cannot run code); the file is
named by a hash of the VG id, in a subdirectory of the private run directory
that is verified to be ours and writable by nobody else, opened without
following symbolic links, and each loaded object must be a `VolumeGroup`.

Beside a model, a command may keep plain data it derived from it (`lookup_derived`:
`lvs`'s view of the VG's LVs), under the same key plus the stamp of the code that
derived it, in an entry of its own that is only `marshal` data, never a pickle.
"""

from __future__ import annotations

import io
import marshal
import os
import stat
import sys
from typing import Callable

from lvcrypt import __version__
from lvcrypt.atomic_file import private_directory
from lvcrypt.errors import LvcryptError
from lvcrypt.metadata import model, tree
from lvcrypt.metadata.gc_pause import gc_paused
from lvcrypt.metadata.model import VolumeGroup
from lvcrypt.records import replace
from lvcrypt.store.lock import run_dir

try:  # CPython's own BLAKE2: hashlib would load OpenSSL first (11M instructions, 2% of a warm `lvs`)
    from _blake2 import blake2b
except ImportError:  # a Python built without it
    from hashlib import blake2b

try:  # the C pickler pickle.py wraps: pickle.py itself costs 5M instructions, 2% of a warm `lvs`
    import _pickle as pickle
except ImportError:  # a Python built without it
    import pickle  # type: ignore[no-redef]

_FORMAT = 6
# Each entry starts with the BLAKE2b of the rest, checked before marshal reads it: marshal trusts the
# lengths in its data, and 300 damaged bytes made it allocate 8.5 GiB (the OOM killer ended the process).
_SUM_SIZE = 32
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
    return blake2b(vg_id.encode("utf-8", "surrogateescape"), digest_size=32).hexdigest()


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


def _stamp_of(files: tuple[str, ...]) -> tuple[object, ...]:
    """Size and modification time of each file: code an entry depends on outside the metadata package."""
    return tuple((os.path.basename(name), info.st_size, info.st_mtime_ns) for name in files
                 for info in [os.stat(name)])


def _digest(text: bytes) -> bytes:
    """BLAKE2b of a text, remembered for the last text: a report reads the model and its view of one text."""
    global _last_digest
    if _last_digest[0] != text:
        _last_digest = (text, blake2b(text, digest_size=32).digest())
    return _last_digest[1]


_last_digest: tuple[bytes, bytes] = (b"", blake2b(b"", digest_size=32).digest())


def sealed_entry(body: bytes) -> bytes:
    """An entry's bytes: the BLAKE2b of its marshal data, then the data."""
    return blake2b(body, digest_size=_SUM_SIZE).digest() + body


def entry_body(data: bytes) -> memoryview | None:
    """The marshal data of an entry whose sum matches, else None (damaged: never given to marshal)."""
    body = memoryview(data)[_SUM_SIZE:]
    return body if blake2b(body, digest_size=_SUM_SIZE).digest() == data[:_SUM_SIZE] else None


def _payload(path: str, text: bytes, stamp: tuple[object, ...]) -> object:
    """The payload of the entry at `path` if it was written for this text by this code, else None."""
    data = _read(path)
    body = None if data is None else entry_body(data)
    if body is None:
        return None
    try:
        found, digest, payload = marshal.loads(body)
    except _FAILURES:
        return None
    return payload if found == stamp and digest == _digest(text) else None


def _write(path: str, text: bytes, stamp: tuple[object, ...], payload: object) -> None:
    """Write an entry atomically (a reader sees the old entry or the new one); failures are ignored."""
    temp = f"{path}.{os.getpid()}.tmp"
    try:
        data = sealed_entry(marshal.dumps((stamp, _digest(text), payload)))
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(temp, path)
    except (OSError, ValueError):
        try:
            os.unlink(temp)
        except OSError:
            pass


def _unpickled(payload: bytes) -> VolumeGroup | None:
    try:
        with gc_paused():  # thousands of new objects, none garbage (see gc_pause)
            vg = _ModelUnpickler(io.BytesIO(payload)).load()
    except _FAILURES:
        return None
    return vg if type(vg) is VolumeGroup else None


def _head(vg: VolumeGroup) -> VolumeGroup:
    """The VG without its LVs and without its text's sections (`raw` keeps its own keys: the system id...)."""
    raw = tree.Section(((key, value) for key, value in vg.raw.items() if not isinstance(value, tree.Section)),
                  line=vg.raw.line)
    raw.key_lines = {key: line for key, line in vg.raw.key_lines.items() if key in raw}
    return replace(vg, lvs={}, raw=raw)


def lookup_head(vg_id: str, text: bytes) -> tuple[VolumeGroup, Callable[[], VolumeGroup | None]] | None:
    """The head of the model of exactly this text, converted and validated once by this code (the VG's own
    fields and its PVs; no LV, `raw` without sections), and a function that unpickles the whole model
    (None when that part is damaged or was not stored); None when there is no such entry."""
    directory = _directory()
    payload = _payload(os.path.join(directory, _name(vg_id)), text, _code_stamp()) if directory else None
    if type(payload) is not tuple or len(payload) != 2 or not all(type(part) is bytes for part in payload):
        return None
    head = _unpickled(payload[0])
    return None if head is None else (head, lambda: _unpickled(payload[1]) if payload[1] else None)


def lookup(vg_id: str, text: bytes) -> VolumeGroup | None:
    """The model of exactly this text, converted and validated once by this code, or None."""
    found = lookup_head(vg_id, text)
    return found[1]() if found else None


def store(vg_id: str, text: bytes, vg: VolumeGroup, whole: bool = True) -> None:
    """Remember the model of a text that converted and validated, before anyone changes it; failures only
    cost the next reader a parse.  Without `whole` only its head: `lookup_head` finds the head and no model."""
    directory = _directory()
    if directory is None:
        return
    try:
        head = pickle.dumps(_head(vg), protocol=-1)  # -1: the highest protocol
        payload = (head, pickle.dumps(vg, protocol=-1) if whole else b"")
    except (ValueError, RecursionError, pickle.PicklingError):
        return
    _write(os.path.join(directory, _name(vg_id)), text, _code_stamp(), payload)


def lookup_derived(kind: str, vg_id: str, text: bytes, code: tuple[str, ...]) -> object:
    """Plain data (`marshal`'s types: nothing that runs) a command derived from the model of exactly this
    text with this code (the metadata package and the files `code`), or None; the caller checks its shape."""
    directory = _directory()
    if directory is None:
        return None
    return _payload(os.path.join(directory, f"{_name(vg_id)}.{kind}"), text, (*_code_stamp(), _stamp_of(code)))


def store_derived(kind: str, vg_id: str, text: bytes, code: tuple[str, ...], data: object) -> None:
    """Remember what `lookup_derived` gives back for this text and code; failures only cost a recomputation."""
    directory = _directory()
    if directory is not None:
        _write(os.path.join(directory, f"{_name(vg_id)}.{kind}"), text, (*_code_stamp(), _stamp_of(code)), data)
