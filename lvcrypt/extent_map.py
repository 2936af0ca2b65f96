"""`pvs --map` and `vgs --map`: a picture of each PV's extents, beyond what lvm2 prints.

`pvdisplay -m` lists a PV's extents run by run; an administrator deciding
what to move, extend or encrypt wants to see them.  Each PV becomes rows of
cells in extent order, one cell per extent or, on a PV with more extents
than fit, per group of extents.  A cell shows who holds its extents:

- an upper-case letter (then digits) for each unencrypted LV,
- a lower-case letter for each encrypted LV,
- `#` for keystore extents (which keystore: the legend),
- `.` for free extents, `+` for a group shared by several LVs or by an LV and free space.

On a colour terminal each LV also gets a colour (encrypted LVs reversed, keystores
red); plain text otherwise (and with NO_COLOR), so the picture is the same in a
pipe or a log.  The legend after each VG names every symbol used.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from lvcrypt.records import dataclass

if TYPE_CHECKING:
    from lvcrypt.metadata.model import LogicalVolume, VolumeGroup
    from lvcrypt.store.commit import LoadedVg

FREE = "."
MIXED = "+"
KEYSTORE = "#"
_PLAIN_SYMBOLS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_CRYPT_SYMBOLS = "abcdefghijklmnopqrstuvwxyz"
_OVERFLOW = "?"  # an LV beyond the symbols above (the legend says which)
MAX_CELLS = 512  # per PV; larger PVs are drawn with one cell per group of extents
# ANSI SGR colours (foreground) cycled over the LVs; encrypted LVs are drawn reversed.
_COLOURS = ("32", "34", "36", "33", "35", "92", "94", "96", "93", "95")
_KEYSTORE_STYLE = "1;7;31"
_FREE_STYLE = "2"
_MIXED_STYLE = "1"


@dataclass(frozen=True)
class Holder:
    """One LV as the map draws it."""

    name: str
    symbol: str
    style: str  # SGR parameters, used only on a colour terminal
    note: str  # what the legend says about it


@dataclass(frozen=True)
class MapOptions:
    colour: bool = False
    columns: int = 64  # cells per line


def holders(vg: "VolumeGroup") -> dict[str, Holder]:
    """A symbol and colour for every LV that holds extents, in the VG's metadata order."""
    from lvcrypt.metadata.lvreport import VgReport

    view = VgReport(vg)
    found: dict[str, Holder] = {}
    plain = crypt = 0
    for lv in vg.lvs.values():
        if not any(count for segment in lv.segments for _, count in segment.pv_areas()):
            continue
        shown = view.display(lv.name)
        if lv.is_keystore:
            users = ", ".join(user.name for user in vg.users_of_keystore(lv.name)) or "no LV"
            found[lv.name] = Holder(lv.name, KEYSTORE, _KEYSTORE_STYLE, f"{shown} keystore ({_handler(lv)}) of {users}")
            continue
        colour = _COLOURS[(plain + crypt) % len(_COLOURS)]
        if lv.is_crypt:
            symbol = _CRYPT_SYMBOLS[crypt] if crypt < len(_CRYPT_SYMBOLS) else _OVERFLOW
            crypt += 1
            found[lv.name] = Holder(lv.name, symbol, f"7;{colour}",
                                    f"{shown} encrypted (keystore {', '.join(lv.keystores())})")
        else:
            symbol = _PLAIN_SYMBOLS[plain] if plain < len(_PLAIN_SYMBOLS) else _OVERFLOW
            plain += 1
            found[lv.name] = Holder(lv.name, symbol, colour, shown)
    return found


def _handler(lv: "LogicalVolume") -> str:
    from lvcrypt.metadata.model import KeystoreSegment

    segment = lv.segments[0] if lv.segments else None
    return segment.handler if isinstance(segment, KeystoreSegment) else "?"


