"""Finding key handlers by name through the `lvcrypt.key_handlers` entry points.

The built-in handlers register the same way as third-party ones (in
pyproject.toml), so there is one lookup path.  A keystore whose handler is
not installed keeps its attributes and area readable; only operations that
need the handler fail, with a message naming the handler to install.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import EntryPoint, entry_points

from lvcrypt.errors import FormatError, HandlerError
from lvcrypt.handlers.base import Area, KeyHandler
from lvcrypt.handlers.checkvalue import read_handler_name
from lvcrypt.handlers.luks2.header import METADATA_SIZES, PREFIX, PRIMARY_MAGIC, SECONDARY_MAGIC

GROUP = "lvcrypt.key_handlers"


def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def available() -> list[str]:
    """Names of the handlers installed on this system."""
    return sorted(_entry_points())


@cache
def get(name: str) -> KeyHandler:
    """The handler called `name`; HandlerError if no installed package provides it."""
    entry = _entry_points().get(name)
    if entry is None:
        raise HandlerError(f"key handler {name!r} is not installed: install a package that provides "
                           f"it in the {GROUP} entry-point group")
    try:
        handler_class = entry.load()
    except (ImportError, AttributeError) as error:
        raise HandlerError(f"key handler {name!r} failed to load: {error}") from None
    if not (isinstance(handler_class, type) and issubclass(handler_class, KeyHandler)):
        raise HandlerError(f"key handler {name!r} ({entry.value}) is not a KeyHandler")
    return handler_class()


def detect(area: Area) -> str:
    """The handler of a keystore area that records it: LUKS by magic and version, else lvcrypt's check block."""
    if area.size < PREFIX.size:
        raise FormatError("keystore area is too small to hold a header")
    head = PREFIX.unpack_from(area.read(0, PREFIX.size))
    if head["magic"] == PRIMARY_MAGIC:
        version = head["version"]
        if version in (1, 2):
            return f"luks{version}"
        raise FormatError(f"unsupported LUKS version {version}")
    name = read_handler_name(area)
    if name is None and _luks2_secondary(area):
        return "luks2"
    if name is None:
        raise FormatError("not a LUKS header nor an lvcrypt key check block")
    return name


def _luks2_secondary(area: Area) -> bool:
    """A LUKS2 secondary copy at one of the offsets cryptsetup probes when the primary's magic is gone."""
    for offset in METADATA_SIZES:
        if area.size >= offset + PREFIX.size:
            head = PREFIX.unpack_from(area.read(offset, PREFIX.size))
            if head["magic"] == SECONDARY_MAGIC and head["version"] == 2:
                return True
    return False
