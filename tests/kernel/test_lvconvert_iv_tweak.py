"""cryptsetup 2.6 opens a single-segment LUKS2 volume without its iv_tweak: the IV rule lvconvert imports keep.

The LUKS2 spec gives segments an `iv_tweak`, but libcryptsetup's activation
of the default segment puts crypt_get_iv_offset() (0 for LUKS2) in the
dm-crypt table.  `lvcrypt lvconvert --type crypt` promises the data
`cryptsetup open` showed, so it drops the tweak too (tests/cli/test_lvconvert.py);
this pins the kernel-side fact with cryptsetup and dm-crypt as the oracle.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Callable

from lvcrypt.handlers.base import FileArea, FormatOptions, KeystoreAttrs
from lvcrypt.handlers.kdf import PbkdfRequest
from lvcrypt.handlers.luks2 import Luks2Handler
from lvcrypt.handlers.secret import Secret

from .conftest import LoopImage
from .dmcrypt_model import xts_plain64

MIB = 1 << 20
KEY = bytes(range(64))
OFFSET = 2056  # sectors, the payload start


def run(*argv: str) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run(list(argv), capture_output=True)
    assert result.returncode == 0, f"{' '.join(argv)}: {result.stderr.decode(errors='replace')}"
    return result


def test_cryptsetup_open_ignores_a_single_segments_iv_tweak(
        tmp_path: Path, loop_image: Callable[[int], LoopImage], dm_names: list[str]) -> None:
    disk = loop_image(8 * MIB)
    passphrase = tmp_path / "pass"
    passphrase.write_bytes(b"tweak test")
    area = FileArea(disk.path)
    try:
        Luks2Handler().format(area, KeystoreAttrs("luks2", "aes-xts-plain64", 512),
                              Secret.adopt(bytearray(b"tweak test")),
                              FormatOptions(pbkdf=PbkdfRequest(kind="pbkdf2", force_iterations=1000),
                                            volume_key=Secret.adopt(bytearray(KEY)), data_offset=OFFSET,
                                            iv_offset=123456)).close()
    finally:
        area.close()
    dm_names.append("lvct-tweak")
    run("cryptsetup", "open", "--key-file", str(passphrase), disk.device, "lvct-tweak")
    fields = run("dmsetup", "table", "lvct-tweak").stdout.decode().split()
    assert fields[5] == "0" and fields[7] == str(OFFSET), fields
    size = int(fields[1]) * 512
    plaintext = hashlib.shake_256(b"tweak").digest(size)
    with open("/dev/mapper/lvct-tweak", "r+b", buffering=0) as mapped:
        mapped.write(plaintext)
    run("cryptsetup", "close", "lvct-tweak")
    dm_names.remove("lvct-tweak")
    data_area = disk.path.read_bytes()[OFFSET * 512:OFFSET * 512 + size]
    assert xts_plain64(KEY, data_area, 512, 0, False, True) == plaintext
