"""`lvs` reads lvm2's view of a VG from a table kept in the model cache (reportfields.LvsView): the table, once
through the cache's marshal data, answers exactly what a VgReport answers, and a report rendered from it is the
one rendered from a VgReport, on every fixture of tests/data (lvm2-made VGs of every LV type lvm2 has: thin,
old-style and merging snapshots, raid, mirror, cache, writecache, integrity, historical LVs) and lvcrypt's own."""

from __future__ import annotations

import argparse
import marshal
import os
import shutil
from pathlib import Path

import pytest

from conftest import run_lvcrypt
from lvcrypt import reportfields
from lvcrypt.cli import build_parser
from lvcrypt.cli.report import _column
from lvcrypt.metadata.lvreport import VgReport
from lvcrypt.metadata.model import VolumeGroup
from lvcrypt.reportfields import LV_FIELDS, VG_FIELDS, LvRow, LvsView
from lvcrypt.store import cache
from lvcrypt.store.commit import LoadedVg, parse_vg

DATA = Path(__file__).resolve().parent.parent / "data"
TEXTS = sorted([*DATA.glob("*.vg"), *(DATA / "lvm2_types").glob("*.vg")])
LINKS = ["pool_lv", "origin", "data_lv", "metadata_lv", "mirror_log"]


def loaded_vg(path: Path) -> LoadedVg:
    text = path.read_bytes()
    return LoadedVg(parse_vg(text, path.name), text, {}, [], [])


def cached_view(vg: VolumeGroup) -> LvsView:
    """The view as a warm `lvs` gets it: the table through marshal and the check of its shape."""
    rows = reportfields._view_rows(marshal.loads(marshal.dumps(reportfields._view_table(VgReport(vg)))))
    assert rows is not None
    return LvsView(vg, rows)


@pytest.mark.parametrize("path", TEXTS, ids=lambda path: path.name)
def test_the_table_answers_what_a_vg_report_answers(path: Path) -> None:
    vg = loaded_vg(path).vg
    report, view = VgReport(vg), cached_view(vg)
    for name, lv in vg.lvs.items():
        assert view.listed(lv) == report.listed(lv), name
        assert view.visible(lv) == report.visible(lv), name
        assert view.display(name) == report.display(name), name
        assert view.static_attr(lv) == report.static_attr(lv), name
        assert view.never_queried(lv) == report.never_queried(lv), name
        assert [view.link(lv, field) for field in LINKS] == [report.link(lv, field) for field in LINKS], name
        assert view.role(lv) == report.role(lv) and view.has_path(lv) == report.has_path(lv), name
    assert view.display("no-such-lv") == "no-such-lv"


@pytest.mark.parametrize("path", TEXTS, ids=lambda path: path.name)
def test_a_report_from_the_table_is_the_report_from_a_vg_report(path: Path) -> None:
    loaded = loaded_vg(path)
    vg = loaded.vg
    args = build_parser("lvs").parse_args(["lvs"])
    fields = {**VG_FIELDS, **LV_FIELDS}
    report, view = VgReport(vg), cached_view(vg)
    for name in fields:
        if name in ("inline_crypto",):  # asks the kernel's sysfs, not the view
            continue
        rows = [LvRow(vg, loaded, lv, None, report) for lv in vg.lvs.values() if report.listed(lv)]
        cached = [LvRow(vg, loaded, lv, None, view, "/sys", view.cells(lv.name)) for lv in vg.lvs.values()
                  if view.listed(lv)]
        assert _column(fields[name], name, args)(rows) == _column(fields[name], name, args)(cached), name


