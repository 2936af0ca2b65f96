"""lvconvert --encrypt/--decrypt/--reencrypt as a user meets them: interrupted, shown by lvs, resumed, aborted,
refused (shared keystores, no room for a chunk) with nothing written.  Image files, lvcrypt alone: the lvm2
and cryptsetup oracles are in tests/compat/test_lv_conversion_oracles.py."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from lvcrypt import lv_conversion
from lvcrypt.keystore_admin import KeystoreRequest
from lvcrypt.lv_conversion import ConversionRequest, convert_lv
from lvcrypt.store.commit import load_vg, scan
from lvcrypt.unlock import KeySources
from mover_helpers import Interrupted, interrupt_after, two_image_pair, FAST_KDF, key_path, make_vg, read_lv, write_lv
from store_helpers import Pair, digests


@pytest.fixture
def pair(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Pair:
    return two_image_pair(tmp_path, monkeypatch)


def _progress_row(pair: Pair) -> dict[str, str]:
    out = pair.lvc("lvs", "--reportformat", "json", "-o", "lv_name,segtype,crypt_convert,crypt_convert_percent",
                   "vgc/lv").stdout
    rows = json.loads(out)["report"][0]["lv"]
    return {key: ",".join(sorted({row[key] for row in rows})) for key in rows[0]}


def _keystores(pair: Pair) -> dict[str, str]:
    out = pair.lvc("lvs", "-a", "--reportformat", "json", "-o", "lv_name,crypt_keystore", "vgc").stdout
    return {row["lv_name"]: row["crypt_keystore"] for row in json.loads(out)["report"][0]["lv"]}


def test_interrupted_encrypt_shows_in_lvs_resumes_and_aborts(pair: Pair) -> None:
    data = make_vg(pair, encrypted=False)
    request = ConversionRequest("encrypt", new=_fast_request(), chunk_bytes=2 << 20)
    with pytest.raises(Interrupted):
        convert_lv(pair.device_list, "vgc", "lv", request, KeySources(key_file=key_path(pair)),
                   progress=interrupt_after(5))  # inside the third chunk: two are committed
    row = _progress_row(pair)
    assert row["crypt_convert"] == "encrypt" and row["crypt_convert_percent"] == "57.14", row
    assert row["segtype"] == "crypt,linear"
    assert read_lv(pair, encrypted=True) == data, "a half-encrypted LV reads as the whole original"

    refused = pair.lvc("lvconvert", "--decrypt", "--key-file", key_path(pair), "vgc/lv", check=False)
    assert refused.returncode == 5 and "lvconvert --encrypt is in progress" in refused.stderr

    aborted = pair.lvc("lvconvert", "--abort", "--key-file", key_path(pair), "vgc/lv")
    assert "aborted" in aborted.stdout and "cryptostore0 removed" in aborted.stdout
    assert _progress_row(pair) == {"lv_name": "lv", "segtype": "linear", "crypt_convert": "",
                                   "crypt_convert_percent": ""}
    assert read_lv(pair, encrypted=False) == data


def test_interrupted_decrypt_resumes_with_the_same_command(pair: Pair) -> None:
    data = make_vg(pair, encrypted=True)
    request = ConversionRequest("decrypt", chunk_bytes=2 << 20)
    with pytest.raises(Interrupted):
        convert_lv(pair.device_list, "vgc", "lv", request, KeySources(key_file=key_path(pair)),
                   progress=interrupt_after(3))
    assert _progress_row(pair)["crypt_convert"] == "decrypt"
    assert _backup_seqno(pair) == _seqno(pair), "the backup file is not the VG as last committed"
    pair.lvc("lvconvert", "--decrypt", "--key-file", key_path(pair), "vgc/lv")
    assert read_lv(pair, encrypted=False) == data
    assert "cryptostore0" not in pair.lvc("lvs", "-a", "-o", "lv_name").stdout


def test_a_conversion_archives_once_however_many_chunks_it_commits(pair: Pair) -> None:
    """lvm2 archives the version a command started from once; a chunk-by-chunk conversion must not
    leave one archive file per chunk (thousands for a large LV, all kept for 30 days)."""
    data = make_vg(pair, encrypted=True)
    archives = Path(pair.env["LVCRYPT_STATE_DIR"]) / "archive"
    before = set(archives.glob("vgc_*.vg"))
    pair.lvc("lvconvert", "--decrypt", "--chunk-size", "1M", "--key-file", key_path(pair), "vgc/lv")
    assert read_lv(pair, encrypted=False) == data
    assert len(set(archives.glob("vgc_*.vg")) - before) == 1
    assert _backup_seqno(pair) == _seqno(pair), "the backup file is not the VG as last committed"


def _seqno(pair: Pair) -> int:
    return int(pair.lvc("vgs", "--noheadings", "-o", "vg_seqno", "vgc").stdout)


def _backup_seqno(pair: Pair) -> int:
    """The seqno in the backup file: written once per command (not per chunk), at its end or interruption."""
    text = (Path(pair.env["LVCRYPT_STATE_DIR"]) / "backup" / "vgc").read_text()
    return int(next(line.split("=")[1] for line in text.splitlines() if line.strip().startswith("seqno")))


def _fast_request() -> KeystoreRequest:
    return KeystoreRequest(handler="luks1", pbkdf="pbkdf2", force_iterations=1000)


def test_reencrypting_a_shared_keystore_needs_all_users_or_new_keystore(pair: Pair) -> None:
    data = make_vg(pair, encrypted=True)
    pair.lvc("lvcreate", "-l", "2", "-n", "other", "--encrypt", "--keystore", "cryptostore0", "vgc")
    other = os.urandom(2 << 20)
    write_lv(pair, other, True, "other")
    before = digests(pair.devices)
    refused = pair.lvc("lvconvert", "--reencrypt", *FAST_KDF, "--key-file", key_path(pair), "vgc/lv", check=False)
    assert refused.returncode == 5 and refused.stderr.count("\n") == 1, refused.stderr
    assert "shared with other" in refused.stderr and "--all-users" in refused.stderr \
        and "--new-keystore" in refused.stderr
    assert digests(pair.devices) == before, "a refusal wrote to a PV"

    pair.lvc("lvconvert", "--reencrypt", "--new-keystore", *FAST_KDF, "--key-file", key_path(pair), "vgc/lv")
    assert _keystores(pair) == {"first": "", "lv": "cryptostore1", "other": "cryptostore0",
                                "[cryptostore0]": "cryptostore0", "[cryptostore1]": "cryptostore1"}
    assert read_lv(pair, encrypted=True) == data and read_lv(pair, True, "other") == other

    pair.lvc("lvcreate", "-l", "1", "-n", "third", "--encrypt", "--keystore", "cryptostore1", "vgc")
    pair.lvc("lvconvert", "--reencrypt", "--all-users", *FAST_KDF, "--key-file", key_path(pair), "vgc/lv")
    users = _keystores(pair)
    assert users["lv"] == users["third"] == "cryptostore2" and users["other"] == "cryptostore0"
    assert "[cryptostore1]" not in users
    assert read_lv(pair, encrypted=True) == data


def test_no_room_for_one_chunk_is_refused_before_anything_is_written(pair: Pair) -> None:
    make_vg(pair, encrypted=True)
    free = int(pair.lvc("vgs", "--noheadings", "-o", "vg_free_count", "vgc").stdout)
    pair.lvc("lvcreate", "-l", str(free - 2), "-n", "filler", "vgc")
    before = digests(pair.devices)
    refused = pair.lvc("lvconvert", "--decrypt", "--chunk-size", "3m", "--key-file", key_path(pair), "vgc/lv",
                       check=False)
    assert refused.returncode == 5, refused.stderr
    assert refused.stderr == ("lvcrypt: insufficient free extents in vgc: one chunk of lv needs 4 free extents, "
                              "2 are free (use a smaller --chunk-size or vgextend)\n")  # 3 rounded up to whole stripes
    assert digests(pair.devices) == before
    pair.lvc("lvconvert", "--decrypt", "--chunk-size", "1m", "--key-file", key_path(pair), "vgc/lv")


@pytest.mark.parametrize("argv,message", [
    (["--encrypt", "--decrypt"], "not allowed with argument"),
    (["--decrypt", "--all-users"], "--all-users and --new-keystore go with --reencrypt"),
    (["--encrypt", "--chunk-size", "0"], "--chunk-size must be more than zero"),
    (["--type", "linear", "--rate", "1m"], "--rate needs --encrypt"),
])
def test_bad_arguments_are_exit_3(pair: Pair, argv: list[str], message: str) -> None:
    result = pair.lvc("lvconvert", *argv, "vgc/lv", check=False)
    assert result.returncode == 3 and message in result.stderr, result.stderr



def test_a_decrypt_stopped_before_wiping_its_old_keystore_finishes_the_wipe_without_a_key(
        pair: Pair, monkeypatch: pytest.MonkeyPatch) -> None:
    """The commit that drops the keystore owes its wipe; stopped there, `--abort` is refused (nothing is
    left to take back) and the same command finishes the wipe, with no passphrase (no key is needed)."""
    data = make_vg(pair, encrypted=True)
    store = load_vg(scan(pair.devices), "vgc")
    area = store.vg.lvs["cryptostore0"].segments[0].pv_areas()[0][0]
    with open(store.device_of(area.pv), "rb") as f:
        f.seek((store.vg.pvs[area.pv].pe_start + area.extent * store.vg.extent_size) * 512)
        header = f.read(4096)
    assert header.startswith(b"LUKS\xba\xbe")

    def stop(vg: object, device_of: object, ranges: list[object]) -> None:
        if ranges:  # decrypt owes no other wipe: this is the keystore's
            raise Interrupted()
    monkeypatch.setattr(lv_conversion, "wipe_extents", stop)
    with pytest.raises(Interrupted):
        convert_lv(pair.device_list, "vgc", "lv", ConversionRequest("decrypt"), KeySources(key_file=key_path(pair)))
    monkeypatch.undo()
    assert "[cryptostore0]" not in _keystores(pair)
    assert any(header in Path(device).read_bytes() for device in pair.devices), "the wipe ran after all"

    refused = pair.lvc("lvconvert", "--abort", "vgc/lv", check=False)
    assert refused.returncode == 5 and refused.stderr.count("\n") == 1 and "is done" in refused.stderr, \
        refused.stderr
    pair.lvc("lvconvert", "--decrypt", "vgc/lv")
    assert not any(header in Path(device).read_bytes() for device in pair.devices)
    assert _progress_row(pair)["crypt_convert"] == ""
    assert read_lv(pair, encrypted=False) == data
