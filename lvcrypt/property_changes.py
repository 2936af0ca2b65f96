"""lvm2's property changes of LVs, VGs and PVs: what lvchange, vgchange and pvchange set besides activation.

lvchange: tags, `-p r|rw` (permission), `--alloc`/`-C y|n` (allocation policy),
`-k y|n` (activation skip); vgchange: `-x y|n` (resizeable), tags, `--alloc`;
pvchange: tags, `-x y|n` (allocatable).  They change the metadata only, where
lvm2 keeps them, so each tool reads what the other set; one commit per VG (per
PV for pvchange, as lvm2).  A permission change of an LV the kernel has is
followed by a reload of its tables (`reload_permission_changes`), as lvm2
reloads it: read-only is then what the device enforces.

lvm2's rules are kept where they differ between commands: a property that is
already so is an error that leaves the LV's other changes in place (lvchange)
or stops the whole VG's change (vgchange), and is a warning for pvchange;
lvchange and pvchange add tags before deleting them, vgchange deletes first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from lvcrypt.errors import LvcryptError
from lvcrypt.metadata.model import LogicalVolume, VolumeGroup
from lvcrypt.records import dataclass
from lvcrypt.tags import apply as apply_tags

if TYPE_CHECKING:
    from lvcrypt.store.transaction import VgTransaction

ACTIVATION_SKIP = "ACTIVATION_SKIP"


@dataclass(frozen=True)
class LvChange:
    add_tags: tuple[str, ...] = ()
    del_tags: tuple[str, ...] = ()
    permission: str | None = None  # "r" or "rw"
    alloc: str | None = None  # lvm2's policy word; `-C y` is contiguous, `-C n` inherit
    activation_skip: bool | None = None

    def __bool__(self) -> bool:
        return bool(self.add_tags or self.del_tags) or any(
            value is not None for value in (self.permission, self.alloc, self.activation_skip))


@dataclass(frozen=True)
class LvOutcome:
    """What one LV's change came to: lvm2 prints "changed" when anything applied, and fails the
    command (exit 5) for each refusal."""

    vg: str
    lv: str
    changed: bool
    refusals: tuple[str, ...]
    reload: bool  # the permission changed, or the kernel's differed from the metadata's: reload the tables
    notices: tuple[str, ...] = ()
    commit: bool = False  # the metadata changed (a refresh alone changes only the kernel's tables)


def _with_write(status: list[str]) -> list[str]:
    at = status.index("READ") + 1 if "READ" in status else 0
    return [*status[:at], "WRITE", *status[at:]]


def apply_to_lv(vg: VolumeGroup, lv: LogicalVolume, change: LvChange,
                thick_origins: frozenset[str] | None = None, kernel_read_only: bool | None = None) -> LvOutcome:
    """lvm2's _lvchange_properties_single on the model, in its order (permission, allocation, tags,
    activation skip).  `thick_origins` (`thick_origins(vg)`), when the caller changes many LVs of one VG:
    finding them reads every LV's references.  `kernel_read_only`: whether the LV's active device is
    read-only (None: not active); a permission already so in the metadata but not in the kernel is
    lvm2's refresh of the kernel's state, not a refusal."""
    problem = _lvm2_rule(vg, lv, change, thick_origins(vg) if thick_origins is None else thick_origins)
    if problem:
        return LvOutcome(vg.name, lv.name, False, problem, False)
    label = f"{vg.name}/{lv.name}"
    applied, written, refusals, notices = 0, 0, [], []
    reload = False
    if change.permission == "r":
        if "WRITE" not in lv.status and kernel_read_only is False:
            notices.append(f"Logical volume {label} is already read-only.  Refreshing kernel state.")
            applied, reload = applied + 1, True
        elif "WRITE" not in lv.status:
            refusals.append(f'Logical volume "{label}" is already read only.')
        else:
            lv.status = [flag for flag in lv.status if flag != "WRITE"]
            applied, written, reload = applied + 1, written + 1, True
    elif change.permission == "rw":
        if "WRITE" in lv.status and kernel_read_only:
            notices.append(f"Logical volume {label} is already writable.  Refreshing kernel state.")
            applied, reload = applied + 1, True
        elif "WRITE" in lv.status:
            refusals.append(f"Logical volume {label} is already writable.")
        else:
            lv.status = _with_write(lv.status)
            applied, written, reload = applied + 1, written + 1, True
    if change.alloc is not None:
        current = lv.allocation_policy or "inherit"
        if change.alloc == current:
            refusals.append(f"Allocation policy of logical volume {label} is already {current}.")
        else:
            lv.allocation_policy = None if change.alloc == "inherit" else change.alloc
            applied, written = applied + 1, written + 1
    if change.add_tags or change.del_tags:
        apply_tags(lv.tags, list(change.add_tags), list(change.del_tags))
        applied, written = applied + 1, written + 1
    if change.activation_skip is not None:  # lvm2 sets it again when it is already set, and commits
        flags = [flag for flag in lv.flags if flag != ACTIVATION_SKIP]
        lv.flags = [*flags, ACTIVATION_SKIP] if change.activation_skip else flags
        applied, written = applied + 1, written + 1
    return LvOutcome(vg.name, lv.name, applied > 0, tuple(refusals), reload, tuple(notices), written > 0)


def thick_origins(vg: VolumeGroup) -> frozenset[str]:
    """The LVs old-style snapshots name as their origin."""
    from lvcrypt.metadata.segtypes import all_references

    return frozenset(ref.target for ref in all_references(vg) if ref.role == "snapshot origin")


def _lvm2_rule(vg: VolumeGroup, lv: LogicalVolume, change: LvChange, origins: frozenset[str]) -> tuple[str, ...]:
    """lvm2's refusals of lvchange_properties before any change (command-lines.in's RULEs): the LV of an
    old-style snapshot has no name lvm2 finds, hidden and pvmove LVs are not changed, and an origin of
    old-style snapshots keeps its allocation policy."""
    label = f"{vg.name}/{lv.name}"
    if any(segment.type == "snapshot" for segment in lv.segments):
        return (f'Failed to find logical volume "{label}"',)
    if not lv.visible:
        return (f"Operation not permitted on hidden LV {label}.",)
    if "LOCKED" in lv.status or "PVMOVE" in lv.status:
        return (f"Command not permitted on LV {label}.",)
    if change.alloc is not None and lv.name in origins:
        return (f"Command on LV {label} uses options that are invalid with LV properties: lv_is_thick_origin .",)
    return ()


def change_lvs(devices: str | None, names: list[tuple[str, str]], change: LvChange) -> list[LvOutcome]:
    """`change` on each LV, one commit per VG when anything applied; LVs in the order named."""
    from lvcrypt.lv_checks import find_lv, refuse_unless_changeable
    from lvcrypt.store.transaction import VgTransaction

    by_vg: dict[str, dict[str, None]] = {}
    for vg_name, lv_name in names:
        by_vg.setdefault(vg_name, {})[lv_name] = None
    outcomes = []
    for vg_name, lv_names in by_vg.items():
        with VgTransaction(devices, vg_name) as tx:
            lvs = [find_lv(tx.vg, name) for name in lv_names]
            if change.permission is not None:  # hidden LVs get lvm2's own refusal below
                for lv in lvs:
                    if lv.visible:
                        refuse_unless_changeable(tx.vg, lv, "permission")
            origins = thick_origins(tx.vg)
            kernel = _kernel_read_only(tx.vg, lvs) if change.permission is not None else {}
            found = [apply_to_lv(tx.vg, lv, change, origins, kernel.get(lv.name)) for lv in lvs]
            if any(outcome.commit for outcome in found):
                tx.commit()
        outcomes += found
    return outcomes


def _kernel_read_only(vg: VolumeGroup, lvs: list[LogicalVolume]) -> dict[str, bool]:
    """Whether each active LV's device is read-only (sysfs `ro`), by LV name; inactive LVs are absent."""
    from lvcrypt.inuse import live_devices
    from lvcrypt.lv_names import dm_uuid

    live = live_devices()
    states = {}
    for lv in lvs:
        entry = live.get(dm_uuid(vg, lv))
        if entry is not None:
            try:
                states[lv.name] = (entry / "ro").read_text().strip() == "1"
            except OSError:
                continue  # gone meanwhile: not active
    return states


