"""Dotted paths into a metadata tree, for `lvcrypt metadata get|set|del` and scripts.

`logical_volumes.lv0.tags` is read from the volume group's section;
top-level keys (`description`, `creation_host`) are found too.  Names may
themselves contain dots (LV names do), so each step takes the longest key
that matches.  Values given on the command line use the metadata syntax
(`"text"`, `12`, `1.5`, `["a", 1]`); a bare word is taken as a string.
"""

from __future__ import annotations

from lvcrypt.errors import MetadataError
from lvcrypt.metadata.parse import parse_text
from lvcrypt.metadata.tree import Section, Value


def _vg_section(tree: Section) -> Section | None:
    sections = [value for value in tree.values() if isinstance(value, Section)]
    return sections[0] if len(sections) == 1 else None


def _step(section: Section, rest: str) -> tuple[str, str] | None:
    """(key, what remains) for the longest key of `section` that `rest` starts with."""
    best = None
    for key in section:
        if (rest == key or rest.startswith(key + ".")) and (best is None or len(key) > len(best)):
            best = key
    if best is None:
        return None
    return best, rest[len(best) + 1:]


def locate(tree: Section, path: str, create: bool = False) -> tuple[Section, str]:
    """(section holding the last key, that key); with `create`, the key may be new."""
    if not path or path.startswith(".") or path.endswith("."):
        raise MetadataError(f"invalid path '{path}'")
    vg = _vg_section(tree)
    start = vg if vg is not None and (_step(vg, path) or not _step(tree, path)) else tree
    section, rest = start, path
    while True:
        found = _step(section, rest)
        if found is None:
            if create and "." not in rest:
                return section, rest
            raise MetadataError(f"no key or section '{rest}' in path '{path}'")
        key, rest = found
        if not rest:
            return section, key
        child = section[key]
        if not isinstance(child, Section):
            raise MetadataError(f"'{key}' in path '{path}' is a value, not a section")
        section = child


def get(tree: Section, path: str) -> Value:
    section, key = locate(tree, path)
    return section[key]


def parse_value(text: str) -> Value:
    """A value in metadata syntax; anything that is not (e.g. `vg0`, `aes-xts-plain64`) is a string."""
    try:
        parsed = parse_text(f"value = {text}")
    except MetadataError:
        if "\n" in text or "\0" in text:
            raise MetadataError("values cannot contain newlines or NUL characters") from None
        return text
    return parsed["value"]


def set_value(tree: Section, path: str, value: Value) -> None:
    section, key = locate(tree, path, create=True)
    if isinstance(section.get(key), Section):
        raise MetadataError(f"'{path}' is a section: set its keys instead")
    section[key] = value


def delete(tree: Section, path: str) -> None:
    section, key = locate(tree, path)
    del section[key]
