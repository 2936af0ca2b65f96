"""Inline-encryption capabilities through LV stacks (lvcrypt.inline), `lvs -o +inline_crypto`,
`lvcrypt table` comments, and lvextend's refusal to drop what an active LV exposes.

The machine has no blk-crypto hardware and no device-mapper, so sysfs is a
directory tree laid out as the kernel lays it out (block/blk-crypto-sysfs.c:
`queue/crypto/modes/<mode>` holding `0x<mask of data unit sizes>`,
`max_dun_bits`, `num_keyslots`; `dev/block/MAJ:MIN` links; an active dm
device as `block/dm-N/dm/uuid`).  The PVs are real loop devices, found in
that tree through their real device numbers; lvm2 confirms where the
extents the capabilities are computed over really lie.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import pytest

from lvcrypt.inline import CryptoCaps, intersect, missing, queue_dir, read_caps, unit_sizes
from store_helpers import Pair

pytestmark = pytest.mark.usefixtures("lvm2")
FAST = ["--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000"]

# Four kinds of device: rich, a subset of it, one disjoint from both, and one without hardware.
RICH = {"modes": {"AES-256-XTS": 0x1200, "Adiantum": 0x200}, "max_dun_bits": 64, "num_keyslots": 32}
SUBSET = {"modes": {"AES-256-XTS": 0x200}, "max_dun_bits": 32, "num_keyslots": 16}
DISJOINT = {"modes": {"SM4-XTS": 0x1000}, "max_dun_bits": 64, "num_keyslots": 8}


def write_crypto(queue: Path, caps: dict | None) -> None:
    queue.mkdir(parents=True, exist_ok=True)
    if caps is None:
        return
    crypto = queue / "crypto"
    (crypto / "modes").mkdir(parents=True)
    for mode, mask in caps["modes"].items():
        (crypto / "modes" / mode).write_text(f"0x{mask:x}\n")
    (crypto / "max_dun_bits").write_text(f"{caps['max_dun_bits']}\n")
    (crypto / "num_keyslots").write_text(f"{caps['num_keyslots']}\n")


def add_disk(root: Path, device: str, caps: dict | None) -> None:
    """The block device's sysfs entry (`dev/block/MAJ:MIN` -> `devices/virtual/block/NAME`) with its caps."""
    rdev = os.stat(device).st_rdev
    entry = root / "devices" / "virtual" / "block" / os.path.basename(device)
    write_crypto(entry / "queue", caps)
    link = root / "dev" / "block" / f"{os.major(rdev)}:{os.minor(rdev)}"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(entry)


def activate(root: Path, number: int, uuid: str, caps: dict | None) -> None:
    """What the kernel shows for an active dm device: `block/dm-N/dm/uuid` and its own queue/crypto."""
    entry = root / "block" / f"dm-{number}"
    (entry / "dm").mkdir(parents=True)
    (entry / "dm" / "uuid").write_text(uuid + "\n")
    write_crypto(entry / "queue", caps)


def caps_of(spec: dict) -> CryptoCaps:
    return CryptoCaps(dict(spec["modes"]), spec["max_dun_bits"], spec["num_keyslots"])


# --- the model -------------------------------------------------------------------------------------


def test_data_unit_masks_are_or_of_sizes() -> None:
    assert unit_sizes(0x1200) == [512, 4096]
    assert unit_sizes(0xFE00) == [512, 1024, 2048, 4096, 8192, 16384, 32768]


def test_intersections_same_subset_disjoint_none() -> None:
    rich, subset, disjoint = caps_of(RICH), caps_of(SUBSET), caps_of(DISJOINT)
    assert intersect(rich, caps_of(RICH)) == rich
    both = intersect(rich, subset)
    assert both == CryptoCaps({"AES-256-XTS": 0x200}, 32, 16) == intersect(subset, rich)
    assert intersect(rich, disjoint) is None
    assert intersect(rich, None) is None and intersect(None, rich) is None
    raw_only = CryptoCaps({"AES-256-XTS": 0x1000}, 64, 4, frozenset({"hw_wrapped"}))
    assert intersect(rich, raw_only) is None  # no common key type: nothing usable passes


