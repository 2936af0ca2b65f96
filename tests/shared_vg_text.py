"""A shared VG (sanlock or dlm) made by lvm2 on a host without lvmlockd: lvm2 cannot create one there
but restores one, so a backup lvm2 wrote of a local VG is edited as lvm2 2.03.16's
lib/format_text/export.c writes a shared VG (lock_type and lock_args after flags, the lvmlock LV
hidden with read_ahead None, LV lock_args after creation_host) and restored by lvm2."""

from __future__ import annotations

import subprocess

from conftest import LVM_ENV
from store_helpers import Pair

VG_FLAGS = 'status = ["RESIZEABLE", "READ", "WRITE"]\n\tflags = []\n'
LV_HOST = '\t\t\tcreation_host = '
LVMLOCK = """
\t\tlvmlock {
\t\t\tid = "p3Yxbv-0LBa-0fDN-k5yB-V1rN-Zz1d-pZ4Fc1"
\t\t\tstatus = ["READ", "WRITE"]
\t\t\tflags = []
\t\t\tcreation_time = 1796188722
\t\t\tcreation_host = "host1"
\t\t\tread_ahead = -1\t# None
\t\t\tsegment_count = 1

\t\t\tsegment1 {
\t\t\t\tstart_extent = 0
\t\t\t\textent_count = 256

\t\t\t\ttype = "striped"
\t\t\t\tstripe_count = 1

\t\t\t\tstripes = [
\t\t\t\t\t"pv0", 8
\t\t\t\t]
\t\t\t}
\t\t}
"""


# (lock_type, VG lock_args, LV lock_args) as lvm2 writes them: sanlock keeps its leases in the lvmlock
# LV (an LV's lock_args give its lease's offset there); dlm names the cluster, its LVs say "dlm", no lvmlock LV.
SANLOCK = ("sanlock", "1.0.0:lvmlock", "1.0.0:70254592")
DLM = ("dlm", "1.0.0:mycluster", "dlm")


def shared_text(local: str, kind: tuple[str, str, str] = SANLOCK) -> str:
    """lvm2's backup of vgx (one LV on extents 0-7) made into a shared VG as lvm2 writes one."""
    lock_type, lock_args, lv_lock_args = kind
    text = local.replace(VG_FLAGS, f'{VG_FLAGS}\tlock_type = "{lock_type}"\n\tlock_args = "{lock_args}"\n', 1)
    host_line = text.index(LV_HOST)
    line_end = text.index("\n", host_line) + 1
    text = text[:line_end] + f'\t\t\tlock_args = "{lv_lock_args}"\n' + text[line_end:]
    if lock_type != "sanlock":
        return text
    opening = text.index("\tlogical_volumes {\n") + len("\tlogical_volumes {\n")
    return text[:opening] + LVMLOCK + text[opening:]


def make_shared(pair: Pair, kind: tuple[str, str, str] = SANLOCK) -> tuple[str, str]:
    """(lvm2's local backup, the shared text lvm2 restored) of vgx."""
    pair.lvm("vgcreate", "-s", "1m", "vgx", *pair.devices)
    pair.lvm("lvcreate", "-l", "8", "-n", "l1", "vgx")
    backup = pair.tmp / "vgx.local"
    pair.lvm("vgcfgbackup", "-f", str(backup), "vgx")
    local = backup.read_text()
    shared = shared_text(local, kind)
    (pair.tmp / "vgx.shared").write_text(shared)
    pair.lvm("vgcfgrestore", "--force", "-f", str(pair.tmp / "vgx.shared"), "vgx")
    return local, shared




def lvm2_written(pair: Pair) -> str:
    """The metadata text lvm2 wrote on the first PV (its own `pvck --dump metadata`): a shared VG as
    lvm2 really writes one, WRITE as the flag WRITE_LOCKED included."""
    out = pair.tmp / "dumped.vg"
    subprocess.run(["pvck", "--dump", "metadata", "-f", str(out), pair.devices[0]], capture_output=True,
                   env=LVM_ENV, check=True)
    return out.read_text()
