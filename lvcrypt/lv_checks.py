"""The checks a command makes on the LV it names: that it exists, that its segment type allows the
action, that nothing uses it.

They sit apart from `lvops` (the model changes, with the allocator) because the
data commands (`read`, `write`, `table`, `mount`) ask them and change nothing:
their start-up loads this, not the allocator (benchmarks/startup.py).
"""

from __future__ import annotations

from lvcrypt.errors import LvcryptError
from lvcrypt.metadata.model import LogicalVolume, VolumeGroup
from lvcrypt.metadata.segtypes import change_problem


def find_lv(vg: VolumeGroup, name: str, missing: str | None = None) -> LogicalVolume:
    """The LV called `name`; lvm2's refusal when there is none (`missing`: the command's own wording,
    as lvextend, lvreduce and lvrename word it differently from the rest)."""
    lv = vg.lvs.get(name)
    if lv is None:
        raise LvcryptError(missing or f"Failed to find logical volume \"{vg.name}/{name}\"")
    return lv


# Actions that take extents or a mapping away from whoever uses the LV right now.
IN_USE_ACTIONS = ("rename", "remove", "reduce", "convert", "data-write")


def refuse_unless_changeable(vg: VolumeGroup, lv: LogicalVolume, action: str) -> None:
    """The segment-type registry's verdict (metadata/segtypes.py) as an error: one place for every command."""
    problem = change_problem(vg, lv, action)
    if problem:
        raise LvcryptError(problem)


def refuse_change(vg: VolumeGroup, lv: LogicalVolume, action: str, sysfs_root: str = "/sys") -> None:
    """What every command checks before changing an LV: the registry, then (for actions that take
    something away from a user of the LV) whether it is in use (lvcrypt/inuse.py)."""
    refuse_unless_changeable(vg, lv, action)
    if action == "data-write" and "WRITE" not in lv.status:  # lvm2 maps it read-only: writes fail there
        raise LvcryptError(f"cannot write to {vg.name}/{lv.name}: the logical volume is read-only")
    if action in IN_USE_ACTIONS:
        from lvcrypt.inuse import in_use_problem

        problem = in_use_problem(vg, lv, sysfs_root)
        if problem:
            verb = "write to" if action == "data-write" else action
            raise LvcryptError(f"cannot {verb} {vg.name}/{lv.name}: {problem}")
