"""issue 13 item 3: a segment type is one registry entry; adding one touches no other file.

`test-linear` below is a type only this file knows: a linear area plus a `note`
key.  Registered in process, it is read into its own model class (bad keys
refused with their line), written back in place, mapped by the activation
tables, reported by lvm2's names, and refused for every change lvcrypt would
make, without any module of lvcrypt naming it.  Unregistered, the same text
is kept verbatim like any type lvcrypt does not know.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Iterator

import pytest

from conftest import run_lvcrypt
from lvcrypt.activate.tables import LinearTarget, TableError, build_table
from lvcrypt.errors import LvcryptError, MetadataError
from lvcrypt.lvops import extend_lv, reduce_lv, rename_lv
from lvcrypt.metadata.convert import tree_to_vg, vg_to_tree
from lvcrypt.metadata.fields import Fields, Names
from lvcrypt.metadata.lvreport import areas, report_type
from lvcrypt.metadata.model import Area, Segment, UnknownSegment, VolumeGroup
from lvcrypt.metadata.parse import parse_text
from lvcrypt.metadata.segtype_handler import AreaMap, DmMap, SegmentType, flat_areas
from lvcrypt.metadata.segtypes import REGISTRY, change_problem, managed, register
from lvcrypt.metadata.tree import Value
from lvcrypt.metadata.validate import validate
from lvcrypt.metadata.write import write_text

DATA = Path(__file__).parent.parent / "data"


@dataclass
class NotedSegment(Segment):
    """The model class of `test-linear`: one area and a note."""

    note: str = ""
    areas: list[Area] = field(default_factory=list)

    areas_key: ClassVar[str | None] = "areas"

    def pv_areas(self) -> list[tuple[Area, int]]:
        return [(area, self.extent_count) for area in self.areas]


class NotedType(SegmentType[NotedSegment]):
    model = NotedSegment
    keys = ("note", "areas")

    def read_keys(self, f: Fields, start: int, count: int, names: Names) -> NotedSegment:
        return NotedSegment(start, count, self.name, f.section, f.str("note"), f.areas("areas"))

    def write(self, segment: NotedSegment) -> dict[str, Value | None]:
        return {"note": segment.note, "areas": flat_areas(segment.areas)}

    def dm_map(self, segment: NotedSegment) -> DmMap:
        return AreaMap(tuple(segment.areas))


NOTED = NotedType("test-linear", "noted LV", False, ("areas",), "area")

TEXT = """\
contents = "Text Format Volume Group"
version = 1
description = ""
creation_host = "example"
creation_time = 1700000000

