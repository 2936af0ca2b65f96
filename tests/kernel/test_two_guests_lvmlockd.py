"""Two QEMU guests on one raw disk, each with lvmlockd and sanlock (host_id 1 and 2), one boot for
every scenario of issue 18's test bed.  Runs on the host (`host_side`): it boots both guests itself,
3 s apart, watches what each prints, and pulls the plug on guest 1 at the end.

The scenarios, in order (each guest's script waits for the other's signals):
A. lvm2 alone: guest 1 creates the shared VG and an LV lvm2 activates ex; guest 2 starts the
   lockspace and is refused the LV ("LV locked by other host") until guest 1 deactivated it.
B. lvcrypt on both sides: an encrypted LV guest 1 made, wrote and holds ex; lvcrypt on guest 2 may
   neither activate nor extend it (lvm2's message), then activates it once released and reads what
   guest 1 wrote, and removes it (lvm2 changes no VG holding lvcrypt's segment types, so C needs it
   gone).
C. Concurrent changes: lvcrypt on guest 1 and lvm2 on guest 2 each create and extend LVs in the same
   VG at the same time (a command refused the VG lock is run again); no update is lost: both sides
   list every LV at its final size, and vgck (lvm2's and lvcrypt's) is clean on both.
D. Guest 1 holds an LV ex and its QEMU is killed: lvcrypt on guest 2 is refused until sanlock sees
   host 1 dead (its delta lease not renewed), then gets the LV, as lvm2 would.

lvmlockd runs with sanlock's default io_timeout (`--sanlock-timeout 10`): a dead host's leases
expire after 8 x io_timeout + sanlock's 60 s watchdog allowance = 140 s.  5 s joined lockspaces
sooner, but this test now runs beside the one-guest tier (its own xdist group, tests/conftest.py),
three TCG guests on two cores, and a guest stalled past 5 s fails sanlock's I/O (seen in the
one-guest tier under CI load).  The guests signal each other through a second shared image (one
512-byte slot per signal, written and read with O_DIRECT), independent of the VG being tested.
"""

from __future__ import annotations

import re
import shlex
import threading
import time
from pathlib import Path

import pytest

from .guest import Guest, GuestResult, GuestUnavailable

pytestmark = [pytest.mark.host_side, pytest.mark.slow, pytest.mark.xdist_group("two-guests")]

SANLOCK_IO_TIMEOUT = 10


@pytest.fixture(autouse=True)
def kernel_modules() -> None:
    """The tier's fixture of that name loads guest modules (and skips on the host); this test runs on
    the host and its guests load their own."""


SETUP = r"""
set -x
echo "STAMP boot $(cut -d' ' -f1 /proc/uptime)"
modprobe virtio_blk; modprobe dm_mod; modprobe softdog; modprobe loop
mkdir -p /run/lvm /run/lock/lvm /run/sanlock /run/wdmd
rm -rf /tmp/lvm && cp -r /etc/lvm /tmp/lvm
printf 'global {\n\tuse_lvmlockd = 1\n}\n' >> /tmp/lvm/lvm.conf
printf 'local {\n\thost_id = %(host_id)d\n}\n' > /tmp/lvm/lvmlocal.conf
export LVM_SYSTEM_DIR=/tmp/lvm DM_DISABLE_UDEV=1 LVM_SUPPRESS_FD_WARNINGS=1
echo "STAMP config $(cut -d' ' -f1 /proc/uptime)"
wdmd && sanlock daemon -w 0 && lvmlockd --sanlock-timeout %(io_timeout)d || exit 60
D=/dev/vda S=/dev/vdb LVC=".venv/bin/python -m lvcrypt"
printf 'correct horse' > /tmp/pass
stamp() { echo "STAMP $1 $(cut -d' ' -f1 /proc/uptime)"; }
# Signals with the static busybox the initramfs uses: a dynamic dd and grep took the TCG guest 1.05 s
# per poll at load 6-9 (loading them), busybox 0.44 s; a waiting guest polls every second.
BB=%(busybox)s
sig() { printf '%%-511s\n' go | $BB dd of=$S bs=512 seek=$1 count=1 oflag=direct conv=notrunc 2>/dev/null; }
wait_sig() { n=0; until $BB dd if=$S bs=512 skip=$1 count=1 iflag=direct 2>/dev/null | $BB grep -q go; do
    n=$((n+1)); [ $n -gt 900 ] && return 1; sleep 1; done; }
# A command refused the VG lock (the other guest holds it) changed nothing: run it again.
retry() { n=0; until "$@"; do n=$((n+1)); [ $n -gt 30 ] && return 1; sleep 1; done; }
lv_sizes() { lvs --devices $D --noheadings --units m --nosuffix -o lv_name,lv_size vgsh | grep -E '^ *[ab][0-9]' | xargs; }
stamp up
"""

