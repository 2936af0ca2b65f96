"""A small VG for the extent mover's tests: two PVs, an LV of a striped and a linear segment with known data.

Shared by tests/store (crash at every write) and tests/compat (lvm2 and cryptsetup oracles).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

from conftest import ROOT
from store_helpers import Pair

PASSPHRASE = b"mover passphrase"
FAST_KDF = ("--handler", "luks1", "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000")  # a small header
LV_EXTENTS = 7  # 4 striped over both PVs, then 3 linear


def key_path(pair: Pair) -> str:
    path = pair.tmp / "passphrase"
    if not path.exists():
        path.write_bytes(PASSPHRASE)
    return str(path)


def make_vg(pair: Pair, encrypted: bool) -> bytes:
    """vgc on every device (1 MiB extents) with vgc/lv (crypt with --encrypted) on the first two, full of random
    data; returns it.  A third device is where pvmove can put a stripe (not beside the other one)."""
    a, b = pair.devices[:2]
    for device in pair.devices:
        pair.lvc("pvcreate", "--metadatasize", "64k", "--dataalignment", "64k", device)
    pair.lvc("vgcreate", "-s", "1m", "vgc", *pair.devices)
    pair.lvc("lvcreate", "-l", "1", "-n", "first", "vgc", a)  # the LV does not start at extent 0
    crypt = ["--encrypt", *FAST_KDF, "--key-file", key_path(pair)] if encrypted else []
    pair.lvc("lvcreate", "-l", "4", "-i", "2", "-I", "64k", "-n", "lv", *crypt, "vgc", a, b)
    pair.lvc("lvextend", "-l", f"+{LV_EXTENTS - 4}", "-i", "1", "vgc/lv", a)
    data = os.urandom(LV_EXTENTS << 20)
    write_lv(pair, data, encrypted)
    return data


def write_lv(pair: Pair, data: bytes, encrypted: bool, lv: str = "lv") -> None:
    keys = ["--key-file", key_path(pair)] if encrypted else []
    result = subprocess.run([sys.executable, "-m", "lvcrypt", "write", "--devices", pair.device_list, *keys,
                             f"vgc/{lv}"], input=data, capture_output=True, env=pair.env, cwd=ROOT)
    assert result.returncode == 0, result.stderr


def read_lv(pair: Pair, encrypted: bool, lv: str = "lv") -> bytes:
    keys = ["--key-file", key_path(pair)] if encrypted else []
    result = subprocess.run([sys.executable, "-m", "lvcrypt", "read", "--devices", pair.device_list, *keys,
                             f"vgc/{lv}"], capture_output=True, env=pair.env, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    return result.stdout


def lvm2_reads(pair: Pair, where: str) -> set[str]:
    """lvm2's vgck passes and its lvs lists the VG: what it lists (hidden LVs too)."""
    check = pair.lvm("vgck", "vgc", check=False)
    assert check.returncode == 0, f"{where}: lvm vgck: {check.stderr}"
    listed = pair.lvm("lvs", "-a", "--noheadings", "-o", "lv_name", "vgc", check=False)
    assert listed.returncode == 0, f"{where}: lvm lvs: {listed.stderr}"
    return {name.strip("[]") for name in listed.stdout.split()}


def pv_image_holds(device: str, needle: bytes) -> bool:
    with open(device, "rb") as f:
        return needle in f.read()


def tmp_file(pair: Pair, name: str, data: bytes) -> Path:
    path = pair.tmp / name
    path.write_bytes(data)
    return path


class Interrupted(Exception):
    """What `interrupt_after` raises: the conversion stops there as on Ctrl-C."""


def interrupt_after(pieces: int) -> Callable[[int, int], None]:
    """A progress callback that stops a conversion or pvmove after `pieces` pieces of data."""
    seen: list[int] = []

    def progress(done: int, total: int) -> None:
        seen.append(done)
        if len(seen) == pieces:
            raise Interrupted()
    return progress


def two_image_pair(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, count: int = 2) -> Pair:
    """Two (or `count`) 16 MiB image files, with this process's state and run directories the Pair's own."""
    images = []
    for name in ("a.img", "b.img", "c.img")[:count]:
        path = tmp_path / name
        with open(path, "wb") as f:
            f.truncate(16 << 20)
        images.append(str(path))
    found = Pair(images, tmp_path)
    for key in ("LVCRYPT_STATE_DIR", "LVCRYPT_RUN_DIR"):
        monkeypatch.setenv(key, found.env[key])
    return found
