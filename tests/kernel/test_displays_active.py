"""issue 15: displays of active LVs in a real kernel, lvm2 as the oracle.

lvcrypt activates a plain LV (and opens it); `lvdisplay`, `lvdisplay -c`, `vgdisplay`,
`lvscan` then print what lvm2 prints for the same dm devices: "available", "# open",
"Block device MAJOR:MINOR", ACTIVE, Open LV.  The host has no device-mapper, so this is
the only place those lines are compared.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Callable, Iterator

import pytest

from store_helpers import Pair

pytestmark = pytest.mark.usefixtures("lvm2")
ENV = {**os.environ, "DM_DISABLE_UDEV": "1", "LC_ALL": "C", "LVM_SUPPRESS_FD_WARNINGS": "1"}


@pytest.fixture
def pair(loop_devices: Callable[..., list[str]], tmp_path: Path) -> Iterator[Pair]:
    pair = Pair(loop_devices(1, 64), tmp_path)
    pair.lvc("pvcreate", *pair.devices)
    pair.lvc("vgcreate", "vgd", *pair.devices)
    pair.lvc("lvcreate", "-L", "8M", "-n", "live", "vgd")
    pair.lvc("lvcreate", "-L", "4M", "-n", "idle", "vgd")
    try:
        yield pair
    finally:
        subprocess.run(["dmsetup", "remove", "--retry", "vgd-live"], capture_output=True, env=ENV)
        Path("/dev/mapper/vgd-live").unlink(missing_ok=True)


def test_active_lv_displays_as_lvm2_displays_it(pair: Pair) -> None:
    pair.lvc("lvchange", "-ay", "vgd/live")
    holder = os.open("/dev/mapper/vgd-live", os.O_RDONLY)  # one opener: "# open 1", Open LV 1
    try:
        for words in (["lvdisplay"], ["lvdisplay", "-c"], ["lvdisplay", "-m", "vgd/live"], ["vgdisplay"],
                      ["vgdisplay", "-c"], ["lvscan"]):
            theirs = subprocess.run([words[0], "--devices", pair.device_list, *words[1:]], capture_output=True,
                                    text=True, env=ENV)
            ours = pair.lvc(*words)
            assert theirs.returncode == 0, theirs.stderr
            assert ours.stdout == theirs.stdout, f"{' '.join(words)}:\n{theirs.stdout}\n---\n{ours.stdout}"
        shown = pair.lvc("lvdisplay", "vgd/live").stdout
        assert "  LV Status              available\n  # open                 1\n" in shown
        assert "  Block device           " in shown
    finally:
        os.close(holder)
