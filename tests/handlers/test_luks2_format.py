"""LUKS2 layout details against cryptsetup 2.6: byte-identical rewrites, unknown fields,
header sizes, 32 keyslots, refusals that write nothing, and secrets kept out of text."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from lvcrypt.errors import HandlerError, LvcryptError, WrongPassphrase
from lvcrypt.handlers.base import FileArea, FormatOptions, KeystoreAttrs, MemoryArea
from lvcrypt.handlers.kdf import PbkdfRequest
from lvcrypt.handlers.luks2 import Luks2Handler
from lvcrypt.handlers.luks2 import json_area
from lvcrypt.handlers.luks2.header import BINARY_SIZE, BinaryHeader, read_copy
from lvcrypt.handlers.secret import Secret
from tests.cryptsetup_oracle import FAST, cryptsetup, dumped_volume_key, image, key_file, needs_cryptsetup, opens_with

pytestmark = [needs_cryptsetup, pytest.mark.oracle]

HANDLER = Luks2Handler()
ATTRS = KeystoreAttrs("luks2")
REQUEST = PbkdfRequest("pbkdf2", "sha256", force_iterations=1000)
ARGON = ["--pbkdf", "argon2id", "--pbkdf-force-iterations", "4", "--pbkdf-memory", "32768"]


def rewrite_both_copies(img: Path, edit=None) -> None:  # type: ignore[no-untyped-def]
    """Re-encode each copy through lvcrypt's parser and writer (optionally editing the JSON object)."""
    with FileArea(img) as area:
        primary = read_copy(area, 0)
        for offset in (0, primary.header.hdr_size):
            copy = read_copy(area, offset)
            if edit is None:
                raw = json_area.encode(json_area.decode(copy.json_area))
            else:
                document = json.loads(copy.json_area.rstrip(b"\0"))
                edit(document)
                raw = json.dumps(document, separators=(",", ":")).encode().ljust(len(copy.json_area), b"\0")
            area.write(offset, copy.header.pack(raw))


@pytest.mark.parametrize("options", [FAST, ARGON + ["--cipher", "aes-cbc-essiv:sha256", "--key-size", "256"]],
                         ids=["pbkdf2", "argon2id-cbc"])
def test_rewrite_of_cryptsetup_header_is_byte_identical(tmp_path: Path, options: list[str]) -> None:
    img = image(tmp_path / "luks2.img", 20)
    passphrase = key_file(tmp_path / "k", b"identical")
    cryptsetup("luksFormat", "-q", "--type", "luks2", *options, "--label", "data/è", "--subsystem", "lvcrypt",
               "--key-file", str(passphrase), str(img))
    cryptsetup("luksAddKey", "-q", *FAST, "--key-file", str(passphrase), str(img), str(passphrase))
    cryptsetup("token", "add", "--key-description", "a/b:c", "--key-slot", "1", str(img))
    before = img.read_bytes()[:2 * 16384]
    rewrite_both_copies(img)
    assert img.read_bytes()[:2 * 16384] == before
    with FileArea(img, writable=False) as area:
        header = HANDLER.load(area).header
    assert (header.label, header.subsystem) == ("data/è", "lvcrypt")


