"""LV -> dm tables: names, uuids, offsets, IV offsets and key formats as dmsetup shows them."""

from __future__ import annotations

from pathlib import Path

import pytest

from activate_helpers import EXTENT, PE_START, add_crypt_lv, add_linear_lv, make_vg, mapping
from lvcrypt.activate.tables import (
    CryptTarget,
    KeyFormat,
    LayerDevice,
    StripedTarget,
    TableError,
    build_table,
    dm_name,
    render,
)
from lvcrypt.metadata.model import UnknownSegment


def test_dm_names_double_dashes_like_lvm2() -> None:
    assert dm_name("vg0", "lv0") == "vg0-lv0"
    assert dm_name("my-vg", "a-b") == "my--vg-a--b"
    assert dm_name("vg", "lv", "crypt1") == "vg-lv-crypt1"


def test_crypt_lv_over_two_pvs_counts_ivs_from_the_lv_start(tmp_path: Path) -> None:
    vg, paths = make_vg(tmp_path)
    lv = add_crypt_lv(vg, "secret", [[("pv1", 5)], [("pv2", 0)]], [3, 2])
    table = build_table(vg, "secret", paths.__getitem__, lambda store: mapping(sector_size=4096))
    assert table.name == "vg--test-secret"
    assert table.uuid == "LVM-" + vg.id.replace("-", "") + lv.id.replace("-", "")
    first, second = table.targets
    assert isinstance(first, CryptTarget) and isinstance(second, CryptTarget)
    assert (first.start, first.length, first.iv_offset) == (0, 3 * EXTENT, 0)
    assert (second.start, second.length, second.iv_offset) == (3 * EXTENT, 2 * EXTENT, 3 * EXTENT)
    assert first.offset == PE_START + 5 * EXTENT and second.offset == PE_START
    text = render(table)
    masked = "0" * 128
    assert f"0 {3 * EXTENT} crypt aes-xts-plain64 {masked} 0 {paths['pv1']} {PE_START + 5 * EXTENT} " \
           "1 sector_size:4096" in text
    keyring = render(table, KeyFormat.KEYRING)
    assert f":64:logon:lvcrypt:{lv.id} {3 * EXTENT} {paths['pv2']} {PE_START}" in keyring
    key = bytes(range(64))
    assert key.hex() in render(table, KeyFormat.HEX, {"cryptostore0": key})
    with pytest.raises(TableError, match="not unlocked"):
        render(table, KeyFormat.HEX, {})


def test_striped_crypt_lv_is_one_crypt_mapping_over_a_striped_layer(tmp_path: Path) -> None:
    vg, paths = make_vg(tmp_path)
    add_crypt_lv(vg, "st", [[("pv1", 0), ("pv2", 4)]], [8], stripe_size=16)
    table = build_table(vg, "st", paths.__getitem__, lambda store: mapping())
    (layer,) = table.layers
    assert layer.name == "vg--test-st-crypt0" and layer.uuid == table.uuid + "-crypt0"
    (striped,) = layer.targets
    assert isinstance(striped, StripedTarget) and striped.chunk == 16 and striped.length == 8 * EXTENT
    (crypt,) = table.targets
    assert isinstance(crypt, CryptTarget) and crypt.device == LayerDevice(layer.name) and crypt.offset == 0
    assert [t.name for t in table.walk()] == [layer.name, table.name]
    assert f"2 16 {paths['pv1']} {PE_START} {paths['pv2']} {PE_START + 4 * EXTENT}" in render(table)


def test_linear_and_striped_plain_lvs(tmp_path: Path) -> None:
    vg, paths = make_vg(tmp_path)
    add_linear_lv(vg, "lin", "pv0", 3, 2)
    add_linear_lv(vg, "str", "", 0, 4, stripes=[("pv1", 10), ("pv2", 20)], stripe_size=8)
    assert render(build_table(vg, "lin", paths.__getitem__, mapping)).splitlines()[1] == \
        f"0 {2 * EXTENT} linear {paths['pv0']} {PE_START + 3 * EXTENT}"
    assert render(build_table(vg, "str", paths.__getitem__, mapping)).splitlines()[1] == \
        f"0 {4 * EXTENT} striped 2 8 {paths['pv1']} {PE_START + 10 * EXTENT} {paths['pv2']} {PE_START + 20 * EXTENT}"


def test_imported_luks_data_offset_shortens_the_first_target(tmp_path: Path) -> None:
    vg, paths = make_vg(tmp_path)
    lv = add_crypt_lv(vg, "old", [[("pv1", 0)], [("pv1", 10)]], [4, 2])
    lv.segments[0].data_offset = 40  # type: ignore[attr-defined]
    table = build_table(vg, "old", paths.__getitem__, lambda store: mapping())
    first, second = table.targets
    assert (first.start, first.length, first.offset, first.iv_offset) == (0, 4 * EXTENT - 40, PE_START + 40, 0)
    assert (second.start, second.iv_offset) == (4 * EXTENT - 40, 4 * EXTENT - 40)


def test_misaligned_and_unknown_segments_are_refused(tmp_path: Path) -> None:
    vg, paths = make_vg(tmp_path)
    lv = add_crypt_lv(vg, "old", [[("pv1", 0)]], [4])
    lv.segments[0].data_offset = 3  # type: ignore[attr-defined]
    with pytest.raises(TableError, match="not aligned to its 4096-byte"):
        build_table(vg, "old", paths.__getitem__, lambda store: mapping(sector_size=4096))
    other = add_linear_lv(vg, "thin", "pv2", 0, 1)
    other.segments = [UnknownSegment(0, 1, "thin")]
    with pytest.raises(TableError, match="type 'thin'"):
        build_table(vg, "thin", paths.__getitem__, mapping)