def reload_permission_changes(devices: str | None, outcomes: list[LvOutcome],
                              reload: Callable[["VgTransaction", str], None]) -> None:
    """Reload the tables of each LV whose permission changed, or whose kernel state is refreshed, and
    that the kernel has (`reload(tx, lv)`), one VG read for all of a VG's LVs."""
    from lvcrypt.inuse import live_devices
    from lvcrypt.lv_names import dm_uuid
    from lvcrypt.store.transaction import VgTransaction

    by_vg: dict[str, list[str]] = {}
    for outcome in outcomes:
        if outcome.reload:
            by_vg.setdefault(outcome.vg, []).append(outcome.lv)
    for vg_name, lv_names in by_vg.items():
        with VgTransaction(devices, vg_name, exclusive=False, allow_missing=True) as tx:
            live = live_devices()
            for lv_name in lv_names:
                if dm_uuid(tx.vg, tx.vg.lvs[lv_name]) in live:
                    reload(tx, lv_name)


@dataclass(frozen=True)
class VgChange:
    resizeable: bool | None = None
    add_tags: tuple[str, ...] = ()
    del_tags: tuple[str, ...] = ()
    alloc: str | None = None

    def __bool__(self) -> bool:
        return self.resizeable is not None or bool(self.add_tags or self.del_tags) or self.alloc is not None


