"""The extent mover's model side: cutting and merging segments, chunks, the conversion record, owed wipes."""

from __future__ import annotations

import pytest

from lvcrypt.alloc import allocate
from lvcrypt.conversion_record import Conversion, PvMove, read_conversion, read_pvmove, write_conversion, write_pvmove
from lvcrypt.errors import LvcryptError
from lvcrypt.extent_mover import (
    MoveRefused,
    conversion_progress,
    convert_chunk,
    merge_segments,
    next_area_move,
    next_chunk,
    split_at,
    uncovered,
)
from lvcrypt.lvops import add_pv, create_lv, extend_lv, new_uuid, new_vg
from lvcrypt.metadata.convert import tree_to_vg, vg_to_tree
from lvcrypt.metadata.model import Area, CryptSegment, KeystoreSegment, LogicalVolume, StripedSegment, VolumeGroup
from lvcrypt.metadata.parse import parse_text
from lvcrypt.metadata.validate import validate
from lvcrypt.metadata.write import write_text

MIB = 1 << 20


def _vg(pv_extents: int = 12) -> VolumeGroup:
    """Two PVs, `first` (1 extent) then `lv`: 4 extents striped over both PVs, 3 linear, and a keystore."""
    vg = new_vg("vgm", 2048)
    for name in ("a", "b"):
        add_pv(vg, new_uuid(), f"/dev/{name}", (pv_extents + 1) * MIB, MIB, (pv_extents + 1) * MIB)
    create_lv(vg, "first", 1, pv_keys=["pv0"])
    lv = create_lv(vg, "lv", 4, stripes=2, stripe_size=128)
    extend_lv(vg, lv, 3, stripes=1, pv_keys=["pv0"])
    (piece,) = allocate(vg, 1)
    vg.lvs["cryptostore0"] = LogicalVolume("cryptostore0", new_uuid(), ["READ"], [], [], 0, "h",
                                           [KeystoreSegment(0, 1, "crypt-keystore", handler="luks1",
                                                            areas=list(piece.areas))])
    return vg


def _layout(lv: LogicalVolume) -> list[tuple[int, int, str, list[Area]]]:
    return [(s.start_extent, s.extent_count, s.type, [area for area, _ in s.pv_areas()]) for s in lv.segments]


def test_cutting_then_merging_gives_the_same_segments() -> None:
    vg = _vg()
    lv = vg.lvs["lv"]
    before = _layout(lv)
    split_at(lv, 2)
    split_at(lv, 5)
    striped_head, striped_tail = lv.segments[0], lv.segments[1]
    assert isinstance(striped_tail, StripedSegment) and isinstance(striped_head, StripedSegment)
    assert striped_tail.stripes == [Area(a.pv, a.extent + 1) for a in striped_head.stripes]
    assert len(lv.segments) == 4
    merge_segments(lv)
    assert _layout(lv) == before


def test_a_striped_segment_is_not_cut_inside_a_stripe_row() -> None:
    lv = _vg().lvs["lv"]
    with pytest.raises(MoveRefused, match="2-stripe segment at extent 1"):
        split_at(lv, 1)


def test_encrypting_chunk_by_chunk_frees_the_old_extents_and_ends_in_few_segments() -> None:
    vg = _vg(pv_extents=16)
    lv = vg.lvs["lv"]
    old = {(area.pv, area.extent + i) for s in lv.segments for area, count in s.pv_areas() for i in range(count)}
    freed = set()
    while (chunk := next_chunk(vg, lv, None, "cryptostore0", 2)) is not None:
        assert chunk.count in (2, 1) and sum(count for _, count in chunk.targets) == chunk.count
        for area, count in convert_chunk(lv, chunk, "cryptostore0"):
            freed |= {(area.pv, area.extent + i) for i in range(count)}
        validate(vg)
    assert freed == old
    assert all(isinstance(s, CryptSegment) and s.crypto_store == "cryptostore0" for s in lv.segments)
    assert lv.extent_count == 7 and len(lv.segments) <= 2, _layout(lv)


def test_a_vg_without_room_for_one_chunk_is_refused_with_the_count() -> None:
    vg = _vg(pv_extents=6)
    create_lv(vg, "filler", vg.free_extents() - 1)
    with pytest.raises(MoveRefused, match="needs 2 free extents, 1 are free"):
        next_chunk(vg, vg.lvs["lv"], None, "cryptostore0", 2)


