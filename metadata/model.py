"""Typed model of one volume group, as lvm2's metadata describes it.

Each object keeps the `Section` it was read from (`raw`): keys, sections and
segment types lvcrypt does not know survive a read-modify-write untouched and
in place (see convert.py).  Sizes are in 512-byte sectors and extents, as in
the text format.
"""

from __future__ import annotations

from typing import ClassVar

from lvcrypt.metadata.tree import Section
from lvcrypt.records import dataclass, field

SECTOR = 512


@dataclass(frozen=True)
class Area:
    """`"pv0", 12` in an areas/stripes array: a PV key and the first extent on it."""

    pv: str
    extent: int


@dataclass
class Segment:
    """A run of logical extents [start_extent, start_extent + extent_count)."""

    start_extent: int
    extent_count: int
    type: str
    raw: Section = field(default_factory=Section, repr=False, compare=False)

    # The array key that lists this type's areas, if any (stripes for striped).
    areas_key: ClassVar[str | None] = None

    def pv_areas(self) -> list[tuple[Area, int]]:
        """(area, extent count on that PV) for every PV range this segment occupies."""
        return []


@dataclass
class StripedSegment(Segment):
    """lvm2's "striped" type; linear is a striped segment with one stripe."""

    stripe_count: int = 1
    stripe_size: int | None = None
    stripes: list[Area] = field(default_factory=list)

    areas_key: ClassVar[str | None] = "stripes"

    def pv_areas(self) -> list[tuple[Area, int]]:
        per_stripe = self.extent_count // max(self.stripe_count, 1)
        return [(area, per_stripe) for area in self.stripes]


@dataclass
class CryptSegment(Segment):
    """A linear area whose data is encrypted with the key of `crypto_store`.

    `iv_offset` (512-byte sectors) is added to the LV-relative sector number to
    form the IV; `sector_size` is dm-crypt's encryption unit in bytes;
    `data_offset` (512-byte sectors) skips the start of the first area, for
    imported LUKS volumes whose payload does not start on an extent boundary.
    A striped encrypted LV has several areas and a `stripe_size` (sectors):
    one crypt mapping over a striped layer, so IVs still follow the LV.
    """

    crypto_store: str = ""
    areas: list[Area] = field(default_factory=list)
    iv_offset: int | None = None
    sector_size: int | None = None
    data_offset: int | None = None
    stripe_size: int | None = None

    areas_key: ClassVar[str | None] = "areas"

    def pv_areas(self) -> list[tuple[Area, int]]:
        per_area = self.extent_count // max(len(self.areas), 1)
        return [(area, per_area) for area in self.areas]


@dataclass
class KeystoreSegment(Segment):
    """How the key of crypt segments is obtained; `areas` hold the handler's data (a LUKS header)."""

    handler: str = ""
    cipher: str | None = None
    key_size: int | None = None
    key_hash: str | None = None
    areas: list[Area] = field(default_factory=list)

    areas_key: ClassVar[str | None] = "areas"

    def pv_areas(self) -> list[tuple[Area, int]]:
        return [(area, self.extent_count) for area in self.areas]


@dataclass
class UnknownSegment(Segment):
    """A segment lvcrypt does not change (thin, raid, cache..., or striped over other LVs): kept verbatim in `raw`.

    `ranges` are the PV ranges its area arrays name (metadata/segtypes.py finds
    them when the text is read, knowing the VG's PV keys), so allocation never
    reuses them.
    """

    ranges: list[tuple[Area, int]] = field(default_factory=list)

    def pv_areas(self) -> list[tuple[Area, int]]:
        return list(self.ranges)


@dataclass
class PhysicalVolume:
    key: str
    id: str
    device: str | None = None
    status: list[str] = field(default_factory=lambda: ["ALLOCATABLE"])
    flags: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    dev_size: int = 0
    pe_start: int = 2048
    pe_count: int = 0
    raw: Section = field(default_factory=Section, repr=False, compare=False)
    # Extents the device can really hold when it is smaller than the PV (a truncated image); set by
    # the store when it reads the VG, never written to metadata. None: all pe_count extents.
    usable_extents: int | None = field(default=None, repr=False, compare=False)

    @property
    def allocatable(self) -> bool:
        return "ALLOCATABLE" in self.status


