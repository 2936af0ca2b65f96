"""The LUKS2 binary header and the two on-disk copies of the metadata.

A LUKS2 metadata copy is `hdr_size` bytes: a 4096-byte binary header
followed by the JSON area.  The primary copy sits at byte 0, the secondary
right after it (at `hdr_size`), so a single damaged sector never loses the
keystore.  Each copy carries its own checksum over the whole copy (binary
header with the checksum field zeroed, then the JSON area), and a `seqid`
that grows with every write: when the copies disagree, the valid one with the
higher seqid wins, as in cryptsetup's lib/luks2/luks2_disk_metadata.c.

Layout of the binary header (big-endian):

    offset size field
    0      6    magic         b"LUKS\\xba\\xbe" (primary) / b"SKUL\\xba\\xbe" (secondary)
    6      2    version       2
    8      8    hdr_size      size of this copy: binary header + JSON area
    16     8    seqid
    24     48   label         NUL-padded
    72     32   checksum_alg  e.g. "sha256", NUL-padded
    104    64   salt          random, per copy
    168    40   uuid          NUL-padded text
    208    48   subsystem     NUL-padded
    256    8    hdr_offset    where this copy starts (0 or hdr_size)
    264    184  padding
    448    64   csum          checksum, zero-padded to 64 bytes
    512    3584 padding
"""

from __future__ import annotations

import hashlib
import hmac
import os

from lvcrypt.binary_layout import Layout
from lvcrypt.errors import FormatError
from lvcrypt.handlers.base import Area
from lvcrypt.records import dataclass, replace

PRIMARY_MAGIC = b"LUKS\xba\xbe"
SECONDARY_MAGIC = b"SKUL\xba\xbe"
VERSION = 2
BINARY_SIZE = 4096
# cryptsetup's LUKS2_check_metadata_area_size: the only sizes a copy may have.
METADATA_SIZES = tuple(16384 << shift for shift in range(9))  # 16 KiB .. 4 MiB
DEFAULT_METADATA_SIZE = METADATA_SIZES[0]

# cryptsetup's struct luks2_hdr_disk, the table above.
BINARY_LAYOUT = Layout(">", (("magic", "6s"), ("version", "H"), ("hdr_size", "Q"), ("seqid", "Q"),
                             ("label", "48s"), ("checksum_alg", "32s"), ("salt", "64s"), ("uuid", "40s"),
                             ("subsystem", "48s"), ("hdr_offset", "Q"), ("_padding", "184x"), ("csum", "64s"),
                             ("_padding4096", "3584x")))
# The magic and version that start every LUKS header, LUKS1's too: all that probing reads.
PREFIX = Layout(">", BINARY_LAYOUT.fields[:2])
_CSUM_OFFSET = BINARY_LAYOUT.offset_of("csum")
_CSUM_SIZE = BINARY_LAYOUT.size_of("csum")
assert BINARY_LAYOUT.size == BINARY_SIZE


def _text(raw: bytes) -> str:
    """A NUL-padded field as text; undecodable bytes survive a round trip."""
    return raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _raw(text: str, field: str, what: str | None = None) -> bytes:
    """A text field's bytes, refused when they leave no room for the NUL the field must end with."""
    data = text.encode("utf-8", "surrogateescape")
    size = BINARY_LAYOUT.size_of(field)
    if len(data) >= size:
        raise FormatError(f"LUKS2 {what or field} is longer than {size - 1} bytes")
    return data


