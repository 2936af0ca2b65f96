"""pvmove interrupted, then resumed by a bare `pvmove` or forgotten by `pvmove --abort`, on image files."""

from __future__ import annotations

from pathlib import Path

import pytest

from lvcrypt.conversion_record import read_pvmove
from lvcrypt.pv_move import pvmove
from lvcrypt.store.commit import load_vg, scan
from mover_helpers import Interrupted, interrupt_after, two_image_pair, make_vg, read_lv
from store_helpers import Pair


@pytest.fixture
def pair(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Pair:
    return two_image_pair(tmp_path, monkeypatch, 3)  # the third PV takes the stripe beside the other one


def _extents_on(pair: Pair, key: str) -> int:
    return load_vg(scan(pair.devices), "vgc").vg.used_extents(key)


def test_bare_pvmove_resumes_an_interrupted_move(pair: Pair) -> None:
    data = make_vg(pair, encrypted=True)
    before = _extents_on(pair, "pv0")
    with pytest.raises(Interrupted):
        pvmove(pair.device_list, pair.devices[0], [], None, False, 1 << 20, progress=interrupt_after(3))
    assert 0 < _extents_on(pair, "pv0") < before
    assert read_pvmove(load_vg(scan(pair.devices), "vgc").vg) is not None
    assert read_lv(pair, encrypted=True) == data
    assert "Moved: 100.00%" in pair.lvc("pvmove").stdout
    assert _extents_on(pair, "pv0") == 0
    assert read_pvmove(load_vg(scan(pair.devices), "vgc").vg) is None
    assert read_lv(pair, encrypted=True) == data
    refused = pair.lvc("pvmove", check=False)
    assert refused.returncode == 5 and "No pvmove in progress" in refused.stderr


def test_pvmove_abort_keeps_what_moved_and_forgets_the_rest(pair: Pair) -> None:
    data = make_vg(pair, encrypted=False)
    before = _extents_on(pair, "pv0")
    with pytest.raises(Interrupted):
        pvmove(pair.device_list, pair.devices[0], pair.devices[1:], "lv", False, 1 << 20,
               progress=interrupt_after(2))
    moved = _extents_on(pair, "pv0")
    assert moved < before
    assert "aborted" in pair.lvc("pvmove", "--abort").stdout
    assert _extents_on(pair, "pv0") == moved
    assert read_pvmove(load_vg(scan(pair.devices), "vgc").vg) is None
    assert read_lv(pair, encrypted=False) == data
    refused = pair.lvc("pvmove", "--abort", pair.devices[0], check=False)
    assert refused.returncode == 3, refused.stderr
