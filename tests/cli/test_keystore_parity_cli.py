"""Issue 16: the keystore commands cryptsetup has (volume-key keyslots, tokens, convert, config, header
backup, erase), on an image file and on a keystore LV, with cryptsetup 2.6 as the oracle both ways."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from cryptsetup_oracle import FAST, cryptsetup, dumped_volume_key, image, key_file, needs_cryptsetup, opens_with
from lvcrypt import keyring
from lvcrypt.keystores import keystore_segment
from lvcrypt.store.transaction import VgTransaction
from store_helpers import Pair

pytestmark = [needs_cryptsetup, pytest.mark.oracle]
FORCE = ["--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000"]
PASSPHRASE = b"parity passphrase"
HEADER = 16 << 20  # cryptsetup's LUKS2 header and keyslots area


@pytest.fixture(scope="module")
def luks2_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LUKS2 image cryptsetup formatted (PBKDF2, cheap), copied by each test."""
    tmp = tmp_path_factory.mktemp("luks2")
    img = image(tmp / "ks.img", 20)
    cryptsetup("luksFormat", "--type", "luks2", "-q", *FAST, "--key-file", str(key_file(tmp / "pass", PASSPHRASE)),
               str(img))
    return img


@pytest.fixture
def img(luks2_template: Path, tmp_path: Path) -> Path:
    shutil.copyfile(luks2_template, tmp_path / "ks.img")
    key_file(tmp_path / "pass", PASSPHRASE)
    return tmp_path / "ks.img"


@pytest.fixture(scope="module")
def vg_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """vgp/secret, a LUKS2 crypt LV whose keystore is vgp/cryptostore0, made once by the CLI."""
    tmp = tmp_path_factory.mktemp("vg")
    pv = image(tmp / "pv.img", 48)
    pair = Pair([str(pv)], tmp)
    key_file(tmp / "pass", PASSPHRASE)
    pair.lvc("pvcreate", str(pv))
    pair.lvc("vgcreate", "vgp", str(pv))
    pair.lvc("lvcreate", "--encrypt", *FORCE, "--key-file", str(tmp / "pass"), "-L", "4M", "-n", "secret", "vgp")
    return pv


