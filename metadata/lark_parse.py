"""LVM2 metadata text -> `Section` tree, with lark's LALR parser over grammar.lark.

This is the definition of the format and the source of every parse error
message; parse.py tries the fast path for lvm2's plain layout first
(_plain_layout.c) and comes here for anything else.  It is imported only
then, which keeps lark out of the start-up of commands reading plain
metadata.

The tree is built by an inline transformer while the parser runs: no lark
parse tree is materialised.
"""

from __future__ import annotations

import re
from typing import Any, Iterator
from importlib import resources
from lark import Lark, Token, Transformer
from lark.exceptions import UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError
from lark.lexer import Lexer

from lvcrypt.errors import MetadataError
from lvcrypt.metadata.tree import INT_MAX, INT_MIN, MAX_DEPTH, Scalar, Section

_BLANK = re.compile(r'(?:\s|#[^\n]*+)*+')
_ESCAPE = re.compile(r'\\(.)')
_PAIR = re.compile(r'(?:\s|#[^\n]*+)*+([A-Za-z0-9_.+\-]+)[ \t]*=[ \t]*'
                   r'("(?:[^"\\\n]|\\.)*+"|-?[0-9]+(?:\.[0-9]+)?|\[(?:[^\]"#]|"(?:[^"\\\n]|\\.)*+"|#[^\n]*+)*+\])')
_KEY_START = re.compile(r'(?:\s|#[^\n]*+)*+([A-Za-z0-9_.+\-]+)[ \t]*=[ \t]*([^\n]*)')


def _skip(text: str) -> int:
    """Length of the blank space and comments a token swallowed in front of it."""
    rest = text.lstrip()
    if rest[:1] != "#":
        return len(text) - len(rest)
    return _BLANK.match(text).end()  # type: ignore[union-attr]


_ELEMENTS = re.compile(r'"((?:[^"\\\n]|\\.)*+)"|(-?[0-9]+\.[0-9]+)|(-?[0-9]+)|#[^\n]*+')


def _string(body: str) -> str:
    return _ESCAPE.sub(r"\1", body) if "\\" in body else body


def _int(text: str, line: int) -> int:
    """The integer of `-?[0-9]+`, which must fit in 64 bits; its digits are counted first, as `int` refuses
    (ValueError) strings of more than 4,300 digits."""
    digits = text.lstrip("-").lstrip("0") or "0"
    if len(digits) <= 20:
        number = -int(digits) if text[0] == "-" else int(digits)
        if INT_MIN <= number <= INT_MAX:
            return number
    raise MetadataError(f"integer {text[:40]} does not fit in 64 bits", line=line)


def _array(text: str, line: int) -> list[Scalar]:
    values: list[Scalar] = []
    for match in _ELEMENTS.finditer(text):
        group = match.lastindex
        if group == 1:
            values.append(_string(match.group(1)))
        elif group == 2:
            values.append(float(match.group(2)))
        elif group == 3:
            values.append(_int(match.group(3), line))
    return values


def _pairs(token: Token) -> Iterator[tuple[str, object, int]]:
    """(key, value, line) of each pair in a PAIRS token; the grammar guarantees their shape."""
    text = token.value
    line = token.line
    last = 0
    for match in _PAIR.finditer(text):
        key, raw = match.groups()
        line += text.count("\n", last, match.start(1))
        last = match.start(1)
        first = raw[0]
        value: object
        if first == '"':
            value = _string(raw[1:-1])
        elif first == "[":
            value = _array(raw, line)
        elif "." in raw:
            value = float(raw)
        else:
            value = _int(raw, line)
        yield key, value, line


def _collect(items: list[object], line: int) -> Section:
    section = Section(line=line)
    lines = section.key_lines
    for item in items:
        for key, value, key_line in _pairs(item) if isinstance(item, Token) else (item,):  # type: ignore[attr-defined]
            if key in section:
                raise MetadataError(f"duplicate key '{key}' (first at line {lines[key]})", line=key_line)
            section[key] = value
            lines[key] = key_line
    return section