vgn {
	id = "Seg0Ty-aaaa-bbbb-cccc-dddd-eeee-ffff00"
	seqno = 3
	format = "lvm2"
	status = ["RESIZEABLE", "READ", "WRITE"]
	flags = []
	extent_size = 8192
	max_lv = 0
	max_pv = 0
	metadata_copies = 0

	physical_volumes {
		pv0 {
			id = "Seg0Ty-aaaa-bbbb-cccc-dddd-eeee-ffff01"
			device = "/dev/sdz1"
			status = ["ALLOCATABLE"]
			flags = []
			dev_size = 2097152
			pe_start = 2048
			pe_count = 255
		}
	}

	logical_volumes {
		noted {
			id = "Seg0Ty-aaaa-bbbb-cccc-dddd-eeee-ffff02"
			status = ["READ", "WRITE", "VISIBLE"]
			flags = []
			segment_count = 1

			segment1 {
				start_extent = 0
				extent_count = 4
				type = "test-linear"
				colour = "green"
				note = "hello"
				areas = [
					"pv0", 10
				]
			}
		}
	}
}
"""


@pytest.fixture
def noted_type() -> Iterator[NotedType]:
    register(NOTED)
    try:
        yield NOTED
    finally:
        REGISTRY.pop(NOTED.name)


def _vg(text: str = TEXT) -> VolumeGroup:
    vg = tree_to_vg(parse_text(text, "noted.vg"), "noted.vg")
    validate(vg, "noted.vg")
    return vg


def test_a_registered_type_is_read_into_its_own_model(noted_type: NotedType) -> None:
    segment = _vg().lvs["noted"].segments[0]
    assert isinstance(segment, NotedSegment)
    assert (segment.note, segment.areas) == ("hello", [Area("pv0", 10)])
    assert _vg().used_extents("pv0") == 4  # its extents are taken: allocation never reuses them


def test_a_registered_type_refuses_its_own_bad_keys_with_the_line(noted_type: NotedType) -> None:
    with pytest.raises(MetadataError) as error:
        _vg(TEXT.replace('note = "hello"', "note = 7"))
    line = TEXT.splitlines().index('\t\t\t\tnote = "hello"') + 1
    assert str(error.value) == f"noted.vg:{line}: logical volume noted: segment1: 'note' must be a string"


def test_a_registered_type_writes_its_keys_in_place_and_keeps_the_others(noted_type: NotedType) -> None:
    vg = _vg()
    segment = vg.lvs["noted"].segments[0]
    assert isinstance(segment, NotedSegment)
    segment.note = "changed"
    segment.areas = [Area("pv0", 20)]
    text = write_text(vg_to_tree(vg))
    body = text[text.index("segment1 {"):]
    assert body.index('colour = "green"') < body.index('note = "changed"') < body.index('"pv0", 20')
    assert _vg(text).lvs["noted"].segments[0] == segment


def test_a_registered_type_is_mapped_and_reported(noted_type: NotedType) -> None:
    vg = _vg()
    table = build_table(vg, "noted", lambda key: "/dev/sdz1", lambda store: pytest.fail("no keystore"))
    assert table.targets == [LinearTarget(0, 4 * 8192, table.targets[0].device, 2048 + 10 * 8192)]
    segment = vg.lvs["noted"].segments[0]
    assert report_type(segment) == "test-linear"
    assert [(area.name, area.offset, area.length) for area in areas(segment, vg.pvs)] == [("pv0", 10, 4)]


def test_a_type_lvcrypt_does_not_manage_is_refused_for_every_change(noted_type: NotedType) -> None:
    vg = _vg()
    lv = vg.lvs["noted"]
    assert not managed(lv.segments[0])
    assert change_problem(vg, lv, "extend") == (
        "cannot extend vgn/noted: it is a noted LV (lvcrypt does not change test-linear segments; use lvm2)")
    before = write_text(vg_to_tree(vg))
    for change in (lambda: extend_lv(vg, lv, 1), lambda: reduce_lv(vg, lv, 1),
                   lambda: rename_lv(vg, "noted", "other")):
        with pytest.raises(LvcryptError, match="lvcrypt does not change test-linear segments"):
            change()
    assert write_text(vg_to_tree(vg)) == before


def test_unregistered_the_same_type_is_kept_verbatim() -> None:
    vg = _vg()
    segment = vg.lvs["noted"].segments[0]
    assert type(segment) is UnknownSegment and segment.pv_areas() == [(Area("pv0", 10), 4)]
    assert write_text(vg_to_tree(vg)) == write_text(parse_text(TEXT))
    with pytest.raises(TableError, match="has type 'test-linear', which lvcrypt cannot activate"):
        build_table(vg, "noted", lambda key: "/dev/sdz1", lambda store: pytest.fail("no keystore"))


def test_a_type_name_registers_once(noted_type: NotedType) -> None:
    with pytest.raises(ValueError, match="already registered"):
        register(NotedType("test-linear", "other", False))


def test_metadata_show_names_segment_types_as_lvs_does() -> None:
    """`metadata show` used its own type names (cache-pool+METADATA_FORMAT); now lvm2's, as `lvs` prints."""
    out = run_lvcrypt("metadata", "show", str(DATA / "lvm2_types" / "cache.vg"), check=True).stdout.decode()
    assert "cache-pool+METADATA_FORMAT" not in out
    assert any(line.split()[:1] == ["[cpool_cpool]"] and "cache-pool" in line.split() for line in out.splitlines())
