"""lvchange/vgchange where the kernel has no device-mapper (these machines): one line naming the
userspace backend, exit 5, nothing asked and nothing written; bad arguments exit 3.

The real activation tests run in the kernel guest (tests/kernel/test_activation.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import run_lvcrypt

HAS_DM = os.path.exists("/sys/class/misc/device-mapper")
pytestmark = pytest.mark.skipif(HAS_DM, reason="this kernel has device-mapper (the guest tier covers it)")


@pytest.fixture
def image_vg(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    image = tmp_path / "pv.img"
    with open(image, "wb") as f:
        f.truncate(16 << 20)
    env = {**os.environ, "LVCRYPT_STATE_DIR": str(tmp_path / "state"), "LVCRYPT_RUN_DIR": str(tmp_path / "run")}
    run_lvcrypt("pvcreate", "--devices", str(image), str(image), env=env, check=True)
    run_lvcrypt("vgcreate", "--devices", str(image), "vga", str(image), env=env, check=True)
    run_lvcrypt("lvcreate", "--devices", str(image), "-L", "4M", "-n", "lv", "vga", env=env, check=True)
    return image, env


@pytest.mark.parametrize("argv", [["lvchange", "-ay", "vga/lv"], ["lvchange", "-an", "vga/lv"],
                                  ["lvchange", "--refresh", "vga/lv"], ["vgchange", "-ay", "vga"]])
def test_without_device_mapper_one_line_names_the_userspace_backend(
        image_vg: tuple[Path, dict[str, str]], argv: list[str]) -> None:
    image, env = image_vg
    before = image.read_bytes()
    result = run_lvcrypt(argv[0], "--devices", str(image), *argv[1:], env=env)
    lines = result.stderr.decode().strip().splitlines()
    assert result.returncode == 5 and len(lines) == 1, result.stderr
    assert "device-mapper is not available" in lines[0]
    assert "lvcrypt mount" in lines[0] and "lvcrypt read" in lines[0]
    assert image.read_bytes() == before
    attr = run_lvcrypt("lvs", "--devices", str(image), "--noheadings", "-o", "lv_attr", "vga/lv", env=env,
                       check=True).stdout.decode().strip()
    assert attr[4] != "a"


@pytest.mark.parametrize("argv,message", [
    (["lvchange", "vga/lv"], "give -ay, -an or --refresh"),
    (["lvchange", "-an", "--refresh", "vga/lv"], "does not go with -an"),
    (["lvchange", "-pr", "--refresh", "vga/lv"], "Command does not accept option: --refresh."),
    (["vgchange", "-ay", "-xn", "vga"], "Command does not accept option: --activate y."),
    (["vgchange", "vga"], "give -ay or -an"),
    (["lvchange", "-ax", "vga/lv"], "invalid choice"),
])
def test_bad_arguments_exit_3(argv: list[str], message: str, tmp_path: Path) -> None:
    result = run_lvcrypt(*argv, env={**os.environ, "LVCRYPT_STATE_DIR": str(tmp_path)})
    assert result.returncode == 3, result.stderr
    assert message in result.stderr.decode()


@pytest.mark.parametrize("option,value,message", [
    ("--link-vk-to-keyring", "@s:%user:vk1", "is not KEYRING::KEY"),
    ("--volume-key-keyring", "%trusted:vk1", "key type 'trusted' is not supported"),
])
def test_malformed_keyring_spellings_are_refused_before_anything_else(
        option: str, value: str, message: str, tmp_path: Path) -> None:
    result = run_lvcrypt("lvchange", "-ay", option, value, "vga/lv",
                         env={**os.environ, "LVCRYPT_STATE_DIR": str(tmp_path)})
    lines = result.stderr.decode().strip().splitlines()
    assert result.returncode == 5 and len(lines) == 1 and message in lines[0], result.stderr
