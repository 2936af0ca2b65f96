"""LV -> stack of device-mapper tables, the one description every backend shares.

The kernel backend loads these tables, the userspace backend interprets them,
and `lvcrypt table` prints them in dmsetup's syntax.  Building is a pure
function of the VG model, the PV paths and each keystore's `DataMapping`; key
material only enters when a table is rendered (`KeyFormat`).

Layout rules (lvm2's naming, dm-crypt's parameters):
- the LV is the device `vg-lv` (dashes in names doubled, as lvm2 does) with
  uuid `LVM-<vg uuid><lv uuid>` (dashes removed);
- each segment's registry entry (metadata/segtypes.py) says how it maps: data
  straight on PV areas (linear or striped) or dm-crypt over such areas, or
  that lvcrypt cannot activate it; this module adds devices, keys and layers;
- linear and striped segments map straight onto their PVs;
- a crypt segment with one area is a crypt target straight on its PV; with
  several areas it is a crypt target over a hidden striped layer
  `vg-lv-cryptN` (N = segment index), uuid suffix `-cryptN`;
- IVs count 512-byte sectors from the start of the LV: each crypt target's
  iv_offset is its start in the LV plus the segment's (or handler's) iv_offset,
  so segments can move between PVs without re-encryption.
"""

from __future__ import annotations

from enum import Enum
from typing import Callable, Iterator, Mapping, Union

from lvcrypt.errors import LvcryptError
from lvcrypt.handlers.base import DataMapping
from lvcrypt.lv_names import dm_name, dm_uuid, key_description
from lvcrypt.metadata.model import Area, VolumeGroup
from lvcrypt.metadata.segtype_handler import AreaMap, CryptMap
from lvcrypt.metadata.segtypes import handler_of
from lvcrypt.records import dataclass, field

SECTOR = 512


@dataclass(frozen=True)
class PvDevice:
    """A PV's block device or image file."""

    path: str


@dataclass(frozen=True)
class LayerDevice:
    """Another table of the same stack, by dm name."""

    name: str


DeviceRef = Union[PvDevice, LayerDevice]


@dataclass(frozen=True)
class KeyRef:
    """Which key a crypt target uses: the keystore's volume key, known in the kernel keyring by `description`."""

    keystore: str
    key_bytes: int
    description: str


@dataclass(frozen=True)
class LinearTarget:
    start: int
    length: int
    device: DeviceRef
    offset: int

    type = "linear"


@dataclass(frozen=True)
class StripedTarget:
    start: int
    length: int
    chunk: int  # sectors
    stripes: tuple[tuple[DeviceRef, int], ...]

    type = "striped"


@dataclass(frozen=True)
class CryptTarget:
    start: int
    length: int
    cipher: str
    key: KeyRef
    iv_offset: int
    device: DeviceRef
    offset: int
    sector_size: int = SECTOR

    type = "crypt"

    def options(self) -> list[str]:
        return [f"sector_size:{self.sector_size}"] if self.sector_size != SECTOR else []


Target = Union[LinearTarget, StripedTarget, CryptTarget]


@dataclass
class Table:
    """One dm device: its name, uuid, targets, and the layers it sits on (built first)."""

    name: str
    uuid: str
    targets: list[Target]
    layers: list["Table"] = field(default_factory=list)
    read_only: bool = False  # a read-only LV's devices refuse writes in the kernel, as lvm2 maps them

    @property
    def size(self) -> int:
        """Length in 512-byte sectors."""
        return sum(target.length for target in self.targets)

    @property
    def holds_keys(self) -> bool:
        return any(isinstance(target, CryptTarget) for target in self.targets)

    def walk(self) -> Iterator["Table"]:
        """Every table of the stack, lowest layers first (the order to create them in)."""
        for layer in self.layers:
            yield from layer.walk()
        yield self


class KeyFormat(Enum):
    """How a crypt target's key is written: masked (dry run), as hex (userspace), or as a keyring reference."""

    MASKED = "masked"
    HEX = "hex"
    KEYRING = "keyring"


class TableError(LvcryptError):
    """The LV cannot be expressed as dm tables (unknown segment type, misaligned crypt segment)."""


