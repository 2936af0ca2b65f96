"""The options lvm2 accepts on every command, argument mistakes as users read them, progress lines.

Image files only: the lvm2 oracle for -t, names and missing objects is
tests/compat/test_lvm2_command_line.py.
"""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from store_helpers import Pair, digests

LVM2_COMMANDS = ["pvcreate", "pvremove", "pvchange", "vgcreate", "vgextend", "vgreduce", "vgremove", "vgrename",
                 "vgck", "vgcfgbackup", "vgcfgrestore", "lvcreate", "lvremove", "lvextend", "lvreduce", "lvrename",
                 "lvconvert", "lvchange", "vgchange", "pvs", "vgs", "lvs"]
READ_ONLY = {"pvs", "vgs", "lvs"}  # lvm2 takes neither -f nor -A on the commands that only read


def _images(tmp_path: Path, count: int, size_mib: int = 32) -> list[str]:
    paths = []
    for index in range(count):
        path = tmp_path / f"img{index}.img"
        with open(path, "wb") as f:
            f.truncate(size_mib << 20)
        paths.append(str(path))
    return paths


@pytest.fixture
def pair(tmp_path: Path) -> Pair:
    pair = Pair(_images(tmp_path, 2), tmp_path)
    pair.lvc("pvcreate", *pair.devices)
    pair.lvc("vgcreate", "-s", "1m", "vg0", *pair.devices)
    pair.lvc("lvcreate", "-l", "3", "-n", "one", "vg0")
    return pair


def _one_line(result: subprocess.CompletedProcess[str], status: int) -> str:
    assert result.returncode == status, (result.returncode, result.stderr)
    assert result.stderr.startswith("lvcrypt: ") and result.stderr.count("\n") == 1, result.stderr
    return result.stderr[len("lvcrypt: "):].strip()


@pytest.mark.parametrize("command", LVM2_COMMANDS)
def test_every_lvm2_command_takes_lvm2s_common_options(command: str) -> None:
    result = subprocess.run([sys.executable, "-m", "lvcrypt", command, "-h"], capture_output=True, text=True,
                            cwd=ROOT)
    assert result.returncode == 0 and result.stdout.startswith(f"usage: lvcrypt {command}"), result.stderr
    for option in ("--yes", "--quiet", "--verbose", "--debug", "--test", "--version", "--devices"):
        assert option in result.stdout, (command, option)
    assert ("--autobackup" in result.stdout) == (command not in READ_ONLY)
    if command not in ("vgcfgbackup", "vgcfgrestore"):  # there -f is lvm2's --file
        assert ("--force" in result.stdout) == (command not in READ_ONLY)
    version = subprocess.run([sys.executable, "-m", "lvcrypt", command, "--version"], capture_output=True,
                             text=True, cwd=ROOT)
    assert version.returncode == 0 and version.stdout.startswith("lvcrypt ") and "lvm2 2.03.16" in version.stdout


def test_lvconvert_takes_yes_and_options_combine(pair: Pair) -> None:
    """`lvconvert -y` reaches the conversion (refused for want of a LUKS header), not the parser."""
    said = _one_line(pair.lvc("lvconvert", "-y", "--type", "crypt", "vg0/one", check=False), 5)
    assert "LUKS header" in said
    listing = pair.lvc("lvs", "-vv", "-q", "-qq", "-y", "vg0")
    assert "one" in listing.stdout and listing.stderr == ""
    assert _one_line(pair.lvc("lvs", "-f", "vg0", check=False), 3).startswith("lvs: unrecognized")


def test_verbose_is_not_debug(pair: Pair) -> None:
    """-v says more but a refusal stays one line; -d adds the traceback before it."""
    assert _one_line(pair.lvc("lvs", "-v", "-v", "novg", check=False), 5) == 'Volume group "novg" not found'
    assert _one_line(pair.lvc("lvs", "--verbose", "novg", check=False), 5) == 'Volume group "novg" not found'
    quiet, verbose = pair.lvc("lvcreate", "-l", "1", "-n", "q", "vg0"), pair.lvc("lvcreate", "-v", "-l", "1", "vg0")
    assert quiet.stderr == ""
    assert verbose.stderr.splitlines() == [  # lvm2's -v lines around a metadata change
        '  Archiving volume group "vg0" metadata (seqno 3).',
        f'  Creating volume group backup "{pair.tmp / "state" / "backup" / "vg0"}" (seqno 4).']
    debug = pair.lvc("lvs", "-d", "novg", check=False)
    assert debug.returncode == 5 and "Traceback" in debug.stderr
    assert debug.stderr.splitlines()[-1] == 'lvcrypt: Volume group "novg" not found'


def test_argument_errors_say_lvcrypt_once_and_name_the_command(pair: Pair) -> None:
    assert _one_line(pair.lvc("lvcreate", "--bogus", "vg0", check=False), 3) == \
        "lvcreate: unrecognized arguments: --bogus"
    said = _one_line(pair.lvc("lvextend", "-l", "x", "vg0/one", check=False), 3)
    assert not said.startswith("lvcrypt")
    unknown = subprocess.run([sys.executable, "-m", "lvcrypt", "lvcreat", "-l", "1", "vg0"], capture_output=True,
                             text=True, cwd=ROOT)
    assert _one_line(unknown, 3) == "No such command 'lvcreat'. Did you mean 'lvcreate'? Try 'lvcrypt --help'."
    far = subprocess.run([sys.executable, "-m", "lvcrypt", "frobnicate"], capture_output=True, text=True, cwd=ROOT)
    assert _one_line(far, 3) == "No such command 'frobnicate'. Try 'lvcrypt --help'."