def apply_to_vg(vg: VolumeGroup, change: VgChange) -> None:
    """lvm2's _vgchange_single on the model, in its order; the first refusal stops it (nothing is written)."""
    if change.resizeable is not None:
        resizeable = "RESIZEABLE" in vg.status
        if change.resizeable == resizeable:
            raise LvcryptError(f'Volume group "{vg.name}" is already {"" if resizeable else "not "}resizeable')
        vg.status = ["RESIZEABLE", *vg.status] if change.resizeable else \
            [flag for flag in vg.status if flag != "RESIZEABLE"]
    if change.add_tags or change.del_tags:
        vg.tags[:] = [tag for tag in vg.tags if tag not in change.del_tags]
        apply_tags(vg.tags, list(change.add_tags), [])
    if change.alloc is not None:
        if change.alloc == "inherit":
            raise LvcryptError("Volume Group allocation policy cannot inherit from anything")
        current = vg.allocation_policy or "normal"
        if change.alloc == current:
            raise LvcryptError(f"Volume group allocation policy is already {current}")
        vg.allocation_policy = None if change.alloc == "normal" else change.alloc


def change_vgs(devices: str | None, names: list[str], change: VgChange, done: Callable[[str], None]) -> None:
    from lvcrypt.store.transaction import VgTransaction

    for vg_name in names:
        with VgTransaction(devices, vg_name) as tx:
            apply_to_vg(tx.vg, change)
            tx.commit()
        done(vg_name)


@dataclass(frozen=True)
class PvChange:
    add_tags: tuple[str, ...] = ()
    del_tags: tuple[str, ...] = ()
    allocatable: bool | None = None


@dataclass(frozen=True)
class PvOutcome:
    path: str
    changed: bool
    warnings: tuple[str, ...]
    error: str | None  # lvm2's refusal for this PV: the command then exits 5


def _pv_outcome(vg: VolumeGroup | None, pv_id: str | None, path: str, change: PvChange) -> PvOutcome:
    """lvm2's _pvchange_single on the model: tags (a PV of no VG has nowhere to keep them), then -x."""
    member = vg.pv_by_id(pv_id) if vg is not None and pv_id is not None else None
    if member is None:
        if change.add_tags or change.del_tags:
            return PvOutcome(path, False, (), f"Can't change tag on Physical Volume {path} not in volume group")
        return PvOutcome(path, False, (), f"Allocatability not supported by orphan lvm2 format PV {path}")
    changed, warnings = False, []
    if change.allocatable is not None:
        if change.allocatable == member.allocatable:
            warnings.append(f'Physical volume "{path}" is already {"" if member.allocatable else "un"}allocatable.')
        else:
            member.status = ["ALLOCATABLE", *member.status] if change.allocatable else \
                [flag for flag in member.status if flag != "ALLOCATABLE"]
            changed = True
    if change.add_tags or change.del_tags:
        apply_tags(member.tags, list(change.add_tags), list(change.del_tags))
        changed = True
    return PvOutcome(path, changed, tuple(warnings), None)


def change_pvs(devices: str | None, paths: list[str], change: PvChange,
               each: Callable[[PvOutcome], None]) -> list[PvOutcome]:
    """`change` on each PV in turn, one commit per PV that changed; `each` reports it as it is done."""
    from lvcrypt.store.commit import load_vg, scan
    from lvcrypt.store.devices import devices_with
    from lvcrypt.store.transaction import VgTransaction

    found = scan(devices_with(devices, paths))
    owners = {}
    for name in found.vg_names():
        try:
            owners.update({pv.id: name for pv in load_vg(found, name).vg.pvs.values()})
        except LvcryptError:
            continue  # an unreadable VG: its PVs are refused below, as PVs of no VG
    outcomes = []
    for path in paths:
        pv = found.pv_at(path)
        if pv is None:
            raise LvcryptError(f"Failed to find physical volume \"{path}\".")
        vg_name = owners.get(pv.uuid)
        if vg_name is None:
            outcome = _pv_outcome(None, None, path, change)
        else:
            with VgTransaction(devices, vg_name) as tx:
                outcome = _pv_outcome(tx.vg, pv.uuid, path, change)
                if outcome.changed:
                    tx.commit()
        each(outcome)
        outcomes.append(outcome)
    return outcomes
