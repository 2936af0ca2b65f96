"""The Python API for tools: read and change VG metadata with the same checks as the CLI.

    from lvcrypt.api import MetadataFile, open_vg

    with MetadataFile.open("vg0.txt") as md:          # a metadata file, offline
        for lv in md.crypt_lvs():
            print(lv.name, md.keystore_of(lv).handler)
        md.add_tag("data", "backup")
        md.save()

    with open_vg("vg0", devices="/dev/sdb,/dev/sdc") as vg:   # a VG on disk, under its lock
        vg.add_tag("data", "backup")
        vg.commit()                                   # archived, seqno + 1 on every PV

Every change is made on a copy of the model and validated before it
replaces the current one, so a `MetadataFile` never holds an invalid VG; a
refused change raises `MetadataError` and leaves the model as it was.
Errors are the `LvcryptError` family.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

from lvcrypt.atomic_file import write_atomically
from lvcrypt.cryptlv import remove_lv_and_keystores
from lvcrypt.errors import LvcryptError, MetadataError
from lvcrypt.lvops import rename_lv
from lvcrypt.metadata.convert import tree_to_vg, vg_to_tree
from lvcrypt.metadata.model import KeystoreSegment, LogicalVolume, VolumeGroup
from lvcrypt.metadata.parse import parse_bytes
from lvcrypt.metadata.validate import KEYSTORE_NAME, check_lvm2_readable, new_lv_name_problem, validate
from lvcrypt.metadata.write import write_text

if TYPE_CHECKING:
    from lvcrypt.store.transaction import VgTransaction

KEYSTORE_ATTRS = ("handler", "cipher", "key_size", "key_hash")


class VolumeGroupEditor:
    """Validated changes to one VG model; subclasses decide where it is saved."""

    def __init__(self, vg: VolumeGroup, source: str | None = None):
        self.vg = vg
        self.source = source

    # Reading.
    def lvs(self, hidden: bool = False) -> Iterator[LogicalVolume]:
        return (lv for lv in self.vg.lvs.values() if hidden or lv.visible)

    def crypt_lvs(self) -> list[LogicalVolume]:
        return [lv for lv in self.vg.lvs.values() if lv.is_crypt]

    def keystores(self) -> list[LogicalVolume]:
        return [lv for lv in self.vg.lvs.values() if lv.is_keystore]

    def keystore_of(self, lv: LogicalVolume | str) -> KeystoreSegment:
        """The keystore segment of an LV's (first) keystore: handler, cipher, key size."""
        lv = self._lv(lv.name if isinstance(lv, LogicalVolume) else lv)
        names = lv.keystores()
        if not names:
            raise MetadataError(f"logical volume {lv.name} is not encrypted", self.source)
        segment = self._lv(names[0]).segments[0]
        assert isinstance(segment, KeystoreSegment)
        return segment

    def _lv(self, name: str, vg: VolumeGroup | None = None) -> LogicalVolume:
        lv = (vg or self.vg).lvs.get(name)
        if lv is None:
            raise MetadataError(f"logical volume {self.vg.name}/{name} does not exist", self.source)
        return lv

    # Changing.
    def change(self, edit: Callable[[VolumeGroup], None]) -> None:
        """Apply `edit` to a copy, validate it, and only then make it current."""
        trial = copy.deepcopy(self.vg)
        edit(trial)
        validate(trial, self.source)
        self.vg = trial

    def rename_lv(self, old: str, new: str) -> None:
        problem = new_lv_name_problem(new, self.vg.name)
        is_store = KEYSTORE_NAME.match(old) is not None
        if is_store and KEYSTORE_NAME.match(new):
            problem = None
        if problem:
            raise MetadataError(f"cannot rename {old} to {new}: {problem}", self.source)

        def edit(vg: VolumeGroup) -> None:
            self._lv(old, vg)
            try:
                rename_lv(vg, old, new)
            except LvcryptError as error:
                raise MetadataError(str(error), self.source) from None
        self.change(edit)

    def remove_lv(self, name: str) -> None:
        """Remove an LV; its keystores go with it when it was their last user. Keystores in use stay."""
        def edit(vg: VolumeGroup) -> None:
            remove_lv_and_keystores(vg, name)
        self.change(edit)

    def add_tag(self, lv: str, tag: str) -> None:
        self._check_tag(tag)
        self.change(lambda vg: None if tag in self._lv(lv, vg).tags else self._lv(lv, vg).tags.append(tag))

    def remove_tag(self, lv: str, tag: str) -> None:
        self.change(lambda vg: self._lv(lv, vg).tags.remove(tag) if tag in self._lv(lv, vg).tags else None)

    def set_keystore_attr(self, keystore: str, key: str, value: str | int | None) -> None:
        """Change handler/cipher/key_size/key_hash, or any other attribute (kept verbatim), of every segment."""
        def edit(vg: VolumeGroup) -> None:
            store = self._lv(keystore, vg)
            if not store.is_keystore:
                raise MetadataError(f"{keystore} is not a keystore", self.source)
            for segment in store.segments:
                assert isinstance(segment, KeystoreSegment)
                if key in KEYSTORE_ATTRS:
                    if key in ("handler", "key_size") and value is None:
                        raise MetadataError(f"a keystore needs '{key}'", self.source)
                    setattr(segment, key, value)
                elif value is None:
                    segment.raw.pop(key, None)
                else:
                    segment.raw[key] = value
        self.change(edit)

    def _check_tag(self, tag: str) -> None:
        # lvm2's tag characters (lib/metadata/metadata.c validate_tag).
        if not tag or len(tag) > 1024 or any(not (c.isalnum() or c in "_+.-/=!:&#") for c in tag):
            raise MetadataError(f"invalid tag '{tag}'", self.source)

    def text(self) -> str:
        return write_text(vg_to_tree(self.vg))