def test_unknown_fields_survive_lvcrypt_changes(tmp_path: Path) -> None:
    img = image(tmp_path / "luks2.img", 20)
    passphrase = key_file(tmp_path / "k", b"keep what you do not know")
    added = key_file(tmp_path / "k2", b"added by lvcrypt")
    cryptsetup("luksFormat", "-q", "--type", "luks2", *FAST, "--key-file", str(passphrase), str(img))
    vendor_token = {"type": "x-vendor", "keyslots": ["0"], "blob": {"nested": [1, "two", None]}}
    cryptsetup("token", "import", "--token-id", "3", str(img), input=json.dumps(vendor_token).encode())

    def inject(document: dict) -> None:  # type: ignore[type-arg]
        document["keyslots"]["0"]["x_keyslot"] = {"a": 1}
        document["keyslots"]["0"]["kdf"]["x_kdf"] = "kept"
        document["segments"]["0"]["x_segment"] = [1, 2]
        document["digests"]["0"]["x_digest"] = True
        document["config"]["flags"] = ["allow-discards"]
        document["config"]["x_config"] = "7"
        document["x_top"] = {"future": "section"}

    rewrite_both_copies(img, inject)
    assert "allow-discards" in cryptsetup("luksDump", str(img)).stdout
    volume_key = dumped_volume_key(img, passphrase)
    with FileArea(img) as area, Secret(volume_key) as vk, Secret(added.read_bytes()) as new:
        assert HANDLER.add_keyslot(area, ATTRS, vk, new, REQUEST) == 1
        HANDLER.remove_keyslot(area, ATTRS, 1)
        assert HANDLER.add_keyslot(area, ATTRS, vk, new, REQUEST) == 1
    # Read the JSON lvcrypt wrote straight from the image: cryptsetup's own JSON dump leaves out
    # unknown fields inside a kdf object.
    raw = img.read_bytes()
    document = json.loads(raw[BINARY_SIZE:raw.index(b"\0", BINARY_SIZE)])
    assert document == json.loads(raw[16384 + BINARY_SIZE:raw.index(b"\0", 16384 + BINARY_SIZE)])
    assert document["keyslots"]["0"]["x_keyslot"] == {"a": 1}
    assert document["keyslots"]["0"]["kdf"]["x_kdf"] == "kept"
    assert document["segments"]["0"]["x_segment"] == [1, 2]
    assert document["digests"]["0"]["x_digest"] is True
    assert document["digests"]["0"]["keyslots"] == ["0", "1"]
    assert document["config"]["x_config"] == "7" and document["config"]["flags"] == ["allow-discards"]
    assert document["x_top"] == {"future": "section"}
    assert document["tokens"]["3"] == vendor_token
    theirs = json.loads(cryptsetup("luksDump", "--dump-json-metadata", str(img)).stdout)
    assert theirs["tokens"]["3"] == vendor_token and theirs["x_top"] == {"future": "section"}
    assert opens_with(img, added)


@pytest.mark.parametrize("metadata_kib", [16, 32, 256, 4096])
def test_header_sizes_both_ways(tmp_path: Path, metadata_kib: int) -> None:
    theirs = image(tmp_path / "theirs.img", 24)
    passphrase = key_file(tmp_path / "k", b"sizes")
    cryptsetup("luksFormat", "-q", "--type", "luks2", *FAST, "--luks2-metadata-size", f"{metadata_kib}k",
               "--luks2-keyslots-size", "2m", "--key-file", str(passphrase), str(theirs))
    with FileArea(theirs, writable=False) as area, Secret(passphrase.read_bytes()) as secret:
        loaded = HANDLER.load(area)
        assert loaded.header.hdr_size == metadata_kib * 1024 and loaded.metadata.config.keyslots_size == 2 << 20
        with HANDLER.unlock(area, ATTRS, secret) as key:
            assert bytes(key.buffer) == dumped_volume_key(theirs, passphrase)
    ours = image(tmp_path / "ours.img", 24)
    options = FormatOptions(pbkdf=REQUEST, extra={"metadata_size": metadata_kib * 1024})
    with FileArea(ours) as area, Secret(passphrase.read_bytes()) as secret:
        key = HANDLER.format(area, KeystoreAttrs("luks2"), secret, options)
        expected = bytes(key.buffer)
        key.close()
    dump = cryptsetup("luksDump", str(ours)).stdout
    assert f"Metadata area: \t{metadata_kib * 1024} [bytes]" in dump
    assert f"Keyslots area: \t{16 * 1024 * 1024 - 2 * metadata_kib * 1024} [bytes]" in dump
    assert dumped_volume_key(ours, passphrase) == expected


@pytest.mark.slow
def test_thirty_two_keyslots(tmp_path: Path) -> None:
    img = image(tmp_path / "luks2.img", 20)
    with FileArea(img) as area, Secret(b"slot 0") as first:
        volume_key = HANDLER.format(area, KeystoreAttrs("luks2"), first, FormatOptions(pbkdf=REQUEST))
        with volume_key:
            for slot in range(1, 32):
                with Secret(f"slot {slot}".encode()) as passphrase:
                    assert HANDLER.add_keyslot(area, ATTRS, volume_key, passphrase, REQUEST) == slot
            with Secret(b"one too many") as extra, pytest.raises(HandlerError, match="all 32 keyslots"):
                HANDLER.add_keyslot(area, ATTRS, volume_key, extra, REQUEST)
            expected = bytes(volume_key.buffer)
    assert cryptsetup("luksDump", str(img)).stdout.count(": luks2\n") == 32
    last = key_file(tmp_path / "k31", b"slot 31")
    assert cryptsetup("open", "--test-passphrase", "--key-slot", "31", "--key-file", str(last), str(img),
                      check=False).returncode == 0
    assert dumped_volume_key(img, last) == expected
    cryptsetup("luksKillSlot", "-q", str(img), "12")
    with FileArea(img, writable=False) as area, Secret(b"slot 12") as gone, pytest.raises(WrongPassphrase):
        HANDLER.unlock(area, ATTRS, gone)


