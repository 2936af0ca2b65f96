"""Issue 16 in a real kernel: cryptsetup's kernel-keyring seed workflow with lvcrypt alone, and a header
backup brought back over a destroyed keystore header.

1. activate with `--link-vk-to-keyring` (the volume key lands in @s);
2. `keyslot add --volume-key-keyring`: a new keyslot from that key, no passphrase asked;
3. `token add --key-description`: a luks2-keyring token for the new keyslot;
4. deactivate; activate again with `--token-only`: no key file, no prompt, the passphrase from @s.
cryptsetup checks the keystore in between (`open --test-passphrase --token-only` on a loop device over
the keystore's extents); the pair fixture removes dm devices and @s keys the test leaves.
"""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from crypt_lv_layout import lvm2_layout, pv_path
from store_helpers import Pair

from .test_activation import (FAST, MIB, VG, crypt_lv, fails_cleanly, lvchange, lvcrypt, mapper, pair, read_dev,
                              sh, system_state, write_dev)
from .test_dm_crypt import payload

pytestmark = pytest.mark.usefixtures("lvm2")
__all__ = ["pair"]  # the fixture, used by name
STORE = f"{VG}/cryptostore0"


def keystore_span(pair: Pair) -> tuple[str, int, int]:
    """(PV device, byte offset, byte length) of cryptostore0's extents, as lvm2 places them."""
    layout = lvm2_layout(pair, VG)
    store = layout.lvs["cryptostore0"].segments[0]
    area = store.areas[0]  # type: ignore[attr-defined]
    start = (layout.pvs[area.pv].pe_start + area.extent * layout.extent_size) * 512
    return pv_path(pair, layout, area.pv), start, store.extent_count * layout.extent_bytes


@contextlib.contextmanager
def keystore_loop(pair: Pair) -> Iterator[str]:
    """A loop device over the keystore's extents, for cryptsetup to open as a LUKS2 header."""
    device, start, length = keystore_span(pair)
    loop = sh("losetup", "-f", "--show", "-o", str(start), "--sizelimit", str(length), device).stdout.strip()
    try:
        yield loop
    finally:
        sh("losetup", "-d", loop)


def test_seed_workflow_with_lvcrypt_alone(pair: Pair) -> None:
    crypt_lv(pair, "cr", "4M")
    tag = uuid.uuid4().hex[:8]
    second = pair.tmp / "second"
    second.write_bytes(b"passphrase kept in the keyring " + tag.encode())
    lvchange(pair, "-ay", "--key-file", str(pair.tmp / "pass"), "--link-vk-to-keyring", f"@s::%user:vk-{tag}",
             f"{VG}/cr")
    write_dev(mapper("cr"), payload(4 * MIB, "seed"))
    added = lvcrypt(pair, "keyslot", "add", *FAST, "--volume-key-keyring", f"%user:vk-{tag}", "--new-key-file",
                    str(second), STORE)
    assert added.stdout == b"Key slot 1 created.\n"
    assert lvcrypt(pair, "token", "add", "--key-description", f"pass-{tag}", "-S", "1", STORE).stdout == \
        b"Token 0 created.\n"
    lvchange(pair, "-an", f"{VG}/cr")

    before = system_state()
    fails_cleanly(lvchange(pair, "-ay", "--token-only", f"{VG}/cr", check=False), before)  # key not in @s yet
    sh("keyctl", "padd", "user", f"pass-{tag}", "@s", input=second.read_bytes())
    with keystore_loop(pair) as loop:
        sh("cryptsetup", "open", "--test-passphrase", "--token-only", loop)
        dump = sh("cryptsetup", "luksDump", loop).stdout
    assert f"Key description: pass-{tag}" in dump and "  1: luks2" in dump
    lvchange(pair, "-ay", "--token-only", f"{VG}/cr")  # no key file, no prompt: the token's key from @s
    assert read_dev(mapper("cr"), 4 * MIB) == payload(4 * MIB, "seed")
    lvchange(pair, "-an", f"{VG}/cr")


def test_header_backup_restored_over_a_destroyed_header(pair: Pair) -> None:
    crypt_lv(pair, "cr", "4M")
    lvchange(pair, "-ay", "--key-file", str(pair.tmp / "pass"), f"{VG}/cr")
    write_dev(mapper("cr"), payload(4 * MIB, "backup"))
    lvchange(pair, "-an", f"{VG}/cr")
    backup = pair.tmp / "header.bak"
    lvcrypt(pair, "keystore", "header-backup", "--header-backup-file", str(backup), STORE)
    device, start, _ = keystore_span(pair)
    with open(device, "r+b") as f:  # both binary headers gone: neither lvcrypt nor cryptsetup can read it
        for offset in (0, 16384):
            f.seek(start + offset)
            f.write(bytes(4096))
    with keystore_loop(pair) as loop:
        assert sh("cryptsetup", "isLuks", loop, check=False).returncode != 0
    before = system_state()
    fails_cleanly(lvchange(pair, "-ay", "--key-file", str(pair.tmp / "pass"), f"{VG}/cr", check=False), before)
    lvcrypt(pair, "keystore", "header-restore", "-q", "--header-backup-file", str(backup), STORE)
    with keystore_loop(pair) as loop:
        sh("cryptsetup", "open", "--test-passphrase", "--key-file", str(pair.tmp / "pass"), loop)
    lvchange(pair, "-ay", "--key-file", str(pair.tmp / "pass"), f"{VG}/cr")
    assert read_dev(mapper("cr"), 4 * MIB) == payload(4 * MIB, "backup")
    lvchange(pair, "-an", f"{VG}/cr")
    assert Path(backup).stat().st_size == 16 * MIB
