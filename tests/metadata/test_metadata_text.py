"""The metadata room on known texts: the RFC example, lvm2's layout, errors with their lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from lvcrypt.alloc import free_runs
from lvcrypt.errors import MetadataError
from lvcrypt.metadata.convert import tree_to_vg, vg_to_tree
from lvcrypt.metadata.model import CryptSegment, KeystoreSegment, StripedSegment, UnknownSegment
from lvcrypt.metadata.parse import parse_bytes, parse_text
from lvcrypt.metadata.tree import Section, ordered_items
from lvcrypt.metadata.validate import check_lvm2_readable, validate
from lvcrypt.metadata.write import write_text
from metadata_helpers import significant

DATA = Path(__file__).parent.parent / "data"
RFC = (DATA / "rfc_example.vg").read_text()


def load(text: str):  # type: ignore[no-untyped-def]
    vg = tree_to_vg(parse_text(text, "t.vg"), "t.vg")
    validate(vg, "t.vg")
    return vg


def test_rfc_example_parses_validates_and_round_trips() -> None:
    tree = parse_text(RFC)
    vg = tree_to_vg(tree)
    validate(vg)
    assert [lv.name for lv in vg.lvs.values()] == ["secret", "cryptostore0", "home", "cryptostore1", "data"]
    home = vg.lvs["home"]
    assert [type(s) for s in home.segments] == [CryptSegment, CryptSegment]
    assert home.keystores() == ["cryptostore1"]
    assert home.extent_count == 10
    plain = vg.lvs["cryptostore0"].segments[0]
    assert isinstance(plain, KeystoreSegment) and plain.handler == "plain" and plain.extent_count == 0
    assert not vg.lvs["cryptostore0"].visible
    assert [user.name for user in vg.users_of_keystore("cryptostore1")] == ["home"]
    # Text -> tree -> model -> tree -> text keeps everything, in order, and lvm2's layout.
    again = vg_to_tree(vg)
    assert ordered_items(again) == ordered_items(tree)
    written = write_text(again)
    assert significant(written) == significant(RFC)
    assert written.splitlines()[1:] == RFC.splitlines()[3:]


def test_zero_extent_keystore_is_read_but_never_written() -> None:
    vg = load(RFC)
    with pytest.raises(MetadataError, match="cryptostore0 has no extents: lvm2 would reject"):
        check_lvm2_readable(vg)


def test_lvm2_compact_form_of_unknown_segments_is_accepted() -> None:
    # lvm2 rewrites the keys of segments it does not know without spaces (notes/oracles.md).
    compact = RFC.replace('crypto_store = "cryptostore1"', 'crypto_store="cryptostore1"')
    compact = compact.replace('areas = [\n\t\t\t\t\t"pv0", 17\n\t\t\t\t]', 'areas=["pv0",17]')
    assert compact != RFC
    vg = load(compact)
    segment = vg.lvs["home"].segments[0]
    assert isinstance(segment, CryptSegment) and segment.areas[0].extent == 17


def test_unknown_keys_sections_and_segment_types_survive_in_place() -> None:
    text = RFC.replace('\t\t\tflags = []\n\t\t\tsegment_count = 1\n\n\t\t\tsegment1 {\n\t\t\t\tstart_extent = 0\n'
                       '\t\t\t\textent_count = 10\n\n\t\t\t\ttype = "striped"',
                       '\t\t\tflags = []\n\t\t\tmade_up = ["x", 1]\n\t\t\tsegment_count = 1\n\n\t\t\tsegment1 {\n'
                       '\t\t\t\tstart_extent = 0\n\t\t\t\textent_count = 10\n\n\t\t\t\ttype = "thin"\n'
                       '\t\t\t\tthin_pool = "pool"\n\t\t\t\ttransaction_id = 3\n\t\t\t\tdevice_id = 1\n'
                       '\t\t\t\tnested { k = 1.5 }\n\t\t\t\tcolour = "blue"')
    text = text.replace("\tmetadata_copies = 0\n", "\tmetadata_copies = 0\n\tsystem_id = \"host1\"\n"
                                                    "\thistory { note = \"kept\" }\n")
    tree = parse_text(text)
    vg = tree_to_vg(tree)
    data = vg.lvs["data"]
    assert isinstance(data.segments[0], UnknownSegment) and data.segments[0].type == "thin"
    data.tags.append("changed")
    out = vg_to_tree(vg)
    lv = out["vg0"]["logical_volumes"]["data"]
    assert list(lv)[:5] == ["id", "status", "flags", "tags", "made_up"]
    assert lv["segment1"]["nested"] == {"k": 1.5}
    assert list(lv["segment1"]) == list(tree["vg0"]["logical_volumes"]["data"]["segment1"])
    assert list(lv["segment1"])[3:8] == ["thin_pool", "transaction_id", "device_id", "nested", "colour"]
    assert list(out["vg0"])[8:11] == ["metadata_copies", "system_id", "history"]
    # Only the tag changed.
    del lv["tags"]
    assert ordered_items(out) == ordered_items(tree)


def test_new_vg_model_writes_lvm2_key_order() -> None:
    vg = load(RFC)
    striped = vg.lvs["data"].segments[0]
    assert isinstance(striped, StripedSegment)
    striped.raw = Section()
    vg.lvs["data"].raw = Section()
    tree = vg_to_tree(vg)
    assert list(tree["vg0"]["logical_volumes"]["data"]) == ["id", "status", "flags", "segment_count", "segment1"]
    assert list(tree["vg0"]["logical_volumes"]["data"]["segment1"]) == [
        "start_extent", "extent_count", "type", "stripe_count", "stripes"]


BROKEN_TEXT = [
    ("truncated", RFC[: RFC.index("cryptostore1 {") + 15], "unexpected end of text", None),
    ("unbalanced", RFC + "}\n", "unexpected '}'", RFC.count("\n") + 1),
    ("duplicate key", RFC.replace("\tseqno = 7\n", "\tseqno = 7\n\tseqno = 8\n"), "duplicate key 'seqno'", 16),
    ("bad array", RFC.replace('flags = []\n\textent', 'flags = ["a" "b"]\n\textent'), "malformed value for 'flags'",
     18),
    ("unterminated string", RFC.replace('format = "lvm2"', 'format = "lvm2'), "malformed value for 'format'", 16),
    ("stray character", RFC.replace("max_pv = 0", "max_pv = 0 ;"), "unexpected character ';'", 21),
    ("integer overflow", RFC.replace("seqno = 7", "seqno = 18446744073709551616"), "does not fit in 64 bits", 15),
]


@pytest.mark.parametrize("name,text,message,line", BROKEN_TEXT, ids=[case[0] for case in BROKEN_TEXT])
def test_malformed_text_is_reported_with_its_line(name: str, text: str, message: str, line: int | None) -> None:
    with pytest.raises(MetadataError) as caught:
        parse_text(text, "t.vg")
    error = caught.value
    assert message in str(error)
    assert str(error).startswith("t.vg:")
    if line is not None:
        assert error.line == line
    assert "\n" not in str(error)


INVALID = [
    ("missing keystore", ('crypto_store = "cryptostore0"', 'crypto_store = "cryptostore9"'),
     "keystore 'cryptostore9' does not exist", 'crypto_store = "cryptostore9"'),
    ("not a keystore", ('crypto_store = "cryptostore0"', 'crypto_store = "data"'), "'data' is not a keystore",
     'crypto_store = "data"'),
    ("overlap", ('"pv0", 40', '"pv0", 5'), "overlap", "\t\thome {"),
    ("segment_count", ("\t\t\tsegment_count = 2\n", "\t\t\tsegment_count = 3\n"),
     "segment_count is 3 but 2 segments", "segment_count = 3"),
    ("start_extent gap", ("start_extent = 8", "start_extent = 9"), "start_extent is 9, expected 8", "start_extent = 9"),
    ("bad uuid", ("Rfc0LV-aaaa-bbbb-cccc-dddd-eeee-ffff04", "not-a-uuid"), "invalid uuid 'not-a-uuid'",
     'id = "not-a-uuid"'),
    ("visible keystore", ('\t\t\tstatus = ["READ"]\n\t\t\tflags = []\n\t\t\tsegment_count = 1\n\n\t\t\tsegment1 {\n'
                          '\t\t\t\tstart_extent = 0\n\t\t\t\textent_count = 1',
                          '\t\t\tstatus = ["READ", "VISIBLE"]\n\t\t\tflags = []\n\t\t\tsegment_count = 1\n\n'
                          '\t\t\tsegment1 {\n\t\t\t\tstart_extent = 0\n\t\t\t\textent_count = 1'),
     "keystores must be hidden", 'status = ["READ", "VISIBLE"]'),
    ("reserved name", ("\t\tdata {", "\t\tcryptostore7 {"), "cryptostoreN is reserved", "\t\tcryptostore7 {"),
    ("beyond PV", ('"pv0", 0\n', '"pv0", 250\n'), "lie beyond the 255 extents of pv0", "stripes = ["),
    ("missing PV", ('"pv0", 40', '"pv7", 40'), "physical volume 'pv7' does not exist", "areas = ["),
    ("wrong type", ("extent_size = 8192", 'extent_size = "big"'), "'extent_size' must be an integer",
     'extent_size = "big"'),
    ("missing key", ("\t\t\t\thandler = \"luks1\"\n", ""), "missing 'handler'", None),
    ("sector size", ('crypto_store = "cryptostore0"', 'crypto_store = "cryptostore0"\n\t\t\t\tsector_size = 1000'),
     "sector_size must be one of", "sector_size = 1000"),
]


@pytest.mark.parametrize("name,change,message,line_text", INVALID, ids=[case[0] for case in INVALID])
def test_invalid_metadata_names_the_line(name: str, change: tuple[str, str], message: str,
                                         line_text: str | None) -> None:
    old, new = change
    assert old in RFC
    text = RFC.replace(old, new, 1)
    with pytest.raises(MetadataError) as caught:
        load(text)
    assert message in str(caught.value)
    if line_text is not None:
        lines = [n for n, line in enumerate(text.splitlines(), 1) if line_text in line]
        assert caught.value.line in lines, (caught.value, lines)


def test_non_utf8_bytes_are_an_error_with_line() -> None:
    data = RFC.encode().replace(b'"/dev/sda2"', b'"/dev/sd\xff"')
    line = RFC.splitlines().index('\t\t\tdevice = "/dev/sda2"') + 1
    with pytest.raises(MetadataError, match=rf"t.vg:{line}: not UTF-8"):
        parse_bytes(data, "t.vg")


def test_deep_nesting_is_refused() -> None:
    text = "a { " * 1000 + "x = 1" + " }" * 1000
    with pytest.raises(MetadataError, match="nested deeper than"):
        parse_text(text)


def test_strings_with_escapes_round_trip() -> None:
    tree = Section(description='say "hi" \\ back', values=["a\\b", 'q"', 1, -5, 2.5])
    text = write_text(tree, header=False)
    assert 'description = "say \\"hi\\" \\\\ back"' in text
    assert ordered_items(parse_text(text)) == ordered_items(tree)


def test_disk_layout_matches_lvm2s_metadata_area_text() -> None:
    vg = load(RFC)
    text = write_text(vg_to_tree(vg, vg_first=True), layout="disk")
    lines = text.splitlines()
    assert lines[0] == "vg0 {" and lines[1].startswith('id = "')
    assert not any(line.startswith("\t") for line in lines)
    generated = next(n for n, line in enumerate(lines) if line.startswith("# Generated by lvcrypt"))
    assert lines[generated - 1] == "}"
    assert 'contents = "Text Format Volume Group"' in lines[generated:]
    assert ordered_items(parse_text(text)["vg0"]) == ordered_items(vg_to_tree(vg)["vg0"])


def test_shared_extent_of_an_imported_luks_volume_is_counted_once() -> None:
    """An imported LUKS volume's keystore and first crypt segment share one extent (data_offset skips the
    header's end in it): free space must count that extent once, as the allocator does."""
    vg = load(RFC)
    assert vg.used_extents() == 4 + 1 + 8 + 2 + 10 and vg.free_extents() == 255 - 25
    shared = RFC.replace('areas = [\n\t\t\t\t\t"pv0", 17\n\t\t\t\t]', 'data_offset = 40\n\n\t\t\t\tareas = [\n'
                                                                     '\t\t\t\t\t"pv0", 16\n\t\t\t\t]')
    assert shared != RFC
    vg = load(shared)
    assert vg.used_extents("pv0") == 4 + 8 + 2 + 10 and vg.free_extents() == 255 - 24
    assert sum(run.count for runs in free_runs(vg).values() for run in runs) == vg.free_extents()
