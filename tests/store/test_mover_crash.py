"""Crash safety of the extent mover: lvconvert --encrypt/--decrypt/--reencrypt and pvmove die before each
of their writes (data, wipes, metadata) in turn, and are killed with SIGKILL at random moments.
Each run tries the first and last write and a seeded sample spread over the rest (tests/sampling.py:
LVCRYPT_TEST_FULL=1 tries every write, LVCRYPT_TEST_SEED reruns a sample).

After every crash lvm2 reads the VG (vgck, lvs); the same command then resumes and finishes, and the LV
holds exactly the bytes it held before; a keystore the command drops (decrypt, reencrypt) has left no
sector of its header on the PVs.
"""

from __future__ import annotations

import io
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest

from conftest import ROOT
from lvcrypt.cli import main
from lvcrypt.conversion_record import PVMOVE_KEY, read_conversion
from lvcrypt.metadata.model import CryptSegment, VolumeGroup
from lvcrypt.store.commit import load_vg, scan
from mover_helpers import FAST_KDF, key_path, lvm2_reads, make_vg
from crash_points import restore, run_until_write, snapshot
from sampling import spread
from store_helpers import Pair

pytestmark = pytest.mark.oracle
CRASH_POINTS = 6  # per command and run, one from each sixth of its writes (with the first and last)



def _no_record(vg: VolumeGroup) -> bool:
    return read_conversion(vg.lvs["lv"]) is None and PVMOVE_KEY not in vg.raw


def _lv_keystores(vg: VolumeGroup) -> list[str | None]:
    return [s.crypto_store if isinstance(s, CryptSegment) else None for s in vg.lvs["lv"].segments]


# name: (is the LV encrypted before, after; argv after the devices; has the work been done in this VG)
CASES: dict[str, tuple[bool, bool, Callable[[Pair], list[str]], Callable[[VolumeGroup], bool]]] = {
    "encrypt": (False, True, lambda p: ["lvconvert", "--encrypt", *FAST_KDF, "--chunk-size", "2m",
                                        "--key-file", key_path(p), "vgc/lv"],
                lambda vg: _no_record(vg) and set(_lv_keystores(vg)) == {"cryptostore0"}),
    "decrypt": (True, False, lambda p: ["lvconvert", "--decrypt", "--chunk-size", "2m", "--key-file", key_path(p),
                                        "vgc/lv"],
                lambda vg: _no_record(vg) and set(_lv_keystores(vg)) == {None}),
    "reencrypt": (True, True, lambda p: ["lvconvert", "--reencrypt", *FAST_KDF, "--chunk-size", "2m",
                                         "--key-file", key_path(p), "vgc/lv"],
                  lambda vg: _no_record(vg) and set(_lv_keystores(vg)) == {"cryptostore1"}),
    "pvmove": (True, True, lambda p: ["pvmove", "--chunk-size", "2m", *p.devices],  # the stripe goes to the third
               lambda vg: _no_record(vg) and vg.used_extents("pv0") == 0),
}
DROPS_KEYSTORE = ("decrypt", "reencrypt")


def _lv_bytes(pair: Pair, encrypted: bool) -> bytes:
    """`lvcrypt read vgc/lv` in a forked child (no interpreter start-up per crash point)."""
    out = pair.tmp / "read.out"
    keys = ["--key-file", key_path(pair)] if encrypted else []
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            sys.stdout = io.TextIOWrapper(open(out, "wb"))  # pytest's capture is not fd 1
            status = main(["read", "--devices", pair.device_list, *keys, "vgc/lv"])
            sys.stdout.flush()
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return out.read_bytes()


def _sectors(devices: list[str]) -> set[bytes]:
    out = set()
    for device in devices:
        with open(device, "rb") as f:
            image = f.read()
        out.update(image[offset:offset + 512] for offset in range(0, len(image), 512))
    return out


