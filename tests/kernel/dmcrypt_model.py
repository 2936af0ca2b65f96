"""An independent model of dm-crypt's aes-xts-plain64 on-disk format, built on `cryptography`.

Kernel tests compare what the guest's dm-crypt writes against this model, so
the IV rule lvcrypt's userspace backend must follow is pinned by the kernel,
not by lvcrypt's own code: the IV of an encryption sector is its offset in
512-byte sectors plus the table's iv_offset, shifted down to count encryption
sectors only with the `iv_large_sectors` flag.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes


def plain64_iv(index: int, sector_size: int, iv_offset: int, iv_large_sectors: bool) -> int:
    """The IV dm-crypt uses for encryption sector `index` of a mapping."""
    sector512 = index * (sector_size // 512) + iv_offset
    return sector512 // (sector_size // 512) if iv_large_sectors else sector512


def xts_plain64(key: bytes, data: bytes, sector_size: int, iv_offset: int = 0,
                iv_large_sectors: bool = False, decrypt: bool = False) -> bytes:
    """Encrypt (or decrypt) whole sectors as dm-crypt's aes-xts-plain64 does, one tweak per sector."""
    assert len(data) % sector_size == 0
    out = bytearray()
    for index in range(len(data) // sector_size):
        tweak = plain64_iv(index, sector_size, iv_offset, iv_large_sectors).to_bytes(16, "little")
        cipher = Cipher(algorithms.AES(key), modes.XTS(tweak))
        context = cipher.decryptor() if decrypt else cipher.encryptor()
        out += context.update(data[index * sector_size:(index + 1) * sector_size]) + context.finalize()
    return bytes(out)
