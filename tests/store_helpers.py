"""Running lvcrypt and lvm2 side by side on the same devices, and comparing what they report."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from conftest import LVM_ENV, ROOT

if TYPE_CHECKING:
    import pytest

# A LUKS2 keyslot that opens in milliseconds: tests are about behaviour, not the KDF's cost.
FAST_PBKDF2 = ("--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000")

# Fields both tools must agree on (sizes in bytes so no rounding hides a difference).
LV_FIELDS = "lv_name,vg_name,lv_attr,lv_size,lv_uuid,seg_count,segtype,stripes,stripe_size,devices"
VG_FIELDS = "vg_name,vg_uuid,vg_seqno,pv_count,lv_count,vg_attr,vg_size,vg_free,vg_extent_size,vg_extent_count,vg_free_count"
PV_FIELDS = "pv_name,vg_name,pv_uuid,pv_attr,pv_size,pv_free,pe_start,dev_size,pv_pe_count,pv_pe_alloc_count,pv_mda_count"


@dataclass
class Pair:
    """lvcrypt and lvm2 pointed at the same devices, each with its own state and run directories."""

    devices: list[str]
    tmp: Path

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "LVCRYPT_STATE_DIR": str(self.tmp / "state"), "LVCRYPT_RUN_DIR": str(self.tmp / "run")}

    @property
    def device_list(self) -> str:
        return ",".join(self.devices)

    def lvc(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """An lvcrypt command limited to our devices."""
        result = subprocess.run([sys.executable, "-m", "lvcrypt", args[0], "--devices", self.device_list,
                                 *args[1:]], capture_output=True, text=True, env=self.env, cwd=ROOT)
        if check and result.returncode != 0:
            raise AssertionError(f"lvcrypt {' '.join(args)} failed ({result.returncode}): {result.stderr}")
        return result

    def lvm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """An lvm2 command limited to our devices, with what lvm2 needs without device-mapper."""
        extra = ["--driverloaded", "n"] if args[0] in ("lvcreate", "lvextend", "lvreduce", "lvremove",
                                                        "lvrename") else []
        if args[0] == "lvcreate":
            extra += ["-an", "-Zn"]
        result = subprocess.run([args[0], "--devices", self.device_list, *extra, *args[1:]],
                                capture_output=True, text=True, env=LVM_ENV)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed ({result.returncode}): {result.stderr}")
        return result

    def report(self, tool: str, command: str, fields: str, *names: str) -> list[dict[str, str]]:
        kind = command[:-1]
        args = [command, "--units", "b", "-o", fields, "--reportformat", "json", *names]
        if command == "lvs":
            args.insert(1, "-a")
        run = self.lvc if tool == "lvcrypt" else self.lvm
        result = run(*args)
        # lvm2 reads cleanly: no warning about labels, flags, checksums or outdated copies. The one
        # warning expected is lvm2 meeting lvcrypt's segment types, which it lists but does not know.
        warnings = [line for line in result.stderr.splitlines() if "WARNING" in line
                    and not re.search(r"Unrecognised segment type crypt(-keystore)?$", line)]
        assert not warnings, result.stderr
        rows = json.loads(result.stdout)["report"][0][kind]
        return sorted(rows, key=lambda row: json.dumps(row, sort_keys=True))

    def assert_agree(self, vg: str | None = None) -> None:
        """lvs -a, vgs and pvs of both tools match field by field."""
        names = (vg,) if vg else ()
        for command, fields in (("lvs", LV_FIELDS), ("vgs", VG_FIELDS)):
            ours = self.report("lvcrypt", command, fields, *names)
            theirs = self.report("lvm2", command, fields, *names)
            assert ours == theirs, f"{command} differs:\nlvcrypt: {ours}\nlvm2:    {theirs}"
        ours = self.report("lvcrypt", "pvs", PV_FIELDS)
        theirs = self.report("lvm2", "pvs", PV_FIELDS)
        assert ours == theirs, f"pvs differs:\nlvcrypt: {ours}\nlvm2:    {theirs}"

    def assert_lvm2_clean(self, vg: str) -> None:
        """vgck and pvck find nothing to complain about."""
        result = self.lvm("vgck", vg)
        assert "WARNING" not in result.stderr.replace("WARNING: Activation", ""), result.stderr
        members = [row["pv_name"] for row in self.report("lvm2", "pvs", "pv_name,vg_name") if row["vg_name"] == vg]
        assert members
        for device in members:
            # pvck refuses devices given with --devices here: name the device alone.
            check = subprocess.run(["pvck", device], capture_output=True, text=True, env=LVM_ENV)
            assert check.returncode == 0, check.stderr
            assert "CHECK" not in check.stderr and "bad" not in check.stderr.lower(), check.stderr


def digests(paths: list[str]) -> list[str]:
    """SHA-256 of the contents of each device or image, to prove a refused command wrote nothing.

    Only the data runs of the image file are read (SEEK_DATA/SEEK_HOLE; behind a loop device, its
    backing file): a hole reads as zeros, and the PVs of tests are sparse files with a few MiB
    written.  Reading a 200 MiB loop device end to end took 1.3 s of wall time under load, for
    zeros.  The digest covers every non-zero 4 KiB block with its offset, and the size, so it is a
    function of the contents alone, whatever the file's allocation.
    """
    return [_contents_digest(path) for path in paths]


def _image_behind(path: str) -> str:
    """The file behind a loop device, once the device's cached writes are pushed into it; else `path`."""
    backing = Path("/sys/block", Path(path).resolve().name, "loop", "backing_file")
    if not path.startswith("/dev/") or not backing.exists():
        return path
    with open(path, "rb") as f:
        os.fsync(f.fileno())
    return backing.read_text().strip()


