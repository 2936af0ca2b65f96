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

import re

from lvcrypt.metadata.tree import INT_MAX, INT_MIN, MAX_DEPTH, Scalar, Section, Value

# The grammar's terminals (grammar.lark), without comments and with blank
# space limited to spaces and tabs, except between array elements, where
# lvm2 breaks lines.
_STRING = r'"(?:[^"\\\n]|\\.)*+"'
_NUMBER = r"-?[0-9]++(?:\.[0-9]++)?+"
_ELEMENT = rf"(?:{_STRING}|{_NUMBER})"
_ARRAY = rf"\[\s*+(?:{_ELEMENT}(?:\s*+,\s*+{_ELEMENT})*+)?+\s*+\]"

# One line: (key, string, number, array, "{", "}", anything else).  Every
# match ends with a newline, so the matches are the text's lines in order
# (an array may span several), and a line of any other shape is caught whole
# by the last group.
_LINE = re.compile(rf"""
    [ \t]*+
    (?: ([A-Za-z0-9_.+\-]++) [ \t]*+
        (?: = [ \t]*+ (?: ({_STRING}) | ({_NUMBER}) | ({_ARRAY}) ) | (\{{) )
      | (\}})
    )?+
    [ \t]*+ (?:\#[^\n]*+)?+ \n
  | ([^\n]*+\n)
""", re.VERBOSE)

_ELEMENTS = re.compile(rf"({_STRING})|(-?[0-9]+\.[0-9]+)|(-?[0-9]+)")
_ESCAPE = re.compile(r"\\(.)")


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
    values: list[Scalar] = []
    for string, real, integer in _ELEMENTS.findall(array):
        if string:
            values.append(_string(string))
        elif real:
            values.append(float(real))
        else:
            values.append(_int(integer))
    return tuple(values)


def parse_plain_layout(text: str) -> Section | None:
    """The tree of `text` when every line has lvm2's plain shape, else None (lark then decides)."""
    try:
        return _parse(text if text.endswith("\n") else text + "\n")
    except _Decline:
        return None


def _parse(text: str) -> Section:
    root = Section(line=1)
    section = root
    lines = root.key_lines
    stack: list[Section] = []
    arrays: dict[str, tuple[Scalar, ...]] = {}  # lvm2 repeats the same few arrays (status, flags) in every LV
    line = 0
    for key, string, number, array, opened, closed, other in _LINE.findall(text):
        line += 1
        if key:
            if key in section:
                raise _Decline
            value: Value
            if string:
                value = _string(string)
            elif number:
                value = float(number) if "." in number else _int(number)
            elif array:
                elements = arrays.get(array)
                if elements is None:
                    elements = arrays[array] = _elements(array)
                value = list(elements)
            else:
                child = Section(line=line)
                section[key] = child
                lines[key] = line
                stack.append(section)
                if len(stack) > MAX_DEPTH:
                    raise _Decline
                section = child
                lines = child.key_lines
                continue
            section[key] = value
            lines[key] = line
            if array:
                line += array.count("\n")
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