def test_owed_wipes_count_as_free_for_lvm2_but_are_not_allocated() -> None:
    vg = _vg(pv_extents=8)
    free = vg.free_extents()
    lv = vg.lvs["lv"]
    owed = (Area("pv1", 3), 2)
    write_conversion(lv, Conversion("encrypt", None, "cryptostore0", [owed]))
    assert vg.free_extents() == free
    pieces = allocate(vg, free - 2)
    taken = {(a.pv, a.extent + i) for p in pieces for a in p.areas for i in range(p.length)}
    assert not taken & {("pv1", 3), ("pv1", 4)}
    with pytest.raises(LvcryptError, match="insufficient free space"):
        allocate(vg, free - 1)


def test_the_record_survives_the_metadata_text_and_validation() -> None:
    vg = _vg()
    record = Conversion("reencrypt", "cryptostore0", "cryptostore1", [(Area("pv0", 9), 2), (Area("pv1", 4), 1)],
                        aborting=True)
    write_conversion(vg.lvs["lv"], record)
    write_pvmove(vg, PvMove("pv0", ("pv1",), "lv"))
    again = tree_to_vg(parse_text(write_text(vg_to_tree(vg), layout="backup")))
    validate(again)
    assert read_conversion(again.lvs["lv"]) == record
    assert read_pvmove(again) == PvMove("pv0", ("pv1",), "lv")
    write_conversion(again.lvs["lv"], None)
    write_pvmove(again, None)
    assert "lvcrypt_" not in write_text(vg_to_tree(again), layout="backup")


def test_a_damaged_record_is_an_error_not_a_guess() -> None:
    lv = _vg().lvs["lv"]
    lv.raw["lvcrypt_conversion"] = ["encrypt", ""]
    with pytest.raises(LvcryptError, match="damaged lvcrypt_conversion"):
        read_conversion(lv)


def test_progress_is_the_share_already_in_the_target_form() -> None:
    vg = _vg(pv_extents=16)
    lv = vg.lvs["lv"]
    assert conversion_progress(lv) is None
    write_conversion(lv, Conversion("encrypt", None, "cryptostore0"))
    chunk = next_chunk(vg, lv, None, "cryptostore0", 2)
    assert chunk is not None
    convert_chunk(lv, chunk, "cryptostore0")
    progress = conversion_progress(lv)
    assert progress is not None and progress[0] == "encrypt" and round(progress[1], 2) == 28.57
    write_conversion(lv, Conversion("encrypt", None, "cryptostore0").aborted())
    assert conversion_progress(lv) == ("abort encrypt", pytest.approx(500 / 7))


def test_pvmove_plan_moves_one_stripe_and_keeps_the_other() -> None:
    vg = _vg(pv_extents=16)
    lv = vg.lvs["lv"]
    with pytest.raises(MoveRefused, match="on a PV other than pv1 .*2-stripe segment"):
        next_area_move(vg, lv, "pv0", 8, ["pv1"])  # pv1 has room, but holds the other stripe
    add_pv(vg, new_uuid(), "/dev/c", 17 * MIB, MIB, 17 * MIB)
    move = next_area_move(vg, lv, "pv0", 8, ["pv1", "pv2"])
    assert move is not None and move.source.pv == "pv0" and move.target.pv == "pv2" and move.count == 2
    first = lv.segments[0]
    assert isinstance(first, StripedSegment) and [a.pv for a in first.stripes] == ["pv2", "pv1"]
    while next_area_move(vg, lv, "pv0", 8, ["pv1", "pv2"]) is not None:
        pass
    assert not any(area.pv == "pv0" for s in lv.segments for area, _ in s.pv_areas())
    assert lv.extent_count == 7
    validate(vg)


def test_owed_wipes_a_chunk_overwrites_are_not_zeroed_again() -> None:
    """A conversion's next chunk usually lands on the extents the last commit freed; only the rest is zeroed."""
    owed = [(Area("pv0", 0), 10), (Area("pv1", 4), 2)]
    assert uncovered(owed, ((Area("pv0", 2), 3), (Area("pv1", 0), 5))) == \
        [(Area("pv0", 0), 2), (Area("pv0", 5), 5), (Area("pv1", 5), 1)]
    assert uncovered(owed, ((Area("pv0", 0), 10), (Area("pv1", 4), 2))) == []
    assert uncovered(owed, ()) == owed