def build_table(vg: VolumeGroup, lv_name: str, pv_path: Callable[[str], str],
                mapping_of: Callable[[str], DataMapping]) -> Table:
    """The table stack of one LV.

    `pv_path(key)` gives the device or image of PV `pv0`...; `mapping_of(keystore)`
    gives the keystore's dm-crypt parameters (from its handler).
    """
    lv = vg.lvs.get(lv_name)
    if lv is None:
        raise TableError(f"logical volume {vg.name}/{lv_name} does not exist")
    extent = vg.extent_size
    top = Table(dm_name(vg.name, lv.name), dm_uuid(vg, lv), [])

    def place(pv_key: str, pe: int) -> tuple[PvDevice, int]:
        pv = vg.pvs[pv_key]
        return PvDevice(pv_path(pv_key)), pv.pe_start + pe * extent

    def stripes(areas: tuple[Area, ...]) -> tuple[tuple[DeviceRef, int], ...]:
        return tuple(place(a.pv, a.extent) for a in areas)

    start = 0
    for number, segment in enumerate(lv.segments, 1):
        length = segment.extent_count * extent
        mapped = handler_of(segment).dm_map(segment)
        if isinstance(mapped, AreaMap):
            if not mapped.areas:
                continue  # a keystore kept only in metadata (the RFC's zero-extent form)
            if len(mapped.areas) == 1:
                top.targets.append(LinearTarget(start, length, *place(mapped.areas[0].pv, mapped.areas[0].extent)))
            else:
                top.targets.append(StripedTarget(start, length, mapped.chunk or 128, stripes(mapped.areas)))
        elif isinstance(mapped, CryptMap):
            mapping = mapping_of(mapped.keystore)
            sector_size = mapped.sector_size or mapping.sector_size
            skip = mapped.skip
            length -= skip
            if length <= 0 or length % (sector_size // SECTOR) or start % (sector_size // SECTOR):
                raise TableError(f"logical volume {lv.name}: segment{number} is not aligned to its "
                                 f"{sector_size}-byte encryption sectors")
            data = mapped.data.areas
            if len(data) == 1:
                device, offset = place(data[0].pv, data[0].extent)
            else:
                layer_name = f"crypt{number - 1}"
                per_stripe = segment.extent_count // len(data)
                layer = Table(dm_name(vg.name, lv.name, layer_name), dm_uuid(vg, lv, layer_name),
                              [StripedTarget(0, per_stripe * len(data) * extent, mapped.data.chunk or 128,
                                             stripes(data))])
                top.layers.append(layer)
                device, offset = LayerDevice(layer.name), 0
            iv_base = mapped.iv_offset if mapped.iv_offset is not None else mapping.iv_offset
            key = KeyRef(mapped.keystore, mapping.key_size // 8, key_description(lv, mapped.keystore))
            top.targets.append(CryptTarget(start, length, mapping.cipher, key, start + iv_base, device,
                                           offset + skip, sector_size))
        else:
            raise TableError(f"logical volume {lv.name}: segment{number} has type '{segment.type}', "
                             "which lvcrypt cannot activate")
        start += length
    if not top.targets:
        raise TableError(f"logical volume {lv.name} has no data to map")
    return top


def _device_text(ref: DeviceRef, resolve: Callable[[DeviceRef], str] | None) -> str:
    if resolve is not None:
        return resolve(ref)
    return ref.path if isinstance(ref, PvDevice) else f"/dev/mapper/{ref.name}"


def target_params(target: Target, keys: KeyFormat, volume_keys: Mapping[str, bytes | bytearray] | None = None,
                  resolve: Callable[[DeviceRef], str] | None = None) -> str:
    """The parameter string of one target in dmsetup/kernel syntax."""
    if isinstance(target, LinearTarget):
        return f"{_device_text(target.device, resolve)} {target.offset}"
    if isinstance(target, StripedTarget):
        stripes = " ".join(f"{_device_text(device, resolve)} {offset}" for device, offset in target.stripes)
        return f"{len(target.stripes)} {target.chunk} {stripes}"
    if keys is KeyFormat.HEX:
        if volume_keys is None or target.key.keystore not in volume_keys:
            raise TableError(f"the volume key of {target.key.keystore} is not unlocked")
        key = bytes(volume_keys[target.key.keystore]).hex()
    elif keys is KeyFormat.KEYRING:
        key = f":{target.key.key_bytes}:logon:{target.key.description}"
    else:
        key = "0" * (2 * target.key.key_bytes)
    options = target.options()
    tail = f" {len(options)} {' '.join(options)}" if options else ""
    return (f"{target.cipher} {key} {target.iv_offset} {_device_text(target.device, resolve)} "
            f"{target.offset}{tail}")


def render(table: Table, keys: KeyFormat = KeyFormat.MASKED,
           volume_keys: Mapping[str, bytes | bytearray] | None = None,
           comments: Callable[[Table], list[str]] | None = None) -> str:
    """`dmsetup table`-style text of a whole stack, lowest layer first, each headed by its name.

    `comments(table)` adds `#` lines under a heading (inline-crypto capabilities).
    """
    out = []
    for device in table.walk():
        out.append(f"# {device.name} (uuid {device.uuid})")
        if comments is not None:
            out.extend(comments(device))
        for target in device.targets:
            out.append(f"{target.start} {target.length} {target.type} "
                       f"{target_params(target, keys, volume_keys)}")
    return "\n".join(out) + "\n"
