"""Which VGs this host may read or change, by lvm2's rules for a host that does not run lvmlockd.

lvm2 2.03.16 (lib/metadata/metadata.c, `_access_vg_*`, and tools/toollib.c `_ignore_vg`):
- a VG with a `lock_type` (sanlock, dlm) needs lvmlockd: neither read nor changed; reports skip it
  silently unless `--shared` is given, and name it in an error when asked for by name;
- a VG whose `system_id` is not this host's is foreign: neither read nor changed; reports print
  the refusal and go on unless `--foreign` is given;
- an exported VG is listed by vgs/pvs but refused for everything else (vgrename, vgcfgbackup and
  reports excepted);
- a VG without WRITE in its status is read-only: read, never changed.
A host whose lvm.conf sets use_lvmlockd = 1 reads and changes shared VGs under lvmlockd's VG lock
(store/lvmlockd.py): the lock failed, a change is refused and a read goes on with a warning.
"""

from __future__ import annotations

from pathlib import Path

from lvcrypt.errors import LvcryptError
from lvcrypt.metadata.model import VolumeGroup
from lvcrypt.records import dataclass
from lvcrypt.store import lvm_config, lvmlockd


class VgAccessError(LvcryptError):
    """lvm2 on this host would refuse the VG (lock type, system id, exported, read-only)."""


@dataclass(frozen=True)
class Access:
    """What a command intends: `change` writes metadata; the rest are options that widen reading."""

    change: bool = False
    exported: bool = False  # the command works on exported VGs (vgs, pvs, vgrename, vgcfgbackup)
    shared: bool = False  # --shared of the reports
    foreign: bool = False  # --foreign of the reports


def lock_type(vg: VolumeGroup) -> str | None:
    return vg.lock_type if vg.shared else None


def system_id(vg: VolumeGroup) -> str | None:
    value = vg.raw.get("system_id")
    return value if isinstance(value, str) and value else None


def is_exported(vg: VolumeGroup) -> bool:
    return "EXPORTED" in vg.status


def is_writable(vg: VolumeGroup) -> bool:
    """lvm2 stores the WRITE of a shared VG as the flag WRITE_LOCKED, so that older lvm2 cannot write it."""
    return "WRITE" in vg.status or "WRITE_LOCKED" in vg.flags + vg.status


def refusal(vg: VolumeGroup, access: Access, local_id: str | None) -> str | None:
    """lvm2's message refusing this access, or None when lvm2 would allow it."""
    kind = lock_type(vg)
    if kind and lvmlockd.enabled():
        problem = lvmlockd.access_problem(vg.name, kind)
        if problem:
            return problem
    elif kind and not (access.shared and not access.change):
        return f"Cannot access VG {vg.name} with lock type {kind} that requires lvmlockd."
    owner = system_id(vg)
    if owner and owner != local_id and not (access.foreign and not access.change):
        if local_id is None:
            return f"Cannot access VG {vg.name} with system ID {owner} with unknown local system ID."
        return f"Cannot access VG {vg.name} with system ID {owner} with local system ID {local_id}."
    if is_exported(vg) and not access.exported:
        return f"Volume group {vg.name} is exported"
    if access.change and not is_writable(vg):
        return f"Volume group {vg.name} is read-only."
    return None


def check(vg: VolumeGroup, access: Access) -> None:
    """Raise lvm2's refusal for this access to `vg`."""
    message = refusal(vg, access, local_system_id())
    if message:
        raise VgAccessError(message)


def _config_string(path: str) -> str | None:
    value = lvm_config.setting(path, "")
    return value if isinstance(value, str) and value else None


def local_system_id() -> str | None:
    """This host's system ID as lvm2 derives it from `global/system_id_source` (default none).

    `appmachineid` needs systemd's keyed hash of the machine id; it is not computed here, so a
    host configured that way counts as having an unknown system ID, which only makes lvcrypt
    refuse more VGs than lvm2, never fewer.
    """
    source = _config_string("global/system_id_source") or "none"
    value: str | None = None
    if source == "lvmlocal":
        value = _config_string("local/system_id")
    elif source == "uname":
        import socket  # most hosts have no system ID: the reports and `read` skip this import

        value = socket.gethostname()
    elif source == "machineid":
        value = _first_line(Path("/etc/machine-id"))
    elif source == "file":
        name = _config_string("global/system_id_file")
        value = _first_line(Path(name)) if name else None
    return value or None


def _first_line(path: Path) -> str | None:
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return None
    return lines[0].strip() if lines else None
