"""Key-handler sessions: one header parse per keystore per command, and sessions that stay correct.

The parse counts are measurements, not mocks: `disk.load` (the LUKS2 header
parser: both binary headers, checksums, JSON) is wrapped by a counter that
still calls the real function, and the commands run in this process through
`lvcrypt.cli.main` exactly as a user runs them.  Before sessions, `lvcrypt
read` of a LUKS2 crypt LV parsed its keystore's header twice and `keyslot
add` three times on an image file (twice on a keystore LV); now once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import pytest

from conftest import run_lvcrypt
from cryptsetup_oracle import cryptsetup, dumped_volume_key, image, key_file, needs_cryptsetup, opens_with
from lvcrypt.cli import main
from lvcrypt.errors import DeviceError, HandlerError
from lvcrypt.handlers import registry
from lvcrypt.handlers.base import FileArea, FormatOptions, KeystoreAttrs, MemoryArea
from lvcrypt.handlers.kdf import PbkdfRequest
from lvcrypt.handlers.luks2 import disk
from lvcrypt.handlers.secret import Secret
from store_helpers import Pair

FAST = ["--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000"]
FAST_REQUEST = PbkdfRequest("pbkdf2", "sha256", force_iterations=1000)


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """How many times the LUKS2 header parser ran; the real parser still does the work."""
    calls: list[int] = []
    real = disk.load

    def counted(area):  # type: ignore[no-untyped-def]
        calls.append(area.size)
        return real(area)

    monkeypatch.setattr(disk, "load", counted)
    yield calls


def run_in_process(pair: Pair, monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    """`lvcrypt ARGS TARGET` in this process, with the pair's devices, state and run directories."""
    monkeypatch.setenv("LVCRYPT_STATE_DIR", str(pair.tmp / "state"))
    monkeypatch.setenv("LVCRYPT_RUN_DIR", str(pair.tmp / "run"))
    return main([*args[:-1], "--devices", pair.device_list, args[-1]])


@pytest.fixture
def crypt_lv(loop_devices: Callable[..., list[str]], tmp_path: Path) -> Pair:
    """A VG with one LUKS2 crypt LV holding known data (made by separate lvcrypt processes)."""
    pair = Pair(loop_devices(2, 32), tmp_path)
    (tmp_path / "pass").write_bytes(b"correct horse battery staple")
    (tmp_path / "new").write_bytes(b"another passphrase")
    pair.lvc("pvcreate", *pair.devices)
    pair.lvc("vgcreate", "vgsess", *pair.devices)
    pair.lvc("lvcreate", "--encrypt", "--handler", "luks2", *FAST, "--key-file", str(tmp_path / "pass"),
             "-L", "4M", "-n", "data", "vgsess")
    written = run_lvcrypt("write", "--devices", pair.device_list, "--key-file", str(tmp_path / "pass"),
                          "vgsess/data", input=b"session data" * 1000, env=pair.env)
    assert written.returncode == 0, written.stderr
    return pair