@dataclass(frozen=True)
class BinaryHeader:
    """One binary header as read or to be written; `csum` is filled by `pack`."""

    hdr_size: int
    seqid: int
    label: str
    checksum_alg: str
    salt: bytes
    uuid: str
    subsystem: str
    hdr_offset: int
    secondary: bool = False
    csum: bytes = b""

    @property
    def json_size(self) -> int:
        return self.hdr_size - BINARY_SIZE

    def pack(self, json_area: bytes) -> bytes:
        """The whole copy (binary header and JSON area) with its checksum filled in."""
        if len(json_area) != self.json_size:
            raise FormatError(f"LUKS2 JSON area must be {self.json_size} bytes, not {len(json_area)}")
        blank = self._pack_binary(b"")
        return self._pack_binary(checksum(self.checksum_alg, blank, json_area)) + json_area

    def _pack_binary(self, csum: bytes) -> bytes:
        """The binary header; `csum` is zero-padded to its field, as cryptsetup stores it."""
        magic = SECONDARY_MAGIC if self.secondary else PRIMARY_MAGIC
        return BINARY_LAYOUT.pack({
            "magic": magic, "version": VERSION, "hdr_size": self.hdr_size, "seqid": self.seqid,
            "label": _raw(self.label, "label"),
            "checksum_alg": _raw(self.checksum_alg, "checksum_alg", "checksum algorithm"),
            "salt": self.salt, "uuid": _raw(self.uuid, "uuid", "UUID"),
            "subsystem": _raw(self.subsystem, "subsystem"), "hdr_offset": self.hdr_offset, "csum": csum})

    @classmethod
    def unpack(cls, raw: bytes, expected_offset: int) -> "BinaryHeader":
        """Parse and sanity-check a binary header found at `expected_offset` (checksum not yet checked)."""
        if len(raw) < BINARY_SIZE:
            raise FormatError("LUKS2 binary header is truncated")
        values = BINARY_LAYOUT.unpack_from(raw)
        secondary = values["magic"] == SECONDARY_MAGIC
        if values["magic"] != (SECONDARY_MAGIC if expected_offset else PRIMARY_MAGIC):
            raise FormatError(f"no LUKS2 header at byte {expected_offset} (bad magic)")
        if values["version"] != VERSION:
            raise FormatError(f"LUKS header at byte {expected_offset} has version {values['version']}, not 2")
        if values["hdr_size"] not in METADATA_SIZES:
            raise FormatError(f"LUKS2 header at byte {expected_offset} has invalid size {values['hdr_size']}")
        if values["hdr_offset"] != expected_offset:
            raise FormatError(f"LUKS2 header at byte {expected_offset} claims offset {values['hdr_offset']}")
        algorithm = _text(values["checksum_alg"])
        digest_size(algorithm)
        return cls(hdr_size=values["hdr_size"], seqid=values["seqid"], label=_text(values["label"]),
                   checksum_alg=algorithm, salt=values["salt"], uuid=_text(values["uuid"]),
                   subsystem=_text(values["subsystem"]), hdr_offset=values["hdr_offset"],
                   secondary=secondary, csum=values["csum"])

    def as_copy(self, secondary: bool, seqid: int, salt: bytes | None = None) -> "BinaryHeader":
        """This header moved to the primary or secondary position."""
        return replace(self, secondary=secondary, hdr_offset=self.hdr_size if secondary else 0,
                       seqid=seqid, salt=self.salt if salt is None else salt, csum=b"")


def _hashlib_name(algorithm: str) -> str:
    return algorithm.lower().replace("-", "_")


def digest_size(algorithm: str) -> int:
    """Size of a checksum algorithm's output; FormatError for one we cannot compute."""
    try:
        size = hashlib.new(_hashlib_name(algorithm)).digest_size
    except (ValueError, TypeError):
        raise FormatError(f"LUKS2 header checksum algorithm {algorithm!r} is not supported") from None
    if size > _CSUM_SIZE or size == 0:
        raise FormatError(f"LUKS2 header checksum algorithm {algorithm!r} is not supported")
    return size


def checksum(algorithm: str, binary_blank: bytes, json_area: bytes) -> bytes:
    """cryptsetup's header checksum: hash of the binary header (csum zeroed) then the JSON area."""
    digest = hashlib.new(_hashlib_name(algorithm))
    digest.update(binary_blank[:_CSUM_OFFSET])
    digest.update(bytes(_CSUM_SIZE))
    digest.update(binary_blank[_CSUM_OFFSET + _CSUM_SIZE:BINARY_SIZE])
    digest.update(json_area)
    return digest.digest()


def new_salt() -> bytes:
    return os.urandom(64)


@dataclass(frozen=True)
class HeaderCopy:
    """A metadata copy whose checksum matched: its binary header and raw JSON area."""

    header: BinaryHeader
    json_area: bytes


def read_copy(area: Area, offset: int) -> HeaderCopy:
    """Read and checksum-verify the copy at `offset`; FormatError says why it is unusable."""
    if area.size < offset + BINARY_SIZE:
        raise FormatError(f"keystore area too small for a LUKS2 header at byte {offset}")
    header = BinaryHeader.unpack(area.read(offset, BINARY_SIZE), offset)
    if area.size < offset + header.hdr_size:
        raise FormatError(f"LUKS2 header at byte {offset} extends past the keystore area")
    copy = area.read(offset, header.hdr_size)
    json_area = copy[BINARY_SIZE:]
    blank = copy[:BINARY_SIZE]
    expected = checksum(header.checksum_alg, blank, json_area)
    stored = header.csum[:len(expected)]
    if not hmac.compare_digest(expected, stored) or any(header.csum[len(expected):]):
        raise FormatError(f"LUKS2 header at byte {offset} has a bad checksum")
    return HeaderCopy(header, json_area)


def write_copy(area: Area, header: BinaryHeader, json_area: bytes) -> None:
    area.write(header.hdr_offset, header.pack(json_area))
