"""Sector encryption exactly as dm-crypt does it: the one cipher-spec grammar and sector cipher.

The userspace data path and the LUKS handlers' keyslot areas both use it;
it imports only `lvcrypt.errors` (the bottom layer).
"""

from typing import TYPE_CHECKING

from lvcrypt.crypto.spec import (CipherSpec, check_data_cipher, check_kernel_cipher, check_new_volume_key,
                                 parse_cipher_spec, parse_kernel_cipher_spec)

__all__ = ["CipherSpec", "SectorCipher", "check_data_cipher", "check_kernel_cipher", "check_new_volume_key",
           "open_sector_cipher", "parse_cipher_spec", "parse_kernel_cipher_spec"]

if TYPE_CHECKING:
    from lvcrypt.crypto.sector import SectorCipher, open_sector_cipher


def __getattr__(name: str) -> object:
    """`SectorCipher` and `open_sector_cipher` load on first use: they bring the compiled engine and the
    system's libcrypto (milliseconds of dynamic linking), which parsing a spec (`keystore dump`, `lvs`)
    should not pay for at start-up."""
    if name in ("SectorCipher", "open_sector_cipher"):
        from lvcrypt.crypto import sector

        return getattr(sector, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