GUEST1 = SETUP + r"""
vgcreate --shared --devices $D vgsh $D || exit 61
stamp started
lvcreate --devices $D -Zn -L 8m -n lv1 vgsh || exit 62
sig 1; wait_sig 2 || exit 63
lvchange --devices $D -an vgsh/lv1 || exit 64
sig 3; wait_sig 4 || exit 65
stamp a_done
$LVC lvcreate --devices $D --encrypt --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file /tmp/pass \
    -L 8m -n lvc vgsh || exit 66
printf 'written by guest one' | $LVC write --devices $D --key-file /tmp/pass vgsh/lvc || exit 67
$LVC lvchange --devices $D -aey --key-file /tmp/pass vgsh/lvc || exit 68
sig 5; wait_sig 6 || exit 69
$LVC lvchange --devices $D -an vgsh/lvc || exit 70
sig 7; wait_sig 8 || exit 71
stamp b_done
sig 9; wait_sig 10 || exit 72
for i in 1 2 3; do
    retry $LVC lvcreate --devices $D -L 4m -n a$i vgsh || exit 73
    retry $LVC lvextend --devices $D -L 8m vgsh/a$i || exit 74
done
sig 11; wait_sig 12 || exit 75
echo "SIZES1 $(lv_sizes)"
vgck --devices $D vgsh || exit 76
$LVC vgck --devices $D vgsh || exit 77
stamp c_done
lvcreate --devices $D -Zn -L 8m -n lvk vgsh || exit 78
sig 13
stamp held_k
sleep 900
"""

GUEST2 = SETUP + r"""
wait_sig 1 || exit 61
vgchange --lock-start --devices $D vgsh || { sleep 2; vgchange --lock-start --devices $D vgsh; } || exit 62
stamp started
lvchange --devices $D -aey vgsh/lv1 && exit 63
sig 2; wait_sig 3 || exit 64
lvchange --devices $D -aey vgsh/lv1 || exit 65
lvchange --devices $D -an vgsh/lv1 || exit 66
sig 4
wait_sig 5 || exit 67
echo "LVM2LVS $(lvs --noheadings --devices $D -o lv_name,lv_lockargs vgsh/lvc)"
$LVC lvchange --devices $D -aey --key-file /tmp/pass vgsh/lvc && exit 68
$LVC lvextend --devices $D -L +4m vgsh/lvc && exit 69
sig 6; wait_sig 7 || exit 70
$LVC lvchange --devices $D -aey --key-file /tmp/pass vgsh/lvc || exit 71
$LVC lvchange --devices $D -an vgsh/lvc || exit 72
echo "READBACK $($LVC read --devices $D --key-file /tmp/pass --length 20 vgsh/lvc)"
$LVC lvremove --devices $D -y vgsh/lvc || exit 73
sig 8
sig 10; wait_sig 9 || exit 74
for i in 1 2 3; do
    retry lvcreate --devices $D -an -L 4m -n b$i vgsh || exit 75
    retry lvextend --devices $D -L 8m vgsh/b$i || exit 76
done
sig 12; wait_sig 11 || exit 77
echo "SIZES2 $(lv_sizes)"
vgck --devices $D vgsh || exit 78
$LVC vgck --devices $D vgsh || exit 79
wait_sig 13 || exit 80
# Asked again every 10 s until host 1's lease expires (140 s): each lvcrypt process costs the TCG guest
# seconds of CPU, which the other guests and the host tests sharing the two cores need.
refused=0
until $LVC lvchange --devices $D -aey vgsh/lvk; do refused=$((refused+1)); [ $refused -gt 60 ] && exit 81; sleep 10; done
stamp granted_k
echo "REFUSED_K $refused"
$LVC lvchange --devices $D -an vgsh/lvk || exit 82
exit 0
"""


def _boot(guest: Guest, script: str, out: dict[int, tuple[GuestResult, str]], index: int) -> None:
    result = guest.run(["sh", "-c", script])
    log = guest.xfer / "output.log"
    out[index] = (result, log.read_text(errors="replace") if log.exists() else "")


