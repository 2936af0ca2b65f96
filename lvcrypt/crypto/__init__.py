"""Sector encryption exactly as dm-crypt does it, for the userspace data path."""

from lvcrypt.crypto.sector import SectorCipher, open_sector_cipher
from lvcrypt.crypto.spec import CipherSpec, check_data_cipher, parse_cipher_spec

__all__ = ["CipherSpec", "SectorCipher", "check_data_cipher", "open_sector_cipher", "parse_cipher_spec"]
