"""issue 15: a hashed crypt LV and `cryptsetup open --type plain` with the same command line see the same data.

In a real kernel: lvcrypt makes a hashed keystore (`--hash sha256`) from a key file given by
name and from `--key-file -`, writes through its userspace data path, and cryptsetup opens
the LV's extents in plain mode with the same key options; the plaintext must match.  For the
named file cryptsetup ignores --hash and takes the file's bytes as the key; for standard
input it hashes, as lvcrypt's new keystores now do (the host-side libcryptsetup cases are in
tests/compat/test_hashed_key_files.py).  lvcrypt's commands run in this process through the CLI's
entry point (`test_activation.lvcrypt`, standard input given as bytes, read as a pipe is): each lvcrypt
process cost the guest seconds of start-up under TCG.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Callable

import pytest

import sampling
from crypt_lv_layout import lvm2_layout
from store_helpers import Pair

from .test_activation import lvcrypt

pytestmark = pytest.mark.usefixtures("lvm2")

MIB = 1 << 20
ENV = {**os.environ, "DM_DISABLE_UDEV": "1", "LC_ALL": "C"}


def run(*argv: str, input: bytes | None = None) -> bytes:
    result = subprocess.run(list(argv), input=input, capture_output=True, env=ENV)
    assert result.returncode == 0, f"{' '.join(argv)}: {result.stderr.decode(errors='replace')}"
    return result.stdout


@pytest.mark.sampled
@pytest.mark.parametrize("source", sampling.pick(["named", "stdin"], 1, "hashed key file source"))
def test_cryptsetup_plain_opens_what_lvcrypt_wrote(loop_devices: Callable[..., list[str]], tmp_path: Path,
                                                   dm_names: list[str], source: str) -> None:
    pair = Pair(loop_devices(1, 64), tmp_path)
    lvcrypt(pair, "pvcreate", *pair.devices)
    lvcrypt(pair, "vgcreate", "vgp", *pair.devices)
    secret = os.urandom(48) if source == "named" else b"a passphrase piped on standard input"
    key_file = tmp_path / "key"
    key_file.write_bytes(secret)
    key_args = ["--key-file", str(key_file) if source == "named" else "-"]
    lvcrypt(pair, "lvcreate", "--encrypt", "--handler", "hashed", "--hash", "sha256", *key_args, "-L", "4M",
            "-n", "h", "vgp", input=secret)
    plaintext = os.urandom(4 * MIB)
    # `lvcrypt write` takes the data on stdin, so only the named-file LV is written; the stdin one is
    # compared through `lvcrypt read` with its passphrase on stdin.
    if source == "named":
        lvcrypt(pair, "write", "--key-file", str(key_file), "vgp/h", input=plaintext)
    vg = lvm2_layout(pair, "vgp")
    (segment,) = vg.lvs["h"].segments
    area = segment.pv_areas()[0][0]  # type: ignore[attr-defined]
    offset = vg.pvs[area.pv].pe_start + area.extent * vg.extent_size
    dm_names.append("lvct-hashed")
    run("cryptsetup", "open", "--type", "plain", "--batch-mode", "--hash", "sha256", *key_args,
        "--offset", str(offset), "--size", str(4 * MIB // 512), pair.devices[0], "lvct-hashed", input=secret)
    try:
        mapped = Path("/dev/mapper/lvct-hashed")
        if source == "named":
            assert mapped.read_bytes() == plaintext
        else:
            # What cryptsetup maps, lvcrypt reads with the passphrase on stdin: the same key.
            shown = lvcrypt(pair, "read", "--key-file", "-", "vgp/h", input=secret).stdout
            assert shown == mapped.read_bytes()
    finally:
        subprocess.run(["cryptsetup", "close", "lvct-hashed"], capture_output=True, env=ENV)
