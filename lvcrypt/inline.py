"""Inline-encryption (blk-crypto) capabilities through an LV's table stack.

A block device with inline-encryption hardware describes it in sysfs under
`queue/crypto/` (block/blk-crypto-sysfs.c): `modes/<mode>` files, one per
supported mode, each holding `0x<mask>` where the mask is the OR of the
supported data unit sizes (0x1200 = 512 and 4096); `max_dun_bits`;
`num_keyslots`; and since Linux 6.15 `raw_keys` / `hw_wrapped_keys`, present
only when that key type is supported (older kernels only know raw keys).

Device-mapper builds a stacked device's profile as the intersection over
every underlying device of its table (dm-table.c): linear and striped pass
capabilities through, crypt does not, and one device without a profile
leaves the whole table without one.  A reload that would expose fewer
modes, data unit sizes, DUN bits or key types than the live device is
refused by the kernel; `reload_drops` tells that in advance, naming the
underlying device that lacks what.  `num_keyslots` is reported as the
smallest slot count underneath (a dm device has no slots of its own) but is
not a capability the kernel compares.

PVs that are image files have no queue and hence no capabilities.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Callable, Iterator

from lvcrypt.activate.tables import CryptTarget, DeviceRef, LayerDevice, LinearTarget, PvDevice, Table
from lvcrypt.inuse import live_devices
from lvcrypt.records import dataclass, field

KEY_TYPE_FILES = {"raw_keys": "raw", "hw_wrapped_keys": "hw_wrapped"}


@dataclass(frozen=True)
class CryptoCaps:
    """What a device offers: mode name -> mask of data unit sizes, DUN width, key slots, key types."""

    modes: dict[str, int]
    max_dun_bits: int
    num_keyslots: int
    key_types: frozenset[str] = field(default_factory=lambda: frozenset({"raw"}))

    def describe(self) -> str:
        """`AES-256-XTS:512,4096 dun=64 slots=32` (key types only when not just raw)."""
        modes = " ".join(f"{name}:{','.join(str(size) for size in unit_sizes(mask))}"
                         for name, mask in sorted(self.modes.items()))
        text = f"{modes} dun={self.max_dun_bits} slots={self.num_keyslots}"
        if self.key_types != frozenset({"raw"}):
            text += f" keys={','.join(sorted(self.key_types))}"
        return text


def unit_sizes(mask: int) -> list[int]:
    """The data unit sizes a mode mask stands for (each size is its own bit)."""
    return [1 << bit for bit in range(mask.bit_length()) if mask >> bit & 1]


def intersect(first: CryptoCaps | None, second: CryptoCaps | None) -> CryptoCaps | None:
    """What both offer (None when either offers nothing or no mode/data unit size is common)."""
    if first is None or second is None:
        return None
    modes = {name: first.modes[name] & mask for name, mask in second.modes.items()
             if name in first.modes and first.modes[name] & mask}
    key_types = first.key_types & second.key_types
    if not modes or not key_types:
        return None
    return CryptoCaps(modes, min(first.max_dun_bits, second.max_dun_bits),
                      min(first.num_keyslots, second.num_keyslots), key_types)


def missing(exposed: CryptoCaps, offered: CryptoCaps | None) -> list[str]:
    """The parts of `exposed` that `offered` lacks, as a reader would name them (empty: nothing lacks)."""
    if offered is None:
        return ["inline encryption"]
    lacks = []
    for name, mask in sorted(exposed.modes.items()):
        sizes = unit_sizes(mask & ~offered.modes.get(name, 0))
        if name not in offered.modes:
            lacks.append(f"mode {name}")
        elif sizes:
            lacks.append(f"{name} data unit size {','.join(str(size) for size in sizes)}")
    if offered.max_dun_bits < exposed.max_dun_bits:
        lacks.append(f"{exposed.max_dun_bits}-bit DUNs (has {offered.max_dun_bits})")
    for key_type in sorted(exposed.key_types - offered.key_types):
        lacks.append(f"{key_type} keys")
    return lacks


def _read_int(path: Path) -> int:
    return int(path.read_text().strip(), 0)


def read_caps(queue: Path) -> CryptoCaps | None:
    """A device's capabilities from its sysfs `queue` directory (None without `crypto/`).

    A crypto directory the kernel would never write (unreadable numbers) counts
    as no capability rather than failing a report.
    """
    crypto = queue / "crypto"
    if not crypto.is_dir():
        return None
    try:
        modes = {entry.name: _read_int(entry) for entry in sorted((crypto / "modes").iterdir()) if entry.is_file()}
        key_types = frozenset(kind for name, kind in KEY_TYPE_FILES.items() if (crypto / name).exists())
        caps = CryptoCaps({name: mask for name, mask in modes.items() if mask}, _read_int(crypto / "max_dun_bits"),
                          _read_int(crypto / "num_keyslots"), key_types or frozenset({"raw"}))
    except (OSError, ValueError):
        return None
    return caps if caps.modes else None


def queue_dir(device: str, sysfs_root: str = "/sys") -> Path | None:
    """The sysfs `queue` directory of a block device node (a partition's is its disk's); None for files."""
    try:
        info = os.stat(device)
    except OSError:
        return None
    if not stat.S_ISBLK(info.st_mode):
        return None
    entry = Path(sysfs_root) / "dev" / "block" / f"{os.major(info.st_rdev)}:{os.minor(info.st_rdev)}"
    if not entry.exists():
        return None
    entry = entry.resolve()
    return entry.parent / "queue" if (entry / "partition").exists() else entry / "queue"


@dataclass
class StackCaps:
    """Capabilities of every table of one stack, by dm name, computed from the devices underneath."""

    sysfs_root: str = "/sys"
    by_table: dict[str, CryptoCaps | None] = field(default_factory=dict)
    by_device: dict[str, CryptoCaps | None] = field(default_factory=dict)

    def device(self, ref: DeviceRef) -> CryptoCaps | None:
        if isinstance(ref, LayerDevice):
            return self.by_table.get(ref.name)
        if ref.path not in self.by_device:
            queue = queue_dir(ref.path, self.sysfs_root)
            self.by_device[ref.path] = read_caps(queue) if queue is not None else None
        return self.by_device[ref.path]

    def table(self, table: Table) -> CryptoCaps | None:
        """A table's pass-through: the intersection over its targets' devices; a crypt target passes nothing."""
        result: CryptoCaps | None = None
        for index, ref in enumerate(_devices(table)):
            caps = None if ref is None else self.device(ref)
            result = caps if index == 0 else intersect(result, caps)
            if result is None:
                break
        return result

    def compute(self, top: Table) -> "StackCaps":
        for table in top.walk():
            self.by_table[table.name] = self.table(table)
        return self


def stack_caps(top: Table, sysfs_root: str = "/sys") -> StackCaps:
    return StackCaps(sysfs_root).compute(top)


def _devices(table: Table) -> Iterator[DeviceRef | None]:
    """Every device under a table's targets; None for a target that passes nothing (crypt)."""
    for target in table.targets:
        if isinstance(target, CryptTarget):
            yield None
        elif isinstance(target, LinearTarget):
            yield target.device
        else:
            yield from (device for device, _ in target.stripes)


