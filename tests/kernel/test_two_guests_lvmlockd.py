"""Two QEMU guests on one raw disk, each with lvmlockd and sanlock (host_id 1 and 2): lvm2 alone
first, as the issue's test bed asks (issue 18).  Runs on the host (`host_side`): it boots both
guests itself, 3 s apart, and reads what each printed.

Guest 1 creates the shared VG, starts its lockspace and creates an LV, which lvm2 activates with
an exclusive lock, and holds it until guest 2 says (a VG tag) it was refused; then deactivates it.
Guest 2 waits for the VG on the shared disk, starts the lockspace (twice: the first start races
the lvmlock device node, no udev here, see ../shared/notes/kernel-guest.md), then tries
`lvchange -aey` every few seconds: refused with lvm2's "LV locked by other host" while guest 1
holds it, granted once guest 1 let go.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest

from .guest import Guest, GuestResult, GuestUnavailable

pytestmark = [pytest.mark.host_side, pytest.mark.slow, pytest.mark.xdist_group("kernel")]

@pytest.fixture(autouse=True)
def kernel_modules() -> None:
    """The tier's fixture of that name loads guest modules (and skips on the host); this test runs on
    the host and its guests load their own."""


SETUP = r"""
set -x
modprobe virtio_blk; modprobe dm_mod; modprobe softdog; modprobe loop
mkdir -p /run/lvm /run/lock/lvm /run/sanlock /run/wdmd
rm -rf /tmp/lvm && cp -r /etc/lvm /tmp/lvm
printf 'global {\n\tuse_lvmlockd = 1\n}\n' >> /tmp/lvm/lvm.conf
printf 'local {\n\thost_id = %(host_id)d\n}\n' > /tmp/lvm/lvmlocal.conf
export LVM_SYSTEM_DIR=/tmp/lvm DM_DISABLE_UDEV=1 LVM_SUPPRESS_FD_WARNINGS=1
wdmd && sanlock daemon -w 0 && lvmlockd || exit 90
sleep 2
D=/dev/vda
stamp() { echo "STAMP $1 $(cut -d' ' -f1 /proc/uptime)"; }
# The guests signal each other with VG tags on the shared disk (lvm2 changes them under the VG lock).
signal() { vgchange --devices $D --addtag "$1" vgsh >/dev/null 2>&1 || vgchange --devices $D --addtag "$1" vgsh; }
wait_for() { n=0; until vgs --shared --noheadings -o vg_tags --devices $D vgsh 2>/dev/null | grep -q "$1"; do
    n=$((n+1)); [ $n -gt 300 ] && return 1; sleep 2; done; }
stamp up
"""

GUEST1 = SETUP + r"""
vgcreate --shared --devices $D vgsh $D || exit 91
vgchange --lock-start --devices $D vgsh || exit 92
stamp started
lvcreate --devices $D -Zn -L 8m -n lv1 vgsh || exit 93
stamp held
wait_for refused || exit 98
lvchange --devices $D -an vgsh/lv1 || exit 94
stamp released
wait_for granted
stamp done
"""

GUEST2 = SETUP + r"""
i=0
until lvs --shared --devices $D vgsh/lv1 >/dev/null 2>&1; do i=$((i+1)); [ $i -gt 200 ] && exit 95; sleep 3; done
stamp seen
vgchange --lock-start --devices $D vgsh || { sleep 2; vgchange --lock-start --devices $D vgsh; } || exit 96
stamp started
refused=0
while [ $refused -lt 100 ]; do
    if lvchange --devices $D -aey vgsh/lv1; then
        stamp granted; echo "REFUSED $refused"; lvchange --devices $D -an vgsh/lv1; signal granted; exit 0
    fi
    [ $refused -eq 0 ] && signal refused
    refused=$((refused+1)); sleep 4
done
exit 97
"""


def _boot(guest: Guest, script: str, out: dict[int, tuple[GuestResult, str]], index: int) -> None:
    result = guest.run(["sh", "-c", script])
    log = guest.xfer / "output.log"
    out[index] = (result, log.read_text(errors="replace") if log.exists() else "")


def test_lvm2_alone_exclusive_lv_across_two_guests(tmp_path: Path) -> None:
    disk = tmp_path / "shared.img"
    with open(disk, "wb") as image:
        image.truncate(400 << 20)
    out: dict[int, tuple[GuestResult, str]] = {}
    try:
        with Guest(total_timeout=1200, shared_disks=(disk,)) as first, \
                Guest(total_timeout=1200, shared_disks=(disk,)) as second:
            threads = [threading.Thread(target=_boot, args=(first, GUEST1 % {"host_id": 1}, out, 1))]
            threads.append(threading.Thread(target=_boot, args=(second, GUEST2 % {"host_id": 2}, out, 2)))
            threads[0].start()
            time.sleep(3)
            threads[1].start()
            for thread in threads:
                thread.join()
    except GuestUnavailable as reason:
        pytest.skip(str(reason))
    (result1, log1), (result2, log2) = out[1], out[2]
    assert result1.problem is None and result1.status == 0, (result1, log1[-3000:])
    assert result2.problem is None and result2.status == 0, (result2, log2[-3000:])
    assert "LV locked by other host: vgsh/lv1" in log2 or "Failed to lock logical volume" in log2, log2[-3000:]
    refused = int(re.search(r"REFUSED (\d+)", log2).group(1))  # type: ignore[union-attr]
    assert refused >= 1
    stamps1 = dict(re.findall(r"STAMP (\w+) ([0-9.]+)", log1))
    stamps2 = dict(re.findall(r"STAMP (\w+) ([0-9.]+)", log2))
    print(f"guest1: boot+setup {stamps1['up']} s, lockspace started {stamps1['started']} s; "
          f"guest2: lockspace started {stamps2['started']} s, granted {stamps2['granted']} s after {refused} "
          f"refusals; wall {result1.seconds:.0f} s / {result2.seconds:.0f} s")


# lvm2 will not change a VG holding lvcrypt's segment types, so here lvcrypt itself carries the signals.
LVCRYPT_SIGNALS = r"""
LVC=".venv/bin/python -m lvcrypt"
lvc_signal() { $LVC vgchange --devices $D --addtag "$1" vgsh >/dev/null 2>&1 || $LVC vgchange --devices $D --addtag "$1" vgsh; }
lvc_wait_for() { n=0; until $LVC vgs --shared --noheadings -o vg_tags --devices $D vgsh 2>/dev/null | grep -q "$1"; do
    n=$((n+1)); [ $n -gt 300 ] && return 1; sleep 2; done; }
