"""Finding key handlers by name through the `lvcrypt.key_handlers` entry points.

The built-in handlers register the same way as third-party ones (in
pyproject.toml), and `available()` lists every registered name.  Looking a
built-in name up needs no installed-package metadata, though: `BUILT_IN`
resolves it directly, because `importlib.metadata` (and the email package it
loads) costs a data command more start-up than its whole unlock, and another
package's entry point must not shadow lvcrypt's own LUKS handlers.  A keystore
whose handler is not installed keeps its attributes and area readable; only
operations that need the handler fail, with a message naming the handler to
install.
"""

from __future__ import annotations

import importlib
from functools import cache
from typing import TYPE_CHECKING, Iterator

from lvcrypt.errors import FormatError, HandlerError
from lvcrypt.handlers.base import Area, KeyHandler
from lvcrypt.handlers.checkvalue import read_handler_name
from lvcrypt.handlers.luks2.header import PREFIX, PRIMARY_MAGIC

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

GROUP = "lvcrypt.key_handlers"
DEFAULT = "luks2"  # the handler of a new keystore when the user names none (cryptsetup's default type)
# lvcrypt's own entries of GROUP in pyproject.toml (tests/handlers/test_handler_registry.py keeps them equal).
BUILT_IN = {
    "plain": "lvcrypt.handlers.plain:PlainHandler",
    "hashed": "lvcrypt.handlers.hashed:HashedHandler",
    "luks1": "lvcrypt.handlers.luks1:Luks1Handler",
    "luks2": "lvcrypt.handlers.luks2:Luks2Handler",
}


def _entry_points() -> dict[str, "EntryPoint"]:
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=GROUP)}


def available() -> list[str]:
    """Names of the handlers installed on this system."""
    return sorted(set(BUILT_IN) | set(_entry_points()))


def _load(name: str) -> tuple[object, str]:
    """The object `name` is registered as, and how it is registered (for messages)."""
    if name in BUILT_IN:
        module, _, attribute = BUILT_IN[name].partition(":")
        return getattr(importlib.import_module(module), attribute), BUILT_IN[name]
    entry = _entry_points().get(name)
    if entry is None:
        raise HandlerError(f"key handler {name!r} is not installed: install a package that provides "
                           f"it in the {GROUP} entry-point group")
    return entry.load(), entry.value


@cache
def get(name: str) -> KeyHandler:
    """The handler called `name`; HandlerError if no installed package provides it."""
    try:
        handler_class, registered = _load(name)
    except (ImportError, AttributeError) as error:
        raise HandlerError(f"key handler {name!r} failed to load: {error}") from None
    if not (isinstance(handler_class, type) and issubclass(handler_class, KeyHandler)):
        raise HandlerError(f"key handler {name!r} ({registered}) is not a KeyHandler")
    return handler_class()


def loadable() -> list[KeyHandler]:
    """Every installed handler that loads; a broken third-party package must not stop detection of the rest."""
    handlers = []
    for name in available():
        try:
            handlers.append(get(name))
        except HandlerError:
            continue
    return handlers


class Choices:
    """Handler names as an option's argparse `choices`, looked up when asked: a built-in name on the
    command line is checked without the installed-package metadata (importlib.metadata costs lvconvert
    and lvcreate tens of milliseconds of start-up); another name, the help and a usage error's list read
    every installed handler.  `with_header`: only handlers whose keystore has a header (LUKS)."""

    def __init__(self, with_header: bool = False):
        self.with_header = with_header

    def __contains__(self, name: object) -> bool:
        if isinstance(name, str) and name in BUILT_IN:
            return not self.with_header or get(name).has_header
        return name in list(self)

    def __iter__(self) -> Iterator[str]:
        if self.with_header:
            return iter([handler.name for handler in loadable() if handler.has_header])
        return iter(available())


def detect(area: Area) -> str:
    """The handler of a keystore area that records it, asking each handler to probe.

    First the start of the area (a LUKS magic, a key check block), then, when
    nothing matched, backup copies (a LUKS2 secondary header whose primary
    is gone), so a stale backup never outranks a current header.  A check
    block naming a handler that is not installed still names it, so the
    error says what to install.
    """
    if area.size < PREFIX.size:
        raise FormatError("keystore area is too small to hold a header")
    handlers = loadable()
    for handler in handlers:
        if handler.probe(area):
            return handler.name
    recorded = read_handler_name(area)
    if recorded is not None:
        return recorded
    for handler in handlers:
        if handler.probe_backup(area):
            return handler.name
    head = PREFIX.unpack_from(area.read(0, PREFIX.size))
    if head["magic"] == PRIMARY_MAGIC:
        raise FormatError(f"unsupported LUKS version {head['version']}")
    raise FormatError("not a LUKS header nor an lvcrypt key check block")
