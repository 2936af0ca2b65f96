"""The shared pieces of the handler room: Secret, AF splitter, KDFs, cipher specs, registry."""

from __future__ import annotations

import gc
import hashlib
import json
import os
import subprocess
import sys

import pytest
from argon2.low_level import Type, hash_secret_raw

from lvcrypt.errors import FormatError, HandlerError
from lvcrypt.handlers import af, registry
from lvcrypt.handlers.base import KeystoreAttrs, MemoryArea
from lvcrypt.crypto import CipherSpec, SectorCipher
from lvcrypt.handlers.kdf import Pbkdf, PbkdfRequest, derive
from lvcrypt.handlers.secret import Secret


def test_secret_repr_hides_bytes_and_close_wipes() -> None:
    secret = Secret(b"\xde\xad\xbe\xef" * 8)
    buffer = secret.buffer
    assert "de" not in repr(secret) and "32 bytes" in repr(secret) and str(secret) == repr(secret)
    with pytest.raises(TypeError):
        bytes(secret)
    secret.close()
    assert buffer == bytearray(32)
    assert repr(secret) == "<Secret wiped>"
    with pytest.raises(ValueError):
        secret.buffer


def test_secret_is_wiped_when_dropped_and_locked_as_root() -> None:
    secret = Secret(b"k" * 64)
    if os.geteuid() == 0:
        assert secret.locked
    buffer = secret.buffer
    del secret
    gc.collect()
    assert buffer == bytearray(64)


def test_the_compiled_lock_and_wipe_take_buffers_only() -> None:
    """Secrets lock, unlock and wipe through lvcrypt's compiled module: by buffer, never by address."""
    from lvcrypt.crypto import _sectors

    buffer = bytearray(b"k" * 100)
    locked = _sectors.lock_buffer(buffer)
    assert locked if os.geteuid() == 0 else locked in (True, False)  # others: as RLIMIT_MEMLOCK allows
    _sectors.unlock_buffer(buffer)
    _sectors.cleanse_buffer(memoryview(buffer)[10:20])
    assert buffer == b"k" * 10 + bytes(10) + b"k" * 80
    assert _sectors.lock_buffer(bytearray()) is False
    with pytest.raises(BufferError):
        _sectors.cleanse_buffer(b"read-only")
    with pytest.raises(TypeError):
        _sectors.lock_buffer(12345)


LOCK_ROUND_TRIP = """
import json, re
from lvcrypt.handlers.secret import Secret, lock_process_memory, unlock_process_memory
def kib(field):
    return int(next(l for l in open("/proc/self/status") if l.startswith(field + ":")).split()[1])
def unlocked_mappings():
    found = []
    for block in re.split(r"\\n(?=[0-9a-f]+-[0-9a-f]+ )", open("/proc/self/smaps").read()):
        flags = re.search(r"^VmFlags:(.*)$", block, re.M).group(1).split()
        if "lo" not in flags:
            found.append((block.split("\\n", 1)[0].split()[-1], flags))
    return found
with Secret(b"k" * 64) as secret:
    before = kib("VmLck")
    problem = lock_process_memory()
    inner = lock_process_memory()  # a chunk's suspend inside a conversion that holds the lock
    unlock_process_memory()
    during = unlocked_mappings()
    unlock_process_memory()
    print(json.dumps([problem, inner, before, during, kib("VmLck"), secret.locked]))
"""

# What mlock(2) never locks: VM_IO, VM_PFNMAP, VM_DONTEXPAND, VM_MIXEDMAP (VM_SPECIAL), hugetlb, and
# the vsyscall gate page.
KERNEL_UNLOCKABLE = {"io", "pf", "de", "mm", "ht"}


@pytest.mark.skipif(os.geteuid() != 0, reason="mlockall of a whole interpreter needs CAP_IPC_LOCK")
def test_locking_the_process_memory_and_back_keeps_the_secrets_locked() -> None:
    """The critical section around a dm suspend mlockalls the process; munlockall afterwards must not
    leave key material swappable: the secrets' own pages are locked again (in a child: this test
    process keeps its memory unlocked).  Locks nest: a conversion holds one over all its chunks, and a
    chunk's own unlock must not end it.  Mappings are judged by their smaps flags: VmRSS is a per-CPU
    approximation that can exceed VmLck by a megabyte with everything locked."""
    out = subprocess.run([sys.executable, "-c", LOCK_ROUND_TRIP], capture_output=True, text=True, check=True)
    problem, inner, before, during, after, locked = json.loads(out.stdout)
    assert problem is None and inner is None and locked is True, out.stdout
    assert before > 0
    # Every mapping the kernel can lock was locked, then only the secret's page again.
    left = [(name, flags) for name, flags in during if not KERNEL_UNLOCKABLE & set(flags) and name != "[vsyscall]"]
    assert left == []
    assert after == before