def test_missing_names_modes_sizes_dun_bits() -> None:
    assert missing(caps_of(RICH), caps_of(RICH)) == []
    assert missing(caps_of(SUBSET), caps_of(RICH)) == []
    assert missing(caps_of(RICH), caps_of(SUBSET)) == [
        "AES-256-XTS data unit size 4096", "mode Adiantum", "64-bit DUNs (has 32)"]
    assert missing(caps_of(RICH), None) == ["inline encryption"]


def test_sysfs_reading_as_the_kernel_writes_it(tmp_path: Path, loop_devices: Callable[..., list[str]]) -> None:
    queue = tmp_path / "q"
    write_crypto(queue, RICH)
    (queue / "crypto" / "hw_wrapped_keys").write_text("supported\n")
    (queue / "crypto" / "raw_keys").write_text("supported\n")
    caps = read_caps(queue)
    assert caps == CryptoCaps({"AES-256-XTS": 0x1200, "Adiantum": 0x200}, 64, 32,
                              frozenset({"raw", "hw_wrapped"}))
    assert caps.describe() == "AES-256-XTS:512,4096 Adiantum:512 dun=64 slots=32 keys=hw_wrapped,raw"
    assert read_caps(tmp_path / "nothing") is None
    (queue / "crypto" / "max_dun_bits").write_text("garbage\n")
    assert read_caps(queue) is None  # unreadable numbers: no capability, no crash
    # A partition's queue is its disk's; an image file has none.
    (device,) = loop_devices(1, 8)
    rdev = os.stat(device).st_rdev
    part = tmp_path / "sys" / "block" / "sdz" / "sdz1"
    part.mkdir(parents=True)
    (part / "partition").write_text("1\n")
    (tmp_path / "sys" / "dev" / "block").mkdir(parents=True)
    (tmp_path / "sys" / "dev" / "block" / f"{os.major(rdev)}:{os.minor(rdev)}").symlink_to(part)
    assert queue_dir(device, str(tmp_path / "sys")) == tmp_path / "sys" / "block" / "sdz" / "queue"
    assert queue_dir(str(tmp_path / "q" / "crypto" / "num_keyslots"), str(tmp_path / "sys")) is None


# --- LV stacks on loop devices ---------------------------------------------------------------------


@pytest.fixture
def pair(loop_devices: Callable[..., list[str]], tmp_path: Path) -> Pair:
    pair = Pair(loop_devices(4, 32), tmp_path)
    pair.lvc("pvcreate", *pair.devices)
    pair.lvc("vgcreate", "vgi", *pair.devices[:3])
    (tmp_path / "pass").write_bytes(b"inline passphrase")
    root = tmp_path / "sys"
    for device, caps in zip(pair.devices, (RICH, SUBSET, None, DISJOINT)):
        add_disk(root, device, caps)
    return pair


def sysfs(pair: Pair) -> str:
    return str(pair.tmp / "sys")


def inline_of(pair: Pair, lv: str) -> str:
    out = pair.lvc("lvs", "--sysfs-root", sysfs(pair), "-a", "--noheadings", "--separator", "|",
                   "-o", "lv_name,inline_crypto", "vgi").stdout
    rows = dict(line.strip().split("|") for line in out.splitlines())
    return rows[lv]


def lvm2_devices(pair: Pair, lv: str) -> set[str]:
    """Where lvm2 says the LV's extents are (device paths, without extent numbers)."""
    out = pair.lvm("lvs", "-a", "--noheadings", "-o", "devices", f"vgi/{lv}").stdout
    return {item.split("(")[0] for line in out.split() for item in line.split(",") if item}