def _wait_for(guest: Guest, text: str, thread: threading.Thread) -> float | None:
    """When `text` appeared in what the guest printed (monotonic time), None if it stopped first."""
    log = guest.xfer / "output.log"
    while thread.is_alive():
        if log.exists() and text in log.read_text(errors="replace"):
            return time.monotonic()
        time.sleep(0.5)
    return None


def _stamps(log: str) -> dict[str, float]:
    return {name: float(value) for name, value in re.findall(r"STAMP (\w+) ([0-9.]+)", log)}


def test_two_guests_shared_vg_scenarios(tmp_path: Path) -> None:
    disk, signals = tmp_path / "shared.img", tmp_path / "signals.img"
    for image, size in ((disk, 400 << 20), (signals, 1 << 20)):
        with open(image, "wb") as f:
            f.truncate(size)
    out: dict[int, tuple[GuestResult, str]] = {}
    try:
        with Guest(total_timeout=1800, shared_disks=(disk, signals)) as first, \
                Guest(total_timeout=1800, shared_disks=(disk, signals)) as second:
            values = {"io_timeout": SANLOCK_IO_TIMEOUT, "busybox": shlex.quote(str(first.busybox))}
            threads = [threading.Thread(target=_boot, args=(first, GUEST1 % {**values, "host_id": 1}, out, 1)),
                       threading.Thread(target=_boot, args=(second, GUEST2 % {**values, "host_id": 2}, out, 2))]
            threads[0].start()
            time.sleep(3)
            threads[1].start()
            held = _wait_for(first, "STAMP held_k", threads[0])  # printed once guest 2 was told
            first.kill()
            granted = _wait_for(second, "STAMP granted_k", threads[1]) if held is not None else None
            for thread in threads:
                thread.join()
    except GuestUnavailable as reason:
        pytest.skip(str(reason))
    (result1, log1), (result2, log2) = out[1], out[2]
    assert held is not None, (result1, log1[-3000:])
    assert result1.status is None, "guest 1 was to be killed while it held lvk"
    assert result2.problem is None and result2.status == 0, (result2, log2[-3000:])
    # A: lvm2 alone
    assert "LV locked by other host: vgsh/lv1" in log2 or "Failed to lock logical volume" in log2, log2[-3000:]
    # B: lvcrypt refuses to activate and to change the LV guest 1 holds, then reads what guest 1 wrote
    assert log2.count("lvcrypt: LV locked by other host: vgsh/lvc") == 2, log2[-3000:]
    assert re.search(r"LVM2LVS\s+lvc\s+1\.0\.0:\d+", log2), log2[-3000:]
    assert "READBACK written by guest one" in log2, log2[-3000:]
    # C: every LV of both loops, at its final size, seen alike from both sides
    expected = " ".join(f"{name} 8.00" for name in ("a1", "a2", "a3", "b1", "b2", "b3"))
    sizes = [re.search(r"SIZES[12] (.*)", log) for log in (log1, log2)]
    assert [match.group(1) if match else None for match in sizes] == [expected, expected], (log1[-2000:], log2[-2000:])
    # D: refused while guest 1's lease lived, granted once it expired
    refused = re.search(r"REFUSED_K (\d+)", log2)
    assert refused is not None and int(refused.group(1)) >= 1, log2[-3000:]
    assert granted is not None
    stamps1, stamps2 = _stamps(log1), _stamps(log2)
    print(f"setup (guest uptime at the command, config done, daemons up): guest 1 {stamps1['boot']:.0f}, "
          f"{stamps1['config']:.0f}, {stamps1['up']:.0f} s; guest 2 {stamps2['boot']:.0f}, {stamps2['config']:.0f}, "
          f"{stamps2['up']:.0f} s")
    print(f"guest 1: up {stamps1['up']:.0f} s, VG created and lockspace started {stamps1['started']:.0f} s, "
          f"A {stamps1['a_done']:.0f} s, B {stamps1['b_done']:.0f} s, C {stamps1['c_done']:.0f} s (guest uptime); "
          f"guest 2 lockspace started {stamps2['started']:.0f} s; killed guest 1's lease expired: lvk granted "
          f"{granted - held:.0f} s after the kill ({refused.group(1)} refusals); "
          f"wall {result1.seconds:.0f} s / {result2.seconds:.0f} s")
