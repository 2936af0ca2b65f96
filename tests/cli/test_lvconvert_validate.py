"""The one extent overlap metadata validation allows: an imported LUKS volume's header end and payload start."""

from __future__ import annotations

import pytest

from lvcrypt.errors import MetadataError
from lvcrypt.lvops import new_uuid
from lvcrypt.metadata.convert import tree_to_vg, vg_to_tree
from lvcrypt.metadata.model import (
    Area,
    CryptSegment,
    KeystoreSegment,
    LogicalVolume,
    PhysicalVolume,
    VolumeGroup,
)
from lvcrypt.metadata.parse import parse_text
from lvcrypt.metadata.validate import validate
from lvcrypt.metadata.write import write_text


def imported(data_offset: int | None, keystore_extents: int = 2, crypt_extent: int = 1,
             crypto_store: str = "cryptostore0") -> VolumeGroup:
    """Keystore on pv0 extents [0, keystore_extents), crypt LV from `crypt_extent` skipping `data_offset` sectors.

    A second keystore on pv1 gives the crypt segment another one to point at.
    """
    def keystore(name: str, pv: str) -> LogicalVolume:
        segment = KeystoreSegment(0, keystore_extents, "crypt-keystore", handler="luks2", areas=[Area(pv, 0)])
        return LogicalVolume(name, new_uuid(), ["READ"], segments=[segment])

    old = LogicalVolume("old", new_uuid(), segments=[
        CryptSegment(0, 3, "crypt", crypto_store=crypto_store, areas=[Area("pv0", crypt_extent)],
                     data_offset=data_offset)])
    pvs = {key: PhysicalVolume(key, new_uuid(), pe_count=10) for key in ("pv0", "pv1")}
    lvs = {"cryptostore0": keystore("cryptostore0", "pv0"), "cryptostore1": keystore("cryptostore1", "pv1"),
           "old": old}
    return VolumeGroup("vg0", new_uuid(), pvs=pvs, lvs=lvs)


def test_keystore_and_first_crypt_segment_may_share_one_extent() -> None:
    vg = imported(data_offset=2056)
    validate(vg)
    again = tree_to_vg(parse_text(write_text(vg_to_tree(vg))))
    validate(again)
    assert again.lvs["old"].segments[0] == vg.lvs["old"].segments[0]


@pytest.mark.parametrize("vg,why", [
    (imported(data_offset=None), "no data_offset: the crypt segment would read the header"),
    (imported(data_offset=2056, crypt_extent=0), "two shared extents"),
    (imported(data_offset=2056, crypto_store="cryptostore1"), "the crypt segment uses another keystore"),
    (imported(data_offset=8192 + 8, crypt_extent=1), "data_offset skips past the shared extent"),
], ids=["no-data-offset", "two-extents", "other-keystore", "offset-beyond-extent"])
def test_any_other_overlap_is_refused(vg: VolumeGroup, why: str) -> None:
    with pytest.raises(MetadataError, match="overlap"):
        validate(vg)