def test_lvs_shows_the_intersection_over_each_lvs_devices(pair: Pair) -> None:
    rich, subset, bare = pair.devices[:3]
    pair.lvc("lvcreate", "-L", "8M", "-n", "onrich", "vgi", rich)
    pair.lvc("lvcreate", "-L", "8M", "-n", "striped", "-i", "2", "vgi", rich, subset)
    pair.lvc("lvcreate", "-L", "4M", "-n", "spans", "vgi", rich)
    pair.lvc("lvextend", "-L", "8M", "vgi/spans", subset)
    pair.lvc("lvcreate", "-L", "4M", "-n", "onbare", "vgi", bare)
    assert lvm2_devices(pair, "striped") == {rich, subset}
    assert lvm2_devices(pair, "spans") == {rich, subset}
    assert inline_of(pair, "onrich") == "AES-256-XTS:512,4096 Adiantum:512 dun=64 slots=32"
    assert inline_of(pair, "striped") == "AES-256-XTS:512 dun=32 slots=16"
    assert inline_of(pair, "spans") == "AES-256-XTS:512 dun=32 slots=16"
    assert inline_of(pair, "onbare") == ""
    pair.lvc("lvextend", "-L", "12M", "vgi/onrich", bare)
    assert lvm2_devices(pair, "onrich") == {rich, bare}
    assert inline_of(pair, "onrich") == ""  # one device without hardware: nothing passes


def test_disjoint_devices_pass_nothing(pair: Pair) -> None:
    pair.lvc("vgextend", "vgi", pair.devices[3])
    pair.lvc("lvcreate", "-L", "8M", "-n", "mixed", "-i", "2", "vgi", pair.devices[0], pair.devices[3])
    assert lvm2_devices(pair, "mixed") == {pair.devices[0], pair.devices[3]}
    assert inline_of(pair, "mixed") == ""
    pair.lvc("lvcreate", "-L", "4M", "-n", "sm4", "vgi", pair.devices[3])
    assert inline_of(pair, "sm4") == "SM4-XTS:4096 dun=64 slots=8"


def test_crypt_lv_passes_nothing_but_its_striped_layer_does(pair: Pair) -> None:
    rich, subset = pair.devices[:2]
    pair.lvc("lvcreate", "--encrypt", *FAST, "--key-file", str(pair.tmp / "pass"), "-L", "8M", "-n", "sec",
             "-i", "2", "vgi", rich, subset)
    assert inline_of(pair, "sec") == ""
    (store_device,) = {pair.lvc("lvs", "-a", "--noheadings", "-o", "devices", "vgi/cryptostore0").stdout
                       .strip().split("(")[0]}  # lvm2 lists no devices for a segment type it does not know
    expected = {rich: "AES-256-XTS:512,4096 Adiantum:512 dun=64 slots=32", subset: "AES-256-XTS:512 dun=32 slots=16"}
    assert inline_of(pair, "[cryptostore0]") == expected[store_device]  # a keystore is plain extents
    table = pair.lvc("table", "--sysfs-root", sysfs(pair), "vgi/sec").stdout.splitlines()
    layer = table.index(next(line for line in table if line.startswith("# vgi-sec-crypt0 ")))
    top = table.index(next(line for line in table if line.startswith("# vgi-sec ")))
    assert table[layer + 1] == "# inline crypto: AES-256-XTS:512 dun=32 slots=16"
    assert table[top + 1] == "# inline crypto: none"
    assert any(" striped 2 " in line for line in table) and any(" crypt " in line for line in table)


def test_table_comments_on_a_linear_lv(pair: Pair) -> None:
    pair.lvc("lvcreate", "-L", "8M", "-n", "plain", "vgi", pair.devices[0])
    table = pair.lvc("table", "--sysfs-root", sysfs(pair), "vgi/plain").stdout.splitlines()
    assert table[0].startswith("# vgi-plain (uuid LVM-")
    assert table[1] == "# inline crypto: AES-256-XTS:512,4096 Adiantum:512 dun=64 slots=32"
    assert table[2].split()[2] == "linear" and table[2].split()[3] == pair.devices[0]


# --- refusing to drop what an active LV exposes ----------------------------------------------------


def dm_uuid(pair: Pair, lv: str) -> str:
    vg_uuid = pair.lvc("vgs", "--noheadings", "-o", "vg_uuid", "vgi").stdout.strip()
    lv_uuid = pair.lvc("lvs", "--noheadings", "-o", "lv_uuid", f"vgi/{lv}").stdout.strip()
    return "LVM-" + vg_uuid.replace("-", "") + lv_uuid.replace("-", "")


def metadata_seqno(pair: Pair) -> str:
    return pair.lvm("vgs", "--noheadings", "-o", "vg_seqno", "vgi").stdout.strip()


