"""A cache of parsed metadata trees, so that report commands skip the text parser (most of their time).

An entry is used only for exactly the text it was parsed from (its SHA-256 is
in the entry), so a changed VG simply misses.  Only trees that converted and
validated are stored, so a hit needs only the conversion to the model.

Nothing in it can run code or pick a path: entries are `marshal` data of
plain tuples, lists, strings and numbers (never code objects or classes;
every node is type-checked while rebuilding), named by a hash of the VG id,
in a subdirectory of the private run directory that is verified to be ours
and writable by nobody else, opened without following symbolic links.
"""

from __future__ import annotations

import hashlib
import marshal
import os
import stat
import sys

from lvcrypt import __version__
from lvcrypt.atomic_file import private_directory
from lvcrypt.errors import LvcryptError
from lvcrypt.metadata.tree import Section, Value
from lvcrypt.store.lock import run_dir

_STAMP = (__version__, sys.version_info[:2], 2)
_MAX_ENTRY = 64 << 20


def _directory() -> str | None:
    """The cache directory, created 0700; None when it or the run directory is not private to us."""
    try:
        private_directory(run_dir())
        return str(private_directory(run_dir() / "cache"))
    except LvcryptError:
        return None


def _name(vg_id: str) -> str:
    return hashlib.sha256(vg_id.encode("utf-8", "surrogateescape")).hexdigest()


def _encode(node: Value) -> object:
    if isinstance(node, Section):
        lines = tuple(item for pair in node.key_lines.items() for item in pair)
        return (node.line, lines, tuple((key, _encode(value)) for key, value in node.items()))
    return node


def _scalar(value: object) -> bool:
    return type(value) in (str, int, float)


def _decode(node: object) -> Section:
    """The Section encoded by `_encode`; ValueError on anything else."""
    if type(node) is not tuple or len(node) != 3:
        raise ValueError("not a section")
    line, lines, items = node
    if (line is not None and type(line) is not int) or type(lines) is not tuple or type(items) is not tuple:
        raise ValueError("not a section")
    section = Section(line=line)
    for key, value in items:
        if type(key) is not str:
            raise ValueError("bad key")
        if type(value) is tuple:
            section[key] = _decode(value)
        elif type(value) is list and all(_scalar(item) for item in value):
            section[key] = value
        elif _scalar(value):
            section[key] = value
        else:
            raise ValueError("bad value")
    for index in range(0, len(lines) - 1, 2):
        if type(lines[index]) is not str or type(lines[index + 1]) is not int:
            raise ValueError("bad line number")
        section.key_lines[lines[index]] = lines[index + 1]
    return section


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


def lookup(vg_id: str, text: bytes) -> Section | None:
    """The parsed tree of exactly this text (already validated once), or None."""
    directory = _directory()
    data = _read(os.path.join(directory, _name(vg_id))) if directory else None
    if data is None:
        return None
    try:
        stamp, digest, tree = marshal.loads(data)
        if stamp != _STAMP or digest != hashlib.sha256(text).digest():
            return None
        return _decode(tree)
    except (ValueError, EOFError, TypeError, RecursionError):
        return None


def store(vg_id: str, text: bytes, tree: Section) -> None:
    """Remember the tree of a text that parsed and validated; failures only cost the next reader a parse."""
    directory = _directory()
    if directory is None:
        return
    path = os.path.join(directory, _name(vg_id))
    temp = f"{path}.{os.getpid()}.tmp"
    try:
        data = marshal.dumps((_STAMP, hashlib.sha256(text).digest(), _encode(tree)))
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(temp, path)
    except (OSError, ValueError, RecursionError):
        try:
            os.unlink(temp)
        except OSError:
            pass
