"""Host tags as lvm2 derives them from lvm.conf and lvmlocal.conf (the activation itself is tested
against lvm2 in the kernel guest: tests/kernel/test_activation.py)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

from lvcrypt.activation_filter import host_tags
from lvcrypt.store import lvm_config


@pytest.fixture
def system_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("LVM_SYSTEM_DIR", str(tmp_path))
    lvm_config.reread()
    yield tmp_path
    lvm_config.override(None)


def test_host_tags_from_hosttags_sections_and_host_lists(system_dir: Path) -> None:
    me = os.uname().nodename
    (system_dir / "lvm.conf").write_text(
        f'tags {{\n hosttags = 1\n plain {{ }}\n @at {{ }}\n mine {{ host_list = [ "other", "{me}" ] }}\n'
        ' theirs { host_list = [ "other" ] }\n}\n')
    (system_dir / "lvmlocal.conf").write_text("tags { local_one { } }\n")
    assert host_tags() == {me, "plain", "at", "mine", "local_one"}


def test_tags_given_with_config_do_not_count_and_none_by_default(system_dir: Path) -> None:
    (system_dir / "lvm.conf").write_text("tags { hosttags = 0 }\n")
    lvm_config.override("tags { hosttags = 1 extra { } }")
    assert host_tags() == set()
