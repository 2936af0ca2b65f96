"""The one sector cipher: bit-for-bit what dm-crypt writes, for the data path and LUKS keyslot areas.

A `SectorCipher` encrypts whole sectors of a crypt mapping (or of a LUKS
keyslot area, which cryptsetup encrypts the same way from sector 0).  Callers
pass the sector number dm-crypt itself would use for the first sector of the
buffer: the 512-byte sector offset inside the mapping plus the table's
``iv_offset``.  It computes every spec `spec.parse_cipher_spec` accepts
(AES or SM4; XTS, CBC or ECB; plain, plain64, plain64be, null or essiv IVs)
and refuses the rest at construction.  The IV rules are dm-crypt's:

- the IV counts 512-byte sectors even with 4096-byte encryption sectors
  (sector k of a 4096-byte mapping has IV 8k), unless the table sets
  ``iv_large_sectors``; then it counts encryption sectors;
- ``plain`` truncates the sector number to 32 bits, ``plain64`` keeps 64;
- ``plain64be`` stores the 64-bit number big-endian in the IV's last 8 bytes;
- ``null`` is an all-zero IV for every sector;
- ``essiv:sha256`` encrypts the plain64 IV with the cipher keyed by sha256(key);
- ``ecb`` has no IV: every 16-byte block is encrypted on its own.

XTS keys whose two halves are equal are computed, in both directions, as
dm-crypt computes them outside FIPS mode (the kernel's xts_verify_key checks
the halves only with fips_enabled or CRYPTO_TFM_REQ_FORBID_WEAK_KEYS, which
dm-crypt does not set): a volume the kernel reads, lvcrypt reads.  Such a
key is refused where lvcrypt starts using a key for new data
(`spec.check_new_volume_key`), the one rule for every caller.

The loop over sectors is the compiled `_sectors` module (C over OpenSSL's
libcrypto), because a Python step per sector costs more than the AES it
drives; every block cipher call is OpenSSL's.  XTS is OpenSSL's own XTS
there, one call per sector, except for the equal halves above, which
OpenSSL's XTS refuses: those are computed as ECB between XORs with the
tweaks.  The key is copied into OpenSSL's contexts only (freed,
and so cleansed, by `close()` or the collector); the caller stays the owner
and wiper of its buffer.  The loop runs without the GIL, so two threads with
a cipher each use two CPUs; one cipher refuses a second thread while busy.
"""

from __future__ import annotations

import hashlib
from typing import Protocol

from lvcrypt.crypto._sectors import Engine
from lvcrypt.crypto.spec import CipherSpec, parse_cipher_spec
from lvcrypt.errors import HandlerError

Buffer = bytes | bytearray | memoryview
SECTOR_SIZES = (512, 1024, 2048, 4096)
_U64 = (1 << 64) - 1


class KeyHolder(Protocol):
    """A key kept in a buffer of its own (handlers' `Secret`): the cipher reads `buffer`."""

    @property
    def buffer(self) -> bytearray: ...


Key = bytes | bytearray | memoryview | KeyHolder


def openssl_name(cipher: str, chain_mode: str, key_bytes: int) -> str:
    """OpenSSL's name of the block cipher in `chain_mode` (XTS runs on ECB with one half of the key)."""
    mode = "ecb" if chain_mode == "xts" else chain_mode
    return f"{cipher}-{mode}" if cipher == "sm4" else f"{cipher}-{key_bytes * 8}-{mode}"


class SectorCipher:
    """Whole sectors in, whole sectors out (see the module); not for two threads at once."""

    def __init__(self, spec: str | CipherSpec, key: Key, sector_size: int = 512, iv_large_sectors: bool = False):
        if sector_size not in SECTOR_SIZES:
            raise HandlerError(f"sector size {sector_size} is not one of {', '.join(map(str, SECTOR_SIZES))}")
        spec = parse_cipher_spec(str(spec))  # a `CipherSpec` parsed elsewhere (kernel grammar only) is checked again
        view = memoryview(key if isinstance(key, (bytes, bytearray, memoryview)) else key.buffer)
        spec.check_key_size(view.nbytes)
        self.spec = spec
        self.sector_size = sector_size
        self.key_size = view.nbytes
        self.iv_large_sectors = iv_large_sectors
        self._unit = sector_size // 512
        data_key = view.nbytes // 2 if spec.chain_mode == "xts" else view.nbytes
        essiv = spec.iv_mode == "essiv" and spec.chain_mode != "ecb"
        # ESSIV's cipher is keyed by the digest: AES-256 for sha256 (spec.py refuses digests of other sizes).
        essiv_cipher = openssl_name(spec.cipher, "ecb", hashlib.new(spec.iv_option).digest_size) if essiv else None
        self._engine = Engine(openssl_name(spec.cipher, spec.chain_mode, data_key), spec.chain_mode, view,
                              sector_size, spec.iv_mode or "null", 1 if iv_large_sectors else self._unit,
                              essiv_cipher, spec.iv_option if essiv else None)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.spec} key={self.key_size * 8} bits sector_size={self.sector_size}>"

    def copy(self) -> "SectorCipher":
        """The same cipher with OpenSSL contexts of its own, for another thread (the key is not needed again)."""
        twin = object.__new__(SectorCipher)
        twin.__dict__.update(self.__dict__, _engine=self._engine.copy())
        return twin

    def close(self) -> None:
        """Free (and so cleanse) the key's OpenSSL contexts; the cipher cannot be used after."""
        self._engine.close()

    def __enter__(self) -> "SectorCipher":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _first_iv(self, sector: int) -> int:
        if sector < 0 or sector % self._unit:
            raise ValueError(f"sector {sector} is not aligned to the {self.sector_size}-byte sector size")
        return (sector // self._unit if self.iv_large_sectors else sector) & _U64

    def encrypt_into(self, src: Buffer, dst: bytearray | memoryview, sector: int) -> None:
        """Encrypt `src` into `dst` (same length; may be the same buffer) from dm-crypt sector `sector`."""
        self._engine.encrypt_into(src, dst, self._first_iv(sector))

    def decrypt_into(self, src: Buffer, dst: bytearray | memoryview, sector: int) -> None:
        """Decrypt `src` into `dst` (same length; may be the same buffer) from dm-crypt sector `sector`."""
        self._engine.decrypt_into(src, dst, self._first_iv(sector))

    def encrypt(self, data: Buffer, sector: int) -> bytearray:
        """Ciphertext of whole sectors `data` starting at dm-crypt sector `sector`."""
        out = bytearray(len(data))
        self.encrypt_into(data, out, sector)
        return out

    def decrypt(self, data: Buffer, sector: int) -> bytearray:
        """Plaintext of whole sectors `data` starting at dm-crypt sector `sector`."""
        out = bytearray(len(data))
        self.decrypt_into(data, out, sector)
        return out


def open_sector_cipher(spec: str | CipherSpec, key: Key, sector_size: int = 512,
                       iv_large_sectors: bool = False) -> SectorCipher:
    """The sector cipher of a dm-crypt table's cipher string and key; the caller stays the owner (and wiper) of `key`."""
    return SectorCipher(spec, key, sector_size, iv_large_sectors)
