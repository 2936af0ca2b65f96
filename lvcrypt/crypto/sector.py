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

Two engines give the same bytes.  Bulk work goes to `sector_batch` (numpy,
one OpenSSL call per batch); but numpy's import costs more than a short
command's whole run (a 4 KiB `read`, a keyslot unlock), so AES-XTS starts
with one OpenSSL XTS call per sector, which needs nothing but
`cryptography`, and moves to the batch engine once it has done
`PER_SECTOR_BYTES`: per-sector work then stops before it costs more than
the import it saved (the ski-rental rule: never more than twice the better
choice made in hindsight).  A call larger than `PER_SECTOR_CALL_BYTES` (the
data path's 1 MiB steps, a conversion's chunks) is bulk work and goes to the
batch engine at once.  The per-sector contexts need the whole key, so
until the move the cipher keeps a copy in a bytearray that `close()` (or the
move, or the collector) wipes; other specs and XTS keys with equal halves
(OpenSSL's XTS may refuse those) use the batch engine from the start and
keep no key.  Instances are not thread-safe; use one per thread.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import TYPE_CHECKING, Callable, Protocol

from cryptography.hazmat.primitives.ciphers import Cipher, CipherAlgorithm, CipherContext, algorithms, modes

from lvcrypt.crypto.spec import CipherSpec, parse_cipher_spec
from lvcrypt.errors import HandlerError

if TYPE_CHECKING:
    from lvcrypt.crypto.sector_batch import BatchCipher

Buffer = bytes | bytearray | memoryview
SECTOR_SIZES = (512, 1024, 2048, 4096)
BLOCK = 16
DEFAULT_BATCH_BYTES = 128 << 10  # a batch and its tweak work arrays (~6x its size) stay in L2
# About what numpy's import costs (~75 ms CPU) at the per-sector path's slowest rate (512-byte sectors).
PER_SECTOR_BYTES = 4 << 20
PER_SECTOR_CALL_BYTES = 256 << 10  # holds a keyslot area (4000 stripes of a 512-bit key: 256,000 bytes)
_U64 = (1 << 64) - 1

_ALGORITHMS: dict[str, Callable[[Buffer], CipherAlgorithm]] = {"aes": algorithms.AES, "sm4": algorithms.SM4}


class KeyHolder(Protocol):
    """A key kept in a buffer of its own (handlers' `Secret`): the cipher reads `buffer`."""

    @property
    def buffer(self) -> bytearray: ...


Key = bytes | bytearray | memoryview | KeyHolder


def key_view(key: Key) -> memoryview:
    return memoryview(key if isinstance(key, (bytes, bytearray, memoryview)) else key.buffer)


def ecb(cipher: str, key: Buffer, decrypt: bool = False) -> CipherContext:
    context = Cipher(_ALGORITHMS[cipher](key), modes.ECB())
    return context.decryptor() if decrypt else context.encryptor()


def essiv_cipher(spec: CipherSpec, key: memoryview) -> CipherContext:
    """ESSIV's IV encryptor: the spec's cipher keyed by the hash of the whole key."""
    salt = bytearray(hashlib.new(spec.iv_option, key).digest())
    try:
        return ecb(spec.cipher, salt)
    finally:
        salt[:] = bytes(len(salt))


def parsed(spec: str | CipherSpec) -> CipherSpec:
    """A spec the engine computes; a `CipherSpec` parsed elsewhere (e.g. kernel grammar only) is checked again."""
    return parse_cipher_spec(str(spec))


def sector_iv(iv_mode: str, number: int) -> bytes:
    """The 16-byte IV of IV number `number` before ESSIV's encryption (ESSIV encrypts the plain64 IV)."""
    if iv_mode == "null":
        return bytes(BLOCK)
    if iv_mode == "plain":
        return (number & 0xFFFFFFFF).to_bytes(BLOCK, "little")
    if iv_mode == "plain64be":
        return bytes(8) + (number & _U64).to_bytes(8, "big")
    return (number & _U64).to_bytes(BLOCK, "little")


class WholeSectors:
    """`encrypt`/`decrypt` returning new buffers, over an engine's `encrypt_into`/`decrypt_into`
    (both engines, per-sector and batch, share these)."""

    def encrypt_into(self, src: Buffer, dst: bytearray | memoryview, sector: int) -> None:
        raise NotImplementedError

    def decrypt_into(self, src: Buffer, dst: bytearray | memoryview, sector: int) -> None:
        raise NotImplementedError

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


class SectorCipher(WholeSectors):
    """Whole sectors in, whole sectors out, from the per-sector or the batch engine (see the module)."""

    _key: bytearray | None = None  # set before anything can fail, for __del__

    def __init__(self, spec: str | CipherSpec, key: Key, sector_size: int = 512, iv_large_sectors: bool = False,
                 batch_bytes: int = DEFAULT_BATCH_BYTES):
        if sector_size not in SECTOR_SIZES:
            raise HandlerError(f"sector size {sector_size} is not one of {', '.join(map(str, SECTOR_SIZES))}")
        spec = parsed(spec)
        view = key_view(key)
        spec.check_key_size(view.nbytes)
        self.spec = spec
        self.sector_size = sector_size
        self.key_size = view.nbytes
        self.iv_large_sectors = iv_large_sectors
        self._batch_bytes = batch_bytes
        self._iv_step = 1 if iv_large_sectors else sector_size // 512
        self._shift = (sector_size // 512).bit_length() - 1
        self._batch: BatchCipher | None = None
        self._key: bytearray | None = None
        self._per_sector_left = PER_SECTOR_BYTES
        self._essiv: CipherContext | None = None
        half = view.nbytes // 2
        if spec.chain_mode == "xts" and spec.cipher == "aes" and not hmac.compare_digest(view[:half], view[half:]):
            self._key = bytearray(view)
            if spec.iv_mode == "essiv":
                self._essiv = essiv_cipher(spec, view)
        else:
            self._batch = self._open_batch(view)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.spec} key={self.key_size * 8} bits sector_size={self.sector_size}>"

    def _open_batch(self, key: Key) -> BatchCipher:
        from lvcrypt.crypto.sector_batch import open_batch_cipher  # numpy: only when the batch engine is needed

        return open_batch_cipher(self.spec, key, self.sector_size, self.iv_large_sectors, self._batch_bytes)

    def _engine(self) -> BatchCipher:
        """The batch engine, opened from the kept key (then wiped: it is needed no more) on first use."""
        if self._batch is None:
            if self._key is None:
                raise ValueError("the sector cipher is closed")
            self._batch = self._open_batch(self._key)
            self._wipe_key()
        return self._batch

    def _wipe_key(self) -> None:
        if self._key is not None:
            self._key[:] = bytes(len(self._key))
            self._key = None

    def close(self) -> None:
        """Wipe the kept key and drop the engines; the cipher cannot be used after."""
        self._wipe_key()
        self._batch = None

    def __enter__(self) -> "SectorCipher":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self._wipe_key()

    def encrypt_into(self, src: Buffer, dst: bytearray | memoryview, sector: int) -> None:
        """Encrypt `src` into `dst` (same length; may be the same buffer)."""
        self._run(src, dst, sector, decrypt=False)

    def decrypt_into(self, src: Buffer, dst: bytearray | memoryview, sector: int) -> None:
        """Decrypt `src` into `dst` (same length; may be the same buffer)."""
        self._run(src, dst, sector, decrypt=True)

    def _run(self, src: Buffer, dst: Buffer, sector: int, decrypt: bool) -> None:
        length = memoryview(src).nbytes
        if length % self.sector_size:
            raise ValueError(f"{length} bytes is not a whole number of {self.sector_size}-byte sectors")
        if memoryview(dst).nbytes != length:
            raise ValueError("source and destination differ in length")
        if sector < 0 or sector % (self.sector_size // 512):
            raise ValueError(f"sector {sector} is not aligned to the {self.sector_size}-byte sector size")
        if self._key is not None and length <= min(self._per_sector_left, PER_SECTOR_CALL_BYTES):
            self._per_sector_left -= length
            self._per_sector(src, dst, sector, decrypt)
            return
        engine = self._engine()
        (engine.decrypt_into if decrypt else engine.encrypt_into)(src, dst, sector)

    def _tweaks(self, sector: int, count: int) -> list[bytes]:
        """The XTS tweak (dm-crypt's IV) of `count` sectors from dm-crypt sector `sector`."""
        first = sector >> self._shift if self.iv_large_sectors else sector
        ivs = [sector_iv(self.spec.iv_mode, first + index * self._iv_step) for index in range(count)]
        if self._essiv is None:
            return ivs
        joined = b"".join(ivs)
        encrypted = bytearray(len(joined) + BLOCK)
        self._essiv.update_into(joined, encrypted)
        return [bytes(encrypted[index * BLOCK:(index + 1) * BLOCK]) for index in range(count)]

    def _per_sector(self, src: Buffer, dst: Buffer, sector: int, decrypt: bool) -> None:
        """One OpenSSL AES-XTS call per sector, straight into `dst` (the tweak is the sector's IV)."""
        size = self.sector_size
        source = memoryview(src).cast("B")
        target = memoryview(dst).cast("B")
        algorithm = algorithms.AES(self._key)
        for index, tweak in enumerate(self._tweaks(sector, source.nbytes // size)):
            cipher = Cipher(algorithm, modes.XTS(tweak))
            context = cipher.decryptor() if decrypt else cipher.encryptor()
            context.update_into(source[index * size:(index + 1) * size], target[index * size:(index + 1) * size])


def open_sector_cipher(spec: str | CipherSpec, key: Key, sector_size: int = 512,
                       iv_large_sectors: bool = False, batch_bytes: int = DEFAULT_BATCH_BYTES) -> SectorCipher:
    """The sector cipher of a dm-crypt table's cipher string and key.

    The caller stays the owner (and wiper) of `key`; for AES-XTS the cipher
    keeps its own copy until `close()` or until it moves to the batch engine.
    """
    return SectorCipher(spec, key, sector_size, iv_large_sectors, batch_bytes)