def test_extending_an_active_lv_onto_a_poorer_device_is_refused(pair: Pair) -> None:
    rich, subset, bare, disjoint = pair.devices
    pair.lvc("lvcreate", "-L", "4M", "-n", "live", "vgi", rich)
    activate(pair.tmp / "sys", 0, dm_uuid(pair, "live"), RICH)
    before = metadata_seqno(pair)
    refused = pair.lvc("lvextend", "--sysfs-root", sysfs(pair), "-L", "8M", "vgi/live", bare, check=False)
    assert refused.returncode == 5 and refused.stderr.count("\n") == 1, refused.stderr
    assert f"{bare} lacks inline encryption" in refused.stderr and "--force" in refused.stderr
    refused = pair.lvc("lvextend", "--sysfs-root", sysfs(pair), "-L", "8M", "vgi/live", subset, check=False)
    assert refused.returncode == 5
    assert (f"{subset} lacks AES-256-XTS data unit size 4096, mode Adiantum, 64-bit DUNs (has 32)"
            in refused.stderr), refused.stderr
    assert metadata_seqno(pair) == before and lvm2_devices(pair, "live") == {rich}
    # More of the same device keeps everything; lvm2 sees the new size.
    pair.lvc("lvextend", "--sysfs-root", sysfs(pair), "-L", "8M", "vgi/live", rich)
    assert pair.lvm("lvs", "--noheadings", "--units", "m", "-o", "lv_size", "vgi/live").stdout.strip() == "8.00m"
    # vgextend + lvextend onto the disjoint device: refused; --force extends with a warning.
    pair.lvc("vgextend", "vgi", disjoint)
    refused = pair.lvc("lvextend", "--sysfs-root", sysfs(pair), "-L", "12M", "vgi/live", disjoint, check=False)
    assert refused.returncode == 5 and f"{disjoint} lacks mode AES-256-XTS, mode Adiantum" in refused.stderr
    forced = pair.lvc("lvextend", "--sysfs-root", sysfs(pair), "--force", "-L", "12M", "vgi/live", disjoint)
    assert "WARNING" in forced.stderr and "drop inline-encryption" in forced.stderr
    assert lvm2_devices(pair, "live") == {rich, disjoint}


def test_inactive_lvs_and_lvs_exposing_nothing_extend_freely(pair: Pair) -> None:
    rich, _, bare, _ = pair.devices
    pair.lvc("lvcreate", "-L", "4M", "-n", "idle", "vgi", rich)
    pair.lvc("lvcreate", "-L", "4M", "-n", "nocaps", "vgi", bare)
    activate(pair.tmp / "sys", 0, dm_uuid(pair, "nocaps"), None)
    pair.lvc("lvextend", "--sysfs-root", sysfs(pair), "-L", "8M", "vgi/idle", bare)  # not active
    pair.lvc("lvextend", "--sysfs-root", sysfs(pair), "-L", "8M", "vgi/nocaps", rich)  # exposes nothing
    assert lvm2_devices(pair, "idle") == {rich, bare} and lvm2_devices(pair, "nocaps") == {rich, bare}
    # On rich hardware, but the live device exposes nothing (e.g. a kernel without blk-crypto): nothing to drop.
    pair.lvc("lvcreate", "-L", "4M", "-n", "richlive", "vgi", rich)
    activate(pair.tmp / "sys", 1, dm_uuid(pair, "richlive"), None)
    pair.lvc("lvextend", "--sysfs-root", sysfs(pair), "-L", "8M", "vgi/richlive", bare)
    assert lvm2_devices(pair, "richlive") == {rich, bare}


def test_the_live_devices_own_caps_are_what_counts(pair: Pair) -> None:
    """A live device exposing only the subset (e.g. loaded before a device was upgraded) may take it."""
    rich, subset, _, _ = pair.devices
    pair.lvc("lvcreate", "-L", "4M", "-n", "older", "vgi", rich)
    activate(pair.tmp / "sys", 0, dm_uuid(pair, "older"), SUBSET)
    pair.lvc("lvextend", "--sysfs-root", sysfs(pair), "-L", "8M", "vgi/older", subset)
    assert lvm2_devices(pair, "older") == {rich, subset}
