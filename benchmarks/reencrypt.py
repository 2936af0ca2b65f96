"""Encrypting an LV in place (`lvcrypt lvconvert --encrypt`) against cryptsetup's offline encryption of an image of
the same size (`cryptsetup reencrypt --encrypt --force-offline-reencrypt --reduce-device-size 32M`), same run.

Both get a LUKS2 keystore with aes-xts-plain64, a 512-bit key and a fixed, cheap PBKDF, on image files of a
tmpfs-less temporary directory.  Each side is run `--rounds` times alternately; the best wall time and CPU time
(user + system, from wait4) of each count.  lvcrypt runs as an installed package does, from compiled
bytecode: the children may write it (to a cache in the work directory) even when PYTHONDONTWRITEBYTECODE is
set, so the first round compiles and the best round does not (cryptsetup is a compiled binary).  Prints both, the ratio cryptsetup / lvcrypt (the goal: at least
1.0, lvcrypt at least as fast), and lvcrypt's peak RSS for the LV size and for `--big-mib` (the goal: within
10%, memory flat in the LV size).

    .venv/bin/python benchmarks/reencrypt.py [--mib 256] [--big-mib 2048] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

KDF = ["--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000"]
EXTENT_MIB = 4
# cryptsetup's --reduce-device-size; lvcrypt gets the same room: its 16 MiB keystore and one 16 MiB chunk.
HEADER_MIB = 32
CHUNK = "16m"
VG = f"vgbench{os.getpid()}"  # lock files are shared with every lvm2 and lvcrypt on the host


@dataclass
class Run:
    wall: float
    cpu: float
    max_rss_kib: int


def measured(command: list[str], env: dict[str, str]) -> Run:
    """Run `command`, returning its wall time, CPU time and peak RSS (wait4's rusage of that child alone)."""
    started = time.monotonic()
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.monotonic() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        stderr = child.stderr.read().decode(errors="replace") if child.stderr else ""
        raise SystemExit(f"{' '.join(command)} failed ({child.returncode}): {stderr}")
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss)


def lvcrypt(*args: str) -> list[str]:
    return [sys.executable, "-m", "lvcrypt", *args]


def lvcrypt_encrypt(work: Path, mib: int, key: Path) -> Run:
    """A fresh VG on one image (the LV, the keystore, one chunk of room), then the LV encrypted in place."""
    image = work / "pv.img"
    image.unlink(missing_ok=True)
    with open(image, "wb") as f:
        f.truncate((mib + HEADER_MIB + EXTENT_MIB) << 20)  # the extra extent: the PV's label and metadata
    env = {**os.environ, "LVCRYPT_STATE_DIR": str(work / "state"), "LVCRYPT_RUN_DIR": str(work / "run"),
           "PYTHONPYCACHEPREFIX": str(work / "pycache")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    devices = ["--devices", str(image)]
    for command in (lvcrypt("pvcreate", *devices, str(image)),
                    lvcrypt("vgcreate", *devices, "-s", f"{EXTENT_MIB}m", VG, str(image)),
                    lvcrypt("lvcreate", *devices, "-L", f"{mib}m", "-n", "lv", VG)):
        subprocess.run(command, env=env, check=True, capture_output=True)
    return measured(lvcrypt("lvconvert", *devices, "--encrypt", "--handler", "luks2", "--cipher", "aes-xts-plain64",
                            "--key-size", "512", *KDF, "--chunk-size", CHUNK, "--key-file", str(key), f"{VG}/lv"), env)


def cryptsetup_encrypt(work: Path, mib: int, key: Path) -> Run:
    image = work / "cs.img"
    image.unlink(missing_ok=True)
    with open(image, "wb") as f:
        f.truncate(mib << 20)
    return measured(["cryptsetup", "reencrypt", "--encrypt", "--force-offline-reencrypt", "--reduce-device-size",
                     f"{HEADER_MIB}M", "--type", "luks2", "--cipher", "aes-xts-plain64", "--key-size", "512", *KDF,
                     "--batch-mode", "--key-file", str(key), str(image)], dict(os.environ))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256, help="LV (and image) size")
    parser.add_argument("--big-mib", type=int, default=2048, help="the larger LV for the memory comparison (0: skip)")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each side (the best counts)")
    parser.add_argument("--dir", help="where the images go (default: a new temporary directory)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        work = Path(tmp)
        key = work / "passphrase"
        key.write_bytes(b"benchmark passphrase")
        ours, theirs = [], []
        for _ in range(args.rounds):
            ours.append(lvcrypt_encrypt(work, args.mib, key))
            theirs.append(cryptsetup_encrypt(work, args.mib, key))
        best = (min(r.wall for r in ours), min(r.cpu for r in ours))
        anchor = (min(r.wall for r in theirs), min(r.cpu for r in theirs))
        print(f"encrypt {args.mib} MiB in place, best of {args.rounds}")
        print(f"{'':12} {'wall s':>8} {'cpu s':>8} {'peak RSS MiB':>13}")
        print(f"{'cryptsetup':12} {anchor[0]:8.2f} {anchor[1]:8.2f} {max(r.max_rss_kib for r in theirs) / 1024:13.1f}")
        print(f"{'lvcrypt':12} {best[0]:8.2f} {best[1]:8.2f} {max(r.max_rss_kib for r in ours) / 1024:13.1f}")
        print(f"ratio cryptsetup/lvcrypt: wall {anchor[0] / best[0]:.2f}, cpu {anchor[1] / best[1]:.2f} "
              "(goal >= 1.0)")
        if args.big_mib:
            big = lvcrypt_encrypt(work, args.big_mib, key)
            small = max(r.max_rss_kib for r in ours)
            print(f"lvcrypt peak RSS: {small / 1024:.1f} MiB for {args.mib} MiB, {big.max_rss_kib / 1024:.1f} MiB "
                  f"for {args.big_mib} MiB: {100 * (big.max_rss_kib - small) / small:+.1f}% (goal within 10%)")


if __name__ == "__main__":
    main()
