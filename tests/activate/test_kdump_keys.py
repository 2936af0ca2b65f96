"""lvcrypt.kdump_keys in process: registration is all or nothing, and restore reports per LV.

The crash_dm_crypt_keys configfs is test_kdump's FUSE stand-in; the VG lives
in image files.  Keys go to the user keyring through a session of the test's
own, cleaned up afterwards (test_kdump's `session` fixture).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kdump_fake_kernel import FakeKernel
from lvcrypt.errors import KdumpError, WrongPassphrase
from lvcrypt.handlers.secret import Secret
from lvcrypt.kdump_keys import register, registered_count, restore, status, unregister
from lvcrypt.unlock import KeySources
from store_helpers import Pair
from test_kdump import count, crash, fake, in_user_keyring, make_crypt_lv, pytestmark, session, volume_key

__all__ = ["fake", "pytestmark", "session"]  # fixtures and marks shared with test_kdump


def no_prompt(prompt: str) -> Secret:
    raise AssertionError(f"prompted: {prompt!r}")


@pytest.fixture
def pair(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Pair:
    """VG vgk over two image files; this process uses the CLI's state directories."""
    images = []
    for number in range(2):
        image = tmp_path / f"pv{number}.img"
        with open(image, "wb") as f:
            f.truncate(64 << 20)
        images.append(str(image))
    pair = Pair(images, tmp_path)
    pair.lvc("pvcreate", *images)
    pair.lvc("vgcreate", "vgk", *images)
    (tmp_path / "pass").write_bytes(b"kdump test passphrase")
    monkeypatch.setenv("LVCRYPT_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("LVCRYPT_RUN_DIR", str(tmp_path / "run"))
    return pair


def sources(pair: Pair) -> KeySources:
    return KeySources(key_file=str(pair.tmp / "pass"), prompt=no_prompt)


def test_a_failure_half_way_undoes_the_keys_and_entries_already_made(pair: Pair, fake: FakeKernel,
                                                                      session: list[str]) -> None:
    first = make_crypt_lv(pair, "first")
    passphrase = (pair.tmp / "pass").read_bytes()
    (pair.tmp / "pass").write_bytes(b"another passphrase")
    second = make_crypt_lv(pair, "second")
    (pair.tmp / "pass").write_bytes(passphrase)  # opens the first LV, not the second
    session += [first, second]
    with pytest.raises(WrongPassphrase):
        register(pair.device_list, {"vgk": ["first", "second"]}, str(fake.mountpoint), sources(pair))
    assert count(fake) == 0
    assert in_user_keyring("logon", first) is None and in_user_keyring("logon", second) is None


def test_register_status_restore_unregister(pair: Pair, fake: FakeKernel, session: list[str]) -> None:
    first = make_crypt_lv(pair, "first")
    session.append(first)
    done = register(pair.device_list, {"vgk": ["first"]}, str(fake.mountpoint), sources(pair))
    assert [(item.vg, item.lv, item.description) for item in done] == [("vgk", "first", first)]
    assert registered_count(str(fake.mountpoint)) == 1
    (row,) = status(pair.device_list, str(fake.mountpoint))
    assert (row.description, row.lv, row.present) == (first, "vgk/first", True)
    assert register(pair.device_list, {"vgk": ["first"]}, str(fake.mountpoint),
                    KeySources(prompt=no_prompt))[0].description == first  # already in @u: no passphrase

    crash(fake, {first: volume_key(pair, "vgk/first")}, [first])
    report = restore(pair.device_list, str(fake.mountpoint), str(pair.tmp / "sys"), keep_keys=True)
    report.raise_if_failed()
    assert report.errors == [] and len(report.lines) == 1 and "vgk/first" in report.lines[0]


def test_restore_reports_a_key_that_does_not_match(pair: Pair, fake: FakeKernel, session: list[str]) -> None:
    first = make_crypt_lv(pair, "first")
    session.append(first)
    register(pair.device_list, {"vgk": ["first"]}, str(fake.mountpoint), sources(pair))
    crash(fake, {first: bytes(64)}, [first])
    report = restore(pair.device_list, str(fake.mountpoint), str(pair.tmp / "sys"), keep_keys=True)
    assert report.failed == ["vgk/first"] and report.lines == []
    assert len(report.errors) == 1 and "does not match" in report.errors[0]
    with pytest.raises(KdumpError, match="could not activate vgk/first"):
        report.raise_if_failed()


def test_unregister_of_an_lv_never_registered_is_refused(pair: Pair, fake: FakeKernel, session: list[str]) -> None:
    session.append(make_crypt_lv(pair, "first"))
    with pytest.raises(KdumpError, match="none of these LVs"):
        unregister(pair.device_list, {"vgk": ["first"]}, False, str(fake.mountpoint))
