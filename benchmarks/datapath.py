"""Userspace data path throughput against `openssl speed -evp aes-256-xts`, same run, one core.

Crypto part: lvcrypt's compiled aes-xts-plain64 sector cipher (512-bit key,
like LUKS2's default) encrypting and decrypting a streaming buffer in place,
against OpenSSL's own XTS on sectors of the same size (`-bytes S`).  Both run
pinned to the same CPU, alternating in short rounds; each side keeps its best
round.  Both divide by CPU user time (what `openssl speed` does unless given
-elapsed), so other work on a shared machine does not decide the ratio.  Prints MB/s of each and the ratio; the goal is at least 25% of OpenSSL
at 512 and 4096-byte sectors.

    .venv/bin/python benchmarks/datapath.py [--rounds 3] [--seconds 1] [--buffer-mib 1]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import resource

from lvcrypt.crypto import open_sector_cipher

SECTOR_SIZES = (512, 4096)
GOAL = 0.25


def pin_to_one_cpu() -> int:
    """Pin this process to one CPU and return it: the anchor gets the same one."""
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return cpu


def openssl_xts_mb_s(sector_size: int, seconds: int, cpu: int) -> float:
    """OpenSSL's EVP aes-256-xts on `sector_size`-byte buffers, in MB/s (10^6 bytes)."""
    command = ["openssl", "speed", "-evp", "aes-256-xts", "-bytes", str(sector_size), "-seconds", str(seconds)]
    if shutil.which("taskset"):
        command = ["taskset", "-c", str(cpu), *command]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    match = re.search(r"^AES-256-XTS\s+([\d.]+)k", output, re.MULTILINE | re.IGNORECASE)
    if match is None:
        raise SystemExit(f"cannot read openssl speed output:\n{output}")
    return float(match.group(1)) * 1000 / 1e6


def lvcrypt_xts_mb_s(sector_size: int, seconds: float, buffer_bytes: int, decrypt: bool) -> float:
    """In-place encryption (or decryption) of one reused buffer at advancing sector numbers."""
    cipher = open_sector_cipher("aes-xts-plain64", bytearray(os.urandom(64)), sector_size)
    buffer = bytearray(os.urandom(buffer_bytes))
    run = cipher.decrypt_into if decrypt else cipher.encrypt_into
    sectors_per_buffer = buffer_bytes // 512
    run(buffer, buffer, 0)  # warm-up: page faults and first-call setup
    done = 0
    start = user_seconds()
    while (elapsed := user_seconds() - start) < seconds:
        run(buffer, buffer, done * sectors_per_buffer)
        done += 1
    return done * buffer_bytes / elapsed / 1e6


def user_seconds() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_utime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="measurements per figure (the best counts)")
    parser.add_argument("--seconds", type=int, default=1, help="duration of each measurement")
    parser.add_argument("--buffer-mib", type=int, default=1,
                        help="size of the streaming buffer (1 MiB is what the userspace data path moves per call)")
    args = parser.parse_args()
    cpu = pin_to_one_cpu()
    print(f"aes-xts-plain64, 512-bit key, one core (cpu {cpu}), {args.buffer_mib} MiB buffer, in place, "
          f"best of {args.rounds} rounds of {args.seconds} s")
    print(f"{'sector':>7} {'openssl MB/s':>13} {'encrypt MB/s':>13} {'ratio':>6} {'decrypt MB/s':>13} {'ratio':>6}")
    for sector_size in SECTOR_SIZES:
        buffer_bytes = args.buffer_mib << 20
        anchor = encrypt = decrypt = 0.0
        for _ in range(args.rounds):
            anchor = max(anchor, openssl_xts_mb_s(sector_size, args.seconds, cpu))
            encrypt = max(encrypt, lvcrypt_xts_mb_s(sector_size, args.seconds, buffer_bytes, decrypt=False))
            decrypt = max(decrypt, lvcrypt_xts_mb_s(sector_size, args.seconds, buffer_bytes, decrypt=True))
        verdict = "ok" if min(encrypt, decrypt) >= GOAL * anchor else f"below the {GOAL:.0%} goal"
        print(f"{sector_size:>7} {anchor:>13.0f} {encrypt:>13.0f} {encrypt / anchor:>6.1%} "
              f"{decrypt:>13.0f} {decrypt / anchor:>6.1%}  {verdict}")


if __name__ == "__main__":
    main()