def check_replacement(old: VolumeGroup, new: VolumeGroup, source: str | None = None) -> None:
    """What an edit of a VG on disk may not change: its name and uuid, and its PVs' identities.

    Those are what the commit writes to and how other tools recognise the
    disks; changing them by editing text would orphan or corrupt PVs.
    """
    if new.name != old.name:
        raise MetadataError(f"the volume group name cannot change here ({old.name} -> {new.name}): use vgrename",
                            source)
    if new.id != old.id:
        raise MetadataError(f"the uuid of volume group {old.name} cannot change", source, new.raw.line_of("id"))
    old_pvs = {key: pv.id for key, pv in old.pvs.items()}
    new_pvs = {key: pv.id for key, pv in new.pvs.items()}
    for key, pv_id in new_pvs.items():
        if key in old_pvs and old_pvs[key] != pv_id:
            raise MetadataError(f"the uuid of physical volume {key} cannot change", source,
                                new.pvs[key].raw.line_of("id"))
    if set(old_pvs) != set(new_pvs):
        raise MetadataError("physical volumes cannot be added or removed by editing metadata: use vgextend or "
                            "vgreduce", source)
    check_lvm2_readable(new)


class VolumeGroupOnDisk(VolumeGroupEditor):
    """A VG read from its PVs and held under its exclusive lock until closed; `commit` writes it back."""

    def __init__(self, transaction: "VgTransaction"):
        super().__init__(copy.deepcopy(transaction.vg), transaction.vg.name)
        self.transaction = transaction

    def replace(self, vg: VolumeGroup) -> None:
        """Take a whole new model (an edited text): validated and checked against the VG on disk."""
        validate(vg, self.source)
        check_replacement(self.transaction.vg, vg, self.source)
        self.vg = vg

    def commit(self) -> None:
        """Archive the current version and write this one as seqno + 1 on all PVs of the VG."""
        check_replacement(self.transaction.vg, self.vg, self.source)
        self.vg.seqno = self.transaction.vg.seqno
        self.vg.header = self.transaction.vg.header
        self.transaction.loaded.vg = self.vg
        self.transaction.commit()
        self.vg = copy.deepcopy(self.transaction.vg)

    def close(self) -> None:
        self.transaction.__exit__(None, None, None)

    def __enter__(self) -> "VolumeGroupOnDisk":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_vg(name: str, devices: str | None = None) -> VolumeGroupOnDisk:
    """Lock and read VG `name` from `devices` (comma-separated paths; default: the devices file and udev)."""
    from lvcrypt.store.transaction import VgTransaction

    transaction = VgTransaction(devices, name)
    transaction.__enter__()
    return VolumeGroupOnDisk(transaction)


class MetadataFile(VolumeGroupEditor):
    """A metadata text file (a `vgcfgbackup` file or an archive) opened for editing offline."""

    def __init__(self, vg: VolumeGroup, path: str):
        super().__init__(vg, path)
        self.path = path

    @classmethod
    def open(cls, path: str | Path) -> "MetadataFile":
        name = str(path)
        data = Path(name).read_bytes()
        vg = tree_to_vg(parse_bytes(data, name), name)
        validate(vg, name)
        return cls(vg, name)

    def save(self, path: str | Path | None = None) -> None:
        """Write the current model atomically (to `path`, or back to the file it came from)."""
        write_atomically(str(path or self.path), self.text())

    def __enter__(self) -> "MetadataFile":
        return self

    def __exit__(self, *exc: object) -> None:
        return None
