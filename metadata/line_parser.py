"""The fast path of the metadata parser: text laid out as lvm2 and lvcrypt write it, one item per line.

lark (grammar.lark, parse.py) stays the definition of the format and the
source of every error message.  But its parser costs about 3 µs per token in
Python, while lvm2's own layout is so regular that one regex can read a whole
line (`key = value`, `name {`, `}`, blank or comment), and `findall` does that
for the whole text in C.  So this module reads the lines that have exactly
that shape, builds the same `Section` tree with the same line numbers, and
gives up (returns None) on anything else: several items on one line, a
comment inside an array, a duplicate key, an integer beyond 64 bits, nesting
beyond MAX_DEPTH, unbalanced braces, odd whitespace.  parse.py then runs lark
on the text, which either parses it or says what is wrong and where.

tests/metadata/test_metadata_line_parser.py proves the two agree on generated
texts and on every fixture under tests/data.
"""

from __future__ import annotations

import json
import re
from typing import Iterator

from lvcrypt.metadata.tree import INT_MAX, INT_MIN, MAX_DEPTH, Scalar, Section

# The grammar's terminals (grammar.lark), without comments and with blank
# space limited to spaces and tabs, except between array elements, where
# lvm2 breaks lines.
_STRING = r'"[^"\\\n]*+(?:\\.[^"\\\n]*+)*+"'  # the grammar's _STRING, unrolled (fewer steps per character)
_NUMBER = r"-?[0-9]++(?:\.[0-9]++)?+"
_ELEMENT = rf"(?:{_STRING}|{_NUMBER})"
_ARRAY = rf"\[\s*+(?:{_ELEMENT}(?:\s*+,\s*+{_ELEMENT})*+)?+\s*+\]"

# One line: (key, value, "{", "}", anything else).  Every match ends with a
# newline, so the matches are the text's lines in order (an array may span
# several), and a line of any other shape is caught whole by the last group.
# The common cases come first where sre tests a literal before entering a
# branch: an empty line, a line ending right after its item, and the values
# that start with `"` or `[` before numbers (12% fewer instructions than
# optional groups, measured on a 10,000-LV VG).  An item either matches whole
# or not at all (its quantifiers are possessive), so the empty alternative
# after it only ever serves blank and comment lines.
_LINE = re.compile(rf"""
    \n
  | [ \t]*+
    (?: ([A-Za-z0-9_.+\-]++) [ \t]*+ (?: = [ \t]*+ ({_STRING}|{_ARRAY}|{_NUMBER}) | (\{{) ) | (\}}) | )
    (?: \n | [ \t]*+ (?:\#[^\n]*+|) \n )
  | ([^\n]*+\n)
""", re.VERBOSE)

# Where the text may be cut into chunks: after a line starting with `}`,
# which no match (an array over several lines) can span.
_CLOSING_LINE = re.compile(r"^[ \t]*+\}[^\n]*+\n", re.MULTILINE)
_CHUNK = 1 << 20

_ELEMENTS = re.compile(rf"({_STRING})|(-?[0-9]+\.[0-9]+)|(-?[0-9]+)")
_ESCAPE = re.compile(r"\\(.)")
_LONG_NUMBER = re.compile(r"[0-9]{19}")
_scan_json = json.JSONDecoder().scan_once
# A nested section without `Section.__init__` (a Python call with *args and **kwargs): the parser sets its
# two slots itself, 25,000 times for a 10,000-LV VG.
new_section = dict.__new__


class _Decline(Exception):
    """The text is not in the plain layout this module reads: lark decides."""


def _string(quoted: str) -> str:
    body = quoted[1:-1]
    return _ESCAPE.sub(r"\1", body) if "\\" in body else body


def _int(digits: str) -> int:
    number = int(digits)
    if not INT_MIN <= number <= INT_MAX:
        raise _Decline
    return number


def _elements(array: str) -> tuple[Scalar, ...]:
    """The values of an array the line regex matched.

    Without backslashes, integers beyond 18 digits or control characters in
    its strings, such an array reads the same as JSON, so json's scanner (C)
    reads it; otherwise (or when it refuses) the elements are read one by one.
    """
    if "\\" not in array and not _LONG_NUMBER.search(array):
        try:
            values, end = _scan_json(array, 0)
            if end == len(array):
                return tuple(values)
        except (ValueError, StopIteration):
            pass
    found: list[Scalar] = []
    for string, real, integer in _ELEMENTS.findall(array):
        if string:
            found.append(_string(string))
        elif real:
            found.append(float(real))
        else:
            found.append(_int(integer))
    return tuple(found)


def parse_plain_layout(text: str) -> Section | None:
    """The tree of `text` when every line has lvm2's plain shape, else None (lark then decides)."""
    try:
        return _parse(text if text.endswith("\n") else text + "\n")
    except _Decline:
        return None


def _chunks(text: str) -> Iterator[list[tuple[str, str, str, str, str]]]:
    """The line regex's matches, found a megabyte at a time: the same matches as one `findall`, without
    holding a tuple per line of a large text that is not metadata at all (the parse stops at its first line)."""
    start = 0
    while start < len(text):
        cut = _CLOSING_LINE.search(text, start + _CHUNK)
        end = cut.end() if cut else len(text)
        yield _LINE.findall(text, start, end)
        start = end


def _parse(text: str) -> Section:
    root = Section(line=1)
    section = root
    lines = root.key_lines
    stack: list[Section] = []
    arrays: dict[str, tuple[Scalar, ...]] = {}  # lvm2 repeats the same few arrays (status, flags) in every LV
    # One object per distinct key or string ("id", "striped", "pv0"), not one per line: the model cache's pickle
    # then writes and reads each once and refers to it after (store/cache.py), and the tree is smaller.
    shared: dict[str, str] = {}
    line = 0
    for chunk in _chunks(text):
        for key, value, opened, closed, other in chunk:
            line += 1
            if value:
                key = shared.setdefault(key, key)
                if key in section:
                    raise _Decline
                first = value[0]
                if first == '"':
                    value = value[1:-1]
                    value = _ESCAPE.sub(r"\1", value) if "\\" in value else value
                    section[key] = shared.setdefault(value, value)
                elif first == "[":
                    elements = arrays.get(value)
                    if elements is None:
                        elements = arrays[value] = tuple(shared.setdefault(item, item) if type(item) is str
                                                         else item for item in _elements(value))
                    section[key] = list(elements)
                    lines[key] = line
                    line += value.count("\n")
                    continue
                elif "." in value:
                    section[key] = float(value)
                else:
                    section[key] = _int(value) if len(value) > 18 else int(value)
                lines[key] = line
            elif opened:
                key = shared.setdefault(key, key)
                if key in section:
                    raise _Decline
                child = section[key] = new_section(Section)
                child.line = line
                child.key_lines = lines = {}
                section.key_lines[key] = line
                stack.append(section)
                if len(stack) > MAX_DEPTH:
                    raise _Decline
                section = child
            elif closed:
                if not stack:
                    raise _Decline
                section = stack.pop()
                lines = section.key_lines
            elif other:
                raise _Decline
    if stack:
        raise _Decline
    return root