def test_autobackup_n_leaves_the_backup_file_alone(pair: Pair) -> None:
    backup = pair.tmp / "state" / "backup" / "vg0"
    before = backup.read_bytes()
    pair.lvc("lvcreate", "-A", "n", "-l", "1", "-n", "two", "vg0")
    assert backup.read_bytes() == before
    assert "two" in pair.lvc("lvs", "vg0").stdout  # the change itself was made
    pair.lvc("lvcreate", "--autobackup", "y", "-l", "1", "-n", "three", "vg0")
    assert b"three" in backup.read_bytes()


def test_test_mode_on_image_files_writes_nothing(pair: Pair) -> None:
    """-t through the encrypted paths too: a keystore, its keyslot and the --wipe of the data."""
    key = pair.tmp / "key"
    key.write_bytes(b"correct horse")
    before = digests(pair.devices)
    result = pair.lvc("lvcreate", "-t", "--encrypt", "--wipe", "--key-file", str(key), "--pbkdf", "pbkdf2",
                      "--pbkdf-force-iterations", "1000", "-l", "4", "-n", "enc", "vg0")
    assert result.stderr.startswith("  TEST MODE: Metadata will NOT be updated")
    assert digests(pair.devices) == before
    assert "enc" not in pair.lvc("lvs", "-a", "vg0").stdout


def test_pv_named_by_a_relative_path(pair: Pair) -> None:
    """The PV was created under its absolute name; `lvcreate ... vg0 img1.img` from its directory is the same PV."""
    result = subprocess.run([sys.executable, "-m", "lvcrypt", "lvcreate", "--devices", pair.device_list, "-l", "2",
                             "-n", "rel", "vg0", "img1.img"], capture_output=True, text=True, env=pair.env,
                            cwd=pair.tmp)
    assert result.returncode == 0, result.stderr
    rows = pair.lvc("lvs", "-o", "lv_name,devices", "--noheadings", "--separator", ":", "vg0/rel").stdout
    assert rows.split() == [f"rel:{pair.devices[1]}(0)"]


def _run_with_terminal_stderr(args: list[str], env: dict[str, str]) -> tuple[subprocess.CompletedProcess[bytes], bytes]:
    """stdout a pipe (data), stderr a pseudo-terminal (what a user at a terminal sees)."""
    master, slave = pty.openpty()
    try:
        result = subprocess.run(args, stdout=subprocess.PIPE, stderr=slave, env=env, cwd=ROOT)
    finally:
        os.close(slave)
    seen = b""
    try:
        while chunk := os.read(master, 65536):
            seen += chunk
    except OSError:
        pass  # the terminal's other end is gone: everything was read
    os.close(master)
    return result, seen


def test_progress_line_only_on_a_terminal(tmp_path: Path) -> None:
    (image,) = _images(tmp_path, 1, 64)
    pair = Pair([image], tmp_path)
    pair.lvc("pvcreate", image)
    pair.lvc("vgcreate", "vgp", image)
    pair.lvc("lvcreate", "-L", "20m", "-n", "big", "vgp")
    pattern = bytes(range(256)) * (20 * 4096)
    data = tmp_path / "data"
    data.write_bytes(pattern)
    base = [sys.executable, "-m", "lvcrypt"]
    with open(data, "rb") as source:
        written = subprocess.run(base + ["write", "--devices", image, "vgp/big"], stdin=source,
                                 capture_output=True, env=pair.env, cwd=ROOT)
    assert written.returncode == 0 and written.stderr == b""  # not a terminal: no progress at all

    result, terminal = _run_with_terminal_stderr(base + ["read", "--devices", image, "vgp/big"], pair.env)
    assert result.returncode == 0
    assert result.stdout == pattern  # the data alone on stdout
    assert terminal.startswith(b"\r  Reading vgp/big:") and terminal.endswith(b"Reading vgp/big: 100%\r\n")
    assert terminal.count(b"\n") == 1  # one line, rewritten in place

    small, terminal = _run_with_terminal_stderr(base + ["read", "--devices", image, "vgp/big", "--length", "4096"],
                                                pair.env)
    assert small.returncode == 0 and small.stdout == pattern[:4096] and terminal == b""  # too small to show


def test_wipe_progress_only_on_a_terminal(pair: Pair) -> None:
    key = pair.tmp / "key"
    key.write_bytes(b"correct horse")
    args = [sys.executable, "-m", "lvcrypt", "lvcreate", "--devices", pair.device_list, "--encrypt", "--wipe",
            "--key-file", str(key), "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000", "-l", "4"]
    result, terminal = _run_with_terminal_stderr(args + ["-n", "w1", "vg0"], pair.env)
    assert result.returncode == 0 and result.stdout == b'  Logical volume "w1" created.\n'
    assert terminal.startswith(b"\r  Wiping vg0/w1:") and terminal.endswith(b"Wiping vg0/w1: 100%\r\n")
    piped = subprocess.run(args + ["-n", "w2", "vg0"], capture_output=True, env=pair.env, cwd=ROOT)
    assert piped.returncode == 0 and piped.stderr == b""


@pytest.mark.parametrize("example", sorted(p.name for p in (ROOT / "examples").glob("*.py")))
def test_examples_print_their_usage_without_arguments(example: str) -> None:
    result = subprocess.run([sys.executable, str(ROOT / "examples" / example)], capture_output=True, text=True,
                            cwd=ROOT)
    assert result.returncode == 2 and result.stderr.startswith("usage: "), result.stderr
    assert "Traceback" not in result.stderr