"""

LVCRYPT1 = SETUP + LVCRYPT_SIGNALS + r"""
printf 'correct horse' > /tmp/pass
vgcreate --shared --devices $D vgsh $D || exit 91
vgchange --lock-start --devices $D vgsh || exit 92
stamp started
$LVC lvcreate --devices $D --encrypt --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file /tmp/pass \
    -L 8m -n lvc vgsh || exit 93
printf 'written by guest one' | $LVC write --devices $D --key-file /tmp/pass vgsh/lvc || exit 94
$LVC lvchange --devices $D -aey --key-file /tmp/pass vgsh/lvc || exit 95
stamp held
lvc_wait_for refused || exit 98
$LVC lvchange --devices $D -an vgsh/lvc || exit 96
stamp released
lvc_wait_for granted || exit 99
stamp done
"""

LVCRYPT2 = SETUP + LVCRYPT_SIGNALS + r"""
printf 'correct horse' > /tmp/pass
i=0
until lvs --shared --devices $D vgsh/lvc >/dev/null 2>&1; do i=$((i+1)); [ $i -gt 200 ] && exit 95; sleep 3; done
stamp seen
vgchange --lock-start --devices $D vgsh || { sleep 2; vgchange --lock-start --devices $D vgsh; } || exit 96
stamp started
echo "LVM2LVS $(lvs --noheadings --devices $D -o lv_name,lv_lockargs vgsh/lvc)"
refused=0
while [ $refused -lt 60 ]; do
    if $LVC lvchange --devices $D -aey --key-file /tmp/pass vgsh/lvc; then
        stamp granted; echo "REFUSED $refused"
        $LVC lvchange --devices $D -an vgsh/lvc || exit 98
        echo "READBACK $($LVC read --devices $D --key-file /tmp/pass --length 20 vgsh/lvc)"
        lvc_signal granted || exit 99
        exit 0
    fi
    refused=$((refused+1))
    [ $refused -eq 1 ] && { lvc_signal refused || exit 99; }
    sleep 4
done
exit 97
"""


def test_lvcrypt_encrypted_lv_exclusive_across_two_guests(tmp_path: Path) -> None:
    """lvcrypt on both sides of an lvm2-made shared VG: an encrypted LV guest 1 holds ex is refused on
    guest 2 with lvm2's message; once released, guest 2 activates it and reads what guest 1 wrote.
    The guests signal each other with VG tags as in the lvm2 test, but written by lvcrypt (under the
    VG lock lvmlockd grants): lvm2 will not change a VG with lvcrypt's segment types in it."""
    disk = tmp_path / "shared.img"
    with open(disk, "wb") as image:
        image.truncate(400 << 20)
    out: dict[int, tuple[GuestResult, str]] = {}
    try:
        with Guest(total_timeout=1500, shared_disks=(disk,)) as first, \
                Guest(total_timeout=1500, shared_disks=(disk,)) as second:
            threads = [threading.Thread(target=_boot, args=(first, LVCRYPT1 % {"host_id": 1}, out, 1)),
                       threading.Thread(target=_boot, args=(second, LVCRYPT2 % {"host_id": 2}, out, 2))]
            threads[0].start()
            time.sleep(3)
            threads[1].start()
            for thread in threads:
                thread.join()
    except GuestUnavailable as reason:
        pytest.skip(str(reason))
    (result1, log1), (result2, log2) = out[1], out[2]
    assert result1.problem is None and result1.status == 0, (result1, log1[-3000:])
    assert result2.problem is None and result2.status == 0, (result2, log2[-3000:])
    assert "lvcrypt: LV locked by other host: vgsh/lvc" in log2, log2[-3000:]
    assert re.search(r"LVM2LVS\s+lvc\s+1\.0\.0:\d+", log2), log2[-3000:]
    assert "READBACK written by guest one" in log2, log2[-3000:]
    refused = re.search(r"REFUSED (\d+)", log2)
    assert refused is not None and int(refused.group(1)) >= 1
    print(f"lvcrypt on both guests: wall {result1.seconds:.0f} s / {result2.seconds:.0f} s; "
          f"refused {refused.group(1)} times")