@pytest.mark.parametrize("attrs,options,problem", [
    (KeystoreAttrs("luks2", "twofish-xts-plain64", 512), FormatOptions(pbkdf=REQUEST), "unsupported cipher"),
    (KeystoreAttrs("luks2", "aes-xts-plain64", 384), FormatOptions(pbkdf=REQUEST), "key size"),
    (KeystoreAttrs("luks2"), FormatOptions(pbkdf=REQUEST, sector_size=8192), "sector size"),
    (KeystoreAttrs("luks2"), FormatOptions(pbkdf=PbkdfRequest("scrypt")), "PBKDF"),
    (KeystoreAttrs("luks2"), FormatOptions(pbkdf=REQUEST, extra={"metadata_size": 12288}), "metadata size"),
    (KeystoreAttrs("luks2"), FormatOptions(pbkdf=REQUEST, label="x" * 48), "label"),
    (KeystoreAttrs("luks2"), FormatOptions(pbkdf=REQUEST, uuid="not-a-uuid"), "invalid UUID"),
    (KeystoreAttrs("luks2"), FormatOptions(pbkdf=REQUEST, data_offset=8), "keyslots area"),
])
def test_bad_format_requests_write_nothing(attrs: KeystoreAttrs, options: FormatOptions, problem: str) -> None:
    area = MemoryArea(b"\xa5" * (17 << 20))
    with Secret(b"pw") as passphrase, pytest.raises(LvcryptError, match=problem):
        HANDLER.format(area, attrs, passphrase, options)
    assert area.data == b"\xa5" * (17 << 20)


def test_area_too_small_for_the_layout() -> None:
    area = MemoryArea(1 << 20)
    with Secret(b"pw") as passphrase, pytest.raises(HandlerError, match="smaller than"):
        HANDLER.format(area, KeystoreAttrs("luks2"), passphrase, FormatOptions(pbkdf=REQUEST))
    assert not any(area.data)
    assert HANDLER.area_size(KeystoreAttrs("luks2"), FormatOptions()) == 16 << 20


def test_secrets_stay_out_of_errors_reprs_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    passphrase_text = b"hunter2-secret-passphrase"
    area = MemoryArea(2 * 16384 + 262144)
    options = FormatOptions(pbkdf=REQUEST, data_offset=0, extra={"keyslots_size": 262144})
    texts: list[str] = []
    with Secret(passphrase_text) as passphrase:
        volume_key = HANDLER.format(area, KeystoreAttrs("luks2"), passphrase, options)
    key_hex = volume_key.buffer.hex()
    texts += [repr(volume_key), str(volume_key), repr(HANDLER.load(area)), HANDLER.dump(area, ATTRS),
              repr(HANDLER.list_keyslots(area, ATTRS)), repr(HANDLER.data_mapping(area, ATTRS))]
    attempts = [
        lambda: HANDLER.unlock(area, ATTRS, Secret(passphrase_text + b"x")),
        lambda: HANDLER.unlock(area, ATTRS, Secret(passphrase_text), keyslot=3),
        lambda: HANDLER.add_keyslot(area, ATTRS, Secret(os.urandom(64)), Secret(passphrase_text), REQUEST),
        lambda: HANDLER.verify_volume_key(area, ATTRS, Secret(volume_key.buffer[::-1])),
        lambda: HANDLER.format(area, KeystoreAttrs("luks2", "aes-xts-plain64", 256), Secret(passphrase_text),
                               FormatOptions(pbkdf=REQUEST, volume_key=volume_key)),
    ]
    for attempt in attempts:
        with pytest.raises(LvcryptError) as caught:
            attempt()
        texts += [str(caught.value), repr(caught.value)]
    damaged = MemoryArea(bytes(area.data))
    damaged.write(0, bytes(2 * 16384))
    with pytest.raises(LvcryptError) as caught:
        HANDLER.unlock(damaged, ATTRS, Secret(passphrase_text))
    texts += [str(caught.value), caplog.text]
    volume_key.close()
    for text in texts:
        assert key_hex not in text and key_hex.upper() not in text
        assert passphrase_text.decode() not in text
    assert repr(volume_key) == "<Secret wiped>"


