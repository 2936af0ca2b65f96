"""The plain tree of a metadata text: ordered sections of typed values.

A `Section` is a `dict` (insertion-ordered, so the writer keeps the order of
the source) that also remembers the line of each key, so that validation
errors found long after parsing can still name the line.  Values are `str`,
`int`, `float`, or lists of those; nested sections are `Section`s.

Equality is the dict's: order-insensitive, which is what a semantic diff
wants.  `ordered_items` gives the order-sensitive view for round-trip checks.
"""

from __future__ import annotations

from typing import Union

Scalar = Union[str, int, float]

# Limits of the format, the same for both parsers (parse.py): lvm2 reads
# integers as 64 bits, and the recursive writer and model never meet deeper nesting.
MAX_DEPTH = 32
INT_MIN = -(1 << 63)
INT_MAX = (1 << 64) - 1


class Section(dict[str, "Value"]):  # "Value" a string here: typing would compile a ForwardRef of "Section"
    __slots__ = ("line", "key_lines")

    def __init__(self, *args: object, line: int | None = None, **kwargs: Value):
        super().__init__(*args, **kwargs)
        self.line = line
        self.key_lines: dict[str, int] = {}

    def line_of(self, key: str) -> int | None:
        """Line of `key` in the source, or of the section itself when unknown."""
        return self.key_lines.get(key, self.line)

    def sections(self) -> list[tuple[str, "Section"]]:
        """The nested sections, in order (a list: cheaper than a generator for the few each has)."""
        return [(key, value) for key, value in self.items() if isinstance(value, Section)]

    def copy(self) -> "Section":
        """A deep copy that keeps line numbers."""
        clone = Section(line=self.line)
        clone.key_lines = dict(self.key_lines)
        for key, value in self.items():
            if isinstance(value, Section):
                clone[key] = value.copy()
            elif isinstance(value, list):
                clone[key] = list(value)
            else:
                clone[key] = value
        return clone


Value = Union[Scalar, list[Scalar], Section]


def ordered_items(node: Value) -> object:
    """An order-sensitive, comparable form of a tree (sections as lists of pairs)."""
    if isinstance(node, Section):
        return [(key, ordered_items(value)) for key, value in node.items()]
    return node


def to_plain(node: Value) -> object:
    """The tree as JSON-ready dicts and lists."""
    if isinstance(node, Section):
        return {key: to_plain(value) for key, value in node.items()}
    return node
