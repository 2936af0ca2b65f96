"""A key handler from another package: installed with pip, found by entry point, used like a built-in.

tests/data/third_party_handler is a complete outside package: one module
(`aeskw_handler`, the volume key wrapped with AES-KW under PBKDF2-derived
keys) and one `lvcrypt.key_handlers` entry point.  pip installs it into a
directory of its own that the commands see on PYTHONPATH (the venv stays
untouched, so the two xdist workers cannot uninstall it under each other),
and lvcrypt, with no change, offers `--handler aeskw`, creates, writes,
reads, lists and re-keys the LV through the generic handler interface.
lvm2 is the oracle for the layout, `cryptography` for the bytes on disk.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable, Iterator

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from conftest import run_lvcrypt
from lvcrypt.metadata.convert import tree_to_vg
from lvcrypt.metadata.model import CryptSegment
from lvcrypt.metadata.parse import parse_text
from store_helpers import Pair

PACKAGE = Path(__file__).parent.parent / "data" / "third_party_handler"
FAST = ["--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000"]
DATA = os.urandom(64 * 1024)


@pytest.fixture(scope="session")
def aeskw_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The package installed by pip (offline, from a copy so the source tree gets no build files); removed after."""
    source = tmp_path_factory.mktemp("aeskw-source")
    shutil.copytree(PACKAGE, source, dirs_exist_ok=True)
    site = tmp_path_factory.mktemp("aeskw-site")
    result = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                             "--no-deps", "--no-build-isolation", "--no-index", "--target", str(site), str(source)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    yield site
    shutil.rmtree(site)
    shutil.rmtree(source)


