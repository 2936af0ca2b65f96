"""The fast path (line_parser.py) gives lark's tree, line numbers included, or declines.

lark over grammar.lark defines the format; the fast path may only ever agree
with it or step aside.  Checked on generated trees in both of lvm2's layouts,
on hand-varied layouts (comments, blank lines, spacing, arrays over several
lines), on damaged texts, and on every metadata fixture under tests/data.
"""

from __future__ import annotations

import gc
import re
from pathlib import Path
from typing import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lvcrypt.errors import MetadataError
from lvcrypt.metadata.lark_parse import parse_with_lark
from lvcrypt.metadata import line_parser
from lvcrypt.metadata.line_parser import parse_plain_layout
from lvcrypt.metadata.parse import parse_text
from lvcrypt.metadata.tree import Section, ordered_items
from lvcrypt.metadata.write import write_text

DATA = Path(__file__).parent.parent / "data"
FIXTURES = sorted(DATA.rglob("*.vg"))
RFC = (DATA / "rfc_example.vg").read_text()

names = st.from_regex(r"[A-Za-z0-9_.+\-]{1,12}", fullmatch=True)
strings = st.text(st.characters(blacklist_characters="\n\0", blacklist_categories=("Cs",)), max_size=20)
integers = st.integers(min_value=-(1 << 63), max_value=(1 << 64) - 1)
floats = st.floats(allow_nan=False, allow_infinity=False, width=64)
scalars = st.one_of(strings, integers, floats)
values = st.one_of(scalars, st.lists(st.one_of(strings, integers, floats), max_size=6))


def sections(depth: int) -> st.SearchStrategy[Section]:
    children = values if depth == 0 else st.one_of(values, st.deferred(lambda: sections(depth - 1)))
    return st.dictionaries(names, children, max_size=5).map(Section)


def shape(tree: Section) -> object:
    """Everything a parse gives: keys in order, values with their types, and every line number."""
    def walk(node: object) -> object:
        if isinstance(node, Section):
            return ("section", node.line, dict(node.key_lines), [(key, walk(value)) for key, value in node.items()])
        if isinstance(node, list):
            return [(type(item).__name__, item) for item in node]
        return (type(node).__name__, node)
    return walk(tree)


def outcome(parse: Callable[[str], Section], text: str) -> object:
    try:
        return shape(parse(text))
    except MetadataError as error:
        return ("error", str(error))


def assert_agrees(text: str) -> bool:
    """The fast path's tree equals lark's whenever it gives one; True when it did."""
    fast = parse_plain_layout(text)
    if fast is None:
        return False
    assert shape(fast) == outcome(parse_with_lark, text)
    return True


@pytest.mark.parametrize("path", FIXTURES, ids=lambda path: str(path.relative_to(DATA)))
def test_every_fixture_takes_the_fast_path_and_agrees_with_lark(path: Path) -> None:
    assert assert_agrees(path.read_text())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sections(3), st.sampled_from(["backup", "disk"]))
def test_written_text_takes_the_fast_path_and_agrees_with_lark(tree: Section, layout: str) -> None:
    text = write_text(tree, layout=layout)  # type: ignore[arg-type]
    assert assert_agrees(text)
    assert ordered_items(parse_text(text)) == ordered_items(tree)


# Layout changes the grammar allows, some of which the fast path reads and some it leaves to lark.
VARIATIONS = [
    (r"\n", "\n\n"), (r"\n", "\n# a comment\n"), (r"\n", "  \t\n"), (r"\n", "\r\n"), (r" = ", "="),
    (r" = ", " \t=\t "), (r"\]\n", "] # note\n"), (r"\{\n", "{ # note\n"), (r", ", ",\n\t"),
    (r"\[", "[\n"), (r"\[", "[ # in array\n"), (r"\n\t+", "\n"), (r"\n(?=\t*[a-z])", " "), (r"\}\n", "}"),
    (r'"', r'"\\'), (r"\n", "\v\n"), (r"([0-9])\n", r"\1.5\n"), (r"([0-9])\n", r"\1x\n"), (r"\}\n", "}}\n"),
]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sections(3), st.sampled_from(["backup", "disk"]),
       st.lists(st.tuples(st.sampled_from(VARIATIONS), st.integers(0, 50)), max_size=4))
