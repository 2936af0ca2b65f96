"""lvcrypt.keyring against keyctl(1) from keyutils, both ways, on this machine's real kernel keyring.

Every test runs in its own new session keyring (joined by the test process;
keyctl subprocesses inherit it) and invalidates every key it made, also
when it fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from typing import Iterator

import pytest

from lvcrypt import keyring
from lvcrypt.errors import KeyringError

pytestmark = pytest.mark.skipif(shutil.which("keyctl") is None, reason="keyutils (keyctl) is not installed")

PAYLOAD = bytes(range(256)) + b"\0end"  # binary, with NULs: nothing may stop at the first zero


def keyctl(*args: str, input: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run(["keyctl", *args], input=input, capture_output=True)
    if check and result.returncode != 0:
        raise AssertionError(f"keyctl {' '.join(args)} failed: {result.stderr.decode(errors='replace')}")
    return result


def serial_of(result: subprocess.CompletedProcess[bytes]) -> int:
    return int(result.stdout.decode().strip())


@pytest.fixture
def made() -> Iterator[list[int]]:
    """Serials of keys and keyrings a test makes: all invalidated afterwards, in a fresh session."""
    serials: list[int] = []
    session = keyring.join_session_keyring()
    serials.append(session)
    yield serials
    for serial in reversed(serials):
        subprocess.run(["keyctl", "invalidate", str(serial)], capture_output=True)


def description() -> str:
    return f"lvcrypt-test:{uuid.uuid4().hex}"


def test_user_key_added_by_lvcrypt_is_found_and_read_by_keyctl(made: list[int]) -> None:
    desc = description()
    serial = keyring.add_key("user", desc, bytearray(PAYLOAD), "@s")
    made.append(serial)
    assert serial_of(keyctl("search", "@s", "user", desc)) == serial
    assert keyctl("pipe", str(serial)).stdout == PAYLOAD
    assert keyctl("rdescribe", str(serial)).stdout.decode().strip().endswith(f";{desc}")


def test_user_key_added_by_keyctl_is_found_and_read_by_lvcrypt(made: list[int]) -> None:
    desc = description()
    serial = serial_of(keyctl("padd", "user", desc, "@s", input=PAYLOAD))
    made.append(serial)
    assert keyring.search("@s", "user", desc) == serial
    assert keyring.request_key("user", desc) == serial
    payload = keyring.read_key(serial)
    assert isinstance(payload, bytearray) and payload == PAYLOAD
    info = keyring.describe(serial)
    assert (info.type, info.description, info.uid, info.serial) == ("user", desc, os.getuid(), serial)


def test_logon_keys_both_ways_are_found_but_never_readable(made: list[int]) -> None:
    ours = f"lvcrypt:{uuid.uuid4().hex}"
    serial = keyring.add_key("logon", ours, PAYLOAD[:64], "@s")
    made.append(serial)
    assert serial_of(keyctl("search", "@s", "logon", ours)) == serial
    assert keyctl("pipe", str(serial), check=False).returncode != 0
    with pytest.raises(KeyringError) as error:
        keyring.read_key(serial)
    assert PAYLOAD[:64].hex() not in str(error.value)

    theirs = f"lvcrypt:{uuid.uuid4().hex}"
    their_serial = serial_of(keyctl("padd", "logon", theirs, "@s", input=PAYLOAD[:32]))
    made.append(their_serial)
    assert keyring.find_key(keyring.parse_key_spec(f"%logon:{theirs}")) == their_serial
    assert keyring.describe(their_serial).type == "logon"


def test_logon_description_without_service_prefix_is_refused(made: list[int]) -> None:
    with pytest.raises(KeyringError):
        keyring.add_key("logon", "no-prefix", b"x" * 32, "@s")
    with pytest.raises(KeyringError, match="service:"):
        keyring.parse_key_spec("%logon:no-prefix")


def test_absent_keys_are_none_not_errors(made: list[int]) -> None:
    assert keyring.search("@s", "user", description()) is None
    assert keyring.request_key("logon", f"lvcrypt:{uuid.uuid4().hex}") is None


def test_unlink_revoke_and_invalidate_are_seen_by_keyctl(made: list[int]) -> None:
    serials = {}
    for action in ("unlink", "revoke", "invalidate"):
        desc = description()
        serials[action] = (desc, serial_of(keyctl("padd", "user", desc, "@s", input=PAYLOAD)))
        made.append(serials[action][1])
    keyring.unlink(serials["unlink"][1], "@s")
    keyring.revoke(serials["revoke"][1])
    keyring.invalidate(serials["invalidate"][1])
    assert keyctl("search", "@s", "user", serials["unlink"][0], check=False).returncode != 0
    revoked = keyctl("pipe", str(serials["revoke"][1]), check=False)
    assert revoked.returncode != 0 and b"revoked" in revoked.stderr.lower()
    assert keyctl("search", "@s", "user", serials["invalidate"][0], check=False).returncode != 0
    assert keyring.search("@s", "user", serials["revoke"][0]) is None


def test_link_into_a_keyring_made_by_keyctl(made: list[int]) -> None:
    ring = serial_of(keyctl("newring", f"lvcrypt-ring-{uuid.uuid4().hex}", "@s"))
    made.append(ring)
    desc = description()
    serial = keyring.add_key("user", desc, PAYLOAD, "@s")
    made.append(serial)
    keyring.link(serial, ring)
    assert str(serial) in keyctl("rlist", str(ring)).stdout.decode().split()
    keyring.unlink(serial, "@s")
    assert keyring.search(ring, "user", desc) == serial  # still reachable through the ring


def test_special_keyrings_resolve_to_what_keyctl_reports(made: list[int]) -> None:
    for spelling in ("@s", "@u", "@us"):  # @p and @t belong to each process: keyctl's are not ours
        assert keyring.resolve_keyring(spelling, create=True) == serial_of(keyctl("id", spelling))
    assert keyring.resolve_keyring("@s") == made[0]


def test_link_vk_to_keyring_spellings_of_cryptsetup(made: list[int]) -> None:
    ring_name = f"lvcrypt-ring-{uuid.uuid4().hex}"
    ring = serial_of(keyctl("newring", ring_name, "@s"))
    made.append(ring)
    volume_key = bytearray(os.urandom(64))
    user1, logon, user2, user3 = description(), f"cryptsetup:{uuid.uuid4().hex}", description(), description()
    cases = [(f"@s::%user:{user1}", made[0], "user", user1),
             (f"%:{ring_name}::%logon:{logon}", ring, "logon", logon),
             (f"%keyring:{ring_name}::{user2}", ring, "user", user2),
             (f"{ring}::%user:{user3}", ring, "user", user3)]
    for spec, ring_serial, key_type, key_description in cases:
        serial = keyring.link_volume_key(spec, volume_key)
        made.append(serial)
        assert serial_of(keyctl("search", str(ring_serial), key_type, key_description)) == serial
        if key_type == "user":
            assert keyctl("pipe", str(serial)).stdout == bytes(volume_key)


@pytest.mark.parametrize("text", ["@s", "@x::%user:a", "@s::%trusted:a", "@s::%logon:nocolon", "@s::%user:",
                                  "::%user:a", "%:::%user:a", "@s::%logon::x"])
def test_malformed_cryptsetup_spellings_are_one_line_errors(text: str) -> None:
    with pytest.raises(KeyringError) as error:
        keyring.parse_link_spec(text)
    assert "\n" not in str(error.value)


def test_parsed_spellings() -> None:
    assert keyring.parse_link_spec("@s::%user:vk1") == (keyring.KeyringSpec(special=-3), keyring.KeySpec("user", "vk1"))
    assert keyring.parse_link_spec("@u::%logon:cryptsetup:vk") == \
        (keyring.KeyringSpec(special=-4), keyring.KeySpec("logon", "cryptsetup:vk"))
    assert keyring.parse_key_spec("vk2") == keyring.KeySpec("user", "vk2")
    assert keyring.parse_key_spec("%:vk3") == keyring.KeySpec("user", "vk3")
    assert str(keyring.parse_key_spec("%logon:a:b")) == "%logon:a:b"


def test_missing_named_keyring_is_a_one_line_error(made: list[int]) -> None:
    with pytest.raises(KeyringError, match="no keyring named"):
        keyring.link_volume_key(f"%:absent-{uuid.uuid4().hex}::%user:x", b"k" * 32)


def test_process_without_its_own_session_keyring_joins_one() -> None:
    """`keyctl session _uid_ses.UID` starts a process whose @s is the user-session keyring,
    like a service or a bare guest; ensure_session_keyring gives it its own."""
    program = ("from lvcrypt import keyring\n"
               "before = keyring.has_own_session_keyring()\n"
               "session = keyring.ensure_session_keyring()\n"
               "print(before, keyring.has_own_session_keyring(), session == keyring.resolve_keyring('@s'),"
               " session != keyring.resolve_keyring('@us'))\n")
    result = subprocess.run(["keyctl", "session", f"_uid_ses.{os.getuid()}", sys.executable, "-c", program],
                            capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "True", "True", "True"]


def proc_keys_timeout(serial: int) -> str:
    """The timeout column of /proc/keys ("perm" for none): how the kernel itself shows expiry."""
    with open("/proc/keys") as f:
        for line in f:
            fields = line.split()
            if int(fields[0], 16) == serial:
                return fields[3]
    raise AssertionError(f"key {serial} is not in /proc/keys")


def test_timeout_and_clear_are_what_the_kernel_shows(made: list[int]) -> None:
    desc = description()
    serial = serial_of(keyctl("padd", "user", desc, "@s", input=PAYLOAD))
    made.append(serial)
    assert proc_keys_timeout(serial) == "perm"
    keyring.set_timeout(serial, 600)
    assert proc_keys_timeout(serial) != "perm"

    ring = serial_of(keyctl("newring", f"lvcrypt-ring-{uuid.uuid4().hex}", "@s"))
    made.append(ring)
    for _ in range(3):
        made.append(serial_of(keyctl("padd", "user", description(), str(ring), input=PAYLOAD)))
    assert len(keyctl("rlist", str(ring)).stdout.split()) == 3
    keyring.clear(ring)
    assert keyctl("rlist", str(ring)).stdout.split() == []
