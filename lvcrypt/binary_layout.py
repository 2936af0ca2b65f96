"""Binary layouts declared once: (field name, struct code) pairs beside their byte order.

Every fixed-size binary structure lvcrypt reads or writes (lvm2's label, PV
header and mda header, the LUKS1 and LUKS2 binary headers, lvcrypt's key
check block, the dm and loop ioctl structs) is one `Layout`, and the same declaration reads and writes it, so a
field can never sit at one offset when parsed and another when written.
On-disk formats name their byte order ("<" for lvm2, ">" for LUKS); kernel
ioctl structs use "=" (host order, no implicit alignment) with their padding
spelled out as fields, as the C header has them.

A code with a count ("3I") is one field holding a tuple; "Ns" is one bytes
field; "Nx" is padding: written as zeros, skipped on reading, never a value.
`Record` turns a layout into a dataclass whose fields are the layout's.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

from lvcrypt.errors import FormatError
from lvcrypt.records import dataclass, field

Buffer = bytes | bytearray | memoryview


def _count(code: str) -> int:
    """Values one field's code produces: '3I' gives 3 (a tuple), '128s' one bytes object, '8x' none."""
    if code.endswith("x"):
        return 0
    digits = code[:-1]
    return 1 if code.endswith("s") or not digits else int(digits)


@dataclass(frozen=True)
class Layout:
    """One C struct: its byte order ('<', '>' or '=') and its fields in order."""

    byte_order: str
    fields: tuple[tuple[str, str], ...]
    compiled: struct.Struct = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.byte_order not in ("<", ">", "="):
            raise ValueError(f"byte order {self.byte_order!r} is not explicit ('<', '>' or '=')")
        compiled = struct.Struct(self.byte_order + "".join(code for _, code in self.fields))
        object.__setattr__(self, "compiled", compiled)

    @property
    def size(self) -> int:
        return self.compiled.size

    @property
    def names(self) -> tuple[str, ...]:
        """The fields that hold values (padding excluded)."""
        return tuple(name for name, code in self.fields if _count(code))

    def offset_of(self, name: str) -> int:
        """Byte offset of a field: where checksums start or stop, and what tests compare with C."""
        codes = ""
        for field_name, code in self.fields:
            if field_name == name:
                return struct.calcsize(self.byte_order + codes)
            codes += code
        raise KeyError(name)

    def size_of(self, name: str) -> int:
        """Bytes one field occupies."""
        for field_name, code in self.fields:
            if field_name == name:
                return struct.calcsize(self.byte_order + code)
        raise KeyError(name)

    def unpack_from(self, buffer: Buffer, offset: int = 0) -> dict[str, Any]:
        """The fields at `offset` by name; FormatError when the buffer ends before the struct does."""
        if offset < 0 or offset + self.size > len(buffer):
            raise FormatError(f"{self.size}-byte structure at byte {offset} runs past the end of its "
                              f"{len(buffer)}-byte buffer")
        values = iter(self.compiled.unpack_from(buffer, offset))
        result: dict[str, Any] = {}
        for name, code in self.fields:
            count = _count(code)
            if count:
                result[name] = tuple(next(values) for _ in range(count)) if count > 1 else next(values)
        return result

    def _flat(self, values: Mapping[str, Any]) -> list[Any]:
        flat: list[Any] = []
        for name, code in self.fields:
            count = _count(code)
            if count > 1:
                flat.extend(values[name])
            elif count:
                flat.append(values[name])
        return flat

    def pack(self, values: Mapping[str, Any]) -> bytes:
        """The struct's bytes from a value per field name (padding written as zeros)."""
        return self.compiled.pack(*self._flat(values))

    def pack_into(self, buffer: bytearray | memoryview, offset: int, values: Mapping[str, Any]) -> None:
        self.compiled.pack_into(buffer, offset, *self._flat(values))


class Record:
    """Base of a dataclass that is exactly one layout: its fields are `LAYOUT.names`, in order.

    Subclasses set `LAYOUT` and are decorated with @dataclass; `pack` and
    `unpack_from` then go through that one declaration.
    """

    LAYOUT: ClassVar[Layout]
    # The layout's field list and compiled struct, as the dm unit tests compare them with C.
    FIELDS: ClassVar[tuple[tuple[str, str], ...]]
    STRUCT: ClassVar[struct.Struct]

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        layout = getattr(cls, "LAYOUT", None)
        if layout is not None:  # None for an intermediate base that adds behaviour, not a struct
            cls.FIELDS = layout.fields
            cls.STRUCT = layout.compiled

    @classmethod
    def offset_of(cls, name: str) -> int:
        return cls.LAYOUT.offset_of(name)

    def pack(self) -> bytes:
        return self.LAYOUT.pack({name: getattr(self, name) for name in self.LAYOUT.names})

    @classmethod
    def unpack_from(cls: type[R], buffer: Buffer, offset: int = 0) -> R:
        return cls(**cls.LAYOUT.unpack_from(buffer, offset))


# Bound to the class itself, not its name: a name is a ForwardRef, compiled at import, and the first
# compile() of a process costs a millisecond (benchmarks/startup.py).
R = TypeVar("R", bound=Record)

