"""Helpers for tests that use cryptsetup 2.6 on image files as the oracle."""

from __future__ import annotations

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