@pytest.fixture
def aeskw(aeskw_site: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Commands started from this test see the installed package."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(aeskw_site), os.environ.get("PYTHONPATH")])))
    return aeskw_site


@pytest.fixture
def pair(loop_devices: Callable[..., list[str]], tmp_path: Path) -> Pair:
    pair = Pair(loop_devices(2, 32), tmp_path)
    pair.lvc("pvcreate", *pair.devices)
    pair.lvc("vgcreate", "vgaeskw", *pair.devices)
    (tmp_path / "pass").write_bytes(b"correct horse battery staple")
    (tmp_path / "new").write_bytes(b"a second passphrase")
    return pair


def lvc(pair: Pair, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """`lvcrypt ARGS` limited to the pair's devices, as a separate process (binary output)."""
    return run_lvcrypt(*args[:-1], "--devices", pair.device_list, args[-1], input=input, env=pair.env)


def first_extent_on_disk(pair: Pair, lv: str) -> bytes:
    """The LV's first extent as stored, located by lvm2's own reading of the VG."""
    backup = pair.tmp / "lvm2-backup.txt"
    pair.lvm("vgcfgbackup", "-f", str(backup), "vgaeskw")
    vg = tree_to_vg(parse_text(backup.read_text()))
    segment = vg.lvs[lv].segments[0]
    assert isinstance(segment, CryptSegment)
    area = segment.areas[0]
    uuids = {pair.lvm("pvs", "--noheadings", "-o", "pv_uuid", device).stdout.strip(): device
             for device in pair.devices}
    with open(uuids[vg.pvs[area.pv].id], "rb") as device:
        device.seek((vg.pvs[area.pv].pe_start + area.extent * vg.extent_size) * 512)
        return device.read(vg.extent_bytes)


@pytest.mark.oracle
@pytest.mark.usefixtures("lvm2", "aeskw")
def test_an_entry_point_handler_serves_a_crypt_lv_end_to_end(pair: Pair) -> None:
    pair.lvc("lvcreate", "--encrypt", "--handler", "aeskw", *FAST, "--key-file", str(pair.tmp / "pass"),
             "-L", "4M", "-n", "sec", "vgaeskw")
    assert lvc(pair, "write", "--key-file", str(pair.tmp / "pass"), "vgaeskw/sec", input=DATA).returncode == 0
    read = lvc(pair, "read", "--key-file", str(pair.tmp / "pass"), "--length", str(len(DATA)), "vgaeskw/sec")
    assert read.returncode == 0 and read.stdout == DATA

    shown = pair.lvc("lvs", "-a", "--noheadings", "-o", "lv_name,crypt_handler", "vgaeskw").stdout.split()
    assert shown[shown.index("sec") + 1] == "aeskw"
    assert "sec" in pair.lvm("lvs", "--noheadings", "-o", "lv_name", "vgaeskw").stdout.split()

    dumped = lvc(pair, "keystore", "dump", "--dump-volume-key", "-q", "--key-file", str(pair.tmp / "pass"),
                 "vgaeskw/cryptostore0")
    assert dumped.returncode == 0, dumped.stderr
    assert b"Handler:       \taeskw" in dumped.stdout
    key = bytes.fromhex(re.search(rb"Volume key \(512 bits\): ([0-9a-f]+)", dumped.stdout).group(1).decode())
    stored = first_extent_on_disk(pair, "sec")
    for sector in range(8):
        tweak = modes.XTS(sector.to_bytes(16, "little"))
        plain = Cipher(algorithms.AES(key), tweak).decryptor().update(stored[sector * 512:(sector + 1) * 512])
        assert plain == DATA[sector * 512:(sector + 1) * 512]


@pytest.mark.oracle
@pytest.mark.usefixtures("lvm2", "aeskw")
def test_keyslots_of_an_entry_point_handler_change_through_the_generic_commands(pair: Pair) -> None:
    pair.lvc("lvcreate", "--encrypt", "--handler", "aeskw", *FAST, "--key-file", str(pair.tmp / "pass"),
             "-L", "4M", "-n", "sec", "vgaeskw")
    assert lvc(pair, "write", "--key-file", str(pair.tmp / "pass"), "vgaeskw/sec", input=DATA).returncode == 0
    added = lvc(pair, "keyslot", "add", "--key-file", str(pair.tmp / "pass"), "--new-key-file", str(pair.tmp / "new"),
                *FAST, "vgaeskw/cryptostore0")
    assert added.returncode == 0, added.stderr
    assert b"Key slot 1 created." in added.stdout
    listed = lvc(pair, "keyslot", "list", "vgaeskw/cryptostore0").stdout.decode().splitlines()
    assert [line.split("\t")[0] for line in listed] == ["0", "1"]
    removed = lvc(pair, "keyslot", "remove", "-q", "vgaeskw/cryptostore0", "0")
    assert removed.returncode == 0, removed.stderr

    read = lvc(pair, "read", "--key-file", str(pair.tmp / "new"), "--length", str(len(DATA)), "vgaeskw/sec")
    assert read.returncode == 0 and read.stdout == DATA
    refused = lvc(pair, "read", "--key-file", str(pair.tmp / "pass"), "vgaeskw/sec")
    assert refused.returncode == 5 and refused.stdout == b""
    assert refused.stderr.decode().startswith("lvcrypt: ") and refused.stderr.count(b"\n") == 1


@pytest.mark.usefixtures("aeskw")
def test_an_image_file_of_an_entry_point_handler_is_recognised_by_its_probe(tmp_path: Path) -> None:
    """`keystore format --type aeskw` on an image, then every keystore command finds the handler by probing."""
    image = tmp_path / "aeskw.img"
    image.write_bytes(bytes(4096))
    passphrase = tmp_path / "pass"
    passphrase.write_bytes(b"image passphrase")
    formatted = run_lvcrypt("keystore", "format", "--type", "aeskw", "-q", *FAST, "--key-file", str(passphrase),
                            str(image))
    assert formatted.returncode == 0, formatted.stderr
    tested = run_lvcrypt("keystore", "unlock-test", "--key-file", str(passphrase), str(image))
    assert tested.returncode == 0 and tested.stdout == b"Key slot 0 unlocked.\n"
    dumped = run_lvcrypt("keystore", "dump", str(image))
    assert b"Cipher:        \taes-xts-plain64" in dumped.stdout and b"Key size:      \t512 bits" in dumped.stdout


def test_without_the_package_the_handler_is_not_offered(tmp_path: Path) -> None:
    """The choices come from the installed entry points: no package, no `aeskw` (a usage error, status 3)."""
    result = run_lvcrypt("lvcreate", "--encrypt", "--handler", "aeskw", "-L", "4M", "-n", "x", "vg")
    assert result.returncode == 3
    assert b"invalid choice: 'aeskw'" in result.stderr