def is_active(top: Table, sysfs_root: str = "/sys") -> bool:
    """Whether the kernel has the LV's top device (activated by the kernel backend) right now."""
    return top.uuid in live_devices(sysfs_root)


@dataclass(frozen=True)
class Drop:
    """One live device of the stack whose reload would lose capabilities, and which device lacks what."""

    table: str
    lacks: list[str]
    culprits: list[tuple[str, list[str]]]

    def message(self) -> str:
        who = "; ".join(f"{device} lacks {', '.join(lacks)}" for device, lacks in self.culprits) or \
            "a crypt target passes nothing"
        return f"the new table of {self.table} would drop inline-encryption {', '.join(self.lacks)} ({who})"


def reload_drops(old: Table, new: Table, sysfs_root: str = "/sys") -> list[Drop]:
    """What reloading `new` over the live devices of `old` would drop, as the kernel would judge it.

    Reloads are the tables of `new` that `old` has too (same uuid) and that
    are live (sysfs has a dm device with that uuid); layers only `new` has
    are created, not reloaded.  What a live device exposes is read from its
    own `queue/crypto`: the profile the kernel compares against, which may
    differ from what `old` computes to today (devices change).
    """
    live = live_devices(sysfs_root)
    reloaded = {table.uuid for table in old.walk()} & set(live)
    after = stack_caps(new, sysfs_root)
    drops = []
    for table in new.walk():
        if table.uuid not in reloaded:
            continue
        exposed = read_caps(live[table.uuid] / "queue")
        if exposed is None:
            continue
        lacks = missing(exposed, after.by_table.get(table.name))
        if not lacks:
            continue
        culprits = []
        for ref in dict.fromkeys(_devices(table)):
            if ref is None:
                continue
            device_lacks = missing(exposed, after.device(ref))
            if device_lacks:
                culprits.append((ref.path if isinstance(ref, PvDevice) else f"/dev/mapper/{ref.name}", device_lacks))
        drops.append(Drop(table.name, lacks, culprits))
    return drops


def comment_lines(caps: StackCaps) -> Callable[[Table], list[str]]:
    """`# inline crypto: ...` under each table's heading in `tables.render`."""
    def comment(table: Table) -> list[str]:
        value = caps.by_table.get(table.name)
        return [f"# inline crypto: {value.describe() if value else 'none'}"]
    return comment
