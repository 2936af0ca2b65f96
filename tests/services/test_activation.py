"""lvcrypt.activation in process: what vgchange changes, and refusals before any passphrase is asked.

Activation itself needs device-mapper (tests/kernel/test_activation.py runs
it in the guest); these are the decisions made before the kernel is asked.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lvcrypt import activation
from lvcrypt.activation import ActivationRequest, change_lv, check_before_starting, open_lv_stack, \
    vg_activation_targets
from lvcrypt.errors import DeviceError, KeyringError
from lvcrypt.handlers.secret import Secret
from lvcrypt.keycache import KeyCache
from lvcrypt.metadata.convert import tree_to_vg
from lvcrypt.metadata.parse import parse_bytes
from lvcrypt.store.transaction import VgTransaction
from lvcrypt.unlock import KeySources
from store_helpers import Pair

FAST = ["--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000"]
LVM2_TYPES = Path(__file__).parent.parent / "data" / "lvm2_types"


def no_prompt(prompt: str) -> Secret:
    raise AssertionError(f"prompted: {prompt!r}")


def test_vgchange_changes_lvcrypts_visible_lvs_and_names_every_lvm2_lv_it_passes_over() -> None:
    path = LVM2_TYPES / "thin.vg"
    vg = tree_to_vg(parse_bytes(path.read_bytes(), str(path)), str(path))
    names, skipped = vg_activation_targets(vg)
    assert names == ["plain"]
    assert [line.split(":")[0] for line in skipped] == [f"cannot activate or deactivate thin/{name}"
                                                        for name in ("pool", "thin1", "thin2", "tsnap")]
    assert all("use lvm2" in line for line in skipped)


@pytest.mark.parametrize("request_, sources, message", [
    (ActivationRequest(True, link_vk_to_keyring="@s:%user:vk1"), KeySources(), "is not KEYRING::KEY"),
    (ActivationRequest(True), KeySources(volume_key_keyring="%trusted:vk1"), "key type 'trusted' is not supported"),
])
def test_keyring_spellings_are_checked_before_device_mapper(request_: ActivationRequest, sources: KeySources,
                                                            message: str) -> None:
    with pytest.raises(KeyringError, match=message):
        check_before_starting(request_, sources)


@pytest.fixture
def split_vg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Pair:
    """vgs over two images: `filler` on the first leaves room for the keystore there, so `data` lands on the second."""
    images = []
    for number in range(2):
        image = tmp_path / f"pv{number}.img"
        with open(image, "wb") as f:
            f.truncate(40 << 20)
        images.append(str(image))
    pair = Pair(images, tmp_path)
    (tmp_path / "pass").write_bytes(b"split passphrase")
    pair.lvc("pvcreate", *images)
    pair.lvc("vgcreate", "vgs", *images)
    pair.lvc("lvcreate", "-L", "20M", "-n", "filler", "vgs", images[0])
    pair.lvc("lvcreate", "--encrypt", *FAST, "--key-file", str(tmp_path / "pass"), "-L", "8M", "-n", "data", "vgs")
    monkeypatch.setenv("LVCRYPT_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("LVCRYPT_RUN_DIR", str(tmp_path / "run"))
    return pair


def _device_of_keystore(pair: Pair) -> str:
    with VgTransaction(pair.device_list, "vgs", exclusive=False) as tx:
        (store,) = tx.vg.lvs["data"].keystores()
        (pv,) = {area.pv for segment in tx.vg.lvs[store].segments for area, _ in segment.pv_areas()}
        return tx.loaded.device_of(pv)


def test_a_missing_pv_of_the_data_is_refused_before_any_passphrase(split_vg: Pair) -> None:
    present = _device_of_keystore(split_vg)
    with VgTransaction(present, "vgs", exclusive=False, allow_missing=True) as tx, KeyCache() as keys:
        with pytest.raises(DeviceError, match="physical volume .* is missing"):
            change_lv(tx, "data", keys, ActivationRequest(True), KeySources(prompt=no_prompt))
        assert len(keys) == 0


def test_the_userspace_stack_reads_what_it_wrote(split_vg: Pair) -> None:
    sources = KeySources(key_file=str(split_vg.tmp / "pass"), prompt=no_prompt)
    data = bytes(range(256)) * 64
    with open_lv_stack(split_vg.device_list, "vgs", "data", True, sources) as stack:
        stack.write(4096, data)
        stack.sync()
    with open_lv_stack(split_vg.device_list, "vgs", "data", False, sources) as stack:
        back = bytearray(len(data))
        stack.readinto(4096, memoryview(back))
    assert back == data


def test_lock_stop_waits_for_sanlock_to_close_lvmlock_then_removes_it_or_gives_up_bounded() -> None:
    """After stop_vg, sanlock may hold the lvmlock device a while (seen above 5 s under load): removing
    it then would fail and leave it for the next lockspace init to trip on.  Wait while it is open,
    remove it once closed, and give up (with a line naming the device) only after the bound."""
    limit = activation.LOCK_LV_RELEASE_SECONDS
    assert activation.lock_lv_step(None, 0.0) is activation.LockLvStep.GONE
    assert activation.lock_lv_step(1, 0.0) is activation.LockLvStep.WAIT
    assert activation.lock_lv_step(1, limit - 0.1) is activation.LockLvStep.WAIT
    assert activation.lock_lv_step(0, limit + 5) is activation.LockLvStep.REMOVE  # closed late: still removed
    assert activation.lock_lv_step(1, limit) is activation.LockLvStep.GIVE_UP
