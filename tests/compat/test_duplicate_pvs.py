"""A PV that shows on two devices (a cloned disk, a copied image), with lvm2 as the oracle.

lvm2 reports through one of them with two warnings saying which and why, and refuses to
change the VG, to activate its LVs or to pvcreate either device: which disk holds the
real PV is the administrator's call, and a write to the wrong one forks the VG.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

from conftest import LVM_ENV, ROOT
from store_helpers import Pair, digests

pytestmark = pytest.mark.oracle

_NOISE = ("Activation disabled", "/dev/mapper/control", "device-mapper", "libdevmapper", "zeroing and wip")


def _lvm(devices: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([args[0], "--devices", ",".join(devices), "--driverloaded", "n", *args[1:]],
                          capture_output=True, text=True, env=LVM_ENV)


def _lines(stderr: str) -> list[str]:
    """What a tool said, as lvm2 words it: without the lvcrypt prefixes and lvm2's device-mapper noise."""
    lines = []
    for line in stderr.splitlines():
        line = line.strip().removeprefix("lvcrypt: ").replace("warning: ", "WARNING: ", 1)
        if not any(noise in line for noise in _NOISE):
            lines.append(line)
    return lines


@pytest.fixture
def cloned(loop_devices: Callable[..., list[str]], tmp_path: Path, lvm2: None) -> Pair:
    """vg0 with LV one on the first device, then the first device copied byte for byte onto the second."""
    original, copy = loop_devices(2, 16)
    pair = Pair([original, copy], tmp_path)
    pair.lvc("pvcreate", original)
    pair.lvc("vgcreate", "-s", "1m", "vg0", original)
    pair.lvc("lvcreate", "-l", "2", "-n", "one", "vg0")
    with open(original, "rb") as source, open(copy, "r+b") as target:
        target.write(source.read())
        target.flush()
        os.fsync(target.fileno())
    return pair


@pytest.mark.parametrize("order", ["original-first", "copy-first"])
def test_reports_use_the_device_lvm2_prefers_and_say_why(cloned: Pair, order: str) -> None:
    """lvm2 prefers the device whose name the metadata records, whichever was scanned first."""
    devices = cloned.devices if order == "original-first" else cloned.devices[::-1]
    for command in (("pvs",), ("vgs", "-o", "vg_name,pv_count,vg_missing_pv_count"), ("lvs", "-o", "lv_name,devices")):
        ours = subprocess.run([sys.executable, "-m", "lvcrypt", command[0], "--devices", ",".join(devices), *command[1:]],
                              capture_output=True, text=True, env=cloned.env, cwd=ROOT)
        theirs = _lvm(devices, *command)
        assert ours.returncode == theirs.returncode == 0, (ours.stderr, theirs.stderr)
        assert ours.stdout == theirs.stdout
        assert _lines(ours.stderr) == _lines(theirs.stderr)
        assert _lines(ours.stderr)[-1] == (f"WARNING: PV {_pv_uuid(cloned)} prefers device {cloned.devices[0]} "
                                           "because device name matches previous.")


def _pv_uuid(pair: Pair) -> str:
    return subprocess.run(["pvs", "--devices", pair.devices[0], "--noheadings", "-o", "pv_uuid", pair.devices[0]],
                          capture_output=True, text=True, env=LVM_ENV).stdout.strip()


# Changes lvm2 refuses while the VG's PV shows twice, with its message.
REFUSED = [
    (("lvcreate", "-l", "1", "-n", "two", "vg0"), "Cannot update volume group vg0 with duplicate PV devices."),
    (("lvremove", "-y", "vg0/one"), "Cannot update volume group vg0 with duplicate PV devices."),
    (("lvextend", "-l", "+1", "vg0/one"), "Cannot update volume group vg0 with duplicate PV devices."),
    (("lvrename", "vg0", "one", "uno"), "Cannot update volume group vg0 with duplicate PV devices."),
    (("pvcreate", "DEV1"), "Cannot use device DEV1 with duplicates."),
    (("pvcreate", "-ff", "-y", "DEV0"), "Cannot use device DEV0 with duplicates."),
    (("vgcreate", "vgn", "DEV1"), "Cannot use device DEV1 with duplicates."),
]


@pytest.mark.parametrize("command,message", REFUSED, ids=lambda c: "-".join(c) if isinstance(c, tuple) else None)
def test_changes_refused_as_lvm2_refuses_them(cloned: Pair, command: tuple[str, ...], message: str) -> None:
    names = {"DEV0": cloned.devices[0], "DEV1": cloned.devices[1]}
    command = tuple(names.get(word, word) for word in command)
    message = message.replace("DEV0", names["DEV0"]).replace("DEV1", names["DEV1"])
    before = digests(cloned.devices)
    ours, theirs = cloned.lvc(*command, check=False), _lvm(cloned.devices, *command)
    assert ours.returncode == theirs.returncode == 5, (ours.stderr, theirs.stderr)
    assert _lines(theirs.stderr)[-1] == message
    assert ours.stderr.splitlines()[-1] == f"lvcrypt: {message}"
    assert digests(cloned.devices) == before


def test_lvs_are_not_opened_until_one_copy_is_gone(cloned: Pair) -> None:
    """Opening an LV (lvm2's activation, lvcrypt's read/write streams) is refused as lvm2 refuses to
    activate; with the copy's label wiped the same commands work again."""
    before = digests(cloned.devices)
    for command in (("read", "--length", "512", "vg0/one"), ("write", "vg0/one")):
        result = cloned.lvc(*command, check=False)
        assert result.returncode == 5
        assert result.stderr.splitlines()[-1] == \
            "lvcrypt: Cannot activate LVs in VG vg0 while PVs appear on duplicate devices."
    assert digests(cloned.devices) == before
    with open(cloned.devices[1], "r+b") as copy:
        copy.write(bytes(1 << 20))
    assert len(cloned.lvc("read", "--length", "512", "vg0/one").stdout) == 512
    cloned.lvc("lvcreate", "-l", "1", "-n", "two", "vg0")
    assert _lvm(cloned.devices, "lvs", "--noheadings", "-o", "lv_name", "vg0").stdout.split() == ["one", "two"]


def test_an_image_and_its_loop_device_are_one_device(loop_devices: Callable[..., list[str]], tmp_path: Path) -> None:
    """A devices list naming both the image file and the loop device over it (the devices file and udev
    can) names one PV, not a copy of it: no warning, changes go ahead."""
    device, = loop_devices(1, 16)
    image = tmp_path / "pv0.img"
    pair = Pair([device, str(image)], tmp_path)
    pair.lvc("pvcreate", device)
    pair.lvc("vgcreate", "vg0", device)
    created = pair.lvc("lvcreate", "-l", "1", "-n", "one", "vg0")
    report = pair.lvc("pvs", "-o", "pv_name", "--noheadings")
    assert "WARNING" not in created.stderr + report.stderr and report.stdout.split() == [device]
    before = digests([device])
    relabel = pair.lvc("pvcreate", str(image), check=False)  # the PV under its other name is still vg0's
    assert relabel.returncode == 5
    assert relabel.stderr == f'lvcrypt: Can\'t initialize physical volume "{image}" of volume group "vg0" without -ff\n'
    assert digests([device]) == before
