"""`lvcrypt metadata ...` as a user runs it: exit statuses, one-line errors, files untouched."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import run_lvcrypt
from lvcrypt.metadata.parse import parse_text
from lvcrypt.metadata.tree import ordered_items, to_plain
from metadata_helpers import significant

RFC_PATH = Path(__file__).parent.parent / "data" / "rfc_example.vg"
RFC = RFC_PATH.read_text()


def assert_one_line_failure(result, status: int = 5, contains: str = "") -> str:  # type: ignore[no-untyped-def]
    stderr = result.stderr.decode()
    assert result.returncode == status, stderr
    assert stderr.count("\n") == 1 and stderr.startswith("lvcrypt: "), stderr
    assert "Traceback" not in stderr
    assert contains in stderr
    return stderr


def test_check_accepts_the_rfc_example() -> None:
    result = run_lvcrypt("metadata", "check", str(RFC_PATH))
    assert result.returncode == 0
    assert b"volume group vg0 (seqno 7, 1 PVs, 5 LVs) is valid" in result.stdout


def test_json_is_the_tree(tmp_path: Path) -> None:
    result = run_lvcrypt("metadata", "json", str(RFC_PATH), check=True)
    assert json.loads(result.stdout) == to_plain(parse_text(RFC))


def test_show_lists_vg_pvs_and_lvs_with_hidden_keystores() -> None:
    out = run_lvcrypt("metadata", "show", str(RFC_PATH), check=True).stdout.decode()
    assert "vg0" in out and "/dev/sda2" in out
    assert "[cryptostore1]" in out and "keystore luks1 aes-xts-plain64 for home" in out
    assert "encrypted with cryptostore0" in out


def test_format_in_place_is_canonical_and_keeps_the_mode(tmp_path: Path) -> None:
    path = tmp_path / "vg.txt"
    path.write_text(RFC.replace("\t", "    ").replace(" = ", "="))
    os.chmod(path, 0o640)
    run_lvcrypt("metadata", "format", "-i", str(path), check=True)
    formatted = path.read_text()
    assert significant(formatted) == significant(RFC)
    assert "\tseqno = 7\n" in formatted
    assert os.stat(path).st_mode & 0o777 == 0o640
    assert list(tmp_path.iterdir()) == [path]
    stdout = run_lvcrypt("metadata", "format", str(path), check=True).stdout.decode()
    assert stdout.splitlines()[1:] == formatted.splitlines()[1:]


BAD_FILES = {
    "truncated": RFC[: len(RFC) // 2 - 7].encode(),
    "unbalanced": (RFC + "\n}\n").encode(),
    "duplicate": RFC.replace("\tseqno = 7\n", "\tseqno = 7\n\tseqno = 7\n").encode(),
    "not utf-8": RFC.encode().replace(b"example", b"ex\xe9mple"),
    "nested": ("a { " * 5000 + " }" * 5000).encode(),
    "invalid": RFC.replace('crypto_store = "cryptostore1"', 'crypto_store = "nothere"', 1).encode(),
    "empty": b"",
    "binary": bytes(range(256)) * 64,
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
@pytest.mark.parametrize("action", ["check", "format", "json", "show"])
def test_bad_files_fail_in_one_line_and_stay_untouched(tmp_path: Path, name: str, action: str) -> None:
    path = tmp_path / "bad.vg"
    path.write_bytes(BAD_FILES[name])
    args = ["metadata", action, str(path)] + (["-i"] if action == "format" else [])
    result = run_lvcrypt(*args)
    stderr = assert_one_line_failure(result, contains=str(path))
    if name not in ("empty", "invalid"):
        assert f"{path}:" in stderr
    assert path.read_bytes() == BAD_FILES[name]
    assert result.stdout == b""


def test_errors_name_the_line() -> None:
    # The first duplicate of seqno is on line 16 of the example.
    bad = RFC.replace("\tseqno = 7\n", "\tseqno = 7\n\tseqno = 7\n")
    line = bad.splitlines().index("\tseqno = 7") + 2
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"lvcrypt-dup-{os.getpid()}.vg"
    try:
        path.write_text(bad)
        stderr = assert_one_line_failure(run_lvcrypt("metadata", "check", str(path)))
        assert f"{path}:{line}: duplicate key 'seqno'" in stderr
    finally:
        path.unlink()


@pytest.mark.slow
def test_hundred_megabytes_of_garbage(tmp_path: Path) -> None:
    path = tmp_path / "garbage.vg"
    chunk = os.urandom(1 << 20)
    with open(path, "wb") as f:
        for _ in range(100):
            f.write(chunk)
    assert_one_line_failure(run_lvcrypt("metadata", "check", str(path)), contains=f"{path}:")
    ascii_path = tmp_path / "letters.vg"
    with open(ascii_path, "wb") as f:
        for _ in range(100):
            f.write(b"abcdefgh" * (1 << 17))
    assert_one_line_failure(run_lvcrypt("metadata", "check", str(ascii_path)), contains=f"{ascii_path}:1:")


def test_bad_arguments_exit_3() -> None:
    assert_one_line_failure(run_lvcrypt("metadata", "frobnicate"), status=3)
    assert_one_line_failure(run_lvcrypt("metadata", "check"), status=3)
    assert_one_line_failure(run_lvcrypt("no-such-command"), status=3)


def test_missing_file_is_one_line() -> None:
    assert_one_line_failure(run_lvcrypt("metadata", "check", "/nonexistent/vg.txt"), contains="/nonexistent/vg.txt")


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    path = tmp_path / "bad.vg"
    path.write_bytes(BAD_FILES["unbalanced"])
    result = run_lvcrypt("--debug", "metadata", "check", str(path))
    assert result.returncode == 5
    assert b"Traceback" in result.stderr


def test_round_trip_through_the_cli_keeps_the_tree(tmp_path: Path) -> None:
    path = tmp_path / "vg.txt"
    path.write_text(RFC)
    run_lvcrypt("metadata", "format", "-i", str(path), check=True)
    assert ordered_items(parse_text(path.read_text())) == ordered_items(parse_text(RFC))
