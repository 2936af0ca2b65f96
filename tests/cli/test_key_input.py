"""Key input, PBKDF costs, sizes and names: refused as cryptsetup and lvm2 refuse them (issue 12, item 4).

Every bad input is given to the real tool too, which must refuse it as well:
cryptsetup 2.6 for key files and costs (same message), lvm2 2.03.16 on loop
devices for sizes and names. lvcrypt's refusal is one `lvcrypt:` line, exit 3
for a bad argument and 5 otherwise, with not a byte written.
"""

from __future__ import annotations

import hashlib
import os
import pty
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

from conftest import ROOT, run_lvcrypt
from cryptsetup_oracle import FAST, cryptsetup, dumped_volume_key, image, key_file, needs_cryptsetup, opens_with
from store_helpers import Pair

FORCE = ["--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000"]


def _refused(result: subprocess.CompletedProcess[bytes] | subprocess.CompletedProcess[str], status: int,
             says: str) -> None:
    err = result.stderr if isinstance(result.stderr, str) else result.stderr.decode(errors="replace")
    assert result.returncode == status, (result.returncode, err)
    assert err.startswith("lvcrypt: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert says in err, err


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _format(img: Path, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return run_lvcrypt("keystore", "format", "-q", *FORCE, *args, str(img), input=input)


@needs_cryptsetup
@pytest.mark.oracle
def test_keyfile_offset_past_the_end_is_refused_like_cryptsetup(tmp_path: Path) -> None:
    img = image(tmp_path / "ks.img", 20)
    three = key_file(tmp_path / "k3", b"abc")
    before = _digest(img)
    theirs = cryptsetup("luksFormat", "-q", "--type", "luks2", *FAST, "--key-file", str(three),
                        "--keyfile-offset", "5", str(img), check=False)
    assert theirs.returncode != 0 and "Cannot seek to requested keyfile offset." in theirs.stderr
    _refused(_format(img, "--key-file", str(three), "--keyfile-offset", "5"), 5,
             "Cannot seek to requested keyfile offset.")
    # The same through a pipe, where the offset is read and thrown away.
    theirs = cryptsetup("luksFormat", "-q", "--type", "luks2", *FAST, "--key-file", "-", "--keyfile-offset", "5",
                        str(img), input=b"abc", check=False)
    assert theirs.returncode != 0 and "Cannot seek to requested keyfile offset." in theirs.stderr
    _refused(_format(img, "--key-file", "-", "--keyfile-offset", "5", input=b"abc"), 5,
             "Cannot seek to requested keyfile offset.")
    assert _digest(img) == before


@needs_cryptsetup
@pytest.mark.oracle
def test_empty_stdin_is_nothing_to_read_like_cryptsetup(tmp_path: Path) -> None:
    img = image(tmp_path / "ks.img", 20)
    passphrase = key_file(tmp_path / "k", b"a passphrase")
    cryptsetup("luksFormat", "-q", "--type", "luks2", *FAST, "--key-file", str(passphrase), str(img))
    before = _digest(img)
    theirs = cryptsetup("open", "--test-passphrase", "--key-file", "-", str(img), input=b"", check=False)
    assert theirs.returncode != 0 and "Nothing to read on input." in theirs.stderr
    _refused(run_lvcrypt("keystore", "unlock-test", "--key-file", "-", str(img), input=b""), 5,
             "Nothing to read on input.")
    _refused(run_lvcrypt("keyslot", "add", *FORCE, "--key-file", str(passphrase), "--new-key-file", "-", str(img),
                         input=b""), 5, "Nothing to read on input.")
    assert _digest(img) == before


@needs_cryptsetup
@pytest.mark.oracle
def test_terminals_as_key_files_are_refused_like_cryptsetup(tmp_path: Path) -> None:
    """A terminal is typed at, not read as a key file: both tools refuse a terminal named as the key file,
    and an offset into `--key-file -` when stdin is a terminal (which is then the prompt)."""
    img = image(tmp_path / "ks.img", 20)
    passphrase = key_file(tmp_path / "k", b"terminal")
    cryptsetup("luksFormat", "-q", "--type", "luks2", *FAST, "--key-file", str(passphrase), str(img))
    main, terminal = pty.openpty()
    cases = ((["--key-file", os.ttyname(terminal)], "Cannot read keyfile from a terminal."),
             (["--key-file", "-", "--keyfile-offset", "1"], "Cannot use offset with terminal input."))
    try:
        for options, message in cases:
            for argv in (["cryptsetup", "open", "--test-passphrase", *options, str(img)],
                         [sys.executable, "-m", "lvcrypt", "keystore", "unlock-test", *options, str(img)]):
                result = subprocess.run(argv, stdin=terminal, capture_output=True, cwd=ROOT, timeout=60)
                assert result.returncode != 0 and message.encode() in result.stderr, (argv, result.stderr)
    finally:
        os.close(main)
        os.close(terminal)


@needs_cryptsetup
@pytest.mark.oracle
def test_keyfile_size_zero_means_the_whole_file_and_short_files_are_refused(tmp_path: Path) -> None:
    img = image(tmp_path / "ks.img", 20)
    whole = key_file(tmp_path / "k", b"the whole key file, every byte")
    assert _format(img, "--type", "luks2", "--key-file", str(whole), "--keyfile-size", "0").returncode == 0
    assert opens_with(img, whole)
    cryptsetup("open", "--test-passphrase", "--key-file", str(whole), "--keyfile-size", "0", str(img))
    assert run_lvcrypt("keystore", "unlock-test", "--key-file", str(whole), "--keyfile-size", "0",
                       str(img)).returncode == 0
    theirs = cryptsetup("open", "--test-passphrase", "--key-file", str(whole), "--keyfile-size", "100", str(img),
                        check=False)
    assert theirs.returncode != 0 and "Cannot read requested amount of data." in theirs.stderr
    _refused(run_lvcrypt("keystore", "unlock-test", "--key-file", str(whole), "--keyfile-size", "100", str(img)),
             5, "Cannot read requested amount of data.")


@needs_cryptsetup
@pytest.mark.oracle
def test_empty_passphrase_never_makes_a_keyslot_but_still_opens_one(tmp_path: Path) -> None:
    """cryptsetup takes an empty key file as a passphrase; lvcrypt refuses to create such a keyslot."""
    img = image(tmp_path / "ks.img", 20)
    empty = key_file(tmp_path / "empty", b"")
    good = key_file(tmp_path / "good", b"good passphrase")
    before = _digest(img)
    for handler in ("luks2", "luks1", "hashed"):
        _refused(_format(img, "--type", handler, "--key-file", str(empty)), 5, "empty passphrase")
        _refused(_format(img, "--type", handler, "--key-file", str(good), "--keyfile-offset", "15"), 5,
                 "empty passphrase")
    assert _digest(img) == before
    assert _format(img, "--key-file", str(good)).returncode == 0
    written = _digest(img)
    _refused(run_lvcrypt("keyslot", "add", *FORCE, "--key-file", str(good), "--new-key-file", str(empty), str(img)),
             5, "empty passphrase")
    _refused(run_lvcrypt("keyslot", "change", *FORCE, "--key-file", str(good), "--new-key-file", str(empty),
                         str(img)), 5, "empty passphrase")
    assert _digest(img) == written
    # A keyslot cryptsetup made from an empty key file still opens: only creation is refused.
    other = image(tmp_path / "cs.img", 20)
    cryptsetup("luksFormat", "-q", "--type", "luks2", *FAST, "--key-file", str(empty), str(other))
    assert run_lvcrypt("keystore", "unlock-test", "--key-file", str(empty), str(other)).returncode == 0
    assert dumped_volume_key(other, empty)


@needs_cryptsetup
@pytest.mark.oracle
@pytest.mark.parametrize("option", ["--iter-time", "--pbkdf-memory", "--pbkdf-parallel", "--keyfile-offset",
                                    "--keyfile-size"])
def test_negative_costs_and_offsets_are_bad_arguments(tmp_path: Path, option: str) -> None:
    img = image(tmp_path / "ks.img", 20)
    passphrase = key_file(tmp_path / "k", b"cost")
    before = _digest(img)
    theirs = cryptsetup("luksFormat", "-q", "--type", "luks2", option, "-1", "--key-file", str(passphrase),
                        str(img), check=False)
    assert theirs.returncode != 0, theirs.stderr  # "invalid numeric value"; a wrapped-around offset can't seek
    _refused(run_lvcrypt("keystore", "format", "-q", option, "-1", "--key-file", str(passphrase), str(img)), 3,
             "negative")
    pv = tmp_path / "pv.img"
    with open(pv, "wb") as f:
        f.truncate(64 << 20)
    pair = Pair([str(pv)], tmp_path)
    pair.lvc("pvcreate", str(pv))
    pair.lvc("vgcreate", "vgk", str(pv))
    pv_before = _digest(pv)
    _refused(pair.lvc("lvcreate", "--encrypt", option, "-1", "--key-file", str(passphrase), "-L", "4m", "-n", "d",
                      "vgk", check=False), 3, "negative")
    assert _digest(pv) == pv_before and _digest(img) == before


@pytest.fixture
def both(loop_devices: Callable[..., list[str]], tmp_path: Path, lvm2: None) -> Pair:
    """A VG lvcrypt made, on a loop device lvm2 reads too, with a long name so the length limit is near."""
    pair = Pair(loop_devices(1, 64), tmp_path)
    pair.lvc("pvcreate", *pair.devices)
    pair.lvc("vgcreate", LONG_VG, *pair.devices)
    pair.lvc("lvcreate", "-L", "8m", "-n", "r1", LONG_VG)
    return pair


LONG_VG = "vg" + "a" * 60
BAD_NAMES = ["", "-x", ".", "..", "a b", "a/b", "snapshotx", "pvmove1", "x_tmeta", "x_mimagetmp", "x_pmspare",
             "x_rimage_0", "x_vorigin", "x_iorig", "b" * 128, "c" * 63]
GOOD_NAMES = ["x_dmeta", "a" + "-a" * 30, "d" * 62, "+._"]


def _device_digest(pair: Pair) -> str:
    return hashlib.sha256(Path(pair.devices[0]).read_bytes()).hexdigest()


def test_names_lvm2_refuses_are_refused_before_anything_is_written(both: Pair) -> None:
    before = _device_digest(both)
    for name in BAD_NAMES:
        theirs = both.lvm("lvcreate", "-L", "4m", "-n", name, LONG_VG, check=False)
        assert theirs.returncode != 0, (name, theirs.stderr)
        ours = both.lvc("lvcreate", "-L", "4m", "-n", name, LONG_VG, check=False)
        assert ours.returncode == 3, (name, ours.returncode, ours.stderr)
        assert ours.stderr.startswith("lvcrypt: ") and ours.stderr.count("\n") == 1, ours.stderr
        renamed = both.lvc("lvrename", LONG_VG, "r1", name, check=False)
        assert renamed.returncode == 3, (name, renamed.stderr)
        assert _device_digest(both) == before, name
    for name in GOOD_NAMES:
        both.lvc("lvcreate", "-L", "4m", "-n", name, LONG_VG)
    listed = both.lvm("lvs", "--noheadings", "-o", "lv_name", LONG_VG).stdout.split()
    assert sorted(listed) == sorted(GOOD_NAMES + ["r1"])
    both.lvm("vgck", LONG_VG)


def test_encrypted_lv_needs_room_for_its_keystore_name(both: Pair) -> None:
    """cryptostore0 is an LV name too: lvm2's limit (VG + LV <= 124 characters) holds for it as well."""
    (both.tmp / "pass").write_bytes(b"pass")
    tight, fits = "v" * 113, "v" * 112
    both.lvc("vgrename", LONG_VG, tight)
    before = _device_digest(both)
    result = both.lvc("lvcreate", "--encrypt", *FORCE, "--key-file", str(both.tmp / "pass"), "-L", "4m", "-n",
                      "e", tight, check=False)
    assert result.returncode == 3 and "cryptostore0" in result.stderr, result.stderr
    assert _device_digest(both) == before
    both.lvc("vgrename", tight, fits)
    both.lvc("lvcreate", "--encrypt", *FORCE, "--key-file", str(both.tmp / "pass"), "-L", "4m", "-n", "e", fits)
    assert "cryptostore0" in both.lvm("lvs", "-a", "--noheadings", "-o", "lv_name", fits).stdout
    before = _device_digest(both)
    result = both.lvc("vgrename", fits, tight, check=False)
    assert result.returncode == 3 and "too long" in result.stderr, result.stderr
    assert _device_digest(both) == before


def test_sizes_as_lvm2_rounds_them(both: Pair) -> None:
    """lvreduce -L -1M with 4 MiB extents removes nothing (lvm2 rounds a reduction down) and says so."""
    before = _device_digest(both)
    for args, status in ((["lvreduce", "-y", "-L", "-1M"], 5), (["lvreduce", "-y", "-L", "7M"], 5),
                         (["lvreduce", "-y", "-L", "-0"], 3), (["lvreduce", "-y", "-l", "0%FREE"], 3),
                         (["lvextend", "-L", "+0"], 3), (["lvextend", "-l", "+0"], 3)):
        theirs = both.lvm(*args, f"{LONG_VG}/r1", check=False)
        ours = both.lvc(*args, f"{LONG_VG}/r1", check=False)
        assert (theirs.returncode, ours.returncode) == (status, status), (args, theirs.stderr, ours.stderr)
        assert ours.stderr.splitlines()[-1].startswith("lvcrypt: "), ours.stderr
    assert _device_digest(both) == before
    for zero in (["-L", "0"], ["-l", "0"], ["-L", "4M", "-i", "0"], ["-L", "4M", "-i", "-2"]):
        assert both.lvm("lvcreate", *zero, "-n", "z", LONG_VG, check=False).returncode == 3
        assert both.lvc("lvcreate", *zero, "-n", "z", LONG_VG, check=False).returncode == 3
    both.lvc("lvreduce", "-y", "-L", "-5M", f"{LONG_VG}/r1")
    size = both.lvm("lvs", "--noheadings", "--units", "m", "-o", "lv_size", f"{LONG_VG}/r1").stdout.strip()
    assert size == "4.00m"
