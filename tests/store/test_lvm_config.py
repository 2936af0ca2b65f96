"""lvm.conf as lvcrypt reads it (lvcrypt.store.lvm_config) against lvm2's own reading (`lvmconfig`): comments
anywhere, a `#` inside a string, lists, sections on one line, lvmlocal.conf merged over lvm.conf."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import LVM_ENV
from lvcrypt.store import lvm_config

LVM_CONF = """# comment { not = "a section" }
global {   # trailing comment
\t# locking_dir = "/wrong"
\tlocking_dir = "/run/x#y"   # a '#' inside a string is no comment
\twait_for_locks = 0
\tunits = "h"
}
devices { filter = [ "a|/dev/loop.*|", "r|.*|" ] # end
\tscan_lvs = 1 }
#
"""
LVMLOCAL_CONF = "global { wait_for_locks = 1 }  # lvmlocal.conf wins\n"
KEYS = ("global/locking_dir", "global/wait_for_locks", "global/units", "devices/filter", "devices/scan_lvs")


@pytest.mark.skipif(shutil.which("lvmconfig") is None, reason="needs lvm2's lvmconfig")
def test_settings_read_as_lvm2_reads_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "lvm.conf").write_text(LVM_CONF)
    (tmp_path / "lvmlocal.conf").write_text(LVMLOCAL_CONF)
    monkeypatch.setenv("LVM_SYSTEM_DIR", str(tmp_path))
    lvm_config.reread()
    try:
        ours = {key: lvm_config.setting(key, "") for key in KEYS}
    finally:
        lvm_config.reread()
    result = subprocess.run(["lvmconfig", *KEYS], capture_output=True, text=True, check=True,
                            env={**LVM_ENV, "LVM_SYSTEM_DIR": str(tmp_path)})
    theirs = dict(line.split("=", 1) for line in result.stdout.splitlines())
    assert ours == {"global/locking_dir": "/run/x#y", "global/wait_for_locks": 1, "global/units": "h",
                    "devices/filter": ["a|/dev/loop.*|", "r|.*|"], "devices/scan_lvs": 1}
    for key, value in ours.items():
        shown = (f"[{','.join(f'{item!r}'.replace(chr(39), chr(34)) for item in value)}]" if isinstance(value, list)
                 else f'"{value}"' if isinstance(value, str) else str(value))
        assert theirs[key.rsplit("/", 1)[1]] == shown, key


def test_blanks_and_comments_are_no_tokens() -> None:
    assert lvm_config._tokens('  # c\n\ta{b="x # y"#z\n c = [1,2]}  #') == \
        ["a", "{", "b", "=", '"x # y"', "c", "=", "[", "1", ",", "2", "]", "}"]
    assert lvm_config._tokens("# only comments\n\n   # more\n") == []