def test_a_damaged_or_planted_table_is_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LVCRYPT_RUN_DIR", str(tmp_path / "run"))
    loaded = loaded_vg(DATA / "lvm2_types" / "snap.vg")
    first = reportfields.lvs_view(loaded)
    entries = [entry for entry in (tmp_path / "run" / "cache").iterdir() if entry.name.endswith(".lvs")]
    assert len(entries) == 1 and first._report is not None  # built, then stored
    assert reportfields.lvs_view(loaded)._report is None  # read back: no VgReport built
    stamp, digest, (names, unlisted, columns) = marshal.loads(cache.entry_body(entries[0].read_bytes()))
    code = compile("raise SystemExit('planted')", "planted", "exec")
    for payload in ((names, unlisted, [[code] * len(names), *columns[1:]]), (names, unlisted, columns[:-1]),
                    (names + ["extra"], unlisted, columns), (names, [1], columns), code, ["not", "a", "table"]):
        entries[0].write_bytes(cache.sealed_entry(marshal.dumps((stamp, digest, payload))))
        view = reportfields.lvs_view(loaded)
        assert view._report is not None  # the table was not used
        assert all(view.display(lv.name) == VgReport(loaded.vg).display(lv.name) for lv in loaded.vg.lvs.values())


def test_the_table_is_keyed_to_the_text_and_the_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LVCRYPT_RUN_DIR", str(tmp_path / "run"))
    loaded = loaded_vg(DATA / "lvm2_types" / "thin.vg")
    reportfields.lvs_view(loaded)
    code = (reportfields.__file__,)
    assert cache.lookup_derived("lvs", loaded.vg.id, loaded.text, code) is not None
    assert cache.lookup_derived("lvs", loaded.vg.id, loaded.text + b"\n", code) is None
    assert cache.lookup_derived("lvs", "other-id", loaded.text, code) is None
    assert cache.lookup_derived("other", loaded.vg.id, loaded.text, code) is None
    assert cache.lookup_derived("lvs", loaded.vg.id, loaded.text, (argparse.__file__,)) is None  # other code


def test_a_warm_lvs_reads_its_rows_from_the_view_without_the_model(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """With the view and the model's head in the cache, lv_rows makes its rows without loading the model, lvs'
    default columns read none, and every field of such a row gives what it gives on a row of a parsed VG (the
    model loaded, once, by the first field that needs it: parsed, a cold lvs having stored only the head)."""
    image = tmp_path / "pv.img"
    with open(image, "wb") as f:
        f.truncate(32 << 20)
    env = {**os.environ, "LVCRYPT_STATE_DIR": str(tmp_path / "state"), "LVCRYPT_RUN_DIR": str(tmp_path / "run")}
    for command in (["pvcreate", str(image)], ["vgcreate", "vgw", str(image)], ["lvcreate", "-L", "4m", "-n", "b",
                    "vgw"], ["lvcreate", "-L", "8m", "-n", "a", "vgw"]):
        run_lvcrypt(command[0], "--devices", str(image), *command[1:], env=env, check=True)
    for name in ("LVCRYPT_STATE_DIR", "LVCRYPT_RUN_DIR"):
        monkeypatch.setenv(name, env[name])
    args = build_parser("lvs").parse_args(["lvs"])
    fields = {**VG_FIELDS, **LV_FIELDS}
    shutil.rmtree(tmp_path / "run" / "cache", ignore_errors=True)
    parsed = reportfields.lv_rows(str(image), ["vgw"])  # a cold run: parsed, then the head and the view stored
    assert parsed[0].loaded.model is None
    rows = reportfields.lv_rows(str(image), ["vgw"])
    loaded = rows[0].loaded
    assert [row.cells[0] for row in rows] == ["a", "b"] and loaded.model is not None
    default = [_column(fields[name], name, args)(rows) for name in reportfields.LV_DEFAULT]
    assert loaded.model is not None  # the default columns read the view's cells and the VG's head
    assert default == [_column(fields[name], name, args)(parsed) for name in reportfields.LV_DEFAULT]
    for name in fields:
        if name != "inline_crypto":  # asks the kernel's sysfs
            assert _column(fields[name], name, args)(rows) == _column(fields[name], name, args)(parsed), name
    assert loaded.model is None and all(row.lv is loaded.vg.lvs[row.lv.name] for row in rows)
