"""A LUKS2 volume whose data cipher lvcrypt cannot compute is imported for kernel activation only (issue 13 item 4).

cryptsetup (with device-mapper, so in the guest) formats an LV as LUKS2 with
serpent-xts-plain64 data and an aes-xts-plain64 keyslot, and writes known data
through dm-crypt.  `lvconvert --type crypt` accepts it with a warning (dm-crypt
can activate it), `lvcrypt read` refuses in one line, and `lvchange -ay`
shows cryptsetup's data through the kernel.  Creating such an LV is refused
(tests/handlers/test_cipher_specs.py).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from store_helpers import Pair

from .test_activation import FAST, VG, fails_cleanly, lvchange, lvcrypt, mapper, read_dev, sh, system_state, write_dev
from .test_activation import pair  # noqa: F401 (the fixture)
pytestmark = pytest.mark.usefixtures("lvm2")

MIB = 1 << 20
DATA_OFFSET = 4 * MIB


def test_serpent_luks2_volume_is_imported_and_read_by_the_kernel_only(pair: Pair, tmp_path: Path) -> None:
    passphrase = tmp_path / "pass"
    lvcrypt(pair, "lvcreate", "-L", "8M", "-n", "old", VG)
    lvchange(pair, "-ay", f"{VG}/old")
    sh("cryptsetup", "luksFormat", "-q", "--type", "luks2", "--cipher", "serpent-xts-plain64", "--key-size", "512",
       "--keyslot-cipher", "aes-xts-plain64", "--keyslot-key-size", "512", *FAST, "--offset",
       str(DATA_OFFSET // 512), "--key-file", str(passphrase), str(mapper("old")))
    payload = hashlib.shake_256(b"serpent through dm-crypt").digest(2 * MIB)
    sh("cryptsetup", "open", "--key-file", str(passphrase), str(mapper("old")), "lvct-serpent")
    try:
        write_dev(Path("/dev/mapper/lvct-serpent"), payload)
    finally:
        sh("cryptsetup", "close", "lvct-serpent")
    lvchange(pair, "-an", f"{VG}/old")

    converted = lvcrypt(pair, "lvconvert", "--type", "crypt", f"{VG}/old")
    assert "serpent" in converted.stderr and "kernel" in converted.stderr, converted.stderr

    before = system_state()
    refusal = fails_cleanly(lvcrypt(pair, "read", "--key-file", str(passphrase), f"{VG}/old", check=False), before)
    assert "serpent" in refusal

    lvchange(pair, "-ay", "--key-file", str(passphrase), f"{VG}/old")
    try:
        assert read_dev(mapper("old"), len(payload)) == payload
    finally:
        lvchange(pair, "-an", f"{VG}/old")
