"""LVM2 metadata text -> `Section` tree, with lark's LALR parser.

The tree is built by an inline transformer while the parser runs: no lark
parse tree is materialised, which is what makes a 4 MB metadata text parse in
well under a second.  The compiled grammar is cached next to the user's cache
directory by lark (`cache=True`), keeping `lvs` start-up short.
"""

from __future__ import annotations

import re
from importlib import resources
from lark import Lark, Token, Transformer
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from lvcrypt.errors import MetadataError
from lvcrypt.metadata.tree import Scalar, Section

MAX_DEPTH = 32
INT_MIN = -(1 << 63)
INT_MAX = (1 << 64) - 1

_BLANK = re.compile(r'(?:\s|#[^\n]*+)*+')
_ESCAPE = re.compile(r'\\(.)')


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
    number = int(text)
    if not INT_MIN <= number <= INT_MAX:
        raise MetadataError(f"integer {text} does not fit in 64 bits", line=line)
    return number


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


def _pair(token: Token) -> tuple[str, object, int]:
    """(key, value, line) of a PAIR token; the grammar guarantees its shape."""
    text = token.value
    begin = _skip(text)
    equals = text.index("=", begin)
    key = text[begin:equals].rstrip()
    raw = text[equals + 1:].strip()
    line = token.end_line - text.count("\n", begin)
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
    return key, value, line


def _collect(items: list[object], line: int) -> Section:
    section = Section(line=line)
    lines = section.key_lines
    for item in items:
        key, value, key_line = _pair(item) if isinstance(item, Token) else item  # type: ignore[misc]
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


_parser: Lark | None = None


def _lark() -> Lark:
    global _parser
    if _parser is None:
        grammar = resources.files("lvcrypt.metadata").joinpath("grammar.lark").read_text()
        _parser = Lark(grammar, parser="lalr", lexer="basic", transformer=_Build(),
                       maybe_placeholders=True, cache=False)
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
    if isinstance(error, UnexpectedCharacters):
        char = text[error.pos_in_stream] if error.pos_in_stream < len(text) else ""
        return MetadataError(f"unexpected character {char!r} at column {error.column}", line=error.line)
    if isinstance(error, UnexpectedEOF):
        return MetadataError("unexpected end of text (unbalanced braces or brackets?)",
                             line=text.count("\n") + 1)
    if isinstance(error, UnexpectedToken):
        token = error.token
        if token.type == "$END":
            return MetadataError("unexpected end of text (unbalanced braces or brackets?)",
                                 line=text.count("\n") + 1)
        shown = token.value[_skip(token.value):].strip()
        if token.type == "BAD_VALUE":
            key, _, value = shown.partition("=")
            return MetadataError(f"malformed value for '{key.strip()}': {value.strip()[:40]!r}",
                                 line=token.end_line)
        shown = shown[:40]
        return MetadataError(f"unexpected {shown!r}", line=token.end_line)
    return MetadataError(str(error).splitlines()[0], line=getattr(error, "line", None))


def parse_text(text: str, source: str | None = None) -> Section:
    """Parse metadata text; every problem is a `MetadataError` naming the line."""
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
