"""`kdump restore` in the kernel guest: an LV whose keyslot needs more memory than the guest has is
activated through device-mapper from the restored volume key alone.

The keyslot (Argon2id, 640 MiB) cannot even be made in the 512 MiB guest: `prepare_on_host` formats
it on the host before the tier's guest boots (tests/kernel/conftest.py), with the data written through
lvcrypt's userspace backend.  The guest's restore file is a plain file: the kernel's copy of the keys
is played by putting the key in @u, as the kdump kernel's restore would (kernel/crash_dump_dm_crypt.c).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from store_helpers import Pair, image_vg_template

from .guest import CHECKOUT
from .test_activation import lvcrypt, read_dev

MIB = 1 << 20
ARGON2_KIB = 655360  # the keyslot's Argon2id memory: more than the guest has


def prepare_on_host(directory: Path) -> None:
    """VG vgk on a 32 MiB image with the encrypted LV `heavy` (Argon2id, 640 MiB), 4 MiB of random data
    written to it, its volume key in `key` and its key description in `description`."""
    files = image_vg_template(directory, "vgk")
    (directory / "pass").write_bytes(b"kdump test passphrase")
    files.lvc("lvcreate", "--encrypt", "--pbkdf", "argon2id", "--pbkdf-memory", str(ARGON2_KIB),
              "--pbkdf-force-iterations", "4", "--pbkdf-parallel", "2", "--key-file", str(directory / "pass"),
              "-L", "8M", "-n", "heavy", "vgk")
    description = "lvcrypt:" + files.lvc("lvs", "--noheadings", "-o", "lv_uuid", "vgk/heavy").stdout.strip()
    (directory / "description").write_text(description)
    table = files.lvc("table", "--show-keys", "--key-file", str(directory / "pass"), "vgk/heavy").stdout
    key_file = directory / "key"
    key_file.touch(0o600)
    key_file.write_bytes(bytes.fromhex(re.search(r" crypt \S+ ([0-9a-f]+) ", table).group(1)))  # type: ignore
    data = os.urandom(4 * MIB)
    (directory / "data").write_bytes(data)
    # The writer reads the key from a keyring of its own, gone with it (no key in argv or in ours).
    subprocess.run(["keyctl", "session", "-", "sh", "-c",
                    'keyctl padd user "$1" @s < "$2" > /dev/null && exec "$3" -m lvcrypt write --devices "$4" '
                    '--volume-key-keyring "%user:$1" vgk/heavy',
                    "sh", f"lvcrypt-test-writer:{description}", str(key_file), sys.executable, files.device_list],
                   input=data, env=files.env, cwd=CHECKOUT, check=True, capture_output=True)


def keyctl(*args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["keyctl", *args], input=input, capture_output=True)


def test_kdump_restore_activates_from_the_restored_key_with_less_memory_than_argon2_needs(
        host_prepared: Path, tmp_path: Path) -> None:
    memory = int(next(line for line in open("/proc/meminfo") if line.startswith("MemTotal")).split()[1])
    assert memory < ARGON2_KIB  # unlocking the keyslot is out of the question here
    description = (host_prepared / "description").read_text()
    data = (host_prepared / "data").read_bytes()
    loops = [subprocess.run(["losetup", "-f", "--show", str(host_prepared / "pv.img")], capture_output=True,
                            text=True, check=True).stdout.strip()]
    pair = Pair(loops, tmp_path)
    restore = tmp_path / "cfg" / "crash_dm_crypt_keys" / "restore"
    restore.parent.mkdir(parents=True)
    restore.write_text("0\n")
    # The user key the kdump kernel leaves in @u, with KEY_USR_ALL permissions, so the user may use it
    # without possessing it: made while @u is linked into our session (so its permissions can be set),
    # then unlinked, so that the restore, like a kdump kernel's init, does not possess it.
    keyctl("link", "@u", "@s")
    serial = keyctl("padd", "user", description, "@u", input=(host_prepared / "key").read_bytes()).stdout.strip()
    keyctl("setperm", serial.decode(), "0x003f0000")
    keyctl("unlink", "@u", "@s")
    try:
        restored = lvcrypt(pair, "kdump", "restore", "--configfs-root", str(tmp_path / "cfg"))
        assert "vgk/heavy: activated from the restored volume key" in restored.stdout.decode()
        assert restore.read_text() == "yes\n"
        assert read_dev(Path("/dev/mapper/vgk-heavy"), len(data)) == data
        table = subprocess.run(["dmsetup", "table", "vgk-heavy"], capture_output=True, text=True).stdout
        assert f":64:logon:{description}" in table  # dm-crypt got the key by reference
        assert keyctl("search", "@u", "user", description).returncode != 0  # it did not outlive the activation
        lvcrypt(pair, "lvchange", "-an", "vgk/heavy")
    finally:
        keyctl("invalidate", serial.decode())
        subprocess.run(["dmsetup", "remove", "vgk-heavy"], capture_output=True)
        for device in loops:
            subprocess.run(["losetup", "-d", device], capture_output=True)