def _keystore_sectors(pair: Pair, kept: bool = False) -> frozenset[bytes]:
    """The non-zero sectors of cryptostore0's extents (its LUKS header and keyslots) before the command, or
    (`kept`) of the keystores the VG has now: a new LUKS1 header repeats the old one's constant sectors."""
    loaded = load_vg(scan(pair.devices), "vgc")
    vg, out = loaded.vg, set()
    for name in [name for name, lv in vg.lvs.items() if lv.is_keystore] if kept else ["cryptostore0"]:
        area = vg.lvs[name].segments[0].pv_areas()[0][0]
        with open(loaded.device_of(area.pv), "rb") as f:
            f.seek((vg.pvs[area.pv].pe_start + area.extent * vg.extent_size) * 512)
            image = f.read(vg.lvs[name].extent_count * vg.extent_bytes)
        out.update(image[offset:offset + 512] for offset in range(0, len(image), 512))
    return frozenset(out - {bytes(512)})


def _finished(pair: Pair, data: bytes, case: str, where: str, header: frozenset[bytes] = frozenset()) -> None:
    vg = load_vg(scan(pair.devices), "vgc").vg
    assert CASES[case][3](vg), f"{where}: not finished"
    assert _lv_bytes(pair, CASES[case][1]) == data, f"{where}: the LV's data changed"
    if header:  # the old one-sector table of unused LUKS1 keyslots is in the new header too
        left = header & _sectors(pair.devices) - _keystore_sectors(pair, kept=True)
        assert not left, f"{where}: the dropped keystore's header is still on a PV"


def _setup(loop_devices: Callable[..., list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
           encrypted: bool, case: str) -> tuple[Pair, bytes]:
    pair = Pair(loop_devices(3 if case == "pvmove" else 2, 16), tmp_path)
    for key in ("LVCRYPT_STATE_DIR", "LVCRYPT_RUN_DIR"):
        monkeypatch.setenv(key, pair.env[key])
    return pair, make_vg(pair, encrypted)


@pytest.mark.slow
@pytest.mark.sampled
@pytest.mark.parametrize("case", list(CASES))
def test_crash_at_every_write_then_resume(case: str, loop_devices: Callable[..., list[str]], tmp_path: Path,
                                          lvm2: None, monkeypatch: pytest.MonkeyPatch) -> None:
    before, _, command, done = CASES[case]
    pair, data = _setup(loop_devices, tmp_path, monkeypatch, before, case)
    argv = [*command(pair)[:1], "--devices", pair.device_list, *command(pair)[1:]]
    saved = snapshot(pair.devices)
    header = _keystore_sectors(pair) if case in DROPS_KEYSTORE else frozenset()

    total = run_until_write(argv, None, quiet=True)
    _finished(pair, data, case, "uninterrupted", header)
    assert "lv" in lvm2_reads(pair, "uninterrupted")
    assert total > 20, f"{case} took only {total} writes"
    for stop_at in spread(total, CRASH_POINTS, ("mover crash", case), keep=(0, total - 1)):
        where = f"{case}, crash before write {stop_at}"
        restore(saved)
        run_until_write(argv, stop_at, quiet=True)
        assert "lv" in lvm2_reads(pair, where)
        if not done(load_vg(scan(pair.devices), "vgc").vg):  # else the crash hit the last commit's last copies
            run_until_write(argv, None, quiet=True)
        _finished(pair, data, case, f"{where}, then resumed", header)
    print(f"crash points tried for {case}: {total}")


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_kill_at_random_moments_then_resume(case: str, loop_devices: Callable[..., list[str]], tmp_path: Path,
                                            lvm2: None, monkeypatch: pytest.MonkeyPatch) -> None:
    before, _, command, done = CASES[case]
    pair, data = _setup(loop_devices, tmp_path, monkeypatch, before, case)
    argv = [*command(pair)[:1], "--devices", pair.device_list, "--rate", "4m", *command(pair)[1:]]
    chooser = random.Random(17)
    for attempt in range(3):
        if done(load_vg(scan(pair.devices), "vgc").vg):
            break  # run again, the command would start over (a second re-encryption)
        child = subprocess.Popen([sys.executable, "-m", "lvcrypt", *argv], env=pair.env, cwd=ROOT,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(chooser.uniform(0.3, 2.0))
        child.send_signal(signal.SIGKILL)
        child.wait()
        lvm2_reads(pair, f"{case}, killed (attempt {attempt})")
    if not done(load_vg(scan(pair.devices), "vgc").vg):
        result = subprocess.run([sys.executable, "-m", "lvcrypt", *argv], env=pair.env, cwd=ROOT, capture_output=True)
        assert result.returncode == 0, result.stderr
    _finished(pair, data, case, f"{case}, resumed after kills")
