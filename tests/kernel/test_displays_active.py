"""issue 15: displays of active LVs in a real kernel, lvm2 as the oracle.

lvcrypt activates a plain LV (and opens it); `lvdisplay`, `lvdisplay -c`, `vgdisplay`,
`lvscan` then print what lvm2 prints for the same dm devices: "available", "# open",
"Block device MAJOR:MINOR", ACTIVE, Open LV.  The host has no device-mapper, so this is
the only place those lines are compared.  lvcrypt's commands run in this process, through the
CLI's entry point (`test_activation.lvcrypt`): under TCG each lvcrypt process cost the guest
3-5 s of start-up, 11 of them 42 s of this test.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Callable, Iterator

import pytest

from store_helpers import Pair

from .test_activation import lvcrypt

pytestmark = pytest.mark.usefixtures("lvm2")
ENV = {**os.environ, "DM_DISABLE_UDEV": "1", "LC_ALL": "C", "LVM_SUPPRESS_FD_WARNINGS": "1"}


@pytest.fixture
def pair(loop_devices: Callable[..., list[str]], tmp_path: Path) -> Iterator[Pair]:
    pair = Pair(loop_devices(1, 64), tmp_path)
    lvcrypt(pair, "pvcreate", *pair.devices)
    lvcrypt(pair, "vgcreate", "vgd", *pair.devices)
    lvcrypt(pair, "lvcreate", "-L", "8M", "-n", "live", "vgd")
    lvcrypt(pair, "lvcreate", "-L", "4M", "-n", "idle", "vgd")
    try:
        yield pair
    finally:
        subprocess.run(["dmsetup", "remove", "--retry", "vgd-live"], capture_output=True, env=ENV)
        Path("/dev/mapper/vgd-live").unlink(missing_ok=True)


def test_active_lv_displays_as_lvm2_displays_it(pair: Pair) -> None:
    lvcrypt(pair, "lvchange", "-ay", "vgd/live")
    holder = os.open("/dev/mapper/vgd-live", os.O_RDONLY)  # one opener: "# open 1", Open LV 1
    try:
        for words in (["lvdisplay"], ["lvdisplay", "-c"], ["lvdisplay", "-m", "vgd/live"], ["vgdisplay"],
                      ["vgdisplay", "-c"], ["lvscan"]):
            theirs = subprocess.run([words[0], "--devices", pair.device_list, *words[1:]], capture_output=True,
                                    text=True, env=ENV)
            ours = lvcrypt(pair, *words).stdout.decode()
            assert theirs.returncode == 0, theirs.stderr
            assert ours == theirs.stdout, f"{' '.join(words)}:\n{theirs.stdout}\n---\n{ours}"
        shown = lvcrypt(pair, "lvdisplay", "vgd/live").stdout.decode()
        assert "  LV Status              available\n  # open                 1\n" in shown
        assert "  Block device           " in shown
    finally:
        os.close(holder)