def _data_runs(fd: int, size: int) -> list[tuple[int, int]]:
    """(start, end) of each stretch of the file that is not a hole."""
    runs, offset = [], 0
    while offset < size:
        try:
            offset = os.lseek(fd, offset, os.SEEK_DATA)
        except OSError as error:
            if error.errno == errno.ENXIO:  # nothing but a hole after offset
                break
            raise
        end = os.lseek(fd, offset, os.SEEK_HOLE)
        runs.append((offset, end))
        offset = end
    return runs


def _contents_digest(path: str) -> str:
    block, chunk = 4096, 1 << 20
    digest = hashlib.sha256()
    done = 0  # blocks before this offset are hashed already (two runs may share one block)
    with open(_image_behind(path), "rb") as f:
        size = os.lseek(f.fileno(), 0, os.SEEK_END)
        for start, end in _data_runs(f.fileno(), size):
            offset = max(done, start - start % block)
            while offset < end:
                f.seek(offset)
                data = f.read(min(chunk, end - offset + (-end) % block))
                for at in range(0, len(data), block):
                    piece = data[at:at + block]
                    if piece.count(0) != len(piece):
                        digest.update((offset + at).to_bytes(8, "little"))
                        digest.update(piece)
                offset += len(data) or size  # nothing read: the end of the file
            done = offset
        digest.update(size.to_bytes(8, "little"))
    return digest.hexdigest()


def image_vg_template(directory: Path, vg: str, size_mib: int = 32, encrypted_lv: str | None = None,
                      passphrase: bytes = b"") -> Pair:
    """`vg` on one image file, made by the CLI as a user would, with (if named) a 4 MiB LUKS2 crypt LV
    whose passphrase is in `directory/pass`: built once per module, copied per test (image_vg_copy)."""
    image = directory / "pv.img"
    with open(image, "wb") as f:
        f.truncate(size_mib << 20)
    pair = Pair([str(image)], directory)
    pair.lvc("pvcreate", str(image))
    pair.lvc("vgcreate", vg, str(image))
    if encrypted_lv:
        (directory / "pass").write_bytes(passphrase)
        pair.lvc("lvcreate", "--encrypt", *FAST_PBKDF2, "--key-file", str(directory / "pass"), "-L", "4M",
                 "-n", encrypted_lv, vg)
    return pair


def image_vg_copy(template: Path, tmp_path: Path, monkeypatch: "pytest.MonkeyPatch", passphrase: bytes) -> Pair:
    """A test's own copy of a template image, the passphrase in `tmp_path/pass`; this process takes the
    copy's state and run directories, as a command would."""
    image = tmp_path / "pv.img"
    shutil.copyfile(template, image)
    (tmp_path / "pass").write_bytes(passphrase)
    monkeypatch.setenv("LVCRYPT_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("LVCRYPT_RUN_DIR", str(tmp_path / "run"))
    return Pair([str(image)], tmp_path)
