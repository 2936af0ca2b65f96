"""Sequential read of a 64 MiB crypt LV: lvcrypt's dm-crypt mapping vs cryptsetup's mapping of the same data.

Runs in the kernel guest (a real device-mapper); started on the host, it
boots the guest through tests/kernel/guest.py and runs itself there:

    .venv/bin/python benchmarks/kernel_read.py [--rounds 3]

One image-file PV on a loop device, a LUKS2 crypt LV (cheap PBKDF) activated
with `lvcrypt lvchange -ay`, and the same extents opened by `cryptsetup open
--header <the LV's keystore>` over a loop device limited to those extents.
Both mappings are read end to end with O_DIRECT (no page cache), alternating
in rounds; each keeps its best round.  The figure is about the tables being
equal (same cipher, sector size, flags), so the ratio should be 1 within noise.
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIZE = 64 << 20
CHUNK = 1 << 20
VG = "vgbench"
FAST = ["--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000"]


def sh(*argv: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(list(argv), capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {result.stderr.strip()}")
    return result.stdout


def read_mb_s(path: str) -> float:
    """MB/s of one O_DIRECT pass over the whole device."""
    buffer = mmap.mmap(-1, CHUNK)  # page-aligned, as O_DIRECT needs
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    try:
        start = time.perf_counter()
        offset = 0
        while offset < SIZE:
            offset += os.preadv(fd, [buffer], offset)
        return SIZE / (time.perf_counter() - start) / 1e6
    finally:
        os.close(fd)
        buffer.close()


def in_guest(rounds: int) -> None:
    subprocess.run(["modprobe", "-a", "dm_mod", "dm_crypt", "loop"], check=True)
    work = Path(tempfile.mkdtemp(dir="/var/tmp"))
    env = {**os.environ, "LVCRYPT_STATE_DIR": str(work / "state"), "LVCRYPT_RUN_DIR": str(work / "run")}
    image = work / "pv.img"
    with open(image, "wb") as f:
        f.truncate(SIZE + (32 << 20))  # room for the keystore (a 16 MiB LUKS2 header) and metadata
    (work / "pass").write_bytes(b"benchmark passphrase")
    lvcrypt = [sys.executable, "-m", "lvcrypt"]
    devices = ["--devices", str(image)]
    key = ["--key-file", str(work / "pass")]
    sh(*lvcrypt, "pvcreate", *devices, str(image), env=env)
    sh(*lvcrypt, "vgcreate", *devices, VG, str(image), env=env)
    sh(*lvcrypt, "lvcreate", *devices, "--encrypt", *FAST, *key, "-L", "64M", "-n", "data", VG, env=env)
    sh(*lvcrypt, "lvchange", *devices, "-ay", *key, f"{VG}/data", env=env)
    ours = f"/dev/mapper/{VG}-data"
    loops: list[str] = []
    try:
        with open(ours, "r+b") as f:  # real ciphertext on disk, not zeros
            for _ in range(SIZE // CHUNK):
                f.write(os.urandom(CHUNK))
            f.flush()
            os.fsync(f.fileno())
        layout = json.loads(sh(*lvcrypt, "lvs", *devices, "-a", "--units", "b", "--reportformat", "json",
                               "-o", "lv_name,seg_pe_ranges", VG, env=env))["report"][0]["lv"]
        pe_start = int(json.loads(sh(*lvcrypt, "pvs", *devices, "--units", "b", "--reportformat", "json",
                                     "-o", "pe_start", env=env))["report"][0]["pv"][0]["pe_start"].rstrip("B"))
        extent = 4 << 20

        def extents(lv: str) -> tuple[int, int]:
            ranges = next(row["seg_pe_ranges"] for row in layout if row["lv_name"].strip("[]") == lv)
            first, last = ranges.rsplit(":", 1)[1].split("-")
            return pe_start + int(first) * extent, (int(last) - int(first) + 1) * extent

        for lv in ("cryptostore0", "data"):
            start, length = extents(lv)
            loops.append(sh("losetup", "-f", "--show", "-o", str(start), "--sizelimit", str(length),
                            str(image)).strip())
        sh("cryptsetup", "open", "--header", loops[0], *key, loops[1], "bench-cs")
        theirs = "/dev/mapper/bench-cs"
        best = {"lvcrypt": 0.0, "cryptsetup": 0.0}
        for _ in range(rounds):
            best["lvcrypt"] = max(best["lvcrypt"], read_mb_s(ours))
            best["cryptsetup"] = max(best["cryptsetup"], read_mb_s(theirs))
        same = _digest(ours) == _digest(theirs)
        print(f"lvcrypt dm-crypt mapping:    {best['lvcrypt']:8.1f} MB/s")
        print(f"cryptsetup mapping:          {best['cryptsetup']:8.1f} MB/s")
        print(f"ratio lvcrypt/cryptsetup:    {best['lvcrypt'] / best['cryptsetup']:8.2f}  "
              f"(same plaintext: {'yes' if same else 'NO'})")
    finally:
        subprocess.run(["cryptsetup", "close", "bench-cs"], capture_output=True)
        subprocess.run([*lvcrypt, "lvchange", *devices, "-an", f"{VG}/data"], capture_output=True, env=env)
        for device in loops:
            subprocess.run(["losetup", "-d", device], capture_output=True)
        image.unlink()


def _digest(path: str) -> str:
    import hashlib

    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if os.environ.get("LVCRYPT_KERNEL_GUEST") == "1":
        in_guest(args.rounds)
        return 0
    return subprocess.run([sys.executable, str(ROOT / "tests/kernel/guest.py"), "--", sys.executable,
                           str(Path(__file__).resolve()), "--rounds", str(args.rounds)]).returncode


if __name__ == "__main__":
    sys.exit(main())
