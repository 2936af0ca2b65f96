"""lvm2's metadata area: a 512-byte `mda_header` followed by a circular buffer of metadata text.

The header holds two raw locations: slot 0 is the committed text, slot 1 the
precommitted one.  Text is placed after the previous copy, starting on a
512-byte boundary, and wraps to just after the header when it reaches the end
of the area; `plan_write` follows lvm2's `_vg_write_raw` so that both tools
place and pad copies identically.
"""

from __future__ import annotations


from lvcrypt.binary_layout import Layout, Record
from lvcrypt.errors import FormatError, LvcryptError
from lvcrypt.records import dataclass, field
from lvcrypt.store.crc import lvm_crc

MDA_HEADER_SIZE = 512
MAGIC = b" LVM2 x[5A%r0N*>"
VERSION = 1
ALIGNMENT = 512
RAW_LOCN_IGNORED = 0x1

# checksum: of the rest of the 512 bytes; start: absolute byte; size: bytes.  Two raw_locn slots follow.
MDA_HEADER = Layout("<", (("checksum", "I"), ("magic", "16s"), ("version", "I"), ("start", "Q"), ("size", "Q")))
CHECKSUM_START = MDA_HEADER.offset_of("magic")


@dataclass(frozen=True)
class RawLocn(Record):
    """offset: from the area start; size: bytes of the text and its NUL; checksum: of the text."""

    LAYOUT = Layout("<", (("offset", "Q"), ("size", "Q"), ("checksum", "I"), ("flags", "I")))

    offset: int = 0
    size: int = 0
    checksum: int = 0
    flags: int = 0

    @property
    def empty(self) -> bool:
        return not self.offset and not self.size

    @property
    def ignored(self) -> bool:
        return bool(self.flags & RAW_LOCN_IGNORED)


@dataclass
class MdaHeader:
    start: int
    size: int
    committed: RawLocn = field(default_factory=RawLocn)
    precommitted: RawLocn = field(default_factory=RawLocn)

    @classmethod
    def parse(cls, data: bytes, expected_start: int) -> "MdaHeader":
        """Checks what lvm2 checks: checksum, magic, version and the recorded start."""
        if len(data) < MDA_HEADER_SIZE:
            raise FormatError(f"metadata area header at byte {expected_start} is truncated")
        fields = MDA_HEADER.unpack_from(data)
        where = f"metadata area header at byte {expected_start}"
        if fields["magic"] != MAGIC:
            raise FormatError(f"{where}: wrong magic number")
        if lvm_crc(data[CHECKSUM_START:MDA_HEADER_SIZE]) != fields["checksum"]:
            raise FormatError(f"{where}: wrong checksum")
        if fields["version"] != VERSION:
            raise FormatError(f"{where}: unsupported version {fields['version']}")
        if fields["start"] != expected_start:
            raise FormatError(f"{where}: records start {fields['start']}")
        if fields["size"] <= MDA_HEADER_SIZE:
            raise FormatError(f"{where}: area size {fields['size']} is too small")
        slots = [RawLocn.unpack_from(data, MDA_HEADER.size + i * RawLocn.LAYOUT.size) for i in range(2)]
        return cls(fields["start"], fields["size"], slots[0], slots[1])

    def to_bytes(self) -> bytes:
        body = bytearray(MDA_HEADER_SIZE)
        fields = {"checksum": 0, "magic": MAGIC, "version": VERSION, "start": self.start, "size": self.size}
        MDA_HEADER.pack_into(body, 0, fields)
        for i, slot in enumerate((self.committed, self.precommitted)):
            position = MDA_HEADER.size + i * RawLocn.LAYOUT.size
            body[position:position + RawLocn.LAYOUT.size] = slot.pack()
        MDA_HEADER.pack_into(body, 0, fields | {"checksum": lvm_crc(body[CHECKSUM_START:])})
        return bytes(body)

    def holds(self, locn: RawLocn) -> bool:
        """Whether a text location lies inside the ring (a wrapped text included)."""
        return MDA_HEADER_SIZE <= locn.offset < self.size and locn.size <= self.size - MDA_HEADER_SIZE

    def text_ranges(self, locn: RawLocn) -> list[tuple[int, int]]:
        """(offset from the area start, length) of the pieces of a text, two when it wraps."""
        if not self.holds(locn):
            raise FormatError(f"metadata area at byte {self.start}: text location {locn.offset}+{locn.size} "
                              "lies outside the area")
        end = locn.offset + locn.size
        if end <= self.size:
            return [(locn.offset, locn.size)]
        wrap = end - self.size
        return [(locn.offset, locn.size - wrap), (MDA_HEADER_SIZE, wrap)]

    @property
    def max_text_size(self) -> int:
        """lvm2's limit: two copies must fit, each rounded to a sector."""
        return (self.size - MDA_HEADER_SIZE) // 2 - 512