def test_binary_header_layout_round_trip() -> None:
    header = BinaryHeader(hdr_size=32768, seqid=7, label="vg0/data", checksum_alg="sha256", salt=bytes(range(64)),
                          uuid="8c2b0d44-0c0e-4d8c-9d8c-2f8a4f1a2b3c", subsystem="lvcrypt", hdr_offset=32768,
                          secondary=True)
    json_bytes = b'{"x":1}'.ljust(32768 - BINARY_SIZE, b"\0")
    copy = header.pack(json_bytes)
    assert copy[:6] == b"SKUL\xba\xbe" and copy[BINARY_SIZE:] == json_bytes
    parsed = BinaryHeader.unpack(copy, 32768)
    assert parsed.pack(json_bytes) == copy
    assert (parsed.seqid, parsed.label, parsed.uuid, parsed.subsystem) == (7, "vg0/data", header.uuid, "lvcrypt")
    with pytest.raises(LvcryptError, match="claims offset"):
        BinaryHeader.unpack(copy.replace(b"SKUL", b"LUKS", 1), 0)


def test_dump_matches_luksdump(tmp_path: Path) -> None:
    img = image(tmp_path / "luks2.img", 20)
    passphrase = key_file(tmp_path / "k", b"dump me")
    cryptsetup("luksFormat", "-q", "--type", "luks2", *FAST, "--label", "lab", "--subsystem", "sub",
               "--sector-size", "4096", "--key-file", str(passphrase), str(img))
    cryptsetup("luksAddKey", "-q", *ARGON, "--key-file", str(passphrase), str(img), str(passphrase))
    cryptsetup("config", "--priority", "prefer", "--key-slot", "1", str(img))
    cryptsetup("config", "--priority", "ignore", "--key-slot", "0", str(img))
    cryptsetup("token", "import", "--token-id", "3", str(img),
               input=b'{"type":"x-vendor","keyslots":["0","1"],"blob":1}')
    cryptsetup("token", "add", "--key-description", "kd", str(img))
    unbound = key_file(tmp_path / "unbound", b"unbound key")
    cryptsetup("luksAddKey", "-q", "--unbound", "--key-size", "256", *FAST, "--key-file", str(passphrase),
               str(img), str(unbound))
    before = img.read_bytes()[:32768]
    rewrite_both_copies(img)
    assert img.read_bytes()[:32768] == before, "token 3 was added before token 0 and must stay first"
    with FileArea(img, writable=False) as area:
        assert HANDLER.dump(area, ATTRS) == cryptsetup("luksDump", str(img)).stdout
        with Secret(unbound.read_bytes()) as secret, pytest.raises(HandlerError, match="unbound keyslot"):
            HANDLER.unlock(area, ATTRS, secret, keyslot=2)
    with FileArea(img, writable=False) as area, Secret(passphrase.read_bytes()) as secret:
        assert HANDLER.unlock_keyslot(area, ATTRS, secret)[0] == 1  # preferred first, ignored skipped
        assert HANDLER.unlock_keyslot(area, ATTRS, secret, keyslot=0)[0] == 0  # unless asked for


def test_detached_header_opens_with_cryptsetup_header_option(tmp_path: Path) -> None:
    """lvcrypt's own keystores are detached headers: data offset 0, header area only."""
    header = image(tmp_path / "header.img", 16)
    data = image(tmp_path / "data.img", 1)
    passphrase = key_file(tmp_path / "k", b"detached")
    options = FormatOptions(pbkdf=REQUEST, data_offset=0, sector_size=4096, label="vg0/keys",
                            uuid="0B5E0F5A-1C2D-4E3F-8A9B-0C1D2E3F4A5B", extra={"subsystem": "lvcrypt"})
    with FileArea(header) as area, Secret(passphrase.read_bytes()) as secret:
        assert HANDLER.area_size(KeystoreAttrs("luks2"), options) == 16 << 20
        with HANDLER.format(area, KeystoreAttrs("luks2"), secret, options) as key:
            expected = bytes(key.buffer)
        mapping = HANDLER.data_mapping(area, ATTRS)
    assert (mapping.data_offset, mapping.sector_size) == (0, 4096)
    dump = cryptsetup("luksDump", str(header)).stdout
    assert "offset: 0 [bytes]" in dump and "Label:         \tvg0/keys" in dump
    assert "UUID:          \t0b5e0f5a-1c2d-4e3f-8a9b-0c1d2e3f4a5b" in dump and "Subsystem:     \tlvcrypt" in dump
    assert cryptsetup("open", "--test-passphrase", "--header", str(header), "--key-file", str(passphrase),
                      str(data), check=False).returncode == 0
    assert dumped_volume_key(header, passphrase) == expected


