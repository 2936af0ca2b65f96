"""LUKS2 headers with one bad copy: found, used and repaired as cryptsetup does (issue 12, item 9).

- Primary magic destroyed: the secondary copy is found at the offsets
  cryptsetup probes (16 KiB .. 4 MiB) by `keystore dump/unlock-test FILE`,
  by `lvconvert --type crypt` (import) and by `read` of the imported LV.
  cryptsetup opens a copy of the same damaged image (it repairs what it
  reads, so it never sees the original).
- A crash between the two header writes (a stale or torn copy): changes are
  refused with a message naming `lvcrypt keystore repair TARGET`; the repair
  asks first (-q answers), rewrites both copies from the good one, and
  cryptsetup then reads the header and finds nothing left to repair.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, run_lvcrypt
from cryptsetup_oracle import FAST, cryptsetup, dumped_volume_key, image, key_file, needs_cryptsetup, opens_with
from lvcrypt.handlers.base import FileArea
from lvcrypt.handlers.luks2.header import read_copy
from store_helpers import Pair

pytestmark = [needs_cryptsetup, pytest.mark.oracle]
LVCRYPT_FAST = ["--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000"]
KIB = 1024


def _uuid(dump: str) -> str:
    match = re.search(r"UUID:\s*(\S+)", dump)
    assert match, dump
    return match.group(1)


def _oracle_copy(img: Path, name: str) -> Path:
    """A copy for cryptsetup, which rewrites a damaged copy whenever it reads one."""
    copy = img.with_name(name)
    shutil.copyfile(img, copy)
    return copy


def _lvc(*args: str, input: bytes | None = None) -> tuple[int, str, str]:
    result = run_lvcrypt(*args, input=input)
    return result.returncode, result.stdout.decode(errors="replace"), result.stderr.decode(errors="replace")


def _destroy_primary_magic(img: Path) -> None:
    with open(img, "r+b") as f:
        f.write(bytes(6))


def _seqids(img: Path) -> tuple[int, int]:
    with FileArea(img, writable=False) as area:
        primary = read_copy(area, 0).header
        return primary.seqid, read_copy(area, primary.hdr_size).header.seqid


@pytest.mark.parametrize("metadata_kib", [16, 64, 1024])
def test_destroyed_primary_magic_is_read_from_the_secondary(tmp_path: Path, metadata_kib: int) -> None:
    img = image(tmp_path / "luks2.img", 16)
    passphrase = key_file(tmp_path / "pass", b"secondary copy")
    cryptsetup("luksFormat", "-q", "--type", "luks2", *FAST, "--luks2-metadata-size", f"{metadata_kib}k",
               "--offset", "8192", "--key-file", str(passphrase), str(img))
    uuid = _uuid(cryptsetup("luksDump", str(img)).stdout)
    volume_key = dumped_volume_key(img, passphrase)
    _destroy_primary_magic(img)
    damaged = img.read_bytes()
    assert opens_with(_oracle_copy(img, "oracle1.img"), passphrase)
    assert _uuid(cryptsetup("luksDump", str(_oracle_copy(img, "oracle2.img"))).stdout) == uuid

    status, out, err = _lvc("keystore", "dump", str(img))
    assert status == 0 and _uuid(out) == uuid and "bad magic" in out, err
    status, out, err = _lvc("keystore", "unlock-test", "--key-file", str(passphrase), str(img))
    assert (status, out) == (0, "Key slot 0 unlocked.\n"), err
    status, out, err = _lvc("keystore", "dump", "--dump-volume-key", "-q", "--key-file", str(passphrase), str(img))
    assert status == 0 and bytes.fromhex(out.rsplit(": ", 1)[1].strip()) == volume_key, err
    assert img.read_bytes() == damaged, "reading must not write"


def test_import_of_a_volume_whose_primary_magic_is_gone(tmp_path: Path) -> None:
    """lvconvert --type crypt finds the secondary; the keystore is then repaired and exported for cryptsetup."""
    volume = image(tmp_path / "luks2.img", 16)
    passphrase = key_file(tmp_path / "pass", b"imported")
    added = key_file(tmp_path / "added", b"added after repair")
    cryptsetup("luksFormat", "-q", "--type", "luks2", *FAST, "--offset", "8192", "--key-file", str(passphrase),
               str(volume))
    _destroy_primary_magic(volume)
    pv = tmp_path / "pv.img"
    with open(pv, "wb") as f:
        f.truncate(64 << 20)
    pair = Pair([str(pv)], tmp_path)
    pair.lvc("pvcreate", str(pv))
    pair.lvc("vgcreate", "vgr", str(pv))
    pair.lvc("lvcreate", "-L", "16m", "-n", "old", "vgr")
    _bytes(pair, "write", "vgr/old", stdin=volume.read_bytes())

    result = pair.lvc("lvconvert", "--type", "crypt", "vgr/old")
    assert "repair" in result.stderr, result.stderr
    assert len(_bytes(pair, "read", "--key-file", str(passphrase), "--length", "65536", "vgr/old")) == 65536
    refused = _action(pair, "keyslot", "add", *LVCRYPT_FAST, "--key-file", str(passphrase), "--new-key-file",
                      str(added), "vgr/cryptostore0")
    assert refused.returncode == 5 and refused.stderr.count("\n") == 1, refused.stderr
    assert "'lvcrypt keystore repair vgr/cryptostore0'" in refused.stderr, refused.stderr
    assert _action(pair, "keystore", "repair", "-y", "vgr/cryptostore0").returncode == 0
    assert _action(pair, "keyslot", "add", *LVCRYPT_FAST, "--key-file", str(passphrase), "--new-key-file",
                   str(added), "vgr/cryptostore0").returncode == 0
    pair.lvc("lvconvert", "--type", "linear", "vgr/old")
    exported = tmp_path / "exported.img"
    exported.write_bytes(_bytes(pair, "read", "vgr/old"))
    assert opens_with(exported, passphrase) and opens_with(exported, added)
    assert cryptsetup("repair", "-q", str(_oracle_copy(exported, "repaired.img"))).returncode == 0
    assert _oracle_copy(exported, "unchanged.img").read_bytes() == exported.read_bytes()


def _action(pair: Pair, command: str, action: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`lvcrypt keystore|keyslot ACTION` on the pair's devices (--devices belongs to the action)."""
    return subprocess.run([sys.executable, "-m", "lvcrypt", command, action, "--devices", pair.device_list, *args],
                          capture_output=True, text=True, env=pair.env, cwd=ROOT)