def extent_owners(vg: "VolumeGroup", pv_key: str) -> list[set[str]]:
    """For each extent of the PV, the LVs holding it (empty: free; two: an imported LUKS header's shared extent)."""
    owners: list[set[str]] = [set() for _ in range(vg.pvs[pv_key].pe_count)]
    for lv in vg.lvs.values():
        for segment in lv.segments:
            for area, count in segment.pv_areas():
                if area.pv != pv_key:
                    continue
                for extent in range(area.extent, min(area.extent + count, len(owners))):
                    owners[extent].add(lv.name)
    return owners


def _cell(owners: list[set[str]], known: dict[str, Holder]) -> tuple[str, str]:
    """The symbol and style of one cell covering these extents."""
    names = set().union(*owners)
    if not names:
        return FREE, _FREE_STYLE
    if len(names) == 1 and all(owners):
        holder = known[next(iter(names))]
        return holder.symbol, holder.style
    return MIXED, _MIXED_STYLE


def _paint(symbol: str, style: str, opts: MapOptions) -> str:
    return f"\x1b[{style}m{symbol}\x1b[0m" if opts.colour else symbol


def pv_picture(path: str, vg: "VolumeGroup", pv_key: str, known: dict[str, Holder],
               opts: MapOptions) -> list[str]:
    """A heading and the rows of cells of one PV; each row starts with its first extent number."""
    from lvcrypt.displays import display_size

    owners = extent_owners(vg, pv_key)
    per_cell = max(1, math.ceil(len(owners) / MAX_CELLS))
    cells = [_cell(owners[start:start + per_cell], known) for start in range(0, len(owners), per_cell)]
    free = sum(1 for extent in owners if not extent)
    unit = "1 extent" if per_cell == 1 else f"{per_cell} extents"
    lines = [f"PV {path}  VG {vg.name}  {len(owners)} extents of {display_size(vg.extent_bytes)}, "
             f"{free} free, 1 cell = {unit}"]
    width = len(str(max(len(owners) - 1, 0)))
    for first in range(0, len(cells), opts.columns):
        row = "".join(_paint(symbol, style, opts) for symbol, style in cells[first:first + opts.columns])
        lines.append(f"  {first * per_cell:>{width}} {row}")
    return lines


def legend(known: dict[str, Holder], opts: MapOptions) -> list[str]:
    lines = ["Legend:"]
    lines += [f"  {_paint(holder.symbol, holder.style, opts)} {holder.note}" for holder in known.values()]
    lines += [f"  {_paint(FREE, _FREE_STYLE, opts)} free",
              f"  {_paint(MIXED, _MIXED_STYLE, opts)} extents of several LVs, or of an LV and free space"]
    return lines


def vg_map(loaded: "LoadedVg", opts: MapOptions, only: set[str] | None = None) -> list[str]:
    """Every PV of a VG (or those whose path is in `only`) and the VG's legend."""
    vg = loaded.vg
    known = holders(vg)
    lines: list[str] = []
    for key in vg.pvs:
        path = loaded.device_of(key)
        if only is not None and path not in only:
            continue
        lines += pv_picture(path, vg, key, known, opts)
    return [*lines, *legend(known, opts)] if lines else []


def extent_maps(devices: str | None, vg_names: list[str], pv_paths: list[str], opts: MapOptions,
                command: str) -> list[str]:
    """`vgs --map [VG...]` (command "vgs") or `pvs --map [PV...]` (command "pvs"): the pictures, VG by VG."""
    from lvcrypt.reportfields import load_vgs

    found, loaded, hidden = load_vgs(devices, vg_names if command == "vgs" else [], command)
    only = set(pv_paths) if pv_paths else None
    lines: list[str] = []
    for vg in sorted(loaded, key=lambda item: item.vg.name):
        lines += vg_map(vg, opts, only)
    members = {pv.id for vg in loaded for pv in vg.vg.pvs.values()}
    if command == "pvs":
        for path, pv in sorted(found.pvs.items()):
            if pv.uuid not in members and pv.uuid not in hidden and (only is None or path in only):
                lines.append(f"PV {path}  in no VG: no extents yet")
    return lines