def test_af_merge_inverts_split_and_needs_every_stripe() -> None:
    with Secret(os.urandom(32)) as key, af.split(key, af.LUKS_STRIPES, "sha256") as split:
        assert len(split) == 32 * 4000
        with af.merge(split, 32, af.LUKS_STRIPES, "sha256") as merged:
            assert merged == key
        damaged = bytearray(split.buffer)
        damaged[17 * 32 + 5] ^= 0x01
        with af.merge(damaged, 32, af.LUKS_STRIPES, "sha256") as merged:
            assert merged != key


def _cryptsetup_af_merge(split: bytes, size: int, stripes: int, hash_name: str) -> bytes:
    """lib/luks1/af.c's AF_merge written out with hashlib: the reference for the compiled merge."""
    name = hash_name.replace("-", "_")
    digest_size = hashlib.new(name).digest_size
    running = bytes(size)
    for index in range(stripes - 1):
        mixed = bytes(a ^ b for a, b in zip(running, split[index * size:(index + 1) * size]))
        running = b"".join(hashlib.new(name, piece.to_bytes(4, "big") + mixed[start:start + digest_size]).digest()
                           [:size - start] for piece, start in enumerate(range(0, size, digest_size)))
    return bytes(a ^ b for a, b in zip(running, split[(stripes - 1) * size:stripes * size]))


@pytest.mark.parametrize("hash_name", ["sha1", "sha256", "sha512", "ripemd160", "sha3-256"])
@pytest.mark.parametrize("size,stripes", [(16, 4000), (32, 4000), (64, 7), (33, 5), (100, 3), (20, 1)])
def test_compiled_af_merge_matches_cryptsetups_algorithm(hash_name: str, size: int, stripes: int) -> None:
    """Key sizes that are not a multiple of the digest (a truncated last piece) and a single stripe too."""
    split = os.urandom(size * stripes + 3)  # material longer than its stripes, as a keyslot area's last sector
    with af.merge(bytearray(split), size, stripes, hash_name) as merged:
        assert bytes(merged.buffer) == _cryptsetup_af_merge(split, size, stripes, hash_name)


def test_af_merge_refuses_short_material_and_unknown_hashes_in_one_line() -> None:
    with pytest.raises(HandlerError, match="shorter than its stripes"):
        af.merge(bytearray(32 * 3999), 32, af.LUKS_STRIPES, "sha256")
    with pytest.raises(HandlerError, match="shorter than its stripes"):
        af.merge(bytearray(32), 32, 0, "sha256")
    with pytest.raises(HandlerError, match="hash whirlpool is not available"):
        af.merge(bytearray(32 * 4), 32, 4, "whirlpool")


@pytest.mark.parametrize("hash_name", ["sha1", "sha256", "sha512", "sha3-512", "sm3"])
@pytest.mark.parametrize("length", [1, 20, 32, 65, 200])
def test_compiled_pbkdf2_writes_hashlibs_bytes_into_the_secret(hash_name: str, length: int) -> None:
    with Secret(b"pass\x00phrase") as pw, derive(Pbkdf("pbkdf2", hash_name, 1), pw, b"NaCl", length) as key:
        assert bytes(key.buffer) == hashlib.pbkdf2_hmac(hash_name.replace("-", "_"), b"pass\x00phrase", b"NaCl",
                                                        1, length)


@pytest.mark.parametrize("hash_name", ["sha1", "sha256", "sha512", "ripemd160", "sha3-256"])
def test_pbkdf2_matches_openssl_through_hashlib(hash_name: str) -> None:
    with Secret(b"passphrase") as pw, derive(Pbkdf("pbkdf2", hash_name, 1000), pw, b"salt" * 8, 64) as key:
        assert bytes(key.buffer) == hashlib.pbkdf2_hmac(hash_name.replace("-", "_"), b"passphrase",
                                                        b"salt" * 8, 1000, 64)