def _bytes(pair: Pair, *args: str, stdin: bytes = b"") -> bytes:
    result = subprocess.run([sys.executable, "-m", "lvcrypt", args[0], "--devices", pair.device_list, *args[1:]],
                            input=stdin, capture_output=True, env=pair.env, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("crash", ["stale-secondary", "torn-primary"])
def test_crash_between_the_two_header_writes_is_repaired(tmp_path: Path, crash: str) -> None:
    """keyslot add writes the primary copy, then the secondary; a crash leaves one copy behind the other."""
    img = image(tmp_path / "luks2.img", 20)
    first = key_file(tmp_path / "first", b"first passphrase")
    second = key_file(tmp_path / "second", b"second passphrase")
    third = key_file(tmp_path / "third", b"third passphrase")
    cryptsetup("luksFormat", "-q", "--type", "luks2", *FAST, "--key-file", str(first), str(img))
    old = img.read_bytes()
    status, _, err = _lvc("keyslot", "add", *LVCRYPT_FAST, "--key-file", str(first), "--new-key-file", str(second),
                          str(img))
    assert status == 0, err
    new = bytearray(img.read_bytes())
    if crash == "stale-secondary":  # the primary was written, the secondary not yet
        new[16 * KIB:32 * KIB] = old[16 * KIB:32 * KIB]
    else:  # the primary's binary header was written, its JSON area not yet; the secondary is the old one
        new[4 * KIB:32 * KIB] = old[4 * KIB:32 * KIB]
    img.write_bytes(bytes(new))
    crashed = img.read_bytes()
    survivor = second if crash == "stale-secondary" else first

    status, _, err = _lvc("keyslot", "add", *LVCRYPT_FAST, "--key-file", str(first), "--new-key-file", str(third),
                          str(img))
    assert status == 5 and err.count("\n") == 1 and f"'lvcrypt keystore repair {img}'" in err, err
    status, _, err = _lvc("keystore", "repair", str(img))  # no terminal, no -q: asks, cannot, writes nothing
    assert status == 3 and "Confirmation needed" in err, err
    assert img.read_bytes() == crashed
    status, _, err = _lvc("keystore", "unlock-test", "--key-file", str(survivor), str(img))
    assert status == 0, err

    oracle = _oracle_copy(img, "oracle.img")
    cryptsetup("repair", "-q", str(oracle))
    status, out, err = _lvc("keystore", "repair", "-q", str(img))
    assert status == 0 and "repaired" in out, err
    assert _seqids(img)[0] == _seqids(img)[1]
    assert _lvc("keystore", "repair", "-q", str(img))[1].startswith("No known problems")
    assert opens_with(img, survivor) and opens_with(img, first)
    assert opens_with(img, second) == (crash == "stale-secondary")
    assert _keyslots(img) == _keyslots(oracle), "cryptsetup repair of the same crash keeps other keyslots"
    repaired = img.read_bytes()
    cryptsetup("repair", "-q", str(img))
    assert img.read_bytes() == repaired, "cryptsetup found something left to repair"
    status, _, err = _lvc("keyslot", "add", *LVCRYPT_FAST, "--key-file", str(first), "--new-key-file", str(third),
                          str(img))
    assert status == 0 and opens_with(img, third), err


def _keyslots(img: Path) -> list[str]:
    dump = cryptsetup("luksDump", str(img)).stdout
    section = dump[dump.index("Keyslots:"):dump.index("Tokens:")]
    return re.findall(r"^\s+(\d+): luks2", section, re.MULTILINE)
