"""The record of an in-place conversion or pvmove in progress, kept in the VG metadata itself.

The record lives in plain keys that lvm2 2.03 reads past and lvcrypt keeps
through every read-modify-write: on the LV being converted
(`lvcrypt_conversion = ["encrypt", "", "cryptostore1"]`: action, source form,
target form, "" meaning plain; a fourth item "abort" while `--abort` takes the
done part back, source and target then swapped), on the VG for a pvmove (`lvcrypt_pvmove =
["pv0", "pv1"]`: the source PV then the destinations, `lvcrypt_pvmove_lv` when
limited to one LV), and the wipes still owed (`lvcrypt_wipes_owed = ["pv0", 12,
4, ...]`: PV, first extent, extent count) on the LV.  No sub-section: lvm2
reads every sub-section of an LV as a segment.  Since each chunk's commit
writes the record with the new mapping, a resume finds exactly where the last
commit left off; and the allocator keeps owed extents out of reach until they
are wiped.
"""

from __future__ import annotations


from lvcrypt.errors import LvcryptError
from lvcrypt.metadata.model import Area, LogicalVolume, VolumeGroup
from lvcrypt.records import dataclass, field

CONVERSION_KEY = "lvcrypt_conversion"
WIPES_KEY = "lvcrypt_wipes_owed"
PVMOVE_KEY = "lvcrypt_pvmove"
PVMOVE_LV_KEY = "lvcrypt_pvmove_lv"
ACTIONS = ("encrypt", "decrypt", "reencrypt")


@dataclass
class Conversion:
    """`source` and `target` are segment forms: a keystore name, or None for plain data."""

    action: str
    source: str | None
    target: str | None
    wipes: list[tuple[Area, int]] = field(default_factory=list)
    aborting: bool = False

    def aborted(self) -> "Conversion":
        """The same conversion run backwards: what is done goes back to the original form."""
        return Conversion(self.action, self.target, self.source, self.wipes, not self.aborting)

    @property
    def wipes_freed(self) -> bool:
        """Freed extents hold plaintext (the target is encrypted) or data under a key being replaced."""
        return self.target is not None


@dataclass(frozen=True)
class PvMove:
    source: str
    destinations: tuple[str, ...]
    lv: str | None = None


def _form(text: object) -> str | None:
    if not isinstance(text, str):
        raise LvcryptError(f"damaged {CONVERSION_KEY} record: {text!r} is not a keystore name")
    return text or None


def _wipes(raw: object) -> list[tuple[Area, int]]:
    items = list(raw) if isinstance(raw, list) else []
    if len(items) % 3:
        raise LvcryptError(f"damaged {WIPES_KEY} record: not (PV, extent, count) triples")
    out = []
    for pv, extent, count in zip(items[0::3], items[1::3], items[2::3]):
        if not (isinstance(pv, str) and isinstance(extent, int) and isinstance(count, int)):
            raise LvcryptError(f"damaged {WIPES_KEY} record: {pv!r}, {extent!r}, {count!r}")
        out.append((Area(pv, extent), count))
    return out


def read_conversion(lv: LogicalVolume) -> Conversion | None:
    """The conversion in progress on `lv`, if any (also one whose only business left is owed wipes)."""
    raw = lv.raw.get(CONVERSION_KEY)
    if raw is None:
        return None
    if not (isinstance(raw, list) and len(raw) in (3, 4) and raw[0] in ACTIONS and raw[3:] in ([], ["abort"])):
        raise LvcryptError(f"logical volume {lv.name}: damaged {CONVERSION_KEY} record {raw!r}")
    return Conversion(str(raw[0]), _form(raw[1]), _form(raw[2]), _wipes(lv.raw.get(WIPES_KEY)), len(raw) == 4)


def write_conversion(lv: LogicalVolume, record: Conversion | None) -> None:
    """Store `record` in the LV's metadata keys (None: the conversion is over and nothing is owed)."""
    for key in (CONVERSION_KEY, WIPES_KEY):
        lv.raw.pop(key, None)
    if record is None:
        return
    lv.raw[CONVERSION_KEY] = [record.action, record.source or "", record.target or ""] + \
        (["abort"] if record.aborting else [])
    if record.wipes:
        lv.raw[WIPES_KEY] = [item for area, count in record.wipes for item in (area.pv, area.extent, count)]


def read_pvmove(vg: VolumeGroup) -> PvMove | None:
    raw = vg.raw.get(PVMOVE_KEY)
    if raw is None:
        return None
    if not (isinstance(raw, list) and raw and all(isinstance(item, str) for item in raw)):
        raise LvcryptError(f"volume group {vg.name}: damaged {PVMOVE_KEY} record {raw!r}")
    lv = vg.raw.get(PVMOVE_LV_KEY)
    return PvMove(str(raw[0]), tuple(str(item) for item in raw[1:]), lv if isinstance(lv, str) else None)


def write_pvmove(vg: VolumeGroup, record: PvMove | None) -> None:
    for key in (PVMOVE_KEY, PVMOVE_LV_KEY):
        vg.raw.pop(key, None)
    if record is None:
        return
    vg.raw[PVMOVE_KEY] = [record.source, *record.destinations]
    if record.lv is not None:
        vg.raw[PVMOVE_LV_KEY] = record.lv


def owed_wipes(vg: VolumeGroup) -> list[tuple[Area, int]]:
    """Every extent range some conversion still has to overwrite: free in lvm2's count, not allocatable."""
    owed = []
    for lv in vg.lvs.values():
        if WIPES_KEY in lv.raw:
            owed.extend(_wipes(lv.raw[WIPES_KEY]))
    return owed
