"""Reading the two LUKS2 metadata copies, choosing one, writing both.

As cryptsetup does, a copy counts only when its binary header, checksum and
JSON all validate; the secondary copy is looked for right after a valid
primary, or, when the primary is unusable, at every offset a copy of an
allowed size could start.  Of two valid copies the one with the higher seqid
wins.  Unlike cryptsetup, reading never rewrites a damaged copy: that is the
explicit `repair`, and changes refuse to run until then so a user never has
both copies overwritten from the one they did not expect.
"""

from __future__ import annotations


from lvcrypt.errors import FormatError, NeedsRepair
from lvcrypt.handlers.base import Area

from lvcrypt.handlers.luks2 import json_area
from lvcrypt.handlers.luks2.header import METADATA_SIZES, BinaryHeader, HeaderCopy, new_salt, read_copy, write_copy
from lvcrypt.handlers.luks2.json_area import Metadata
from lvcrypt.records import dataclass


@dataclass
class Loaded:
    """The chosen metadata plus what is known about each copy."""

    header: BinaryHeader  # of the chosen copy
    metadata: Metadata
    primary_salt: bytes | None
    secondary_salt: bytes | None
    primary_error: str | None = None
    secondary_error: str | None = None

    @property
    def needs_repair(self) -> bool:
        return self.primary_error is not None or self.secondary_error is not None


def _try(area: Area, offset: int) -> tuple[HeaderCopy, Metadata] | str:
    """The copy at `offset`, or why it is unusable (naming which copy: users repair by that name)."""
    which = "secondary" if offset else "primary"
    try:
        copy = read_copy(area, offset)
        return copy, json_area.decode(copy.json_area)
    except FormatError as error:
        return f"{which} copy: {error}"


def load(area: Area) -> Loaded:
    """The current metadata; FormatError when neither copy is usable."""
    primary = _try(area, 0)
    if isinstance(primary, tuple):
        secondary = _try(area, primary[0].header.hdr_size)
    else:
        secondary = "secondary copy: no LUKS2 header found"
        for size in METADATA_SIZES:
            if area.size >= 2 * size:
                candidate = _try(area, size)
                if isinstance(candidate, tuple):
                    secondary = candidate
                    break
    if not isinstance(primary, tuple) and not isinstance(secondary, tuple):
        raise FormatError(f"no valid LUKS2 header ({primary}; {secondary})")
    if isinstance(primary, tuple) and isinstance(secondary, tuple):
        p_header, s_header = primary[0].header, secondary[0].header
        loaded = Loaded(p_header, primary[1], p_header.salt, s_header.salt)
        if s_header.seqid > p_header.seqid:
            loaded.header, loaded.metadata = s_header, secondary[1]
            loaded.primary_error = f"primary LUKS2 header is older (seqid {p_header.seqid} < {s_header.seqid})"
        elif s_header.seqid < p_header.seqid:
            loaded.secondary_error = f"secondary LUKS2 header is older (seqid {s_header.seqid} < {p_header.seqid})"
        elif primary[0].json_area != secondary[0].json_area:
            loaded.secondary_error = "secondary LUKS2 header differs from the primary at the same seqid"
        return loaded
    if isinstance(primary, tuple):
        return Loaded(primary[0].header, primary[1], primary[0].header.salt, None,
                      secondary_error=str(secondary))
    assert isinstance(secondary, tuple)
    return Loaded(secondary[0].header, secondary[1], None, secondary[0].header.salt,
                  primary_error=str(primary))


def require_intact(loaded: Loaded) -> None:
    """Changes write both copies; refuse them while one copy is damaged and unrepaired.

    The message names the way out, `lvcrypt keystore repair` (cryptsetup's
    `repair`), so a crash between the two header writes is one command away
    from a writable keystore again.
    """
    if loaded.needs_repair:
        problem = loaded.primary_error or loaded.secondary_error
        raise NeedsRepair(str(problem))


def commit(area: Area, loaded: Loaded, metadata: Metadata) -> Loaded:
    """Write `metadata` to both copies with the next seqid, after checking it reads back."""
    json_area.validate(metadata)
    raw = json_area.encode(metadata)
    json_area.decode(raw)
    seqid = loaded.header.seqid + 1
    primary = loaded.header.as_copy(False, seqid, loaded.primary_salt or new_salt())
    secondary = loaded.header.as_copy(True, seqid, loaded.secondary_salt or new_salt())
    if area.size < 2 * primary.hdr_size:
        raise FormatError("keystore area is too small for both LUKS2 header copies")
    write_copy(area, primary, raw)
    write_copy(area, secondary, raw)
    return Loaded(primary, metadata, primary.salt, secondary.salt)