def test_varied_layouts_agree_with_lark(tree: Section, layout: str,
                                        changes: list[tuple[tuple[str, str], int]]) -> None:
    text = write_text(tree, layout=layout)  # type: ignore[arg-type]
    for (pattern, replacement), index in changes:
        matches = list(re.finditer(pattern, text))
        if matches:
            found = matches[index % len(matches)]
            text = text[:found.start()] + found.expand(replacement) + text[found.end():]
    if not assert_agrees(text):  # then parse_text's result is lark's, errors and their lines included
        assert outcome(parse_text, text) == outcome(parse_with_lark, text)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, len(RFC) - 1), st.integers(0, 40), st.text(alphabet='{}[]",=#\n \t"a1-.\\', max_size=6))
def test_damaged_metadata_agrees_with_lark(position: int, cut: int, insert: str) -> None:
    assert_agrees(RFC[:position] + insert + RFC[position + cut:])


def test_limits_are_lark_s() -> None:
    """Beyond 64-bit integers, duplicate keys and too deep nesting the fast path declines, and lark says why."""
    deep = "".join(f"s{depth} {{\n" for depth in range(33)) + "}\n" * 33
    for text, problem in [("a = 18446744073709551616\n", "does not fit in 64 bits"),
                          ("a = 1\nb = 2\na = 3\n", "duplicate key 'a' (first at line 1)"),
                          (deep, "nested deeper than 32 levels")]:
        assert parse_plain_layout(text) is None
        with pytest.raises(MetadataError, match=re.escape(problem)):
            parse_text(text)
    assert parse_plain_layout(deep.replace("s32 {\n", "", 1).replace("}\n", "", 1)) is not None


def test_an_error_deep_in_a_large_plain_text_names_its_line() -> None:
    body = "".join(f"\tlv{n} {{\n\t\tid = \"{n}\"\n\t}}\n" for n in range(5000))
    text = f"vg {{\n{body}\tbad = [1, 2\n}}\n"
    with pytest.raises(MetadataError) as caught:
        parse_text(text, "big.vg")
    assert str(caught.value).startswith(f"big.vg:{3 * 5000 + 2}:")


def test_the_garbage_collector_is_left_as_it_was() -> None:
    """Parsing, converting and validating pause the cyclic collector (a big VG is a million containers)
    and give it back as they found it, also when the text is refused."""
    from lvcrypt.metadata.convert import tree_to_vg
    from lvcrypt.metadata.validate import validate

    def read(text: str) -> None:
        validate(tree_to_vg(parse_text(text)))

    assert gc.isenabled()
    frozen = gc.get_freeze_count()
    read(RFC)
    assert gc.get_freeze_count() == frozen  # only a CLI process freezes what it read (metadata/gc_pause.py)
    with pytest.raises(MetadataError):
        read(RFC.replace("seqno", "seqno = 1\nseqno", 1))
    assert gc.isenabled()
    gc.disable()
    try:
        read(RFC)
        assert not gc.isenabled()
    finally:
        gc.enable()


@pytest.mark.parametrize("chunk", [1, 40, 1000])
def test_a_text_read_in_chunks_gives_the_same_tree(chunk: int) -> None:
    """Large texts are matched a chunk at a time (cut after `}` lines); any cut gives lark's tree."""
    texts = [path.read_text() for path in FIXTURES]
    texts.append(write_text(Section(vg=Section(lvs=Section(
        (f"lv{n}", Section(stripes=["pv0", n, "pv1", n], status=["READ"], n=n)) for n in range(300))))))
    saved = line_parser._CHUNK
    line_parser._CHUNK = chunk
    try:
        for text in texts:
            assert assert_agrees(text)
    finally:
        line_parser._CHUNK = saved
