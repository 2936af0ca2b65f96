"""The key-handler interface: what a keystore is and what a handler does with it.

A keystore (a hidden `cryptostoreN` LV in metadata, or an image file on the
command line) is described by its attributes (`handler`, `cipher`,
`key_size`, `key_hash`, plus attributes a handler or a newer lvcrypt added,
kept verbatim) and by an area: a byte range the handler may read and write
(its LUKS header and keyslots, or a key check value).  The core never looks
inside an area; it asks the handler to format, unlock, manage keyslots, dump
and validate, and asks for the `DataMapping` it needs to build the dm-crypt
table of the LV.  A command does all of that through one `KeystoreSession`
(`handler.open(area)`), as cryptsetup does through its `crypt_device`: a
handler with a header parses it once per command, not once per question.
Handlers are found by name through entry points (see
`registry`), so a keystore whose handler is not installed keeps its
attributes and area and only unlocking fails.

Passphrases, key-file contents and volume keys cross this interface only as
`Secret`s.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from typing import ClassVar, Protocol, runtime_checkable

from lvcrypt.blockfile import BlockFile
from lvcrypt.errors import DeviceError, FormatError, HandlerError
from lvcrypt.handlers.kdf import PbkdfRequest
from lvcrypt.handlers.secret import Secret
from lvcrypt.records import dataclass, field

SECTOR = 512  # offsets in DataMapping count 512-byte sectors, like dm-crypt tables

AttrValue = str | int


@dataclass
class KeystoreAttrs:
    """The attributes of a crypt-keystore segment; `extra` keeps unknown ones verbatim."""

    handler: str
    cipher: str = ""
    key_size: int = 0  # bits, as cryptsetup's --key-size
    key_hash: str | None = None
    extra: dict[str, AttrValue] = field(default_factory=dict)

    @property
    def key_bytes(self) -> int:
        return self.key_size // 8

    @classmethod
    def from_mapping(cls, values: dict[str, AttrValue]) -> "KeystoreAttrs":
        """Build from metadata key/values; keys other than the four known ones go to `extra`."""
        known = {"handler", "cipher", "key_size", "key_hash"}
        if not isinstance(values.get("handler"), str):
            raise FormatError("keystore has no handler attribute")
        key_size = values.get("key_size", 0)
        if not isinstance(key_size, int):
            raise FormatError("keystore key_size must be an integer")
        key_hash = values.get("key_hash")
        return cls(handler=str(values["handler"]), cipher=str(values.get("cipher", "")),
                   key_size=key_size, key_hash=None if key_hash is None else str(key_hash),
                   extra={k: v for k, v in values.items() if k not in known})

    def to_mapping(self) -> dict[str, AttrValue]:
        values: dict[str, AttrValue] = {"handler": self.handler, "cipher": self.cipher,
                                        "key_size": self.key_size}
        if self.key_hash is not None:
            values["key_hash"] = self.key_hash
        values.update(self.extra)
        return values


@runtime_checkable
class Area(Protocol):
    """A byte range a handler owns. Offsets are relative to the start of the range."""

    @property
    def size(self) -> int: ...

    def read(self, offset: int, length: int) -> bytes: ...

    def write(self, offset: int, data: bytes | bytearray | memoryview) -> None: ...


def _check_range(area_size: int, offset: int, length: int) -> None:
    if offset < 0 or length < 0 or offset + length > area_size:
        raise FormatError(f"access at {offset}+{length} is outside the keystore area of {area_size} bytes")


class FileArea:
    """A range of an image file or block device: `size` bytes from byte `start`.

    `size=None` means "to the end of the file" (an image file holding only a
    LUKS header or a whole LUKS volume).  Each write is flushed with fsync
    because keyslot changes must be on disk before the command reports success.
    """

    def __init__(self, path: str | os.PathLike[str], start: int = 0, size: int | None = None,
                 writable: bool = True):
        self.path = os.fspath(path)
        self.start = start
        self.writable = writable
        self._file = BlockFile(self.path, writable)
        available = max(0, self._file.size - start)
        self._size = available if size is None else size
        if self._size > available:
            self.close()
            raise DeviceError(f"{self.path}: shorter than the keystore area ({available} < {self._size} bytes)")

    @property
    def size(self) -> int:
        return self._size

    def read(self, offset: int, length: int) -> bytes:
        _check_range(self._size, offset, length)
        return self._file.read_at(self.start + offset, length)

    def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        _check_range(self._size, offset, len(data))
        self._file.write_at(self.start + offset, data)
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "FileArea":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FileArea({self.path!r}, start={self.start}, size={self._size})"


class MemoryArea:
    """An area in memory: build a header completely before writing it anywhere,
    and let tests corrupt headers without touching files."""

    def __init__(self, data: bytes | bytearray | int):
        self.data = bytearray(data)

    @property
    def size(self) -> int:
        return len(self.data)

    def read(self, offset: int, length: int) -> bytes:
        _check_range(len(self.data), offset, length)
        return bytes(self.data[offset:offset + length])

    def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        _check_range(len(self.data), offset, len(data))
        self.data[offset:offset + len(data)] = data


@dataclass
class FormatOptions:
    """Everything `keystore format` may choose besides the attributes.

    `volume_key` lets a caller re-wrap an existing key (import, tests);
    otherwise the handler makes a random one.  `area_size` is what the caller
    can give; handlers with a variable header (LUKS2) use `header_size` to choose.
    """

    pbkdf: PbkdfRequest = field(default_factory=PbkdfRequest)
    sector_size: int = SECTOR
    keyslot: int | None = None
    volume_key: Secret | None = None
    uuid: str | None = None
    label: str | None = None
    header_size: int | None = None  # bytes of header + keyslots (LUKS2 metadata/keyslots size)
    data_offset: int | None = None  # 512-byte sectors from the area start; None = handler default
    iv_offset: int = 0  # 512-byte sectors added to every IV
    extra: dict[str, AttrValue] = field(default_factory=dict)


@dataclass(frozen=True)
class KeyslotInfo:
    """One keyslot as `keyslot list` shows it; `details` are handler-specific facts."""

    slot: int
    kind: str  # "pbkdf2", "argon2id", "key", ...
    active: bool = True
    details: dict[str, AttrValue] = field(default_factory=dict)


@dataclass(frozen=True)
class KeyringToken:
    """Where to find a passphrase in the kernel keyring, and which keyslots it opens (LUKS2's luks2-keyring)."""

    token: int
    key_description: str
    keyslots: tuple[int, ...]


@dataclass(frozen=True)
class TokenInfo:
    """One token as `token list` shows it; `key_description` only for keyring tokens."""

    token: int
    type: str
    keyslots: tuple[int, ...]
    key_description: str | None = None


@dataclass(frozen=True)
class HeaderIdentity:
    """What a header backup must share with the keystore it is restored over (luksHeaderRestore's checks).

    `size` is the bytes of header and keyslot areas a backup holds; `layout`
    names the sizes and offsets that must be equal, in words for messages.
    """

    uuid: str
    size: int
    layout: str


@dataclass(frozen=True)
class DataMapping:
    """What the activator needs for the dm-crypt table of an LV using this keystore.

    Offsets count 512-byte sectors: `data_offset` is where encrypted data
    starts relative to the LV's first area (non-zero only for imported LUKS
    volumes whose header sits in front of the data), `iv_offset` is added to
    the IV sector number (dm-crypt's iv_offset).
    """

    cipher: str
    key_size: int  # bits
    sector_size: int = SECTOR
    data_offset: int = 0
    iv_offset: int = 0


class KeyHandler(ABC):
    """A way to get a volume key for a keystore. Instances are stateless; `open` gives the per-command session.

    The class attributes are the handler's defaults for a new keystore, so
    the CLI and the core offer every installed handler the same way and never
    test a handler's name.
    """

    name: ClassVar[str]
    has_header: ClassVar[bool]  # keeps data in its area (LUKS) or only checks keys there (plain, hashed)
    max_keyslots: ClassVar[int] = 1
    default_cipher: ClassVar[str] = "aes-xts-plain64"
    default_key_size: ClassVar[int] = 512  # bits
    default_pbkdf: ClassVar[str] = "argon2id"
    default_sector_size: ClassVar[int] = SECTOR  # bytes; dm-crypt's and cryptsetup's default

    def key_hash(self, requested: str | None) -> str | None:
        """The `key_hash` attribute of a new keystore for a `--hash` option; None for handlers that hash no key."""
        return None

    def new_attrs(self, cipher: str | None = None, key_size: int | None = None,
                  hash_name: str | None = None) -> KeystoreAttrs:
        """Attributes of a new keystore: what the user asked for, this handler's defaults for the rest."""
        return KeystoreAttrs(self.name, cipher or self.default_cipher, key_size or self.default_key_size,
                             self.key_hash(hash_name))

    def probe(self, area: Area) -> bool:
        """Whether the area starts with this handler's format (its magic), without parsing the rest."""
        return False

    def probe_backup(self, area: Area) -> bool:
        """Whether the area holds a backup copy of this handler's header when the start matched no handler."""
        return False

    def open(self, area: Area, attrs: KeystoreAttrs | None = None) -> "KeystoreSession":
        """A session over the area for one command; `attrs` None means the ones recorded in the area.

        The generic session asks this handler's methods each time; handlers
        with a header to parse return a session that parses it once.
        """
        return KeystoreSession(self, area, self.read_attrs(area) if attrs is None else attrs)

    @abstractmethod
    def area_size(self, attrs: KeystoreAttrs, options: FormatOptions) -> int:
        """Bytes of area `format` needs, so the store can allocate extents first."""

    @abstractmethod
    def format(self, area: Area, attrs: KeystoreAttrs, passphrase: Secret,
               options: FormatOptions) -> Secret:
        """Initialise the area; returns the volume key. May fill in `attrs` (defaults, extra)."""

    @abstractmethod
    def unlock_keyslot(self, area: Area, attrs: KeystoreAttrs, passphrase: Secret,
                       keyslot: int | None = None) -> tuple[int, Secret]:
        """(keyslot that opened, volume key); raises WrongPassphrase when none does."""

    def unlock(self, area: Area, attrs: KeystoreAttrs, passphrase: Secret,
               keyslot: int | None = None) -> Secret:
        """The volume key for a passphrase or key-file contents."""
        return self.unlock_keyslot(area, attrs, passphrase, keyslot)[1]

    @abstractmethod
    def verify_volume_key(self, area: Area, attrs: KeystoreAttrs, volume_key: Secret) -> None:
        """Raise WrongPassphrase unless `volume_key` is this keystore's key (--volume-key-file)."""

    def add_keyslot(self, area: Area, attrs: KeystoreAttrs, volume_key: Secret, passphrase: Secret,
                    pbkdf: PbkdfRequest, keyslot: int | None = None) -> int:
        """Store the volume key under a new passphrase; returns the slot used."""
        raise HandlerError(f"{self.name} keystores have no keyslots")

    def remove_keyslot(self, area: Area, attrs: KeystoreAttrs, keyslot: int) -> None:
        raise HandlerError(f"{self.name} keystores have no keyslots")

    def change_keyslot(self, area: Area, attrs: KeystoreAttrs, old: Secret, new: Secret,
                       pbkdf: PbkdfRequest, keyslot: int | None = None) -> int:
        """Replace the passphrase of the slot `old` opens; returns the slot now holding `new`."""
        raise HandlerError(f"{self.name} keystores have no keyslots")

    def list_keyslots(self, area: Area, attrs: KeystoreAttrs) -> list[KeyslotInfo]:
        return []

    def header_identity(self, area: Area) -> HeaderIdentity:
        raise HandlerError(f"{self.name} keystores have no header to back up")

    def header_backup(self, area: Area) -> bytes:
        return area.read(0, self.header_identity(area).size)

    def repair_problem(self, area: Area) -> str | None:
        """What `repair` would fix (one line), or None when every copy is sound."""
        return None

    def repair(self, area: Area) -> bool:
        """Make every header copy whole again from a good one (cryptsetup repair); False if nothing was wrong.

        Handlers whose header has no second copy have nothing to rebuild it from.
        """
        return False

    @abstractmethod
    def dump(self, area: Area, attrs: KeystoreAttrs) -> str:
        """Human-readable description, like `cryptsetup luksDump` (no key material)."""

    @abstractmethod
    def validate(self, area: Area, attrs: KeystoreAttrs) -> None:
        """Raise FormatError/HandlerError (one line) unless the area is a sound keystore."""

    @abstractmethod
    def data_mapping(self, area: Area, attrs: KeystoreAttrs) -> DataMapping:
        """The dm-crypt parameters of the data this keystore protects."""

    def read_attrs(self, area: Area) -> KeystoreAttrs:
        """Attributes recorded in the area itself (an image file has no metadata around it)."""
        raise HandlerError(f"{self.name} keeps no attributes in its area; give them explicitly")


class KeystoreSession:
    """One keystore opened for one command, like cryptsetup's `crypt_device`.

    Every question and change of a command goes through it (unlock, keyslots,
    tokens, dump, data mapping, import checks), so a handler that keeps a
    header parses it once and keeps the parsed form current across its own
    writes.  This base class forwards to the handler's area methods, which is
    all a handler without a header needs.  The caller owns the area.
    """

    def __init__(self, handler: KeyHandler, area: Area, attrs: KeystoreAttrs):
        self.handler = handler
        self.area = area
        self.attrs = attrs

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.handler.name}, {self.area!r})"

    def read_attrs(self) -> KeystoreAttrs:
        """The attributes recorded in the area itself (an image file has no metadata around it)."""
        return self.handler.read_attrs(self.area)

    def unlock_keyslot(self, passphrase: Secret, keyslot: int | None = None) -> tuple[int, Secret]:
        return self.handler.unlock_keyslot(self.area, self.attrs, passphrase, keyslot)

    def unlock(self, passphrase: Secret, keyslot: int | None = None) -> Secret:
        return self.unlock_keyslot(passphrase, keyslot)[1]

    def verify_volume_key(self, volume_key: Secret) -> None:
        self.handler.verify_volume_key(self.area, self.attrs, volume_key)

    def add_keyslot(self, volume_key: Secret, passphrase: Secret, pbkdf: PbkdfRequest,
                    keyslot: int | None = None) -> int:
        return self.handler.add_keyslot(self.area, self.attrs, volume_key, passphrase, pbkdf, keyslot)

    def remove_keyslot(self, keyslot: int) -> None:
        self.handler.remove_keyslot(self.area, self.attrs, keyslot)

    def change_keyslot(self, old: Secret, new: Secret, pbkdf: PbkdfRequest, keyslot: int | None = None) -> int:
        return self.handler.change_keyslot(self.area, self.attrs, old, new, pbkdf, keyslot)

    def list_keyslots(self) -> list[KeyslotInfo]:
        return self.handler.list_keyslots(self.area, self.attrs)

    def repair_problem(self) -> str | None:
        return self.handler.repair_problem(self.area)

    def repair(self) -> bool:
        return self.handler.repair(self.area)

    def dump(self) -> str:
        return self.handler.dump(self.area, self.attrs)

    def validate(self) -> None:
        self.handler.validate(self.area, self.attrs)

    def data_mapping(self) -> DataMapping:
        return self.handler.data_mapping(self.area, self.attrs)

    def keyring_tokens(self) -> list[KeyringToken]:
        """Kernel-keyring descriptions the core may fetch a passphrase from; none unless the format has tokens."""
        return []

    def add_keyring_token(self, key_description: str, keyslots: list[int], token: int | None = None) -> int:
        raise HandlerError(f"{self.handler.name} keystores have no tokens")

    def remove_token(self, token: int) -> None:
        raise HandlerError(f"{self.handler.name} keystores have no tokens")

    def list_tokens(self) -> list[TokenInfo]:
        return []

    def header_identity(self) -> HeaderIdentity:
        """The header's UUID and layout, for `keystore header-backup/header-restore`."""
        return self.handler.header_identity(self.area)

    def header_backup(self) -> bytes:
        """The bytes a header backup holds (before the padding to a page), as cryptsetup's luksHeaderBackup."""
        return self.handler.header_backup(self.area)

    def configure(self, label: str | None = None, subsystem: str | None = None,
                  priority: tuple[int, int] | None = None) -> None:
        """`cryptsetup config`: the header's label and subsystem, a keyslot's (slot, priority)."""
        raise HandlerError(f"{self.handler.name} keystores have no label, subsystem or keyslot priority")

    def import_token(self, text: str, token: int | None = None, replace: bool = False) -> int:
        """A token from JSON text (any type, kept verbatim); returns its number."""
        raise HandlerError(f"{self.handler.name} keystores have no tokens")

    def export_token(self, token: int) -> str:
        raise HandlerError(f"{self.handler.name} keystores have no tokens")

    def import_problem(self, size_after_header: int | None = None) -> str | None:
        """Why this header cannot become a crypt LV's keystore with its payload behind it (lvconvert), or None.

        `size_after_header` is the LV's size past the header, once known.
        Only handlers that keep a header in front of their data can be imported.
        """
        if not self.handler.has_header:
            return f"the {self.handler.name} handler keeps no header in front of the data"
        return None
