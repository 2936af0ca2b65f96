"""Sequential read and write of a 256 MiB crypt LV through the userspace backend, against openssl.

Builds a VG on sparse image files with lvcrypt itself, creates an
aes-xts-plain64 crypt LV (512-byte and 4096-byte sectors), and measures
- in process: `Stack.write`/`Stack.readinto` over the whole LV in 1 MiB steps;
- as a user runs it: `lvcrypt read VG/LV > /dev/null` (process start-up, VG
  scan and unlock included, so it is a lower bound on the stream rate);
next to `openssl speed -evp aes-256-xts -bytes S` on the same CPU.  Prints MB/s
and the ratio to openssl.  Memory stays constant: the LV is streamed.

    .venv/bin/python benchmarks/datapath_lv.py [--size-mib 256]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from datapath import openssl_xts_mb_s, pin_to_one_cpu  # noqa: E402

FAST = ["--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000"]


def lvcrypt(env: dict[str, str], *args: str, stdout: int | None = subprocess.PIPE) -> None:
    subprocess.run([sys.executable, "-m", "lvcrypt", *args], check=True, env=env, stdout=stdout,
                   stderr=subprocess.PIPE)


def setup(work: Path, size_mib: int) -> tuple[dict[str, str], str]:
    env = {**os.environ, "LVCRYPT_STATE_DIR": str(work / "state"), "LVCRYPT_RUN_DIR": str(work / "run")}
    image = work / "pv.img"
    with open(image, "wb") as f:
        f.truncate((2 * size_mib + 64) << 20)
    (work / "pass").write_bytes(b"benchmark passphrase")
    devices = ["--devices", str(image)]
    lvcrypt(env, "pvcreate", *devices, str(image))
    lvcrypt(env, "vgcreate", *devices, "vgb", str(image))
    for sector in (512, 4096):
        lvcrypt(env, "lvcreate", *devices, "--encrypt", *FAST, "--sector-size", str(sector), "--key-file",
                str(work / "pass"), "-L", f"{size_mib}M", "-n", f"s{sector}", "vgb")
    return env, str(image)


def in_process(image: str, lv: str, passphrase: Path, env: dict[str, str]) -> tuple[float, float]:
    """(write MB/s, read MB/s) through the Stack the CLI would build."""
    from lvcrypt.activate.userspace import Stack
    from lvcrypt.activation import build_lv_table
    from lvcrypt.keycache import KeyCache
    from lvcrypt.store.transaction import VgTransaction
    from lvcrypt.unlock import KeySources, unlock_lv

    os.environ.update(env)
    with VgTransaction(image, "vgb", exclusive=False) as tx, KeyCache() as keys:
        table = build_lv_table(tx, lv)
        unlock_lv(tx, lv, keys, KeySources(key_file=str(passphrase)))
        with Stack(table, keys, writable=True) as stack:
            chunk = bytearray(os.urandom(1 << 20))
            start = time.perf_counter()
            for offset in range(0, stack.size, len(chunk)):
                stack.write(offset, chunk)
            stack.sync()
            write_s = time.perf_counter() - start
            view = memoryview(chunk)
            start = time.perf_counter()
            for offset in range(0, stack.size, len(chunk)):
                stack.readinto(offset, view)
            read_s = time.perf_counter() - start
            return stack.size / write_s / 1e6, stack.size / read_s / 1e6


def via_cli(env: dict[str, str], image: str, lv: str, passphrase: Path, size: int) -> float:
    start = time.perf_counter()
    lvcrypt(env, "read", "--devices", image, "--key-file", str(passphrase), f"vgb/{lv}", stdout=subprocess.DEVNULL)
    return size / (time.perf_counter() - start) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mib", type=int, default=256)
    args = parser.parse_args()
    cpu = pin_to_one_cpu()
    with tempfile.TemporaryDirectory(prefix="lvcrypt-bench-") as temp:
        work = Path(temp)
        env, image = setup(work, args.size_mib)
        print(f"crypt LV of {args.size_mib} MiB, aes-xts-plain64 512-bit key, one core (cpu {cpu})")
        for sector in (512, 4096):
            openssl = openssl_xts_mb_s(sector, 2, cpu)
            write, read = in_process(image, f"s{sector}", work / "pass", env)
            cli = via_cli(env, image, f"s{sector}", work / "pass", args.size_mib << 20)
            print(f"sector {sector:4d}: openssl {openssl:8.0f} MB/s | in-process write {write:6.0f} MB/s "
                  f"({write / openssl:5.1%}) read {read:6.0f} MB/s ({read / openssl:5.1%}) | "
                  f"lvcrypt read {cli:6.0f} MB/s ({cli / openssl:5.1%})")


if __name__ == "__main__":
    main()
