"""The `plain` handler: the volume key itself comes from a key file or prompt.

Compatible with `cryptsetup open --type plain --key-file FILE` (cryptsetup
ignores --hash for key files): the key is the first key_size/8 bytes of
what the user gives (after --keyfile-offset/--keyfile-size were applied).
cryptsetup keeps nothing on disk; a keystore lvcrypt creates gets one extent
whose first 512 bytes hold a key check block (`checkvalue`) so a wrong key
is refused instead of mapping garbage.  A keystore without an area (the RFC's
`extent_count = 0`, e.g. written by another tool) has no check: any key of the
right length is accepted, as cryptsetup would.
"""

from __future__ import annotations

from lvcrypt.errors import FormatError, HandlerError
from lvcrypt.handlers import checkvalue
from lvcrypt.handlers.base import (Area, DataMapping, FormatOptions, KeyHandler, KeyslotInfo,
                                   KeystoreAttrs, SECTOR)
from lvcrypt.handlers.ciphers import CipherSpec
from lvcrypt.handlers.kdf import DIGEST_ITER_TIME_MS, PBKDF2_MIN_ITERATIONS, pbkdf2_iterations
from lvcrypt.handlers.secret import Secret, require_passphrase


class PlainHandler(KeyHandler):
    name = "plain"
    has_header = False
    # cryptsetup's plain-mode defaults.
    default_cipher = "aes-cbc-essiv:sha256"
    default_key_size = 256

    def probe(self, area: Area) -> bool:
        """A key check block made for this handler."""
        return checkvalue.read_handler_name(area) == self.name

    def derive_key(self, attrs: KeystoreAttrs, passphrase: Secret) -> Secret:
        """The volume key for what the user typed or the key file held."""
        if len(passphrase) < attrs.key_bytes:
            raise HandlerError(f"key file holds {len(passphrase)} bytes, the key needs {attrs.key_bytes}")
        return passphrase.slice(0, attrs.key_bytes)

    def _check_attrs(self, attrs: KeystoreAttrs) -> None:
        if not attrs.cipher or not attrs.key_size or attrs.key_size % 8:
            raise HandlerError(f"{self.name} keystore needs a cipher and a key size in bits")
        CipherSpec.parse(attrs.cipher).check_key_size(attrs.key_bytes)

    def area_size(self, attrs: KeystoreAttrs, options: FormatOptions) -> int:
        return checkvalue.BLOCK_SIZE

    def format(self, area: Area, attrs: KeystoreAttrs, passphrase: Secret,
               options: FormatOptions) -> Secret:
        require_passphrase(passphrase)
        self._check_attrs(attrs)
        if area.size < checkvalue.BLOCK_SIZE:
            raise HandlerError(f"keystore area must hold the {checkvalue.BLOCK_SIZE}-byte key check block")
        key = self.derive_key(attrs, passphrase)
        iterations = (PBKDF2_MIN_ITERATIONS if options.pbkdf.force_iterations
                      else pbkdf2_iterations("sha256", DIGEST_ITER_TIME_MS, 32))
        if options.sector_size != SECTOR:
            attrs.extra["sector_size"] = options.sector_size
        if options.iv_offset:
            attrs.extra["iv_offset"] = options.iv_offset
        block = checkvalue.make(self.name, attrs.cipher, attrs.key_hash, attrs.key_size, key, iterations)
        area.write(0, block.to_bytes())
        return key

    def _block(self, area: Area, attrs: KeystoreAttrs) -> checkvalue.CheckBlock | None:
        if area.size == 0:
            return None
        block = checkvalue.read(area)
        if block.handler != self.name:
            raise FormatError(f"key check block belongs to handler {block.handler}, not {self.name}")
        for field, recorded in (("cipher", block.cipher), ("key_size", block.key_size),
                                ("key_hash", block.key_hash)):
            wanted = getattr(attrs, field)
            if wanted and wanted != recorded:
                raise FormatError(f"keystore {field} {wanted} differs from its key check block's {recorded}")
        return block

    def unlock_keyslot(self, area: Area, attrs: KeystoreAttrs, passphrase: Secret,
                       keyslot: int | None = None) -> tuple[int, Secret]:
        if keyslot not in (None, 0):
            raise HandlerError(f"{self.name} keystores have only keyslot 0")
        self._check_attrs(attrs)
        block = self._block(area, attrs)
        key = self.derive_key(attrs, passphrase)
        if block is not None:
            try:
                checkvalue.verify(block, key)
            except HandlerError:
                key.close()
                raise
        return 0, key

    def verify_volume_key(self, area: Area, attrs: KeystoreAttrs, volume_key: Secret) -> None:
        block = self._block(area, attrs)
        if block is not None:
            checkvalue.verify(block, volume_key)

    def list_keyslots(self, area: Area, attrs: KeystoreAttrs) -> list[KeyslotInfo]:
        block = self._block(area, attrs)
        details: dict[str, str | int] = {"check_value": "yes" if block else "no"}
        if attrs.key_hash:
            details["hash"] = attrs.key_hash
        return [KeyslotInfo(0, "key" if self.name == "plain" else "hash", True, details)]

    def dump(self, area: Area, attrs: KeystoreAttrs) -> str:
        block = self._block(area, attrs)
        mapping = self.data_mapping(area, attrs)
        lines = [f"Handler:       \t{self.name}",
                 f"Cipher:        \t{attrs.cipher}",
                 f"Key size:      \t{attrs.key_size} bits"]
        if attrs.key_hash:
            lines.append(f"Hash:          \t{attrs.key_hash}")
        lines += [f"Sector size:   \t{mapping.sector_size}",
                  f"IV offset:     \t{mapping.iv_offset}",
                  f"Key check:     \t{'PBKDF2-SHA256, %d iterations' % block.iterations if block else 'none'}"]
        return "\n".join(lines) + "\n"

    def validate(self, area: Area, attrs: KeystoreAttrs) -> None:
        self._check_attrs(attrs)
        self._block(area, attrs)

    def data_mapping(self, area: Area, attrs: KeystoreAttrs) -> DataMapping:
        sector_size = attrs.extra.get("sector_size", SECTOR)
        iv_offset = attrs.extra.get("iv_offset", 0)
        if not isinstance(sector_size, int) or not isinstance(iv_offset, int):
            raise FormatError("keystore sector_size and iv_offset must be integers")
        return DataMapping(attrs.cipher, attrs.key_size, sector_size, 0, iv_offset)

    def read_attrs(self, area: Area) -> KeystoreAttrs:
        block = checkvalue.read(area)
        return KeystoreAttrs(block.handler, block.cipher, block.key_size, block.key_hash)
