"""LUKS2 volume-key digests (type `pbkdf2`): how a candidate key is recognised.

A keyslot only yields a candidate volume key; it is the right one when
PBKDF2 of it, with the digest's salt and iterations, equals the stored value.
The digest is as long as the hash's output (cryptsetup's
luks2_digest_pbkdf2.c), and its iteration count is benchmarked for 125 ms, or
cryptsetup's minimum of 1000 when the keyslot cost is forced (tests).
"""

from __future__ import annotations

import hashlib
import hmac
import os

from lvcrypt.errors import FormatError, HandlerError
from lvcrypt.handlers.kdf import DIGEST_ITER_TIME_MS, PBKDF2_MIN_ITERATIONS, PbkdfRequest, pbkdf2, pbkdf2_iterations
from lvcrypt.handlers.secret import Secret

from lvcrypt.handlers.luks2.json_area import Digest

SALT_SIZE = 32


def matches(digest: Digest, volume_key: Secret) -> bool:
    """Whether `volume_key` is the key this digest records (constant-time comparison)."""
    if digest.type != "pbkdf2" or digest.hash is None or digest.iterations is None:
        raise HandlerError(f"LUKS2 digest type {digest.type!r} is not supported")
    if len(digest.digest) > 1024:
        raise FormatError("LUKS2 digest value is implausibly long")
    with pbkdf2(digest.hash, volume_key.buffer, digest.salt, digest.iterations, len(digest.digest)) as value:
        return hmac.compare_digest(value.buffer, digest.digest)


def create(volume_key: Secret, hash_name: str, request: PbkdfRequest, keyslots: list[int],
           segments: list[int]) -> Digest:
    """A new digest of `volume_key`, costed like cryptsetup's."""
    try:
        size = hashlib.new(hash_name.lower().replace("-", "_")).digest_size
    except ValueError:
        raise HandlerError(f"hash {hash_name} is not supported") from None
    if request.force_iterations:
        iterations = PBKDF2_MIN_ITERATIONS
    else:
        iterations = pbkdf2_iterations(hash_name, DIGEST_ITER_TIME_MS, len(volume_key))
    salt = os.urandom(SALT_SIZE)
    with pbkdf2(hash_name, volume_key.buffer, salt, iterations, size) as value:
        return Digest("pbkdf2", keyslots, segments, hash_name, iterations, salt, bytes(value.buffer))
