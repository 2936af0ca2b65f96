"""Property tests: every tree round-trips, and no input makes the parser raise anything but MetadataError."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lvcrypt.errors import MetadataError
from lvcrypt.metadata.convert import tree_to_vg, vg_to_tree
from lvcrypt.metadata.parse import parse_bytes, parse_text
from lvcrypt.metadata.tree import Section, ordered_items
from lvcrypt.metadata.validate import validate
from lvcrypt.metadata.write import write_text

RFC = (Path(__file__).parent.parent / "data" / "rfc_example.vg").read_text()

names = st.from_regex(r"[A-Za-z0-9_.+\-]{1,12}", fullmatch=True)
strings = st.text(st.characters(blacklist_characters="\n\0", blacklist_categories=("Cs",)), max_size=20)
integers = st.integers(min_value=-(1 << 63), max_value=(1 << 64) - 1)
floats = st.floats(allow_nan=False, allow_infinity=False, width=64)
scalars = st.one_of(strings, integers, floats)
values = st.one_of(scalars, st.lists(st.one_of(strings, integers), max_size=6))


def sections(depth: int) -> st.SearchStrategy[Section]:
    children = values if depth == 0 else st.one_of(values, st.deferred(lambda: sections(depth - 1)))
    return st.dictionaries(names, children, max_size=5).map(Section)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sections(3), st.sampled_from(["backup", "disk"]))
def test_parse_of_write_is_identity(tree: Section, layout: str) -> None:
    text = write_text(tree, layout=layout)  # type: ignore[arg-type]
    assert ordered_items(parse_text(text)) == ordered_items(tree)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_give_metadata_error_or_a_tree(data: bytes) -> None:
    try:
        parse_bytes(data)
    except MetadataError as error:
        assert "\n" not in str(error)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, len(RFC) - 1), st.integers(0, 40), st.text(alphabet='{}[]",=#\n \t"a1-.', max_size=6))
def test_mutated_metadata_fails_only_with_metadata_error(position: int, cut: int, insert: str) -> None:
    """Damage anywhere in a valid file: parse, convert and validate either succeed or say what is wrong."""
    text = RFC[:position] + insert + RFC[position + cut:]
    try:
        vg = tree_to_vg(parse_text(text, "m.vg"), "m.vg")
        validate(vg, "m.vg")
        assert ordered_items(parse_text(write_text(vg_to_tree(vg)))) == ordered_items(vg_to_tree(vg))
    except MetadataError as error:
        assert str(error).startswith("m.vg")
        assert "\n" not in str(error)
