"""LVs in use with a real device-mapper (issue 12, item 3): an active LV (the kernel's sysfs names its dm uuid)
is refused for removal, reduction, renaming, conversion and vgremove, with no dm device, key or loop device
changed; once deactivated the same commands work."""

from __future__ import annotations

import pytest

from .test_activation import VG, crypt_lv, fails_cleanly, lvchange, lvcrypt, pair, system_state  # noqa: F401

pytestmark = pytest.mark.usefixtures("lvm2")


def test_active_lvs_are_not_removed_renamed_or_converted(pair) -> None:  # type: ignore[no-untyped-def]
    lvcrypt(pair, "lvcreate", "-L", "4M", "-n", "lin", VG)
    crypt_lv(pair, "cr")
    lvchange(pair, "-ay", f"{VG}/lin")
    lvchange(pair, "-ay", "--key-file", str(pair.tmp / "pass"), f"{VG}/cr")
    before = system_state()
    for args, says in ((("lvremove", f"{VG}/lin"), "device-mapper device vgk-lin is active"),
                       (("lvrename", VG, "lin", "moved"), "device-mapper device vgk-lin is active"),
                       (("lvreduce", "-y", "-l", "-1", f"{VG}/lin"), "device-mapper device vgk-lin is active"),
                       (("lvconvert", "--type", "crypt", f"{VG}/lin"), "device-mapper device vgk-lin is active"),
                       (("lvremove", f"{VG}/cr"), "device-mapper device vgk-cr is active"),
                       (("lvconvert", "--type", "linear", f"{VG}/cr"), "device-mapper device vgk-cr is active"),
                       (("vgremove", "-f", VG), "is active")):
        assert says in fails_cleanly(lvcrypt(pair, *args, check=False), before), args
    assert set(pair.lvm("lvs", "--noheadings", "-o", "lv_name", VG).stdout.split()) == {"lin", "cr"}
    lvchange(pair, "-an", f"{VG}/lin")
    lvchange(pair, "-an", f"{VG}/cr")
    lvcrypt(pair, "lvrename", VG, "lin", "moved")
    lvcrypt(pair, "lvremove", f"{VG}/moved")
    lvcrypt(pair, "lvremove", f"{VG}/cr")
    pair.lvm("vgck", VG)