def text_checksum(text: bytes) -> int:
    return lvm_crc(text)


def _last_byte(header: MdaHeader, locn: RawLocn) -> int:
    end = locn.offset + locn.size
    if end > header.size:
        return end - header.size + MDA_HEADER_SIZE - 1
    return end - 1


def next_offset(header: MdaHeader, old: RawLocn | None) -> int:
    """Where the next copy starts: after the old one, 512-aligned, or back at the start."""
    if old is None:
        return MDA_HEADER_SIZE
    old_last = _last_byte(header, old)
    if header.size - old_last < ALIGNMENT:
        return MDA_HEADER_SIZE
    start = old_last + 1
    start += -start % ALIGNMENT
    if start > header.size - ALIGNMENT:
        return MDA_HEADER_SIZE
    return start


def _overlaps(header: MdaHeader, old: RawLocn, new_start: int, new_size: int) -> bool:
    size = header.size
    old_start, old_last = old.offset, _last_byte(header, old)
    old_wrap = old.offset + old.size > size
    new_wrap = new_start + new_size > size
    new_last = (new_start + new_size - size + MDA_HEADER_SIZE - 1) if new_wrap else new_start + new_size - 1
    if new_wrap and old_wrap:
        return True
    if not new_wrap and not old_wrap:
        return not ((new_start > old_last and new_last > new_start) or (new_start < old_start and new_last < old_start))
    if old_wrap:
        return not (old_last < new_start < new_last < old_start)
    return not (new_last < old_start < old_last < new_start)


def plan_write(header: MdaHeader, text: bytes, what: str) -> tuple[RawLocn, list[tuple[int, bytes]]]:
    """The new committed location and the writes (absolute offset, bytes) that put `text` in the ring.

    `text` includes its terminating NUL, as lvm2 stores it; each piece that ends
    the copy is padded with zeros up to a 512-byte boundary like lvm2 does.
    """
    if len(text) > header.max_text_size:
        raise LvcryptError(f"{what}: metadata ({len(text)} bytes) exceeds the maximum size of the metadata area "
                           f"({header.max_text_size} bytes); recreate the PV with a larger --metadatasize")
    old = header.committed if not header.committed.empty and not header.committed.ignored else None
    start = next_offset(header, old)
    if old is not None and _overlaps(header, old, start, len(text)):
        raise LvcryptError(f"{what}: metadata ({len(text)} bytes) does not fit in the circular buffer")
    locn = RawLocn(start, len(text), text_checksum(text), 0)
    ranges = header.text_ranges(locn)
    writes = []
    consumed = 0
    for index, (offset, length) in enumerate(ranges):
        piece = text[consumed:consumed + length]
        consumed += length
        if index == len(ranges) - 1:
            piece = (piece + bytes(-(offset + length) % ALIGNMENT))[:header.size - offset]
        writes.append((header.start + offset, piece))
    return locn, writes
