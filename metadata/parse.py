"""LVM2 metadata text -> `Section` tree: two parsers, one result.

Text in lvm2's plain layout (everything lvm2 and lvcrypt write) is read by
the compiled fast path (_plain_layout.c), a line at a time; anything else,
and every error, goes to lark over grammar.lark (lark_parse.py), the
definition of the format, which either parses it or names the line that is
wrong.
"""

from __future__ import annotations

from lvcrypt.errors import MetadataError
from lvcrypt.metadata.gc_pause import gc_paused
from lvcrypt.metadata._plain_layout import parse_plain_layout
from lvcrypt.metadata.tree import Section


def parse_text(text: str, source: str | None = None) -> Section:
    """Parse metadata text; every problem is a `MetadataError` naming the line."""
    with gc_paused():
        tree = parse_plain_layout(text, Section)
    if tree is not None:
        return tree
    from lvcrypt.metadata.lark_parse import parse_with_lark

    return parse_with_lark(text, source)


def parse_bytes(data: bytes, source: str | None = None) -> Section:
    """Parse metadata bytes, which must be UTF-8 (lvm2 writes names in ASCII, hints in UTF-8)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise MetadataError(f"not UTF-8 text (byte 0x{data[error.start]:02x})", source, line) from None
    if "\0" in text:
        line = text.count("\n", 0, text.index("\0")) + 1
        raise MetadataError("NUL character in metadata text", source, line)
    return parse_text(text, source)
