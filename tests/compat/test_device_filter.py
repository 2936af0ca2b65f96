"""lvm.conf's devices/global_filter and devices/filter, with lvm2 as the oracle.

An administrator hides a disk from LVM with these lists (a guest's disk, a
multipath component, a disk another host owns): lvcrypt must not show it, and
must refuse to write it, wherever lvm2 does.  lvm2 here looks at every block
device, so each filter ends by rejecting all but the test's own devices.
lvcrypt finds its devices through its devices file (no udev database here).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

from conftest import LVM_ENV, ROOT
from store_helpers import Pair, digests

from lvcrypt.errors import ConfigError
from lvcrypt.store.device_filter import accepts, parse_filter

pytestmark = pytest.mark.oracle

_NOISE = ("Activation disabled", "/dev/mapper/control", "device-mapper", "libdevmapper", "zeroing and wip",
          "leaked on lvm invocation")


class Filtered:
    """Two lvm2-made VGs (va on the first device, vb on the second) and an unused third device; one
    lvm.conf in a directory of its own that both tools read."""

    def __init__(self, devices: list[str], tmp: Path):
        self.devices = devices
        self.pair = Pair(devices, tmp)
        self.config = tmp / "etc"
        self.config.mkdir()
        (self.config / "lvm.conf").write_text("")
        state = tmp / "state"
        state.mkdir(mode=0o700)
        (state / "devices").write_text("".join(f"{device}\n" for device in devices))

    def only_ours(self) -> list[str]:
        """Patterns that accept this test's devices and nothing else on the machine."""
        return [f"a|^{re.escape(device)}$|" for device in self.devices] + ["r|.*|"]

    def configure(self, text: str) -> None:
        (self.config / "lvm.conf").write_text(text)

    def lvcrypt(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "lvcrypt", *args], capture_output=True, text=True,
                              env={**self.pair.env, "LVM_SYSTEM_DIR": str(self.config)}, cwd=ROOT)

    def lvm(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([args[0], "--driverloaded", "n", *args[1:]], capture_output=True, text=True,
                              env={**LVM_ENV, "LVM_SYSTEM_DIR": str(self.config)})


def _list(patterns: list[str]) -> str:
    return "[ " + ", ".join(f'"{pattern}"' for pattern in patterns) + " ]"


def _lines(stderr: str) -> list[str]:
    lines = []
    for line in stderr.splitlines():
        line = line.strip().removeprefix("lvcrypt: ")
        if line and not any(noise in line for noise in _NOISE):
            lines.append(line)
    return lines


@pytest.fixture
def filtered(loop_devices: Callable[..., list[str]], tmp_path: Path, lvm2: None) -> Filtered:
    devices = loop_devices(3, 16)
    setup = Filtered(devices, tmp_path)
    setup.pair.lvm("pvcreate", devices[0], devices[1])
    setup.pair.lvm("vgcreate", "va", devices[0])
    setup.pair.lvm("vgcreate", "vb", devices[1])
    return setup


def _same_report(setup: Filtered, *command: str) -> str:
    ours, theirs = setup.lvcrypt(*command), setup.lvm(*command)
    assert ours.returncode == theirs.returncode == 0, (ours.stderr, theirs.stderr)
    assert ours.stdout == theirs.stdout
    return ours.stdout


@pytest.mark.parametrize("setting", ["global_filter", "filter"])
def test_a_rejected_device_is_not_shown(filtered: Filtered, setting: str) -> None:
    a, b, _ = filtered.devices
    filtered.configure(f"devices {{ {setting} = {_list([f'r|^{b}$|', *filtered.only_ours()])} }}\n")
    shown = _same_report(filtered, "pvs", "-o", "pv_name,vg_name")
    assert a in shown and b not in shown
    assert "vb" not in _same_report(filtered, "vgs", "-o", "vg_name")


def test_both_filters_must_accept_and_a_single_string_is_a_list(filtered: Filtered) -> None:
    a, b, _ = filtered.devices
    filtered.configure(f'devices {{ global_filter = {_list(filtered.only_ours())}\n filter = "r|^{a}$|" }}\n')
    shown = _same_report(filtered, "pvs", "-o", "pv_name,vg_name")
    assert b in shown and a not in shown


def test_the_first_matching_pattern_decides(filtered: Filtered) -> None:
    a, b, _ = filtered.devices
    filtered.configure(f"devices {{ filter = {_list([f'a|^{a}$|', 'r|loop|', *filtered.only_ours()])} }}\n")
    shown = _same_report(filtered, "pvs", "-o", "pv_name")
    assert a in shown and b not in shown


def test_devices_option_bypasses_the_filters(filtered: Filtered) -> None:
    a, b, _ = filtered.devices
    filtered.configure(f"devices {{ global_filter = {_list([f'r|^{b}$|', *filtered.only_ours()])} }}\n")
    shown = _same_report(filtered, "pvs", "--devices", f"{a},{b}", "-o", "pv_name,vg_name")
    assert a in shown and b in shown


# Commands naming a rejected device: lvm2 refuses each with exit status 5 and the same first line.
NAMING = [
    ("pvcreate", "{c}"),
    ("pvcreate", "-ff", "-y", "{b}"),
    ("pvremove", "{b}"),
    ("vgcreate", "vc", "{c}"),
    ("vgextend", "va", "{c}"),
    ("pvchange", "--addtag", "hidden", "{b}"),
]


@pytest.mark.parametrize("command", NAMING, ids=lambda command: " ".join(command))
def test_a_rejected_device_named_on_the_command_line_is_refused_and_not_written(
        filtered: Filtered, command: tuple[str, ...]) -> None:
    a, b, c = filtered.devices
    filtered.configure(f"devices {{ global_filter = {_list([f'r|^{b}$|', f'r|^{c}$|', *filtered.only_ours()])} }}\n")
    argv = [item.format(b=b, c=c) for item in command]
    before = digests(filtered.devices)
    ours = filtered.lvcrypt(*argv)
    assert digests(filtered.devices) == before
    theirs = filtered.lvm(*argv)
    assert digests(filtered.devices) == before
    assert ours.returncode == theirs.returncode == 5, (ours.stderr, theirs.stderr)
    assert _lines(ours.stderr) == _lines(theirs.stderr)[:1]
    assert "rejected by filter config" in ours.stderr


@pytest.mark.parametrize("pattern", ["x|loop|", "aloop1", "a|[|", "a"])
def test_a_malformed_filter_fails_every_command_before_it_writes(filtered: Filtered, pattern: str) -> None:
    a, _, c = filtered.devices
    filtered.configure(f'devices {{ filter = [ "{pattern}" ] }}\n')
    before = digests(filtered.devices)
    for argv in (("pvs",), ("vgcreate", "vc", c), ("lvcreate", "-an", "-Zn", "-l", "1", "-n", "x", "va")):
        ours, theirs = filtered.lvcrypt(*argv), filtered.lvm(*argv)
        assert ours.returncode == theirs.returncode == 5, (argv, ours.stderr, theirs.stderr)
        assert len(_lines(ours.stderr)) == 1 and f'Invalid filter pattern "{pattern}"' in ours.stderr
        assert "Traceback" not in ours.stderr
    assert digests(filtered.devices) == before


def test_a_device_is_accepted_when_any_of_its_names_is() -> None:
    """lvm2's rule over the names of one device (a node and its udev links)."""
    patterns = parse_filter(["a|by-id/keep|", "r|^/dev/sd|"], "regex device filter")
    assert accepts(patterns, ["/dev/sdb", "/dev/disk/by-id/keep-1"])
    assert not accepts(patterns, ["/dev/sdb", "/dev/disk/by-path/pci-1"])
    assert accepts(patterns, ["/dev/vdb"])  # no pattern matched any name
    bracketed = parse_filter(["a(^/dev/vd)", "r{.*}", "a[x]"], "regex device filter")
    assert accepts(bracketed, ["/dev/vda"]) and not accepts(bracketed, ["/dev/sda"])
    with pytest.raises(ConfigError):
        parse_filter(["a(^/dev/vd("], "regex device filter")


def test_no_filter_means_every_device(filtered: Filtered) -> None:
    a, b, _ = filtered.devices
    filtered.configure(f"devices {{ global_filter = {_list(filtered.only_ours())} }}\n# filter = [ \"r|.*|\" ]\n")
    shown = _same_report(filtered, "pvs", "-o", "pv_name,vg_name")
    assert a in shown and b in shown


def test_pvs_and_pvdisplay_naming_a_rejected_device_report_the_others_and_fail(filtered: Filtered) -> None:
    a, b, _ = filtered.devices
    filtered.configure(f"devices {{ global_filter = {_list([f'r|^{b}$|', *filtered.only_ours()])} }}\n")
    for command, names in (("pvs", (b,)), ("pvs", (a, b)), ("pvdisplay", (b,))):
        ours, theirs = filtered.lvcrypt(command, *names), filtered.lvm(command, *names)
        assert ours.returncode == theirs.returncode == 5, (ours.stderr, theirs.stderr)
        assert ours.stdout == theirs.stdout
        assert _lines(ours.stderr) == _lines(theirs.stderr) == [f"Cannot use {b}: device is rejected by filter config"]


def test_config_option_sets_the_filter_for_one_command(filtered: Filtered) -> None:
    a, b, _ = filtered.devices
    filtered.configure(f"devices {{ filter = {_list([f'r|^{b}$|', *filtered.only_ours()])} }}\n")
    assert b not in _same_report(filtered, "pvs", "-o", "pv_name")
    override = f"devices {{ filter = {_list(filtered.only_ours())} }}"
    shown = _same_report(filtered, "pvs", "--config", override, "-o", "pv_name")
    assert a in shown and b in shown
    path_form = f"devices/global_filter = {_list([f'r|^{a}$|', *filtered.only_ours()])}"
    shown = _same_report(filtered, "pvs", "--config", path_form, "-o", "pv_name")
    assert a not in shown and b not in shown
    assert b not in _same_report(filtered, "pvs", "-o", "pv_name")  # the next command: lvm.conf alone again


# --config strings lvm2 refuses as a bad command line (exit 3), each with its first line.
BAD_CONFIG = [
    ("devices { = 1 }",),
    ("devices { filter = }",),
    ("a = 1 }",),
    ("devices { x = 1",),
    ("x",),
    ("   ",),
    ('devices { filter = [ "a|x|" ] ',),
    ("devices { }", "--config", "global { }"),
]


@pytest.mark.parametrize("config", BAD_CONFIG, ids=lambda config: repr(" ".join(config)))
def test_a_bad_config_option_is_refused_as_lvm2_refuses_it(filtered: Filtered, config: tuple[str, ...]) -> None:
    filtered.configure("devices { }\n")
    before = digests(filtered.devices)
    argv = ("pvcreate", "--config", *config, filtered.devices[2])
    ours, theirs = filtered.lvcrypt(*argv), filtered.lvm(*argv)
    assert ours.returncode == theirs.returncode == 3, (ours.stderr, theirs.stderr)
    assert _lines(ours.stderr)[-1].removeprefix("pvcreate: ") == _lines(theirs.stderr)[0]
    assert digests(filtered.devices) == before