@pytest.mark.parametrize("hash_name", ["sha256", "whirlpool"])
def test_an_iteration_count_openssl_cannot_take_is_refused_in_one_line(hash_name: str) -> None:
    """A damaged LUKS1 header's count (uint32 on disk) above INT_MAX: cryptsetup's OpenSSL backend says EINVAL;
    PKCS5_PBKDF2_HMAC takes an int."""
    with Secret(b"passphrase") as pw, pytest.raises(HandlerError, match="iteration count 2147483648 is larger"):
        derive(Pbkdf("pbkdf2", hash_name, 2**31), pw, b"salt" * 8, 32)


@pytest.mark.parametrize("kind,argon_type", [("argon2i", Type.I), ("argon2id", Type.ID)])
def test_argon2_matches_argon2_cffi_high_level_path(kind: str, argon_type: Type) -> None:
    with Secret(b"passphrase") as pw, derive(Pbkdf(kind, None, 4, 32768, 2), pw, b"s" * 32, 32) as key:
        assert bytes(key.buffer) == hash_secret_raw(b"passphrase", b"s" * 32, 4, 32768, 2, 32, argon_type)


def test_cost_resolution_respects_cryptsetup_minimums() -> None:
    assert PbkdfRequest("pbkdf2", "sha256", force_iterations=1234).resolve(32) == Pbkdf("pbkdf2", "sha256", 1234)
    assert PbkdfRequest("pbkdf2", "sha256", iter_time_ms=1).resolve(32).iterations >= 1000
    argon = PbkdfRequest("argon2id", iter_time_ms=1, memory_kib=65536, parallel=64).resolve(32)
    assert argon.iterations >= 4 and argon.parallel <= 4 and argon.memory_kib >= 32
    for kind, low in (("pbkdf2", 999), ("argon2id", 3)):
        with pytest.raises(HandlerError, match="too low"):
            PbkdfRequest(kind, force_iterations=low).resolve(32)
    with pytest.raises(HandlerError, match="unknown PBKDF"):
        PbkdfRequest("scrypt").resolve(32)
    with pytest.raises(HandlerError, match="not supported"):
        PbkdfRequest("pbkdf2", "md4x").resolve(32)


def test_cipher_specs_parse_and_refuse_what_cryptography_lacks() -> None:
    assert str(CipherSpec.parse("aes-cbc-essiv:sha256")) == "aes-cbc-essiv:sha256"
    for spec, message in [("twofish-xts-plain64", "no twofish"), ("serpent-cbc-essiv:sha256", "no serpent"),
                          ("aes-gcm-random", "mode gcm"), ("aes-xts", "cipher-mode-iv"),
                          ("aes-cbc-essiv", "IV generator")]:
        with pytest.raises(HandlerError, match=message):
            CipherSpec.parse(spec)
    with Secret(os.urandom(64)) as key, pytest.raises(HandlerError, match="not valid"):
        SectorCipher("aes-cbc-essiv:sha256", key)
    with Secret(os.urandom(64)) as key:
        cipher = SectorCipher("aes-xts-plain64", key)
        data = os.urandom(4096)
        assert cipher.decrypt(cipher.encrypt(data, 7), 7) == data
        assert cipher.encrypt(data, 7) != cipher.encrypt(data, 8)


def test_registry_loads_builtins_and_names_a_missing_handler() -> None:
    assert {"plain", "hashed", "luks1", "luks2"} <= set(registry.available())
    assert registry.get("luks1").name == "luks1" and registry.get("hashed").has_header is False
    attrs = KeystoreAttrs.from_mapping({"handler": "tpm2", "cipher": "aes-xts-plain64", "key_size": 512,
                                        "key_hash": "sha256", "tpm2_pcrs": "7", "slot_count": 3})
    assert attrs.extra == {"tpm2_pcrs": "7", "slot_count": 3}
    assert KeystoreAttrs.from_mapping(attrs.to_mapping()) == attrs
    with pytest.raises(HandlerError, match="'tpm2' is not installed"):
        registry.get(attrs.handler)


def test_detect_reads_luks_magic_and_check_blocks() -> None:
    assert registry.detect(MemoryArea(b"LUKS\xba\xbe\x00\x01" + bytes(600))) == "luks1"
    assert registry.detect(MemoryArea(b"LUKS\xba\xbe\x00\x02" + bytes(600))) == "luks2"
    with pytest.raises(FormatError, match="unsupported LUKS version 3"):
        registry.detect(MemoryArea(b"LUKS\xba\xbe\x00\x03" + bytes(600)))
    with pytest.raises(FormatError, match="not a LUKS header"):
        registry.detect(MemoryArea(bytes(4096)))