class _Build(Transformer):  # type: ignore[type-arg]
    def section(self, children: list[object]) -> tuple[str, Section, int]:
        head = children[0]
        assert isinstance(head, Token)
        name = head.value[_skip(head.value):-1].rstrip()
        return name, _collect(children[1:], head.end_line), head.end_line

    def start(self, children: list[object]) -> Section:
        return _collect(children, 1)


class _Lexer(Lexer):
    """One compiled regex over the grammar's own terminals, matched token after token.

    lark's general lexer does per-token bookkeeping (a line counter object,
    token callbacks, terminal filtering) that costs about as much as
    parsing; here a token is one `match` and one `str.count` for the line.
    The terminals, their patterns and their order still come from the grammar.
    """

    __future_interface__ = 0

    def __init__(self, conf: Any):
        terminals = sorted(conf.terminals, key=lambda terminal: -terminal.priority)
        self.pattern = re.compile("|".join(f"(?P<{t.name}>{t.pattern.to_regexp()})" for t in terminals))
        self.ignore = frozenset(conf.ignore)

    def lex(self, text: str) -> Iterator[Token]:
        match = self.pattern.match
        count = text.count
        ignore = self.ignore
        position = 0
        line = 1
        end = len(text)
        while position < end:
            found = match(text, position)
            if found is None:
                raise _lex_error(text, position, line)
            stop = found.end()
            kind = found.lastgroup
            start_line = line
            line += count("\n", position, stop)
            if kind not in ignore:
                yield Token(kind, found.group(), position, start_line, None, line, None, stop)  # type: ignore[arg-type]
            position = stop


def _lex_error(text: str, position: int, line: int) -> MetadataError:
    """Say what is wrong where no terminal matches: a bad value after `key =`, or a stray character."""
    line += text.count("\n", position, position + _skip(text[position:position + 4096]))
    key = _KEY_START.match(text, position)
    if key:
        return MetadataError(f"malformed value for '{key.group(1)}': {key.group(2)[:40]!r}", line=line)
    start = position + _skip(text[position:position + 4096])
    shown = text[start:start + 1]
    if shown == '"':
        return MetadataError("unterminated string (strings end on the line they start)", line=line)
    return MetadataError(f"unexpected character {shown!r}", line=line)


_parser: Lark | None = None


def _lark() -> Lark:
    global _parser
    if _parser is None:
        grammar = resources.files("lvcrypt.metadata").joinpath("grammar.lark").read_text()
        _parser = Lark(grammar, parser="lalr", lexer=_Lexer, transformer=_Build())
    return _parser


def _check_depth(tree: Section) -> None:
    """Reject absurd nesting, so that the recursive writer and model never meet it."""
    stack = [(tree, 0)]
    while stack:
        section, depth = stack.pop()
        for _, child in section.sections():
            if depth + 1 > MAX_DEPTH:
                raise MetadataError(f"sections nested deeper than {MAX_DEPTH} levels", line=child.line)
            stack.append((child, depth + 1))


def _describe(error: UnexpectedInput, text: str) -> MetadataError:
    if isinstance(error, UnexpectedEOF):
        return MetadataError("unexpected end of text (unbalanced braces or brackets?)",
                             line=text.count("\n") + 1)
    if isinstance(error, UnexpectedToken):
        token = error.token
        if token.type == "$END":
            return MetadataError("unexpected end of text (unbalanced braces or brackets?)",
                                 line=text.count("\n") + 1)
        shown = token.value[_skip(token.value):].strip()[:40]
        return MetadataError(f"unexpected {shown!r}", line=token.end_line)
    return MetadataError(str(error).splitlines()[0], line=getattr(error, "line", None))


def parse_with_lark(text: str, source: str | None = None) -> Section:
    """Parse metadata text in any layout the grammar allows; every problem is a `MetadataError` naming the line."""
    try:
        tree: Section = _lark().parse(text)
        _check_depth(tree)
        return tree
    except MetadataError as error:
        raise error.at(source) if source else error
    except VisitError as error:
        inner = error.orig_exc
        if isinstance(inner, MetadataError):
            raise inner.at(source) if source else inner from None
        raise
    except UnexpectedInput as error:
        described = _describe(error, text)
        raise (described.at(source) if source else described) from None
