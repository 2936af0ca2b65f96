"""The VG commands' core functions, in process on image files: every change goes through the one
writer, which archives the version it replaces and keeps the backup file in step."""

from __future__ import annotations

from pathlib import Path

import pytest

from lvcrypt.errors import LvcryptError
from lvcrypt.pvops import create_pvs, remove_pvs
from lvcrypt.store import archive
from lvcrypt.store.commit import load_vg, scan
from lvcrypt.vgops import create_vg, extend_vg, reduce_vg, remove_vg, rename_vg, restore_vg

MIB = 1 << 20


@pytest.fixture
def images(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setenv("LVCRYPT_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("LVCRYPT_RUN_DIR", str(tmp_path / "run"))
    paths = []
    for index in range(3):
        path = tmp_path / f"pv{index}.img"
        with open(path, "wb") as f:
            f.truncate(32 * MIB)
        paths.append(str(path))
    return paths


def _archived(name: str) -> list[Path]:
    directory = archive.existing_state_path("archive")
    return sorted(directory.glob(f"{name}_*.vg")) if directory else []


def _backed_up(name: str) -> bool:
    path = archive.backup_path(name)
    return path is not None and path.exists()


def _seqno(devices: str, name: str) -> int:
    return load_vg(scan(devices.split(",")), name).vg.seqno


def test_each_vg_change_is_archived_and_backed_up(images: list[str]) -> None:
    devices = ",".join(images)
    created: list[str] = []
    create_vg(devices, "vga", images[:2], 4 * MIB, created=created.append)
    assert created == images[:2]  # unlabelled devices became PVs on the way
    assert _backed_up("vga") and not _archived("vga")
    extend_vg(devices, "vga", images[2:])
    assert len(_archived("vga")) == 1 and _seqno(devices, "vga") == 2
    assert reduce_vg(devices, "vga", [], every_unused=True) == images[:2]
    assert len(_archived("vga")) == 2 and len(load_vg(scan(images), "vga").vg.pvs) == 1

    rename_vg(devices, "vga", "vgb")
    assert not _backed_up("vga") and _backed_up("vgb")
    assert len(_archived("vga")) == 3  # the version before the rename, under the old name

    remove_vg(devices, "vgb")
    assert not _backed_up("vgb") and len(_archived("vgb")) == 1
    assert "vgb" not in scan(images).vg_names()


def test_restore_passes_the_seqno_on_disk_and_refuses_pvs_of_another_vg(images: list[str],
                                                                          tmp_path: Path) -> None:
    devices = ",".join(images)
    create_vg(devices, "vgr", images[:1], 4 * MIB)
    saved = archive.backup_path("vgr")
    assert saved is not None and saved.exists()
    copy = tmp_path / "vgr.backup"
    copy.write_bytes(saved.read_bytes())
    extend_vg(devices, "vgr", images[1:2])
    reduce_vg(devices, "vgr", images[1:2])
    restore_vg(devices, "vgr", str(copy))
    restored = load_vg(scan(images[:1]), "vgr").vg
    assert restored.seqno == 4 and len(restored.pvs) == 1
    assert _backed_up("vgr")

    create_vg(devices, "vgq", images[2:], 4 * MIB)
    copy.write_bytes(archive.backup_path("vgq").read_bytes())  # type: ignore[union-attr]
    remove_vg(devices, "vgq")
    create_vg(devices, "other", images[2:], 4 * MIB)
    with pytest.raises(LvcryptError, match="belongs to volume group other"):
        restore_vg(devices, "vgq", str(copy))
    assert scan(images[2:]).vg_names() == ["other"]


def test_pv_commands_refuse_everything_before_writing_anything(images: list[str]) -> None:
    devices = ",".join(images)
    create_vg(devices, "vgp", images[:1], 4 * MIB)
    with pytest.raises(LvcryptError, match="vgp"):
        create_pvs(devices, [images[1], images[0]])
    assert scan(images[1:2]).pvs == {}  # the first device was not labelled either
    told: list[str] = []
    create_pvs(devices, images[1:], created=told.append)
    remove_pvs(devices, images[1:], wiped=told.append)
    assert told == images[1:] * 2 and scan(images[1:]).pvs == {}
