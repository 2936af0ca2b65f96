"""lvcrypt.keyring goes through libkeyutils, so no architecture needs a syscall table of its own.

keyctl(1) is the oracle for what the calls did; each test runs in its own
session keyring in a child process, which takes its keys with it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid

import pytest

from lvcrypt import keyring
from lvcrypt.errors import KeyringError

pytestmark = pytest.mark.skipif(shutil.which("keyctl") is None, reason="keyutils (keyctl) is not installed")

# Debian's release architectures' machine names: none of them may change which calls are made.
MACHINES = ["x86_64", "aarch64", "armv7l", "i686", "mips64", "ppc64le", "s390x", "riscv64"]


@pytest.mark.parametrize("machine", MACHINES)
def test_keys_are_added_whatever_the_machine_is_called(machine: str) -> None:
    """The old syscall table knew x86_64 and aarch64 only and refused every other machine."""
    description = f"lvcrypt-test:{uuid.uuid4().hex}"
    program = ("import platform, subprocess\n"
               f"platform.machine = lambda: {machine!r}\n"
               "from lvcrypt import keyring\n"
               "keyring.join_session_keyring()\n"
               f"serial = keyring.add_key('user', {description!r}, bytearray(b'payload\\0x'), '@s')\n"
               f"found = subprocess.run(['keyctl', 'search', '@s', 'user', {description!r}],\n"
               "                       capture_output=True, text=True, check=True).stdout.strip()\n"
               "piped = subprocess.run(['keyctl', 'pipe', str(serial)], capture_output=True, check=True).stdout\n"
               "print(int(found) == serial, piped == b'payload\\0x')\n")
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True"]


def test_a_missing_libkeyutils_is_a_one_line_error_naming_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keyring, "LIBRARY", "libkeyutils-absent.so.1")
    monkeypatch.setattr(keyring, "_library", None)
    with pytest.raises(KeyringError) as error:
        keyring.resolve_keyring("@s")
    assert "libkeyutils1" in str(error.value) and "\n" not in str(error.value)
