"""Password-based key derivation for keyslots: PBKDF2 and Argon2i/Argon2id.

The cost parameters follow cryptsetup: `--iter-time` is turned into an
iteration count (PBKDF2) or a time cost (Argon2, with the memory and
parallelism given) by timing this machine, with cryptsetup's minimums, so a
keystore made here costs an attacker as much as one made by cryptsetup.
`--pbkdf-force-iterations` skips the benchmark (tests use it to stay fast).

Outputs are written straight into `Secret` buffers (OpenSSL's PKCS5_PBKDF2_HMAC
through lvcrypt's compiled module, Argon2's C API through argon2-cffi's
low-level `lib`) so no immutable copies of derived keys are left behind; only
hashes OpenSSL cannot fetch go through hashlib, which returns `bytes`.  The
compiled module rather than `cryptography`: importing cryptography's bindings
cost a key file unlock more instructions than its PBKDF2 (benchmarks/startup.py).
"""

from __future__ import annotations

import hashlib
import os
import time

from lvcrypt.crypto._sectors import pbkdf2_hmac_into
from lvcrypt.errors import HandlerError
from lvcrypt.handlers.secret import Secret, wipe
from lvcrypt.records import dataclass

PBKDF_KINDS = ("pbkdf2", "argon2i", "argon2id")

# cryptsetup's limits (lib/libcryptsetup.h, lib/setup.c, lib/utils_pbkdf.c).
PBKDF2_MIN_ITERATIONS = 1000
ARGON2_MIN_TIME = 4
ARGON2_MIN_MEMORY_KIB = 32
ARGON2_MAX_MEMORY_KIB = 4 * 1024 * 1024
ARGON2_MAX_PARALLEL = 4
DEFAULT_ITER_TIME_MS = 2000
DEFAULT_MEMORY_KIB = 1024 * 1024
DIGEST_ITER_TIME_MS = 125  # LUKS master-key digest: cryptsetup's LUKS_MKD_ITERATIONS_MS

_ARGON2_VERSION = 0x13
_ARGON2_TYPES = {"argon2i": 1, "argon2id": 2}

# Hashes OpenSSL's default provider always has (the rest are asked of hashlib).
_OPENSSL_HASHES = frozenset({"sha1", "sha224", "sha256", "sha384", "sha512",
                             "sha3-224", "sha3-256", "sha3-384", "sha3-512", "sm3"})


@dataclass(frozen=True)
class Pbkdf:
    """A resolved PBKDF: exactly what a keyslot records.

    `iterations` is PBKDF2's iteration count or Argon2's time cost.
    """

    kind: str
    hash: str | None
    iterations: int
    memory_kib: int = 0
    parallel: int = 0


@dataclass(frozen=True)
class PbkdfRequest:
    """What the user asked for (`--pbkdf`, `--hash`, `--iter-time`, ...), before benchmarking."""

    kind: str = "argon2id"
    hash: str = "sha256"
    iter_time_ms: int = DEFAULT_ITER_TIME_MS
    memory_kib: int = DEFAULT_MEMORY_KIB
    parallel: int = ARGON2_MAX_PARALLEL
    force_iterations: int | None = None

    def resolve(self, key_len: int) -> Pbkdf:
        """The cost parameters for a new keyslot deriving a `key_len`-byte key."""
        check_kind(self.kind)
        minimum = PBKDF2_MIN_ITERATIONS if self.kind == "pbkdf2" else ARGON2_MIN_TIME
        if self.force_iterations is not None and self.force_iterations < minimum:
            raise HandlerError(f"forced iteration count is too low for {self.kind} (minimum is {minimum})")
        if self.kind == "pbkdf2":
            check_hash(self.hash)
            iterations = self.force_iterations or pbkdf2_iterations(self.hash, self.iter_time_ms, key_len)
            return Pbkdf("pbkdf2", self.hash, max(iterations, 1))
        memory = max(ARGON2_MIN_MEMORY_KIB, min(self.memory_kib, ARGON2_MAX_MEMORY_KIB, _half_ram_kib()))
        parallel = max(1, min(self.parallel, ARGON2_MAX_PARALLEL, os.cpu_count() or 1))
        if self.force_iterations:
            return Pbkdf(self.kind, None, self.force_iterations, memory, parallel)
        return argon2_cost(self.kind, self.iter_time_ms, memory, parallel, key_len)


def check_kind(kind: str) -> None:
    if kind not in PBKDF_KINDS:
        raise HandlerError(f"unknown PBKDF {kind!r} (use {', '.join(PBKDF_KINDS)})")


def check_hash(hash_name: str) -> None:
    """Refuse a hash OpenSSL (directly or through hashlib) does not offer."""
    if hash_name.lower() in _OPENSSL_HASHES:
        return
    try:
        hashlib.new(hash_name.lower().replace("-", "_"))
    except ValueError:
        raise HandlerError(f"hash {hash_name} is not supported") from None