@pytest.mark.oracle
@pytest.mark.usefixtures("lvm2")
def test_read_of_a_luks2_crypt_lv_parses_its_header_once(crypt_lv: Pair, parses: list[int],
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    status = run_in_process(crypt_lv, monkeypatch, "read", "--key-file", str(crypt_lv.tmp / "pass"),
                            "--length", "12000", "vgsess/data")
    assert status == 0, capsysbinary.readouterr().err
    assert capsysbinary.readouterr().out == b"session data" * 1000
    assert len(parses) == 1


@pytest.mark.oracle
@pytest.mark.usefixtures("lvm2")
def test_keyslot_add_on_a_keystore_lv_parses_its_header_once(crypt_lv: Pair, parses: list[int],
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    status = run_in_process(crypt_lv, monkeypatch, "keyslot", "add", "--key-file", str(crypt_lv.tmp / "pass"),
                            "--new-key-file", str(crypt_lv.tmp / "new"), *FAST, "vgsess/cryptostore0")
    assert status == 0, capsys.readouterr().err
    assert "Key slot 1 created." in capsys.readouterr().out
    assert len(parses) == 1
    read = run_lvcrypt("read", "--devices", crypt_lv.device_list, "--key-file", str(crypt_lv.tmp / "new"),
                       "--length", "12", "vgsess/data", env=crypt_lv.env)
    assert read.returncode == 0 and read.stdout == b"session data"


@needs_cryptsetup
@pytest.mark.oracle
def test_keyslot_add_on_an_image_parses_once_and_cryptsetup_opens_both(tmp_path: Path, parses: list[int],
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    img = image(tmp_path / "luks2.img", 20)
    old, new = key_file(tmp_path / "old", b"old passphrase"), key_file(tmp_path / "new", b"new passphrase")
    cryptsetup("luksFormat", "--type", "luks2", "-q", *FAST, "--key-file", str(old), str(img))
    assert main(["keyslot", "add", "--key-file", str(old), "--new-key-file", str(new), *FAST, str(img)]) == 0
    assert len(parses) == 1
    assert opens_with(img, old) and opens_with(img, new)
    assert dumped_volume_key(img, old) == dumped_volume_key(img, new)


@needs_cryptsetup
@pytest.mark.oracle
def test_a_session_sees_a_change_made_meanwhile_and_keeps_that_keyslot(tmp_path: Path) -> None:
    """Two commands on one keystore (the second waited at a prompt with its locks dropped): the
    second command's keyslot must not land on the first one's area, nor drop it from the header."""
    img = image(tmp_path / "luks2.img", 20)
    first = key_file(tmp_path / "first", b"first passphrase")
    cryptsetup("luksFormat", "--type", "luks2", "-q", *FAST, "--key-file", str(first), str(img))
    handler = registry.get("luks2")
    with FileArea(img) as area_a, FileArea(img) as area_b, Secret(b"first passphrase") as passphrase:
        waiting = handler.open(area_b)
        with waiting.unlock(passphrase) as volume_key:
            with Secret(b"second passphrase") as second:
                assert handler.open(area_a).add_keyslot(volume_key, second, FAST_REQUEST) == 1
            with Secret(b"third passphrase") as third:
                assert waiting.add_keyslot(volume_key, third, FAST_REQUEST) == 2
    for name, content in (("second", b"second passphrase"), ("third", b"third passphrase")):
        assert opens_with(img, key_file(tmp_path / name, content))


def test_a_failed_change_leaves_the_session_as_the_disk_is(tmp_path: Path) -> None:
    """A change that fails after editing its copy of the header (here: the write of a read-only area)
    must not leave the edit in the session: the next question still sees what is on disk."""
    handler = registry.get("luks2")
    img = tmp_path / "luks2.img"
    img.write_bytes(bytes(16 << 20))
    with FileArea(img) as area, Secret(b"passphrase") as passphrase:
        handler.format(area, KeystoreAttrs("luks2"), passphrase, FormatOptions(pbkdf=FAST_REQUEST)).close()
    with FileArea(img, writable=False) as area:
        session = handler.open(area)
        with pytest.raises(DeviceError, match="read-only"):
            session.remove_keyslot(0)
        assert [info.slot for info in session.list_keyslots()] == [0]
        assert session.dump() == handler.open(area).dump()


def test_handlers_without_tokens_or_header_say_so_through_the_session(tmp_path: Path) -> None:
    """The core asks every session the same questions; handlers without tokens or a header answer plainly."""
    handler = registry.get("plain")
    area = MemoryArea(512)
    attrs = handler.new_attrs()
    assert (attrs.cipher, attrs.key_size, attrs.key_hash) == ("aes-cbc-essiv:sha256", 256, None)
    with Secret(bytes(range(32))) as key_material:
        handler.format(area, attrs, key_material, FormatOptions(pbkdf=FAST_REQUEST)).close()
    session = handler.open(area)
    assert session.attrs.cipher == "aes-cbc-essiv:sha256"
    assert session.keyring_tokens() == []
    with pytest.raises(HandlerError, match="no tokens"):
        session.add_keyring_token("lvcrypt:x", [0])
    assert session.import_problem() == "the plain handler keeps no header in front of the data"
    assert registry.detect(area) == "plain"
    assert registry.get("hashed").new_attrs().key_hash == "ripemd160"
    assert registry.get("luks1").default_pbkdf == "pbkdf2" and registry.get("luks2").default_sector_size == 512
