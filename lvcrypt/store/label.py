"""The 512-byte label sector (lvm2's `struct label_header`) found in one of sectors 0-3.

The CRC covers the label sector from `offset` to its end, so the PV header
that follows the 32-byte label header is protected by the same checksum.
"""

from __future__ import annotations


from lvcrypt.binary_layout import Layout
from lvcrypt.errors import FormatError
from lvcrypt.records import dataclass
from lvcrypt.store.crc import lvm_crc

SECTOR = 512
LABEL_ID = b"LABELONE"
LVM2_TYPE = b"LVM2 001"
SCAN_SECTORS = 4
# The sector lvm2's pvcreate writes the label to.
DEFAULT_SECTOR = 1

# offset: of the contents from the start of the sector
LABEL_HEADER = Layout("<", (("id", "8s"), ("sector", "Q"), ("crc", "I"), ("offset", "I"), ("type", "8s")))
# The CRC starts at the `offset` field.
CRC_START = LABEL_HEADER.offset_of("offset")


@dataclass
class Label:
    sector: int
    offset: int
    contents: bytes
    type: bytes = LVM2_TYPE

    @classmethod
    def parse(cls, data: bytes, sector: int) -> "Label | None":
        """The label in one 512-byte sector; None when it holds none; FormatError when damaged."""
        fields = LABEL_HEADER.unpack_from(data)
        if fields["id"] != LABEL_ID:
            return None
        if fields["sector"] != sector:
            raise FormatError(f"label in sector {sector} says it belongs in sector {fields['sector']}")
        if lvm_crc(data[CRC_START:SECTOR]) != fields["crc"]:
            raise FormatError(f"label checksum in sector {sector} is wrong")
        if fields["type"] != LVM2_TYPE:
            raise FormatError(f"label type {fields['type']!r} is not {LVM2_TYPE.decode()}")
        offset = fields["offset"]
        if not LABEL_HEADER.size <= offset < SECTOR:
            raise FormatError(f"label contents offset {offset} is outside the label sector")
        return cls(sector, offset, bytes(data[offset:SECTOR]), fields["type"])

    def to_bytes(self) -> bytes:
        body = bytearray(SECTOR)
        if len(self.contents) > SECTOR - self.offset:
            raise FormatError("label contents do not fit in one sector")
        body[self.offset:self.offset + len(self.contents)] = self.contents
        fields = {"id": LABEL_ID, "sector": self.sector, "crc": 0, "offset": self.offset, "type": self.type}
        LABEL_HEADER.pack_into(body, 0, fields)
        LABEL_HEADER.pack_into(body, 0, fields | {"crc": lvm_crc(body[CRC_START:])})
        return bytes(body)


def find_label(first_sectors: bytes) -> Label | None:
    """The label in sectors 0-3 (the first one lvm2 would find), None when unlabelled."""
    for sector in range(SCAN_SECTORS):
        chunk = first_sectors[sector * SECTOR:(sector + 1) * SECTOR]
        if len(chunk) < SECTOR:
            break
        label = Label.parse(chunk, sector)
        if label is not None:
            return label
    return None