def test_change_in_place_when_the_keyslots_area_is_full(tmp_path: Path) -> None:
    img = image(tmp_path / "luks2.img", 2)
    old = key_file(tmp_path / "old", b"old passphrase")
    new = key_file(tmp_path / "new", b"new passphrase")
    options = FormatOptions(pbkdf=REQUEST, data_offset=1024, extra={"keyslots_size": 258048})
    with FileArea(img) as area, Secret(old.read_bytes()) as first, Secret(new.read_bytes()) as second:
        HANDLER.format(area, KeystoreAttrs("luks2"), first, options).close()
        with pytest.raises(HandlerError, match="no room"):
            HANDLER.add_keyslot(area, ATTRS, HANDLER.unlock(area, ATTRS, first), second, REQUEST)
        assert HANDLER.change_keyslot(area, ATTRS, first, second, REQUEST) == 0
    assert opens_with(img, new) and not opens_with(img, old)


def test_stale_copy_loses_to_the_newer_one_until_repaired(tmp_path: Path) -> None:
    img = image(tmp_path / "luks2.img", 20)
    first = key_file(tmp_path / "k0", b"first")
    second = key_file(tmp_path / "k1", b"second")
    with FileArea(img) as area, Secret(first.read_bytes()) as secret:
        volume_key = HANDLER.format(area, KeystoreAttrs("luks2"), secret, FormatOptions(pbkdf=REQUEST))
    stale_primary, stale_secondary = img.read_bytes()[:16384], img.read_bytes()[16384:32768]
    with FileArea(img) as area, volume_key, Secret(second.read_bytes()) as secret:
        HANDLER.add_keyslot(area, ATTRS, volume_key, secret, REQUEST)
    with open(img, "r+b") as f:
        f.seek(16384)
        f.write(stale_secondary)
    with FileArea(img) as area:
        loaded = HANDLER.load(area)
        assert sorted(loaded.metadata.keyslots) == [0, 1] and "older" in (loaded.secondary_error or "")
        assert HANDLER.repair(area)
    assert header_seqids(img) == (3, 3)
    assert opens_with(img, second)
    with open(img, "r+b") as f:  # now the primary is the stale one
        f.write(stale_primary)
    with FileArea(img) as area:
        loaded = HANDLER.load(area)
        assert loaded.header.seqid == 3 and "older" in (loaded.primary_error or "")
    assert unlock_slot(img, second.read_bytes()) == 1


def header_seqids(img: Path) -> tuple[int, int]:
    with FileArea(img, writable=False) as area:
        primary = read_copy(area, 0).header
        return primary.seqid, read_copy(area, primary.hdr_size).header.seqid


def unlock_slot(img: Path, passphrase: bytes) -> int:
    with FileArea(img, writable=False) as area, Secret(passphrase) as secret:
        slot, key = HANDLER.unlock_keyslot(area, ATTRS, secret)
        key.close()
        return slot


def test_interrupted_reencryption_is_read_but_not_unlocked(tmp_path: Path) -> None:
    """A header with a mandatory requirement (online-reencrypt-v2) and a reencrypt keyslot: dumped like
    cryptsetup dumps it, kept verbatim by a repair, refused for unlocking with a message naming the need."""
    img = tmp_path / "reencrypt.img"
    img.write_bytes(os.urandom(24 << 20))
    passphrase = key_file(tmp_path / "k", b"half way")
    cryptsetup("reencrypt", "--encrypt", "--init-only", "--type", "luks2", "--reduce-device-size", "16M", *FAST,
               "--key-file", str(passphrase), "-q", str(img))
    before_bytes = img.read_bytes()[:32768]
    rewrite_both_copies(img)
    assert img.read_bytes()[:32768] == before_bytes, "reencrypt keyslot fields must keep cryptsetup's order"
    with FileArea(img) as area:
        assert HANDLER.dump(area, ATTRS) == cryptsetup("luksDump", str(img)).stdout
        with Secret(passphrase.read_bytes()) as secret, pytest.raises(HandlerError, match="online-reencrypt-v2"):
            HANDLER.unlock(area, ATTRS, secret)
        before = json.loads(cryptsetup("luksDump", "--dump-json-metadata", str(img)).stdout)
        area.write(16384, bytes(4096))
        assert HANDLER.repair(area)
    assert json.loads(cryptsetup("luksDump", "--dump-json-metadata", str(img)).stdout) == before
