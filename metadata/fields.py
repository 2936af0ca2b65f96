"""Typed reading of one metadata section, shared by tree -> model conversion and each segment type's reader.

A segment type's entry (metadata/segtypes.py) reads its own keys with these
helpers, so every type reports a missing or mistyped key the same way: the
section's name and the line of the key.
"""

from __future__ import annotations

from typing import Any

from lvcrypt.errors import MetadataError
from lvcrypt.metadata.model import Area
from lvcrypt.metadata.tree import Section

_MISSING: Any = object()
_STR = {str}
_INT = {int}


class Fields:
    """Typed access to one section's keys, with errors that name the section and the line."""

    def __init__(self, section: Section, what: str | tuple[str, ...], source: str | None):
        """`what` names the section in messages; as the parts of the name (joined only when a message
        needs it), as convert.py gives it for each LV and segment, where a message is rare."""
        self.section = section
        self.what = what
        self.source = source

    def fail(self, key: str | None, problem: str) -> MetadataError:
        line = self.section.line_of(key) if key else self.section.line
        what = self.what if isinstance(self.what, str) else "".join(self.what)
        return MetadataError(f"{what}: {problem}", self.source, line)

    def _get(self, key: str, kind: type | tuple[type, ...], kind_name: str, default: Any) -> Any:
        value = self.section.get(key, _MISSING)
        if value is _MISSING:
            if default is _MISSING:
                raise self.fail(None, f"missing '{key}'")
            return default
        if not isinstance(value, kind) or isinstance(value, bool):
            raise self.fail(key, f"'{key}' must be {kind_name}")
        return value

    # Each reader first takes the common case (the exact type, read in one
    # test: a 10,000-LV VG has 200,000 keys) and leaves everything else,
    # errors included, to the general path below it.

    def str(self, key: str, default: Any = _MISSING) -> Any:
        value = self.section.get(key, _MISSING)
        if type(value) is str:
            return value
        if value is _MISSING and default is not _MISSING:  # an optional key left out (lock_args)
            return default
        return self._get(key, str, "a string", default)

    def int(self, key: str, default: Any = _MISSING, minimum: int = 0) -> Any:
        value = self.section.get(key, _MISSING)
        if type(value) is int and value >= minimum:
            return value
        if value is _MISSING and default is None:  # an optional key left out (a linear segment's stripe_size)
            return None
        value = self._get(key, int, "an integer", default)
        if isinstance(value, int) and value < minimum:
            raise self.fail(key, f"'{key}' must be at least {minimum}, not {value}")
        return value

    def strings(self, key: str, default: Any = _MISSING) -> Any:
        value = self.section.get(key)
        if type(value) is list and set(map(type, value)) <= _STR:
            return list(value)
        if value is None and default is not _MISSING:  # an optional key left out (lvm2 writes no empty tags)
            return list(default)
        value = self._get(key, list, "a list of strings", default)
        if any(not isinstance(item, str) for item in value):
            raise self.fail(key, f"'{key}' must be a list of strings")
        return list(value)

    def areas(self, key: str, default: Any = _MISSING) -> Any:
        value = self.section.get(key)
        if type(value) is list and len(value) == 2 and type(value[0]) is str and type(value[1]) is int \
                and value[1] >= 0:  # one area: a linear segment, most of a big VG
            return [Area(value[0], value[1])]
        if type(value) is list and not len(value) % 2:
            names, extents = value[0::2], value[1::2]
            if set(map(type, names)) <= _STR and set(map(type, extents)) <= _INT and min(extents, default=0) >= 0:
                return list(map(Area, names, extents))
        value = self._get(key, list, 'a list of "pv", extent pairs', default)
        if len(value) % 2 or any(not isinstance(value[i], str) or not isinstance(value[i + 1], int)
                                 or isinstance(value[i + 1], bool) or value[i + 1] < 0
                                 for i in range(0, len(value), 2)):
            raise self.fail(key, f"'{key}' must be a list of \"pv\", extent pairs")
        return [Area(value[i], value[i + 1]) for i in range(0, len(value), 2)]

    def section_of(self, key: str) -> Section:
        value = self.section.get(key, _MISSING)
        if value is _MISSING:
            raise self.fail(None, f"missing section '{key}'")
        if not isinstance(value, Section):
            raise self.fail(key, f"'{key}' must be a section")
        return value


class Names:
    """The VG's PV keys and LV names: an area names a PV when its name is a PV key, else an LV (as lvm2 reads it)."""

    def __init__(self, pv_keys: frozenset[str] = frozenset(), lv_names: frozenset[str] = frozenset()):
        self.pv_keys = pv_keys
        self.lv_names = lv_names
