"""Helpers for tests that use cryptsetup 2.6 on image files as the oracle."""

from __future__ import annotations

import ctypes
import ctypes.util
import re
import shutil
import subprocess
from pathlib import Path

import pytest

FAST = ["--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000"]

needs_cryptsetup = pytest.mark.skipif(shutil.which("cryptsetup") is None,
                                      reason="cryptsetup is not installed (bash install.sh installs it)")


def cryptsetup(*args: str, check: bool = True, input: bytes | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["cryptsetup", *args], capture_output=True, input=input)
    if check and result.returncode != 0:
        raise AssertionError(f"cryptsetup {' '.join(args)} failed ({result.returncode}): "
                             f"{result.stderr.decode(errors='replace')}")
    return subprocess.CompletedProcess(result.args, result.returncode, result.stdout.decode(errors="replace"),
                                       result.stderr.decode(errors="replace"))


def image(path: Path, size_mib: int = 4) -> Path:
    with open(path, "wb") as f:
        f.truncate(size_mib << 20)
    return path


def key_file(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


def dumped_volume_key(img: Path, keyfile: Path) -> bytes:
    """The volume key as `cryptsetup luksDump --dump-volume-key` prints it."""
    out = cryptsetup("luksDump", "--dump-volume-key", "-q", "--key-file", str(keyfile), str(img)).stdout
    match = re.search(r"(?:MK|Volume key) dump:\s*((?:[0-9a-f]{2}\s+)+)", out + "\n")
    assert match, out
    return bytes.fromhex(match.group(1).replace(" ", "").replace("\n", "").replace("\t", ""))


def opens_with(img: Path, keyfile: Path) -> bool:
    return cryptsetup("open", "--test-passphrase", "--key-file", str(keyfile), str(img), check=False).returncode == 0


class _PlainParams(ctypes.Structure):
    """struct crypt_params_plain of libcryptsetup 2.6."""

    _fields_ = [("hash", ctypes.c_char_p), ("offset", ctypes.c_uint64), ("skip", ctypes.c_uint64),
                ("size", ctypes.c_uint64), ("sector_size", ctypes.c_uint32)]


def libcryptsetup_plain_key(img: Path, hash_spec: str | None, key_bytes: int, passphrase: bytes) -> bytes:
    """The key `cryptsetup open --type plain` maps, computed by libcryptsetup itself.

    Opening plain mode needs device-mapper (absent here), but libcryptsetup's
    crypt_volume_key_get runs the same key processing on a PLAIN context set
    up on an image file, so the real implementation still answers.
    """
    lib = ctypes.CDLL(ctypes.util.find_library("cryptsetup") or "libcryptsetup.so.12")
    cd = ctypes.c_void_p()
    assert lib.crypt_init(ctypes.byref(cd), str(img).encode()) == 0
    try:
        params = _PlainParams(hash_spec.encode() if hash_spec else None, 0, 0, 0, 512)
        status = lib.crypt_format(cd, b"PLAIN", b"aes", b"cbc-essiv:sha256", None, None,
                                  ctypes.c_size_t(key_bytes), ctypes.byref(params))
        assert status == 0, status
        out = ctypes.create_string_buffer(key_bytes)
        size = ctypes.c_size_t(key_bytes)
        status = lib.crypt_volume_key_get(cd, -1, out, ctypes.byref(size), passphrase,
                                          ctypes.c_size_t(len(passphrase)))
        assert status >= 0, f"libcryptsetup refused ({status})"
        return out.raw[:size.value]
    finally:
        lib.crypt_free(cd)
