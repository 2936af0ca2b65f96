"""Unlock time of lvcrypt against cryptsetup on the same headers (goal: ratio <= 1.05).

Unlocking is dominated by the PBKDF, so lvcrypt should cost what cryptsetup
costs.  For each header the right passphrase sits in the last active keyslot,
so both tools pay for every slot before it.  Both run as fresh processes
(`cryptsetup open --test-passphrase` and `lvcrypt keystore unlock-test`); the
in-process handler time is printed too, to separate interpreter start-up from
the unlock itself.  The machine is shared (tests, a QEMU guest), so each
tool runs `--runs` times interleaved with the other and the fastest run of
each is compared: load only ever adds time.

    .venv/bin/python benchmarks/unlock.py [--iter-time MS] [--memory KIB] [--runs N]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lvcrypt.handlers import registry
from lvcrypt.handlers.base import FileArea
from lvcrypt.handlers.secret import Secret

SLOTS = 3


def run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


def timed(*args: str) -> float:
    start = time.perf_counter()
    run(*args)
    return time.perf_counter() - start


def make_header(directory: Path, name: str, luks_type: str, pbkdf: list[str]) -> tuple[Path, Path]:
    img = directory / f"{name}.img"
    with open(img, "wb") as f:
        f.truncate(32 << 20)
    keys = []
    for slot in range(SLOTS):
        key = directory / f"{name}.key{slot}"
        key.write_bytes(f"passphrase {slot} of {name}".encode())
        keys.append(key)
    run("cryptsetup", "luksFormat", "-q", "--type", luks_type, *pbkdf, "--key-file", str(keys[0]), str(img))
    for key in keys[1:]:
        run("cryptsetup", "luksAddKey", "-q", *pbkdf, "--key-file", str(keys[0]), str(img), str(key))
    return img, keys[-1]


def in_process_unlock(img: Path, key: Path) -> float:
    start = time.perf_counter()
    with FileArea(img, writable=False) as area:
        handler = registry.get(registry.detect(area))
        with Secret(key.read_bytes()) as passphrase:
            handler.unlock(area, handler.read_attrs(area), passphrase).close()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iter-time", type=int, default=300, help="PBKDF time per keyslot in ms")
    parser.add_argument("--memory", type=int, default=262144, help="Argon2 memory in KiB")
    parser.add_argument("--runs", type=int, default=3, help="interleaved runs per tool; the fastest counts")
    args = parser.parse_args()
    cases = [("luks1-pbkdf2-sha256", "luks1", ["--pbkdf", "pbkdf2", "--hash", "sha256"]),
             ("luks2-pbkdf2-sha256", "luks2", ["--pbkdf", "pbkdf2", "--hash", "sha256"]),
             ("luks2-argon2id", "luks2", ["--pbkdf", "argon2id", "--pbkdf-memory", str(args.memory)])]
    available = registry.available()
    print(f"{'header':24} {'cryptsetup s':>12} {'lvcrypt s':>10} {'ratio':>6} {'in-process s':>13} {'ratio':>6}")
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for name, luks_type, pbkdf in cases:
            if luks_type not in available:
                print(f"{name:24} skipped: handler {luks_type} not installed")
                continue
            img, key = make_header(Path(tmp), name, luks_type, [*pbkdf, "--iter-time", str(args.iter_time)])
            anchors, processes, inners = [], [], []
            for _ in range(args.runs):
                anchors.append(timed("cryptsetup", "open", "--test-passphrase", "--key-file", str(key), str(img)))
                processes.append(timed(sys.executable, "-m", "lvcrypt", "keystore", "unlock-test",
                                       "--key-file", str(key), str(img)))
                inners.append(in_process_unlock(img, key))
            anchor, ours, inner = min(anchors), min(processes), min(inners)
            worst = max(worst, ours / anchor)
            print(f"{name:24} {anchor:12.3f} {ours:10.3f} {ours / anchor:6.2f} {inner:13.3f} {inner / anchor:6.2f}")
    print(f"worst process ratio {worst:.2f} (goal <= 1.05)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
