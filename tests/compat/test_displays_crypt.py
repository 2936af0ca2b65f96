"""issue 15: displays of encrypted LVs are lvm2's displays of striped LVs over the same extents, plus one line.

lvm2 does not know lvcrypt's `crypt` and `crypt-keystore` segment types, so the oracle is lvm2
itself on the same VG with those segments rewritten as the striped segments they map (same
areas, same stripe size): `pvdisplay -m`, `lvdisplay -m` and `lvscan` of lvcrypt before the
rewrite must equal lvm2's after it, except lvcrypt's one extra line per encrypted LV
(`LV Keystore name`) and keystore (`LV Keystore handler`), documented in README.md.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

import pytest

from store_helpers import Pair

pytestmark = [pytest.mark.oracle, pytest.mark.usefixtures("lvm2")]
CRYPT_LINES = re.compile(r"^  LV Keystore (name|handler) .*\n", re.MULTILINE)


def as_striped(text: str) -> str:
    """lvm2's backup text with every crypt and crypt-keystore segment written as a striped one."""
    def segment(match: re.Match[str]) -> str:
        body = match.group(0)
        if not re.search(r'type = "crypt(-keystore)?"', body):
            return body
        areas = re.search(r"areas ?= ?\[([^\]]*)\]", body)
        assert areas is not None, body
        items = [item.strip() for item in areas.group(1).split(",")]
        stripe = re.search(r"stripe_size ?= ?(\d+)", body)
        head = body[:body.index("type = ")]
        lines = ['type = "striped"', f"stripe_count = {len(items) // 2}"]
        if stripe:
            lines.append(f"stripe_size = {stripe.group(1)}")
        lines.append(f"stripes = [{', '.join(items)}]")
        return head + "\n".join(lines) + "\n}"
    return re.sub(r"segment\d+ \{[^{}]*\}", segment, text)


@pytest.fixture
def pair(loop_devices: Callable[..., list[str]], tmp_path: Path) -> Pair:
    pair = Pair(loop_devices(2, 64), tmp_path)
    pair.lvc("pvcreate", *pair.devices)
    pair.lvc("vgcreate", "vgc", *pair.devices)
    (tmp_path / "vk").write_bytes(bytes(range(64)))
    key = ["--key-file", str(tmp_path / "vk")]
    pair.lvc("lvcreate", "-L", "4M", "-n", "before", "vgc")
    pair.lvc("lvcreate", "--encrypt", "--handler", "plain", "--cipher", "aes-xts-plain64", "--key-size", "512",
             *key, "-L", "8M", "-n", "enc", "vgc")
    pair.lvc("lvcreate", "--encrypt", "--keystore", "cryptostore0", *key, "-i2", "-L", "16M", "-n", "senc", "vgc")
    pair.lvc("lvextend", "-L", "+4M", "vgc/enc")
    return pair


COMMANDS = [["pvdisplay", "-m"], ["lvdisplay", "-m", "vgc/enc"], ["lvdisplay", "-m", "vgc/senc"],
            ["lvdisplay", "-a", "-m", "vgc/cryptostore0"],
            ["lvdisplay", "vgc/cryptostore0"], ["lvdisplay", "-m", "vgc/before"], ["lvdisplay", "-c", "vgc/enc"],
            ["pvscan"], ["vgdisplay", "-s"]]


def test_crypt_lvs_display_as_lvm2_displays_their_striped_twins(pair: Pair) -> None:
    ours = {" ".join(words): pair.lvc(*words) for words in COMMANDS}
    enc = ours["lvdisplay -m vgc/enc"].stdout
    assert "  LV Keystore name       cryptostore0\n" in enc and "  Segments               2\n" in enc
    assert "  LV Keystore handler    plain\n" in ours["lvdisplay -a -m vgc/cryptostore0"].stdout
    backup = pair.tmp / "vgc.vg"
    pair.lvm("vgcfgbackup", "-f", str(backup), "vgc")
    twin = pair.tmp / "twin.vg"
    twin.write_text(as_striped(backup.read_text()))
    assert '"crypt' not in twin.read_text()
    pair.lvm("vgcfgrestore", "-f", str(twin), "vgc")
    for words in COMMANDS:
        theirs = pair.lvm(*words)
        assert CRYPT_LINES.sub("", ours[" ".join(words)].stdout) == theirs.stdout, " ".join(words)


def test_the_striped_twin_is_lvm2s_view_of_the_same_extents(pair: Pair) -> None:
    """The rewrite keeps every area where it was: lvm2's pvs of the twin use what lvcrypt's pvs use."""
    used = pair.lvc("pvs", "--noheadings", "-o", "pv_name,pv_used", "--units", "b").stdout
    backup = pair.tmp / "vgc.vg"
    pair.lvm("vgcfgbackup", "-f", str(backup), "vgc")
    (pair.tmp / "twin.vg").write_text(as_striped(backup.read_text()))
    pair.lvm("vgcfgrestore", "-f", str(pair.tmp / "twin.vg"), "vgc")
    assert pair.lvm("pvs", "--noheadings", "-o", "pv_name,pv_used", "--units", "b").stdout == used
