"""The fast path (the compiled _plain_layout.c) gives lark's tree, line numbers included, or declines.

lark over grammar.lark defines the format; the fast path may only ever agree
with it or step aside.  Checked on generated trees in both of lvm2's layouts,
on hand-varied layouts (comments, blank lines, spacing, arrays over several
lines), on damaged and random texts, on each rule that makes it decline, on
the edges of its input (no final newline, text ending inside a string or an
array, 64-bit limits, UTF-8, Unicode whitespace) and on every metadata
fixture under tests/data; also that it shares strings as the model cache
expects, and that a thousand parses leave no objects behind.
"""

from __future__ import annotations

import gc
import re
import sys
from pathlib import Path
from typing import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lvcrypt.errors import MetadataError
from lvcrypt.metadata import _plain_layout
from lvcrypt.metadata.lark_parse import parse_with_lark
from lvcrypt.metadata.parse import parse_text
from lvcrypt.metadata.tree import INT_MAX, INT_MIN, MAX_DEPTH, Section, ordered_items
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


def parse_plain_layout(text: str) -> Section | None:
    return _plain_layout.parse_plain_layout(text, Section)


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
    (r", ", ",\u00a0"), (r"\[", "[\u3000\n"), (r", ", "\u2028,"), (r"\]", "\x1c]"), (r"\n", "\u00a0\n"),
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


# Texts the fast path must leave to lark, one or more per rule that makes it decline; lark then parses
# some of them (other layouts the grammar allows) and names the bad line of the rest.
DECLINED = {
    "duplicate key": "a = 1\nb = 2\na = 3\n",
    "duplicate key with the same small int": "a = 1\na = 1\n",
    "duplicate key with the same string": 's {\n\ta = "x"\n\tb = 1\n\ta = "x"\n}\n',
    "duplicate key with the same array": "a = [1]\na = [1]\n",
    "duplicate section": "s {\n}\nt = 1\ns {\n}\n",
    "key then section of the same name": "s = 1\ns {\n}\n",
    "too deep": "".join(f"s{depth} {{\n" for depth in range(MAX_DEPTH + 1)) + "}\n" * (MAX_DEPTH + 1),
    "unclosed section": "s {\n\ta = 1\n",
    "unopened brace": "a = 1\n}\n",
    "two items on a line": "a = 1 b = 2\n",
    "item after a brace": "s { a = 1\n}\n",
    "brace after an item": "s {\n\ta = 1 }\n",
    "empty section on one line": "s {}\n",
    "two braces": "s {\n}}\n",
    "comment in an array": "a = [1, # one\n\t2]\n",
    "carriage return": "a = 1\r\nb = 2\r\n",
    "form feed before a key": "\fa = 1\n",
    "vertical tab on a blank line": "a = 1\n\v\nb = 2\n",
    "no-break space before a key": "\u00a0a = 1\n",
    "integer above 64 bits": "a = 18446744073709551616\n",
    "integer below 64 bits": "a = -9223372036854775809\n",
    "integer above 64 bits in an array": "a = [1, 18446744073709551616]\n",
    "very long integer": "a = " + "9" * 5000 + "\n",
    "string over a line end": 'a = "x\ny"\n',
    "escaped line end": 'a = "x\\\ny"\n',
    "text ends inside a string": 'a = "abc',
    "text ends inside an array": "a = [1, 2",
    "text ends after an array's comma": "a = [1,\n",
    "text ends after a bracket": "a = [",
    "trailing comma": "a = [1,]\n",
    "leading comma": "a = [, 1]\n",
    "missing comma": "a = [1 2]\n",
    "nested array": "a = [[1]]\n",
    "point without decimals": "a = 1.\n",
    "decimals without integer": "a = .5\n",
    "exponent": "a = 1e5\n",
    "two points": "a = 1.5.3\n",
    "bare minus": "a = -\n",
    "bare word": "a = word\n",
    "key character outside the grammar": "a:b = 1\n",
    "value without key": "= 1\n",
    "key alone": "a\n",
    "string alone": '"a"\n',
    "a megabyte of garbage": "\x01" * (1 << 20),
    "garbage after a good line": "a = 1\n" + "?" * (1 << 20) + "\n",
    "lone surrogate": 'a = "\ud800"\n',
}


@pytest.mark.parametrize("text", DECLINED.values(), ids=DECLINED.keys())
def test_the_fast_path_declines_and_lark_decides(text: str) -> None:
    assert parse_plain_layout(text) is None
    assert outcome(parse_text, text) == outcome(parse_with_lark, text)