@dataclass
class LogicalVolume:
    name: str
    id: str
    status: list[str] = field(default_factory=lambda: ["READ", "WRITE", "VISIBLE"])
    flags: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    creation_time: int | None = None
    creation_host: str | None = None
    segments: list[Segment] = field(default_factory=list)
    raw: Section = field(default_factory=Section, repr=False, compare=False)
    # The LV's lease in a shared VG, as lvmlockd's init_lv returned it (sanlock: "1.0.0:<offset>").
    lock_args: str | None = None
    # lvm2's policy for the LV's next extents (lvcreate/lvchange --alloc); None is lvm2's "inherit" (the VG's).
    allocation_policy: str | None = None

    @property
    def visible(self) -> bool:
        return "VISIBLE" in self.status

    @property
    def extent_count(self) -> int:
        return sum([segment.extent_count for segment in self.segments])  # a list: no generator for one segment

    @property
    def is_keystore(self) -> bool:
        return any(isinstance(segment, KeystoreSegment) for segment in self.segments)

    @property
    def is_crypt(self) -> bool:
        return any(isinstance(segment, CryptSegment) for segment in self.segments)

    def keystores(self) -> list[str]:
        """Names of the keystores this LV's crypt segments use, in order, without repeats."""
        names: list[str] = []
        for segment in self.segments:
            if isinstance(segment, CryptSegment) and segment.crypto_store not in names:
                names.append(segment.crypto_store)
        return names


@dataclass
class VolumeGroup:
    name: str
    id: str
    seqno: int = 1
    format: str = "lvm2"
    status: list[str] = field(default_factory=lambda: ["RESIZEABLE", "READ", "WRITE"])
    flags: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    extent_size: int = 8192
    max_lv: int = 0
    max_pv: int = 0
    metadata_copies: int = 0
    pvs: dict[str, PhysicalVolume] = field(default_factory=dict)
    lvs: dict[str, LogicalVolume] = field(default_factory=dict)
    raw: Section = field(default_factory=Section, repr=False, compare=False)
    # Top-level keys of the metadata text (contents, version, description, creation_host, ...).
    header: Section = field(default_factory=Section, repr=False, compare=False)
    # A shared VG's lock manager ("sanlock", "dlm") and its arguments ("1.0.0:lvmlock"); None: a local VG.
    lock_type: str | None = None
    lock_args: str | None = None
    # vgcreate/vgchange --alloc; None is lvm2's default, "normal", which it does not write.
    allocation_policy: str | None = None

    @property
    def shared(self) -> bool:
        """lvm2 counts "none" (left by `vgchange --lock-type none`) as a local VG."""
        return self.lock_type not in (None, "", "none")

    @property
    def extent_bytes(self) -> int:
        return self.extent_size * SECTOR

    def pv_by_id(self, pv_id: str) -> PhysicalVolume | None:
        return next((pv for pv in self.pvs.values() if pv.id == pv_id), None)

    def users_of_keystore(self, keystore: str) -> list[LogicalVolume]:
        return [lv for lv in self.lvs.values() if keystore in lv.keystores()]

    def used_spans(self, pv_key: str | None = None) -> dict[str, list[tuple[int, int]]]:
        """Extents in use per PV as merged [start, end) spans in extent order, each extent once: an
        imported LUKS volume's keystore and first crypt segment share the extent that holds both the
        header's end and the payload.  The one account of used space that free space derives from."""
        ranges: dict[str, list[tuple[int, int]]] = {}
        for lv in self.lvs.values():
            for segment in lv.segments:
                for area, count in segment.pv_areas():
                    if count and (pv_key is None or area.pv == pv_key):
                        ranges.setdefault(area.pv, []).append((area.extent, area.extent + count))
        merged: dict[str, list[tuple[int, int]]] = {}
        for key, spans in ranges.items():
            out: list[tuple[int, int]] = []
            for start, stop in sorted(spans):
                if out and start <= out[-1][1]:
                    out[-1] = (out[-1][0], max(out[-1][1], stop))
                else:
                    out.append((start, stop))
            merged[key] = out
        return merged

    def used_extents(self, pv_key: str | None = None) -> int:
        """Extents in use on one PV (or all), each counted once."""
        return sum(stop - start for spans in self.used_spans(pv_key).values() for start, stop in spans)

    def extent_count(self, pv_key: str | None = None) -> int:
        """Every extent of one PV (or of every PV: lvm2's vg->extent_count), used or not."""
        pvs = [self.pvs[pv_key]] if pv_key is not None else list(self.pvs.values())
        return sum(pv.pe_count for pv in pvs)

    def free_extents(self, pv_key: str | None = None) -> int:
        """lvm2's free count of one PV (or the VG): its extents less the used ones, allocatable or not."""
        return self.extent_count(pv_key) - self.used_extents(pv_key)
