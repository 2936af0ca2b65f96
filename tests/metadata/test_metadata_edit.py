"""Scripted editing of metadata files: get/set/del/diff from the CLI and the Python API."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, run_lvcrypt
from lvcrypt.api import MetadataFile
from lvcrypt.errors import LvcryptError, MetadataError
from lvcrypt.metadata.parse import parse_text
from lvcrypt.metadata.tree import ordered_items

RFC = (Path(__file__).parent.parent / "data" / "rfc_example.vg").read_text()


@pytest.fixture
def vgfile(tmp_path: Path) -> Path:
    path = tmp_path / "vg0.txt"
    path.write_text(RFC)
    return path


def lines(result) -> list[str]:  # type: ignore[no-untyped-def]
    assert result.returncode == 0, result.stderr
    return result.stdout.decode().splitlines()


def test_get_prints_values_for_scripts(vgfile: Path) -> None:
    out = lines(run_lvcrypt("metadata", "get", str(vgfile), "logical_volumes.home.segment_count",
                            "logical_volumes.cryptostore1.segment1.cipher", "description", "status"))
    assert out == ["2", "aes-xts-plain64", "RFC example: crypt LVs with plain and luks1 keystores",
                   '["RESIZEABLE", "READ", "WRITE"]']
    assert lines(run_lvcrypt("metadata", "get", "--json", str(vgfile), "logical_volumes.home.segment2.areas")) == \
        ['["pv0", 40]']


def test_set_and_del_keep_everything_else_and_write_atomically(vgfile: Path) -> None:
    before = parse_text(RFC)
    lines(run_lvcrypt("metadata", "set", str(vgfile), 'logical_volumes.data.tags=["a", "b c"]',
                      "logical_volumes.cryptostore1.segment1.made_up=7", "description=edited by hand"))
    after = parse_text(vgfile.read_text())
    assert after["vg0"]["logical_volumes"]["data"]["tags"] == ["a", "b c"]
    assert after["vg0"]["logical_volumes"]["cryptostore1"]["segment1"]["made_up"] == 7
    assert after["description"] == "edited by hand"
    diff = run_lvcrypt("metadata", "diff", str(ROOT / "tests/data/rfc_example.vg"), str(vgfile))
    assert diff.returncode == 1
    # The description describes the file, not the VG: diff leaves it out.
    assert sorted(diff.stdout.decode().splitlines()) == sorted([
        '+ logical_volumes.data.tags = ["a", "b c"]',
        "+ logical_volumes.cryptostore1.segment1.made_up = 7"])
    lines(run_lvcrypt("metadata", "del", str(vgfile), "logical_volumes.data.tags",
                      "logical_volumes.cryptostore1.segment1.made_up", "description"))
    back = parse_text(vgfile.read_text())
    del before["description"]
    assert ordered_items(back) == ordered_items(before)
    assert list(vgfile.parent.iterdir()) == [vgfile]


@pytest.mark.parametrize("args,message", [
    (["set", "logical_volumes.home.segment1.crypto_store=nothere"], "keystore 'nothere' does not exist"),
    (["set", "logical_volumes.home.segment_count=3"], "segment_count is 3"),
    (["set", "logical_volumes.nope.tags=[]"], "no key or section 'nope.tags'"),
    (["del", "logical_volumes.cryptostore1"], "keystore 'cryptostore1' does not exist"),
    (["set", "logical_volumes.home=1"], "is a section"),
])
def test_changes_that_break_the_vg_are_refused_and_nothing_is_written(vgfile: Path, args: list[str],
                                                                      message: str) -> None:
    result = run_lvcrypt("metadata", args[0], str(vgfile), *args[1:])
    assert result.returncode == 5
    stderr = result.stderr.decode()
    assert message in stderr and stderr.count("\n") == 1 and str(vgfile) in stderr
    assert vgfile.read_text() == RFC


def test_set_without_equals_is_a_usage_error(vgfile: Path) -> None:
    assert run_lvcrypt("metadata", "set", str(vgfile), "logical_volumes").returncode == 3


def test_api_changes_are_validated_before_they_apply(vgfile: Path) -> None:
    md = MetadataFile.open(vgfile)
    assert [lv.name for lv in md.crypt_lvs()] == ["secret", "home"]
    assert md.keystore_of("home").handler == "luks1"
    with pytest.raises(LvcryptError, match="used by home"):
        md.remove_lv("cryptostore1")
    with pytest.raises(MetadataError, match="reserved for keystores"):
        md.rename_lv("data", "cryptostore5")
    with pytest.raises(MetadataError, match="invalid tag"):
        md.add_tag("data", "no spaces")
    with pytest.raises(MetadataError, match="a keystore needs 'handler'"):
        md.set_keystore_attr("cryptostore1", "handler", None)
    md.rename_lv("cryptostore1", "cryptostore9")
    assert md.vg.lvs["home"].keystores() == ["cryptostore9"]
    md.set_keystore_attr("cryptostore9", "key_hash", "sha512")
    md.set_keystore_attr("cryptostore9", "vendor_note", "kept")
    md.remove_lv("home")
    assert "cryptostore9" not in md.vg.lvs
    md.save()
    again = MetadataFile.open(vgfile)
    assert sorted(again.vg.lvs) == ["cryptostore0", "data", "secret"]


def test_example_scripts_run(vgfile: Path) -> None:
    listing = subprocess.run([sys.executable, str(ROOT / "examples/list_crypt_lvs.py"), str(vgfile)],
                             capture_output=True, text=True, check=True).stdout
    assert "vg0/home\t40 MiB\tkeystore=cryptostore1\thandler=luks1\tcipher=aes-xts-plain64\tkey_size=512" in listing
    edited = subprocess.run([sys.executable, str(ROOT / "examples/edit_metadata_offline.py"), str(vgfile)],
                            capture_output=True, text=True, check=True).stdout
    assert "refused as expected" in edited
    assert "now: home, cryptostore1, data2" in edited
    assert MetadataFile.open(vgfile).vg.lvs["data2"].tags == ["nightly-backup"]