# Edges of the input the fast path reads, each giving lark's tree.
ACCEPTED = {
    "empty text": "",
    "blank lines only": "\n \t\n\n",
    "no final newline": "a = 1\nb = [1,\n\t2]",
    "comments everywhere": "# top\ns { # open\n\ta = 1 # value\n\t# inside\n} # close\n# end",
    "blanks around the equals sign": "a=1\nb \t= \t2\n\tc =\t\"x\"\n",
    "section name against its brace": "s{\n}\n",
    "array over several lines": "a = [\n\t\"x\",\n\t1,\n\n\t2.5\n]\nb = 1\n",
    "empty arrays": "a = []\nb = [ ]\nc = [\n]\n",
    "Unicode whitespace in an array": "a = [\u00a0\"x\",\u2028 1\u3000,\x1c2\x85, 3\u205f]\nb = 1\n",
    "escapes": 'a = "q\\"uote\\\\back\\x\\é"\nb = ["\\"", "\\\\"]\n',
    "control characters in strings": 'a = "\x01\r\t\v\x00"\nb = ["\x7f"]\n',
    "UTF-8 strings": 'name = "é😀"\nhints = ["ü", "日本", "x"]\n# commentaire é\n',
    "64-bit limits": f"a = {INT_MAX}\nb = {INT_MIN}\nc = [{INT_MAX}, {INT_MIN}]\n",
    "leading zeros": "a = 0000000000000000000000001\nb = -0\nc = [007, -0.0, 01.50]\n",
    "floats": "a = 1.5\nb = -0.0\nc = " + "1" * 400 + ".5\nd = 0.1000000000000000055511151231257827\n",
    "key characters": "a.b+c-d_E9 = 1\n-1 = 2\n",
    "nesting at the limit": "".join(f"s{depth} {{\n" for depth in range(MAX_DEPTH)) + "}\n" * MAX_DEPTH,
}


@pytest.mark.parametrize("text", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_the_fast_path_reads_the_edges_of_its_layout_as_lark_does(text: str) -> None:
    assert assert_agrees(text)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet='{}[]",=#\n \t"a1-.\\\r\v\x1c\x00\xa0\u2028é😀05', max_size=40))
def test_random_texts_agree_with_lark(text: str) -> None:
    if not assert_agrees(text):
        assert outcome(parse_text, text) == outcome(parse_with_lark, text)


def test_every_key_has_its_line() -> None:
    """Sections and keys keep the line they start on; an array over several lines moves the next key down."""
    text = 'a = 1\n\n# note\ns {\n\tb = [1,\n\t\t2]\n\tc = "x"\n\tt {\n\t}\n}\nd = 2\n'
    tree = parse_plain_layout(text)
    assert tree is not None and assert_agrees(text)
    assert (tree.line, tree.key_lines) == (1, {"a": 1, "s": 4, "d": 11})
    section = tree["s"]
    assert (section.line, section.key_lines) == (4, {"b": 5, "c": 7, "t": 8})
    assert (section["t"].line, section["t"].key_lines) == (8, {})
    assert type(tree) is type(section) is Section


def test_strings_and_arrays_are_shared_as_the_model_cache_expects() -> None:
    """One object per distinct key or string (keys, values, array items, escaped or not); per distinct array
    text one set of values, in a fresh list for each key."""
    tree = parse_plain_layout('x = "x"\nb = "x"\ne = "\\x"\nl1 = ["x", 1000000, 2.5]\nl2 = ["x", 1000000, 2.5]\n'
                              's {\n\tx = "y"\n}\n')
    assert tree is not None
    key = next(key for key in tree if key == "x")
    assert tree["x"] is tree["b"] is tree["e"] is tree["l1"][0] is key
    assert next(key for key in tree["s"] if key == "x") is key
    assert tree["l1"] == tree["l2"] and tree["l1"] is not tree["l2"]
    assert all(a is b for a, b in zip(tree["l1"], tree["l2"]))


def test_limits_are_those_of_the_tree() -> None:
    assert _plain_layout.MAX_DEPTH == MAX_DEPTH
    assert parse_plain_layout(f"a = {INT_MAX}\nb = {INT_MIN}\n") == {"a": INT_MAX, "b": INT_MIN}
    assert parse_plain_layout(f"a = {INT_MAX + 1}\n") is None
    assert parse_plain_layout(f"a = {INT_MIN - 1}\n") is None


def test_bad_arguments_are_type_errors() -> None:
    class NoSlots(dict):  # type: ignore[type-arg]
        pass

    for args in ((b"a = 1\n", Section), ("a = 1\n", list), ("a = 1\n", NoSlots), ("a = 1\n",)):
        with pytest.raises((TypeError, AttributeError)):
            _plain_layout.parse_plain_layout(*args)


def test_a_thousand_parses_leave_nothing_behind() -> None:
    """References are counted right on every path: accepted, declined at once, declined deep in a text."""
    texts = [path.read_text() for path in FIXTURES[:3]] + [
        DECLINED["duplicate key"], DECLINED["too deep"], DECLINED["integer above 64 bits in an array"],
        DECLINED["lone surrogate"], ACCEPTED["UTF-8 strings"], ACCEPTED["escapes"], ACCEPTED["no final newline"]]
    for text in texts:
        parse_plain_layout(text)
    before = sys.getallocatedblocks()
    for _ in range(1000):
        for text in texts:
            parse_plain_layout(text)
    assert sys.getallocatedblocks() - before < 100