@pytest.fixture
def vg(vg_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Pair:
    pv = tmp_path / "pv.img"
    shutil.copyfile(vg_template, pv)
    key_file(tmp_path / "pass", PASSPHRASE)
    monkeypatch.setenv("LVCRYPT_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("LVCRYPT_RUN_DIR", str(tmp_path / "run"))
    return Pair([str(pv)], tmp_path)


def lvcrypt(*args: str, input: bytes = b"", env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = subprocess.run([sys.executable, "-m", "lvcrypt", *args], input=input, capture_output=True, env=env,
                            cwd=ROOT)
    return result.returncode, result.stdout.decode(errors="replace"), result.stderr.decode(errors="replace")


def on_vg(pair: Pair, *args: str, input: bytes = b"") -> tuple[int, str, str]:
    """A keystore command on VG/cryptostoreN, limited to the pair's devices and state directories."""
    return lvcrypt(*args, "--devices", pair.device_list, input=input, env=pair.env)


def ok(*args: str, input: bytes = b"") -> str:
    status, out, err = lvcrypt(*args, input=input)
    assert status == 0, err
    return out


def refused(result: tuple[int, str, str], status: int, text: str) -> None:
    code, _, err = result
    assert code == status, err
    assert text in err and err.count("\n") == 1 and err.startswith("lvcrypt: ") and "Traceback" not in err


def header_digest(path: Path, length: int = HEADER) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read(length)).hexdigest()


def keystore_range(pair: Pair, store: str = "cryptostore0") -> tuple[int, int]:
    """(offset, length) in bytes of a keystore LV's extents on the one PV."""
    with VgTransaction(pair.device_list, "vgp", exclusive=False) as tx:
        segment = keystore_segment(tx.vg, store)
        area = segment.areas[0]
        start = (tx.vg.pvs[area.pv].pe_start + area.extent * tx.vg.extent_size) * 512
        return start, segment.extent_count * tx.vg.extent_bytes


def keystore_copy(pair: Pair, path: Path) -> Path:
    """The keystore LV's bytes in an image file, for cryptsetup to read."""
    start, length = keystore_range(pair)
    with open(pair.devices[0], "rb") as f:
        f.seek(start)
        path.write_bytes(f.read(length))
    return path


def keystore_put(pair: Pair, path: Path) -> None:
    """An image file cryptsetup changed, written back over the keystore LV's extents."""
    start, length = keystore_range(pair)
    data = path.read_bytes()
    assert len(data) == length
    with open(pair.devices[0], "r+b") as f:
        f.seek(start)
        f.write(data)


# --- 1. keyslot add --volume-key-file / --volume-key-keyring -------------------------------------------------

def test_keyslot_add_from_a_volume_key_file(img: Path, tmp_path: Path) -> None:
    volume_key = dumped_volume_key(img, tmp_path / "pass")
    vk = key_file(tmp_path / "vk", volume_key)
    new = key_file(tmp_path / "new", b"added from the volume key")
    out = ok("keyslot", "add", *FORCE, "--volume-key-file", str(vk), "--new-key-file", str(new), str(img))
    assert out == "Key slot 1 created.\n"
    assert "  1: luks2" in cryptsetup("luksDump", str(img)).stdout
    assert opens_with(img, new) and dumped_volume_key(img, new) == volume_key


def test_keyslot_add_refuses_a_wrong_or_short_volume_key_file(img: Path, tmp_path: Path) -> None:
    new = key_file(tmp_path / "new", b"never stored")
    before = header_digest(img)
    wrong = key_file(tmp_path / "wrong", os.urandom(64))
    refused(lvcrypt("keyslot", "add", *FORCE, "--volume-key-file", str(wrong), "--new-key-file", str(new),
                    str(img)), 5, "volume key does not match")
    short = key_file(tmp_path / "short", dumped_volume_key(img, tmp_path / "pass")[:32])
    refused(lvcrypt("keyslot", "add", *FORCE, "--volume-key-file", str(short), "--new-key-file", str(new),
                    str(img)), 5, "cannot read 64 bytes")
    refused(lvcrypt("keyslot", "add", "--volume-key-file", str(short), "--volume-key-keyring", "%user:x",
                    "--new-key-file", str(new), str(img)), 3, "only one of")
    assert header_digest(img) == before


def test_keyslot_add_from_the_keyring_on_a_keystore_lv(vg: Pair, made: list[int]) -> None:
    """cryptsetup's seed workflow, steps 1-2: link the volume key into @s, add a keyslot from it."""
    tag = f"lvcrypt-test:vk-{os.getpid()}"
    assert on_vg(vg, "keystore", "unlock-test", "--key-file", str(vg.tmp / "pass"), "--link-vk-to-keyring",
                 f"@s::%user:{tag}", "vgp/cryptostore0")[0] == 0
    new = key_file(vg.tmp / "new", b"from the keyring key")
    assert on_vg(vg, "keyslot", "add", *FORCE, "--volume-key-keyring", f"%user:{tag}", "--new-key-file", str(new),
                 "vgp/cryptostore0")[1] == "Key slot 1 created.\n"
    copy = keystore_copy(vg, vg.tmp / "ks.img")
    assert opens_with(copy, new) and opens_with(copy, vg.tmp / "pass")
    assert dumped_volume_key(copy, new) == dumped_volume_key(copy, vg.tmp / "pass")
    made.append(keyring.add_key("user", f"{tag}-bad", bytearray(os.urandom(64)), "@s"))
    before = header_digest(Path(vg.devices[0]), 48 << 20)
    refused(on_vg(vg, "keyslot", "add", *FORCE, "--volume-key-keyring", f"%user:{tag}-bad", "--new-key-file",
                  str(new), "vgp/cryptostore0"), 5, "volume key does not match")
    assert header_digest(Path(vg.devices[0]), 48 << 20) == before


# --- 2. tokens ---------------------------------------------------------------------------------------------------

VENDOR_TOKEN = '{"type":"x-vendor","keyslots":["0"],"a":{"b":[1,2],"c":null},"z":"\u00e9/\\\\"}'


def test_token_add_is_what_cryptsetup_exports_and_opens_with(img: Path, made: list[int]) -> None:
    tag = f"lvcrypt-test:pass-{os.getpid()}"
    assert ok("token", "add", "--key-description", tag, "-S", "0", str(img)) == "Token 0 created.\n"
    exported = cryptsetup("token", "export", "--token-id", "0", str(img)).stdout
    assert exported == ok("token", "export", "--token-id", "0", str(img))
    assert json.loads(exported) == {"type": "luks2-keyring", "keyslots": ["0"], "key_description": tag}
    assert f"Key description: {tag}" in cryptsetup("luksDump", str(img)).stdout
    token_open = ["open", "--test-passphrase", "--token-only", str(img)]
    assert cryptsetup(*token_open, check=False).returncode != 0  # the passphrase is not in the keyring yet
    made.append(keyring.add_key("user", tag, bytearray(PASSPHRASE), "@s"))
    cryptsetup(*token_open)
    assert ok("token", "list", str(img)) == f"0\tluks2-keyring\tkeyslots=0 key_description={tag}\n"
    assert ok("token", "remove", "--token-id", "0", str(img)) == "Token 0 removed.\n"
    assert cryptsetup(*token_open, check=False).returncode != 0
    assert ok("token", "list", str(img)) == ""


def test_tokens_cryptsetup_writes_are_read_and_kept_verbatim(img: Path, tmp_path: Path) -> None:
    cryptsetup("token", "add", "--key-description", "cs:key", "--key-slot", "0", "--token-id", "3", str(img))
    vendor = tmp_path / "vendor.json"
    vendor.write_text(VENDOR_TOKEN, encoding="utf-8")
    cryptsetup("token", "import", "--json-file", str(vendor), "--token-id", "7", str(img))
    assert ok("token", "list", str(img)) == "3\tluks2-keyring\tkeyslots=0 key_description=cs:key\n7\tx-vendor\tkeyslots=0\n"
    for number in ("3", "7"):
        assert ok("token", "export", "--token-id", number, str(img)) == \
            cryptsetup("token", "export", "--token-id", number, str(img)).stdout
    # lvcrypt imports the same JSON; cryptsetup exports it byte for byte, and lvcrypt's --json-file too.
    assert ok("token", "import", "--json-file", str(vendor), str(img)) == "Token 0 created.\n"
    assert cryptsetup("token", "export", "--token-id", "0", str(img)).stdout == VENDOR_TOKEN
    assert ok("token", "export", "--token-id", "0", "--json-file", str(tmp_path / "out.json"), str(img)) == ""
    assert (tmp_path / "out.json").read_text(encoding="utf-8") == VENDOR_TOKEN
    assert ok("token", "import", "--token-id", "4", str(img), input=VENDOR_TOKEN.encode()) == "Token 4 created.\n"
    ok("token", "remove", "--token-id", "3", str(img))
    assert "  3: " not in cryptsetup("luksDump", str(img)).stdout
    assert cryptsetup("token", "export", "--token-id", "4", str(img)).stdout == VENDOR_TOKEN


def test_token_bad_input_is_refused_and_writes_nothing(img: Path, tmp_path: Path) -> None:
    ok("token", "import", "--token-id", "1", str(img), input=VENDOR_TOKEN.encode())
    before = header_digest(img)
    bad = tmp_path / "bad.json"
    for text, message in (('{"type":"x","keyslots":', "not valid JSON"), ('["x"]', "not a JSON object"),
                          ('{"keyslots":[]}', "type must be a string"),
                          ('{"type":"x","keyslots":["9"]}', "keyslot 9, which is not in use"),
                          ('{"type":"luks2-keyring","keyslots":[]}', "key_description must be a string")):
        bad.write_text(text)
        refused(lvcrypt("token", "import", "--json-file", str(bad), str(img)), 5, message)
    refused(lvcrypt("token", "import", "--token-id", "1", str(img), input=VENDOR_TOKEN.encode()), 5,
            "token 1 is in use")
    refused(lvcrypt("token", "import", "--json-file", str(tmp_path / "absent"), str(img)), 5, "cannot read")
    refused(lvcrypt("token", "remove", "--token-id", "9", str(img)), 5, "token 9 is not in use")
    refused(lvcrypt("token", "export", "--token-id", "9", str(img)), 5, "token 9 is not in use")
    refused(lvcrypt("token", "add", "--key-description", "k", "-S", "5", str(img)), 5, "keyslot 5 is not in use")
    refused(lvcrypt("token", "add", "--key-description", "k", "--token-id", "32", str(img)), 5, "out of range")
    refused(lvcrypt("token", "remove", str(img)), 3, "--token-id")
    refused(lvcrypt("token", "add", "-S", "0", str(img)), 3, "--key-description")
    assert header_digest(img) == before
    luks1 = image(tmp_path / "luks1.img")
    cryptsetup("luksFormat", "--type", "luks1", "-q", *FAST, "--key-file", str(tmp_path / "pass"), str(luks1))
    refused(lvcrypt("token", "add", "--key-description", "k", str(luks1)), 5, "luks1 keystores have no tokens")


def test_tokens_on_a_keystore_lv_both_ways(vg: Pair) -> None:
    assert on_vg(vg, "token", "add", "--key-description", "lv:key", "-S", "0", "vgp/cryptostore0")[0] == 0
    copy = keystore_copy(vg, vg.tmp / "ks.img")
    assert json.loads(cryptsetup("token", "export", "--token-id", "0", str(copy)).stdout)["key_description"] == \
        "lv:key"
    cryptsetup("token", "import", "--token-id", "2", str(copy), input=VENDOR_TOKEN.encode())
    keystore_put(vg, copy)
    status, out, err = on_vg(vg, "token", "list", "vgp/cryptostore0")
    assert (status, out) == (0, "0\tluks2-keyring\tkeyslots=0 key_description=lv:key\n2\tx-vendor\tkeyslots=0\n"), err
    assert on_vg(vg, "token", "export", "--token-id", "2", "vgp/cryptostore0")[1] == VENDOR_TOKEN


# --- 3. keyslot convert and list ----------------------------------------------------------------------------------

ARGON = ["--pbkdf", "argon2id", "--pbkdf-force-iterations", "4", "--pbkdf-memory", "32768", "--pbkdf-parallel", "1"]


def test_keyslot_convert_is_what_cryptsetup_reads(img: Path, tmp_path: Path) -> None:
    volume_key = dumped_volume_key(img, tmp_path / "pass")
    assert ok("keyslot", "convert", *ARGON, "--key-file", str(tmp_path / "pass"), str(img)) == \
        "Key slot 0 converted.\n"
    dump = cryptsetup("luksDump", str(img)).stdout
    assert "PBKDF:      argon2id" in dump and "Time cost:  4" in dump and "Memory:     32768" in dump
    assert "Threads:    1" in dump and "Priority:   normal" in dump
    assert opens_with(img, tmp_path / "pass") and dumped_volume_key(img, tmp_path / "pass") == volume_key
    listing = ok("keyslot", "list", str(img))
    assert listing.startswith("0\targon2id\t") and " time=4 memory=32768 cpus=1 priority=normal " in listing


def test_keyslot_cryptsetup_converted_is_listed_and_opens(img: Path, tmp_path: Path) -> None:
    second = key_file(tmp_path / "second", b"second passphrase")
    ok("keyslot", "add", *FORCE, "--key-file", str(tmp_path / "pass"), "--new-key-file", str(second), str(img))
    cryptsetup("luksConvertKey", "-q", *ARGON, "--key-slot", "1", "--key-file", str(second), str(img))
    lines = ok("keyslot", "list", str(img)).splitlines()
    assert lines[0].startswith("0\tpbkdf2\t") and " iterations=1000 " in lines[0]
    assert lines[1].startswith("1\targon2id\t") and " time=4 memory=32768 cpus=1 " in lines[1]
    assert ok("keystore", "unlock-test", "--key-file", str(second), str(img)) == "Key slot 1 unlocked.\n"


def test_keyslot_convert_refusals_write_nothing(img: Path, tmp_path: Path) -> None:
    before = header_digest(img)
    wrong = key_file(tmp_path / "wrong", b"not it")
    refused(lvcrypt("keyslot", "convert", *ARGON, "--key-file", str(wrong), str(img)), 5, "no key available")
    refused(lvcrypt("keyslot", "convert", *ARGON, "-S", "3", "--key-file", str(tmp_path / "pass"), str(img)), 5,
            "keyslot 3 is not in use")
    refused(lvcrypt("keyslot", "convert", "--pbkdf", "scrypt", "--key-file", str(tmp_path / "pass"), str(img)), 3,
            "invalid choice")
    assert header_digest(img) == before


def test_keyslot_convert_on_a_keystore_lv(vg: Pair) -> None:
    status, out, err = on_vg(vg, "keyslot", "convert", *ARGON, "--key-file", str(vg.tmp / "pass"), "vgp/cryptostore0")
    assert (status, out) == (0, "Key slot 0 converted.\n"), err
    copy = keystore_copy(vg, vg.tmp / "ks.img")
    assert "PBKDF:      argon2id" in cryptsetup("luksDump", str(copy)).stdout and opens_with(copy, vg.tmp / "pass")


# --- 4. header backup and restore, erase, config -------------------------------------------------------------------

def damage_both_copies(path: Path, offset: int = 0) -> None:
    """Zero the start of both LUKS2 binary headers (16 KiB metadata copies): no copy is readable."""
    with open(path, "r+b") as f:
        for where in (offset, offset + 16384):
            f.seek(where)
            f.write(bytes(4096))


def test_header_backup_is_cryptsetups_and_restores_a_destroyed_header(img: Path, tmp_path: Path) -> None:
    original = header_digest(img)
    ours, theirs = tmp_path / "ours.bak", tmp_path / "theirs.bak"
    assert ok("keystore", "header-backup", "--header-backup-file", str(ours), str(img)) == \
        f"Header of {img} (16777216 bytes) saved in {ours}.\n"
    cryptsetup("luksHeaderBackup", "--header-backup-file", str(theirs), str(img))
    assert ours.read_bytes() == theirs.read_bytes() and (ours.stat().st_mode & 0o777) == 0o400
    refused(lvcrypt("keystore", "header-backup", "--header-backup-file", str(ours), str(img)), 5, "already exists")
    damage_both_copies(img)
    assert cryptsetup("isLuks", str(img), check=False).returncode != 0
    ok("keystore", "header-restore", "-q", "--header-backup-file", str(ours), str(img))
    assert header_digest(img) == original and opens_with(img, tmp_path / "pass")
    damage_both_copies(img)
    cryptsetup("luksHeaderRestore", "-q", "--header-backup-file", str(ours), str(img))
    assert header_digest(img) == original
    ok("keyslot", "add", *FORCE, "--key-file", str(tmp_path / "pass"), "--new-key-file", str(tmp_path / "pass"),
       str(img))
    ok("keystore", "header-restore", "--batch-mode", "--header-backup-file", str(theirs), str(img))
    assert header_digest(img) == original  # the keyslot added after the backup is gone again


def test_header_restore_refuses_another_keystores_backup(img: Path, tmp_path: Path) -> None:
    other = image(tmp_path / "other.img", 20)
    cryptsetup("luksFormat", "--type", "luks2", "-q", *FAST, "--key-file", str(tmp_path / "pass"), str(other))
    cryptsetup("luksHeaderBackup", "--header-backup-file", str(tmp_path / "other.bak"), str(other))
    uuid = cryptsetup("luksUUID", str(img)).stdout.strip()
    small = image(tmp_path / "small.img", 20)
    cryptsetup("luksFormat", "--type", "luks2", "-q", *FAST, "--uuid", uuid, "--luks2-keyslots-size", "8m",
               "--key-file", str(tmp_path / "pass"), str(small))
    cryptsetup("luksHeaderBackup", "--header-backup-file", str(tmp_path / "small.bak"), str(small))
    (tmp_path / "junk.bak").write_bytes(os.urandom(65536))
    before = header_digest(img)
    refused(lvcrypt("keystore", "header-restore", "-q", "--header-backup-file", str(tmp_path / "other.bak"),
                    str(img)), 5, f"not of {img} ({uuid})")
    refused(lvcrypt("keystore", "header-restore", "-q", "--header-backup-file", str(tmp_path / "small.bak"),
                    str(img)), 5, "8388608-byte keyslots area")
    refused(lvcrypt("keystore", "header-restore", "-q", "--header-backup-file", str(tmp_path / "junk.bak"),
                    str(img)), 5, "not a usable header backup")
    refused(lvcrypt("keystore", "header-restore", "-q", "--header-backup-file", str(tmp_path / "absent"),
                    str(img)), 5, "absent: no such device or file")
    refused(lvcrypt("keystore", "header-restore", "--header-backup-file", str(tmp_path / "small.bak"), str(img)),
            5, "keyslots area")
    refused(lvcrypt("keystore", "header-restore", str(img)), 3, "--header-backup-file")
    assert header_digest(img) == before


def test_header_restore_asks_first(img: Path, tmp_path: Path) -> None:
    ok("keystore", "header-backup", "--header-backup-file", str(tmp_path / "ks.bak"), str(img))
    ok("keyslot", "add", *FORCE, "--key-file", str(tmp_path / "pass"), "--new-key-file", str(tmp_path / "pass"),
       str(img))
    before = header_digest(img)
    refused(lvcrypt("keystore", "header-restore", "--header-backup-file", str(tmp_path / "ks.bak"), str(img)), 3,
            "Confirmation needed")
    assert header_digest(img) == before


def test_header_backup_and_restore_on_a_keystore_lv(vg: Pair) -> None:
    backup = vg.tmp / "lv.bak"
    assert on_vg(vg, "keystore", "header-backup", "--header-backup-file", str(backup), "vgp/cryptostore0")[0] == 0
    copy = keystore_copy(vg, vg.tmp / "ks.img")
    cryptsetup("luksHeaderBackup", "--header-backup-file", str(vg.tmp / "cs.bak"), str(copy))
    assert backup.read_bytes() == (vg.tmp / "cs.bak").read_bytes()
    start, _ = keystore_range(vg)
    damage_both_copies(Path(vg.devices[0]), start)
    refused(on_vg(vg, "keystore", "unlock-test", "--key-file", str(vg.tmp / "pass"), "vgp/cryptostore0"), 5, "")
    status, _, err = on_vg(vg, "keystore", "header-restore", "-q", "--header-backup-file", str(backup),
                           "vgp/cryptostore0")
    assert status == 0, err
    assert on_vg(vg, "keystore", "unlock-test", "--key-file", str(vg.tmp / "pass"), "vgp/cryptostore0")[0] == 0
    assert keystore_copy(vg, vg.tmp / "after.img").read_bytes() == copy.read_bytes()


def test_erase_names_the_lvs_and_destroys_every_keyslot(vg: Pair) -> None:
    on_vg(vg, "keyslot", "add", *FORCE, "--key-file", str(vg.tmp / "pass"), "--new-key-file", str(vg.tmp / "pass"),
          "vgp/cryptostore0")
    on_vg(vg, "token", "add", "--key-description", "lv:key", "-S", "1", "vgp/cryptostore0")
    before = header_digest(Path(vg.devices[0]), 48 << 20)
    status, _, err = on_vg(vg, "keystore", "erase", "vgp/cryptostore0")
    assert status == 3 and err.count("\n") == 1, err
    assert "(0, 1)" in err and "vgp/secret can never be unlocked" in err and "kernel keyring" in err
    assert "kdump" in err and "dm tables" in err
    assert header_digest(Path(vg.devices[0]), 48 << 20) == before
    status, out, err = on_vg(vg, "keystore", "erase", "-q", "vgp/cryptostore0")
    assert (status, out) == (0, "Key slots 0, 1 of vgp/cryptostore0 destroyed.\n"), err
    copy = keystore_copy(vg, vg.tmp / "ks.img")
    dump = cryptsetup("luksDump", str(copy)).stdout
    assert "Keyslots:\nTokens:\n  0: luks2-keyring" in dump and not opens_with(copy, vg.tmp / "pass")
    refused(on_vg(vg, "keystore", "erase", "-q", "vgp/cryptostore0"), 5, "no keyslot to erase")


def test_erase_of_cryptsetup_and_by_cryptsetup(img: Path, tmp_path: Path) -> None:
    vk = key_file(tmp_path / "vk", dumped_volume_key(img, tmp_path / "pass"))
    assert ok("keystore", "erase", "--yes", str(img)) == f"Key slots 0 of {img} destroyed.\n"
    assert "Keyslots:\nTokens:" in cryptsetup("luksDump", str(img)).stdout
    assert not opens_with(img, tmp_path / "pass")
    # Only the volume key brings an erased keystore back (its size is the file's: no keyslot records it).
    ok("keyslot", "add", *FORCE, "--volume-key-file", str(vk), "--new-key-file", str(tmp_path / "pass"), str(img))
    assert opens_with(img, tmp_path / "pass")
    fresh = image(tmp_path / "fresh.img", 20)
    ok("keystore", "format", "-q", *FORCE, "--key-file", str(tmp_path / "pass"), str(fresh))
    cryptsetup("luksErase", "-q", str(fresh))
    assert ok("keyslot", "list", str(fresh)) == ""
    refused(lvcrypt("keystore", "unlock-test", "--key-file", str(tmp_path / "pass"), str(fresh)), 5, "no key")


def test_config_both_ways(img: Path, tmp_path: Path) -> None:
    ok("keystore", "config", "--label", "backup disk", "--subsystem", "lvcrypt-test", str(img))
    ok("keystore", "config", "--priority", "prefer", "-S", "0", str(img))
    dump = cryptsetup("luksDump", str(img)).stdout
    assert "Label:         \tbackup disk" in dump and "Subsystem:     \tlvcrypt-test" in dump
    assert "Priority:   preferred" in dump and opens_with(img, tmp_path / "pass")
    cryptsetup("config", "--label", "relabelled", "--priority", "ignore", "--key-slot", "0", str(img))
    assert "Label:         \trelabelled" in ok("keystore", "dump", str(img))
    assert " priority=ignore " in ok("keyslot", "list", str(img))
    refused(lvcrypt("keystore", "unlock-test", "--key-file", str(tmp_path / "pass"), str(img)), 5, "no key")
    assert ok("keystore", "unlock-test", "-S", "0", "--key-file", str(tmp_path / "pass"), str(img)) == \
        "Key slot 0 unlocked.\n"
    before = header_digest(img)
    refused(lvcrypt("keystore", "config", "--label", "x" * 48, str(img)), 5, "longer than 47 bytes")
    refused(lvcrypt("keystore", "config", "--priority", "prefer", "-S", "4", str(img)), 5, "keyslot 4 is not in use")
    refused(lvcrypt("keystore", "config", "--priority", "prefer", str(img)), 3, "--priority needs --key-slot")
    refused(lvcrypt("keystore", "config", str(img)), 3, "give --label")
    assert header_digest(img) == before


def test_config_on_a_keystore_lv(vg: Pair) -> None:
    assert on_vg(vg, "keystore", "config", "--label", "vg label", "vgp/cryptostore0")[0] == 0
    assert "Label:         \tvg label" in cryptsetup("luksDump", str(keystore_copy(vg, vg.tmp / "ks.img"))).stdout


def test_luks1_header_backup_is_cryptsetups_and_restores(tmp_path: Path) -> None:
    luks1 = image(tmp_path / "luks1.img")
    pw = key_file(tmp_path / "pass", PASSPHRASE)
    cryptsetup("luksFormat", "--type", "luks1", "-q", *FAST, "--key-file", str(pw), str(luks1))
    cryptsetup("luksAddKey", "-q", *FAST, "--key-slot", "5", "--key-file", str(pw), str(luks1), str(pw))
    original = header_digest(luks1, 4 << 20)
    ours, theirs = tmp_path / "ours.bak", tmp_path / "theirs.bak"
    ok("keystore", "header-backup", "--header-backup-file", str(ours), str(luks1))
    cryptsetup("luksHeaderBackup", "--header-backup-file", str(theirs), str(luks1))
    assert ours.read_bytes() == theirs.read_bytes()
    with open(luks1, "r+b") as f:
        f.write(bytes(4096))
    ok("keystore", "header-restore", "-q", "--header-backup-file", str(theirs), str(luks1))
    assert header_digest(luks1, 4 << 20) == original and opens_with(luks1, pw)
    other = image(tmp_path / "other.img")
    cryptsetup("luksFormat", "--type", "luks1", "-q", *FAST, "--key-file", str(pw), str(other))
    refused(lvcrypt("keystore", "header-restore", "-q", "--header-backup-file", str(ours), str(other)), 5,
            "is the header of keystore")
    refused(lvcrypt("keystore", "header-restore", "-q", "--header-backup-file", str(ours), str(tmp_path / "absent")),
            5, "absent")


def test_token_import_replace_as_cryptsetup(img: Path, tmp_path: Path) -> None:
    ok("token", "add", "--key-description", "old:key", "-S", "0", str(img))
    assert ok("token", "import", "--token-id", "0", "--token-replace", str(img), input=VENDOR_TOKEN.encode()) == \
        "Token 0 created.\n"
    assert cryptsetup("token", "export", "--token-id", "0", str(img)).stdout == VENDOR_TOKEN
    keyring_token = '{"type":"luks2-keyring","keyslots":["0"],"key_description":"new:key"}'
    cryptsetup("token", "import", "--token-id", "0", "--token-replace", str(img), input=keyring_token.encode())
    assert ok("token", "list", str(img)) == "0\tluks2-keyring\tkeyslots=0 key_description=new:key\n"