def derive(pbkdf: Pbkdf, passphrase: Secret, salt: bytes, length: int) -> Secret:
    """Derive `length` bytes from a passphrase; the result is a wiped-on-close Secret."""
    if pbkdf.kind == "pbkdf2":
        return pbkdf2(pbkdf.hash or "sha1", passphrase.buffer, salt, pbkdf.iterations, length)
    if pbkdf.kind in _ARGON2_TYPES:
        return argon2(pbkdf.kind, passphrase.buffer, salt, pbkdf.iterations, pbkdf.memory_kib,
                      pbkdf.parallel, length)
    raise HandlerError(f"unknown PBKDF {pbkdf.kind!r}")


# OpenSSL's PKCS5_PBKDF2_HMAC takes an int, and cryptsetup's OpenSSL backend refuses larger counts
# (-EINVAL), so a damaged header's count is refused here with a message of its own.
PBKDF2_MAX_ITERATIONS = 2**31 - 1


def pbkdf2(hash_name: str, password: bytes | bytearray, salt: bytes, iterations: int, length: int) -> Secret:
    if iterations < 1:
        raise HandlerError("PBKDF2 iteration count must be positive")
    if iterations > PBKDF2_MAX_ITERATIONS:
        raise HandlerError(f"PBKDF2 iteration count {iterations} is larger than {PBKDF2_MAX_ITERATIONS}")
    out = Secret(length)
    try:
        pbkdf2_hmac_into(hash_name.lower(), password, salt, iterations, out.buffer)
    except LookupError:
        _hashlib_pbkdf2(hash_name, password, salt, iterations, out.buffer)
    return out


def _hashlib_pbkdf2(hash_name: str, password: bytes | bytearray, salt: bytes, iterations: int,
                    out: bytearray) -> None:
    """PBKDF2 of a hash only hashlib offers: its `bytes` result is copied into `out` and wiped."""
    check_hash(hash_name)
    derived = bytearray(hashlib.pbkdf2_hmac(hash_name.lower().replace("-", "_"), password, salt,
                                            iterations, len(out)))
    out[:] = derived
    wipe(derived)


def argon2(kind: str, password: bytes | bytearray, salt: bytes, time_cost: int, memory_kib: int,
           parallel: int, length: int) -> Secret:
    if time_cost < 1 or memory_kib < 8 * parallel or parallel < 1 or len(salt) < 8:
        raise HandlerError(f"invalid {kind} parameters: time {time_cost}, memory {memory_kib} KiB, "
                           f"threads {parallel}")
    from argon2.low_level import ffi, lib  # argon2-cffi loads a C library: only when an Argon2 slot is used

    out = Secret(length)
    pwd = ffi.from_buffer(password) if len(password) else ffi.NULL
    result = lib.argon2_hash(time_cost, memory_kib, parallel, pwd, len(password),
                             ffi.from_buffer(salt), len(salt), ffi.from_buffer(out.buffer), length,
                             ffi.NULL, 0, _ARGON2_TYPES[kind], _ARGON2_VERSION)
    if result != 0:
        out.close()
        message = ffi.string(lib.argon2_error_message(result)).decode()
        raise HandlerError(f"{kind} failed: {message}")
    return out


def pbkdf2_iterations(hash_name: str, iter_time_ms: int, key_len: int) -> int:
    """PBKDF2 iterations that take `iter_time_ms` here (at least cryptsetup's 1000).

    Like cryptsetup, time a growing run until it lasts long enough to measure
    (>= 250 ms or so) and scale linearly.
    """
    password = bytearray(b"lvcrypt-benchmark")
    salt = bytes(32)
    iterations = 1000
    while True:
        start = time.perf_counter()
        pbkdf2(hash_name, password, salt, iterations, key_len).close()
        elapsed = time.perf_counter() - start
        if elapsed >= 0.25 or iterations >= 1 << 30:
            break
        iterations *= 2 if elapsed > 0.05 else 8
    per_ms = iterations / (elapsed * 1000)
    return max(PBKDF2_MIN_ITERATIONS, int(per_ms * iter_time_ms))


def argon2_cost(kind: str, iter_time_ms: int, memory_kib: int, parallel: int, key_len: int) -> Pbkdf:
    """Argon2 time cost for `iter_time_ms` with the given memory; like cryptsetup,
    memory is lowered when even the minimum time cost takes too long."""
    password = bytearray(b"lvcrypt-benchmark")
    salt = bytes(32)
    start = time.perf_counter()
    argon2(kind, password, salt, ARGON2_MIN_TIME, memory_kib, parallel, key_len).close()
    elapsed_ms = (time.perf_counter() - start) * 1000
    time_cost = int(ARGON2_MIN_TIME * iter_time_ms / max(elapsed_ms, 0.001))
    if time_cost < ARGON2_MIN_TIME:
        scaled = int(memory_kib * time_cost / ARGON2_MIN_TIME) if time_cost else memory_kib * iter_time_ms // max(int(elapsed_ms), 1)
        memory_kib = max(ARGON2_MIN_MEMORY_KIB, 8 * parallel, scaled)
        time_cost = ARGON2_MIN_TIME
    return Pbkdf(kind, None, time_cost, memory_kib, parallel)


def _half_ram_kib() -> int:
    """cryptsetup never asks Argon2 for more than half the physical memory."""
    try:
        pages = os.sysconf("SC_PHYS_PAGES")
        page_size = os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return ARGON2_MAX_MEMORY_KIB
    return max(ARGON2_MIN_MEMORY_KIB, pages * page_size // 2048)
