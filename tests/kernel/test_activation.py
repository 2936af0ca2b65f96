"""lvcrypt's kernel backend (`lvchange`/`vgchange -ay|-an`) in a real kernel.

Oracles: lvcrypt's userspace backend (`lvcrypt read`/`write`) both ways,
cryptsetup with the keystore as a detached header (same plaintext, same
dm-crypt table apart from device numbers), dmsetup, keyctl, losetup, e2fsck
and lvm2 (which activates the plain LVs of an lvcrypt VG and refuses the
crypt ones).  Every fault test snapshots dm devices, session keys and loop
devices before the failing command and finds them unchanged after it.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import stat
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pytest

import sampling
from lvcrypt.cli import main as cli_main
from store_helpers import Pair
from crypt_lv_layout import keystore_image, lvm2_layout, pv_path

from .test_dm_crypt import payload

pytestmark = pytest.mark.usefixtures("lvm2")

MIB = 1 << 20
FAST = ["--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000"]
VG = "vgk"
ENV = {**os.environ, "DM_DISABLE_UDEV": "1", "LC_ALL": "C"}


def sh(*argv: str, input: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(argv), input=input, capture_output=True, env=ENV)
    out = subprocess.CompletedProcess(result.args, result.returncode, result.stdout.decode(errors="replace"),
                                      result.stderr.decode(errors="replace"))
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({result.returncode}): {out.stderr}")
    return out


def dm_devices() -> set[str]:
    out = sh("dmsetup", "ls").stdout
    return set() if "No devices found" in out else {line.split()[0] for line in out.splitlines() if line.strip()}


def session_keys() -> list[str]:
    """Descriptions of the keys in the session keyring (`keyctl rlist` + describe)."""
    serials = sh("keyctl", "rlist", "@s", check=False).stdout.split()
    return sorted(sh("keyctl", "rdescribe", serial, check=False).stdout.strip() for serial in serials)


def loops() -> str:
    return "\n".join(sorted(sh("losetup", "-a").stdout.splitlines()))


def system_state() -> tuple[set[str], list[str], str]:
    return dm_devices(), session_keys(), loops()


def mapper(lv: str) -> Path:
    return Path("/dev/mapper") / f"{VG}-{lv}"


def write_dev(path: Path, data: bytes, offset: int = 0) -> None:
    """All of `data` at `offset`, on disk when this returns (a raw write may be short: loop)."""
    fd = os.open(path, os.O_WRONLY)
    try:
        view = memoryview(data)
        while view:
            written = os.pwrite(fd, view, offset)
            view, offset = view[written:], offset + written
        os.fsync(fd)
    finally:
        os.close(fd)


def read_dev(path: Path, size: int, offset: int = 0) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks = []
        while size > 0:
            chunk = os.pread(fd, size, offset)
            if not chunk:
                break
            chunks.append(chunk)
            size, offset = size - len(chunk), offset + len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


@dataclass
class Outcome:
    returncode: int
    stdout: bytes
    stderr: str


def lvcrypt(pair: Pair, *args: str, input: bytes = b"", check: bool = True) -> Outcome:
    """`lvcrypt ARGS --devices <the pair's>` through its real entry point, in this process.

    TCG makes every new Python process cost seconds (imports), so most calls run
    in-process; the fault tests also run the command as a process once.
    """
    split = 2 if args[0] in ("keystore", "keyslot", "token", "kdump") else 1  # after the action, where argparse takes it
    argv = [*args[:split], "--devices", pair.device_list, *args[split:]]
    stdout = io.TextIOWrapper(io.BytesIO())
    stdin = io.TextIOWrapper(io.BytesIO(input))
    stderr = io.StringIO()
    saved = {name: os.environ.get(name) for name in ("LVCRYPT_STATE_DIR", "LVCRYPT_RUN_DIR")}
    os.environ.update({name: pair.env[name] for name in saved})
    old_stdin, sys.stdin = sys.stdin, stdin
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            status = cli_main(argv)
            stdout.flush()
    finally:
        sys.stdin = old_stdin
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    out = Outcome(status, stdout.buffer.getvalue(), stderr.getvalue())  # type: ignore[attr-defined]
    if check and status != 0:
        raise AssertionError(f"lvcrypt {' '.join(args)} failed ({status}): {out.stderr}")
    return out


def lv_attrs(pair: Pair, tool: str) -> dict[str, str]:
    """lv_attr of every LV of the VG, as lvcrypt or lvm2 reports it."""
    if tool == "lvcrypt":
        text = lvcrypt(pair, "lvs", "--noheadings", "-o", "lv_name,lv_attr", VG).stdout.decode()
    else:
        text = pair.lvm("lvs", "--noheadings", "-o", "lv_name,lv_attr", VG).stdout
    return {line.split()[0]: line.split()[1] for line in text.splitlines() if line.strip()}


def read_lv(pair: Pair, lv: str) -> bytes:
    return lvcrypt(pair, "read", "--key-file", str(pair.tmp / "pass"), f"{VG}/{lv}").stdout


def write_lv(pair: Pair, lv: str, data: bytes) -> None:
    lvcrypt(pair, "write", "--key-file", str(pair.tmp / "pass"), f"{VG}/{lv}", input=data)


def fails_cleanly(result: "Outcome | subprocess.CompletedProcess[str]", before: tuple[set[str], list[str], str]) -> str:
    """Exit 5, one line on stderr, no traceback, and no dm device, key or loop device left behind."""
    assert result.returncode == 5, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lvcrypt: "), result.stderr
    assert "Traceback" not in result.stderr
    assert system_state() == before
    return lines[0]


@pytest.fixture
def pair(loop_devices: Callable[..., list[str]], tmp_path: Path) -> Iterator[Pair]:
    """A two-PV lvcrypt VG on loop devices; whatever dm devices or keys a test leaves are removed."""
    keys_before = set(sh("keyctl", "rlist", "@s", check=False).stdout.split())
    pair = Pair(loop_devices(2, 64), tmp_path)
    lvcrypt(pair, "pvcreate", *pair.devices)
    lvcrypt(pair, "vgcreate", VG, *pair.devices)
    (tmp_path / "pass").write_bytes(b"correct horse battery staple")
    (tmp_path / "wrong").write_bytes(b"wrong horse")
    try:
        yield pair
    finally:
        subprocess.run(["umount", str(tmp_path / "mnt")], capture_output=True)
        for name in sorted((n for n in dm_devices() if n.startswith(f"{VG}-")), key=lambda n: "-crypt" in n):
            subprocess.run(["dmsetup", "remove", "--retry", name], capture_output=True, env=ENV)
            Path("/dev/mapper", name).unlink(missing_ok=True)
        for serial in set(sh("keyctl", "rlist", "@s", check=False).stdout.split()) - keys_before:
            subprocess.run(["keyctl", "unlink", serial, "@s"], capture_output=True)
        free_images(tmp_path)


def free_images(directory: Path) -> None:
    """The guest's /tmp is a small tmpfs: images go when the test ends (a loop keeps its file until detached)."""
    for image in [*directory.glob("*.img"), *directory.glob("*.pv")]:
        image.unlink()


def lvchange(pair: Pair, *args: str, check: bool = True) -> Outcome:
    return lvcrypt(pair, "lvchange", *args, check=check)


def crypt_lv(pair: Pair, name: str, size: str = "4M", *extra: str) -> None:
    lvcrypt(pair, "lvcreate", "--encrypt", *FAST, "--key-file", str(pair.tmp / "pass"), "-L", size, "-n", name,
             *extra, VG)


def test_all_layouts_read_back_between_kernel_and_userspace_both_ways(pair: Pair) -> None:
    """vgchange -ay maps linear, striped, crypt and striped crypt LVs; data crosses backends intact."""
    lvcrypt(pair, "lvcreate", "-L", "4M", "-n", "lin", VG)
    lvcrypt(pair, "lvcreate", "-L", "8M", "-i", "2", "-I", "64k", "-n", "str", VG)
    crypt_lv(pair, "cr", "4M")
    lvcrypt(pair, "lvcreate", "--encrypt", "--keystore", "cryptostore0", "-L", "8M", "-i", "2", "-I", "64k",
             "-n", "scr", VG)
    sizes = {"lin": 4 * MIB, "str": 8 * MIB, "cr": 4 * MIB, "scr": 8 * MIB}
    key = ["--key-file", str(pair.tmp / "pass")]

    lvcrypt(pair, "vgchange", "-ay", *key, VG)
    assert dm_devices() == {f"{VG}-lin", f"{VG}-str", f"{VG}-cr", f"{VG}-scr", f"{VG}-scr-crypt0"}
    assert "lvcrypt:" in " ".join(session_keys())
    ours, theirs = lv_attrs(pair, "lvcrypt"), lv_attrs(pair, "lvm2")  # lvm2 finds lvcrypt's devices by uuid
    for lv, size in sizes.items():
        node = mapper(lv)
        assert stat.S_ISBLK(node.stat().st_mode)
        assert int(sh("blockdev", "--getsize64", str(node)).stdout) == size
        assert ours[lv][4] == "a" and theirs[lv][4] == "a", (ours, theirs)
        write_dev(node, payload(size, f"kernel-{lv}"))
    lvcrypt(pair, "vgchange", "-ay", VG)  # already active: nothing to unlock, no passphrase asked
    lvcrypt(pair, "vgchange", "-an", VG)
    assert dm_devices() == set()
    assert not any("lvcrypt:" in key_text for key_text in session_keys())
    assert not any(mapper(lv).exists() for lv in sizes)
    assert {attr[4] for attr in lv_attrs(pair, "lvcrypt").values()} == {"-"}

    for lv, size in sizes.items():
        assert read_lv(pair, lv) == payload(size, f"kernel-{lv}"), lv
        write_lv(pair, lv, payload(size, f"userspace-{lv}"))
    lvcrypt(pair, "vgchange", "-ay", *key, VG)
    for lv, size in sizes.items():
        assert read_dev(mapper(lv), size) == payload(size, f"userspace-{lv}"), lv
    lvcrypt(pair, "vgchange", "-an", VG)
    assert dm_devices() == set()


def test_ext4_survives_deactivation_reactivation_and_a_refresh_after_lvextend(pair: Pair) -> None:
    crypt_lv(pair, "fs", "16M")
    key = ["--key-file", str(pair.tmp / "pass")]
    mnt = pair.tmp / "mnt"
    mnt.mkdir()
    lvchange(pair, "-ay", *key, f"{VG}/fs")
    sh("mkfs.ext4", "-q", "-F", str(mapper("fs")))
    sh("mount", str(mapper("fs")), str(mnt))
    files = {f"file{n}": payload(100_000 + n, f"file{n}") for n in range(5)}
    for name, data in files.items():
        (mnt / name).write_bytes(data)
    assert lv_attrs(pair, "lvcrypt")["fs"][4:6] == "ao"
    busy = lvchange(pair, "-an", f"{VG}/fs", check=False)
    assert busy.returncode == 5 and "busy" in busy.stderr and mapper("fs").exists()
    sh("umount", str(mnt))
    lvchange(pair, "-an", f"{VG}/fs")
    assert not mapper("fs").exists()

    lvchange(pair, "-ay", *key, f"{VG}/fs")
    sh("e2fsck", "-fp", str(mapper("fs")))  # exit 0: clean (and resize2fs wants a fresh check)
    lvcrypt(pair, "lvextend", "-L", "+8M", f"{VG}/fs", pair.devices[1])  # a second segment, on the other PV
    assert int(sh("blockdev", "--getsize64", str(mapper("fs"))).stdout) == 16 * MIB
    lvchange(pair, "--refresh", f"{VG}/fs")  # the key is still in the session keyring: no passphrase
    assert int(sh("blockdev", "--getsize64", str(mapper("fs"))).stdout) == 24 * MIB
    sh("resize2fs", str(mapper("fs")))
    sh("mount", str(mapper("fs")), str(mnt))
    for name, data in files.items():
        assert (mnt / name).read_bytes() == data
    (mnt / "big").write_bytes(payload(6 * MIB, "big"))  # reaches into the new segment
    sh("umount", str(mnt))
    lvchange(pair, "-an", f"{VG}/fs")
    lvchange(pair, "-ay", *key, f"{VG}/fs")
    sh("e2fsck", "-fn", str(mapper("fs")))
    sh("mount", "-o", "ro", str(mapper("fs")), str(mnt))
    assert (mnt / "big").read_bytes() == payload(6 * MIB, "big")
    sh("umount", str(mnt))
    lvchange(pair, "-an", f"{VG}/fs")
    assert dm_devices() == set()


def _crypt_fields(line: str) -> tuple[list[str], str, str, list[str]]:
    """A crypt table line as (start/length/type/cipher, key, iv_offset, optional args); devices dropped."""
    fields = line.split()
    return fields[:4], fields[4], fields[5], fields[8:]


@pytest.mark.sampled
@pytest.mark.parametrize("sector_size", sampling.pick([512, 4096], 1, "keystore as header sector size"))
def test_cryptsetup_with_the_keystore_as_header_maps_the_same_data_and_table(pair: Pair, sector_size: int) -> None:
    crypt_lv(pair, "cr", "8M", "--sector-size", str(sector_size))
    lvchange(pair, "-ay", "--key-file", str(pair.tmp / "pass"), f"{VG}/cr")
    write_dev(mapper("cr"), payload(8 * MIB, "shared"))
    layout = lvm2_layout(pair, VG)
    header = keystore_image(pair, layout, "cryptostore0")
    segment = layout.lvs["cr"].segments[0]
    area = segment.areas[0]  # type: ignore[attr-defined]
    start = (layout.pvs[area.pv].pe_start + area.extent * layout.extent_size) * 512
    data = sh("losetup", "-f", "--show", "-o", str(start), "--sizelimit", str(8 * MIB),
              pv_path(pair, layout, area.pv)).stdout.strip()
    name = f"cs-{uuid.uuid4().hex[:8]}"
    try:
        sh("cryptsetup", "open", "--header", str(header), "--key-file", str(pair.tmp / "pass"), data, name)
        try:
            assert read_dev(Path("/dev/mapper") / name, 8 * MIB) == payload(8 * MIB, "shared")
            ours = sh("dmsetup", "table", "--showkeys", f"{VG}-cr").stdout.strip()
            theirs = sh("dmsetup", "table", "--showkeys", name).stdout.strip()
        finally:
            sh("cryptsetup", "close", name)
    finally:
        sh("losetup", "-d", data)
    our_head, our_key, our_iv, our_options = _crypt_fields(ours)
    their_head, their_key, their_iv, their_options = _crypt_fields(theirs)
    assert our_head == their_head and our_iv == their_iv and our_options == their_options, (ours, theirs)
    assert re.fullmatch(r":64:logon:lvcrypt:[\w-]+", our_key), ours
    assert their_key.startswith(":64:logon:cryptsetup:"), theirs
    assert sector_size == 512 or f"sector_size:{sector_size}" in our_options
    lvchange(pair, "-an", f"{VG}/cr")


def test_keyring_options_and_the_luks2_keyring_token(pair: Pair) -> None:
    crypt_lv(pair, "cr", "4M")
    tag = uuid.uuid4().hex[:8]
    lvchange(pair, "-ay", "--key-file", str(pair.tmp / "pass"), "--link-vk-to-keyring", f"@s::%user:vk-{tag}",
             f"{VG}/cr")
    write_dev(mapper("cr"), payload(4 * MIB, "keyring"))
    lvchange(pair, "-an", f"{VG}/cr")
    serial = sh("keyctl", "search", "@s", "user", f"vk-{tag}").stdout.strip()
    volume_key = subprocess.run(["keyctl", "pipe", serial], capture_output=True, check=True).stdout
    header = keystore_image(pair, lvm2_layout(pair, VG), "cryptostore0")
    dumped = sh("cryptsetup", "luksDump", "--dump-volume-key", "-q", "--key-file", str(pair.tmp / "pass"),
                str(header)).stdout
    assert volume_key.hex() == "".join(re.search(r"(?:MK|Volume key) dump:\s*(([0-9a-f]{2}\s+)+)",
                                                 dumped + "\n").group(1).split())  # type: ignore[union-attr]

    lvchange(pair, "-ay", "--volume-key-keyring", f"%user:vk-{tag}", f"{VG}/cr")  # no passphrase anywhere
    assert read_dev(mapper("cr"), 4 * MIB) == payload(4 * MIB, "keyring")
    lvchange(pair, "-an", f"{VG}/cr")

    sh("keyctl", "padd", "user", f"bad-{tag}", "@s", input=os.urandom(64))
    before = system_state()
    fails_cleanly(lvchange(pair, "-ay", "--volume-key-keyring", f"%user:bad-{tag}", f"{VG}/cr", check=False),
                  before)

    # A luks2-keyring token added by cryptsetup to the keystore on the PV: its passphrase comes from @s.
    layout = lvm2_layout(pair, VG)
    store = layout.lvs["cryptostore0"].segments[0]
    area = store.areas[0]  # type: ignore[attr-defined]
    start = (layout.pvs[area.pv].pe_start + area.extent * layout.extent_size) * 512
    store_dev = sh("losetup", "-f", "--show", "-o", str(start), "--sizelimit",
                   str(store.extent_count * layout.extent_bytes), pv_path(pair, layout, area.pv)).stdout.strip()
    try:
        sh("cryptsetup", "token", "add", "--key-description", f"pass-{tag}", "--key-slot", "0", store_dev)
    finally:
        sh("losetup", "-d", store_dev)
    nothing = lvchange(pair, "-ay", f"{VG}/cr", check=False)  # stdin is no terminal: no prompt either
    assert nothing.returncode == 3 and "no passphrase" in nothing.stderr  # token key absent: falls back
    sh("keyctl", "padd", "user", f"pass-{tag}", "@s", input=(pair.tmp / "pass").read_bytes())
    lvchange(pair, "-ay", f"{VG}/cr")
    assert read_dev(mapper("cr"), 4 * MIB) == payload(4 * MIB, "keyring")
    lvchange(pair, "-an", f"{VG}/cr")

    unlock = lvcrypt(pair, "keystore", "unlock-test", "--key-file", str(pair.tmp / "pass"),
                     "--link-vk-to-keyring", f"@s::%user:ut-{tag}", str(header))
    assert b"unlocked" in unlock.stdout
    serial = sh("keyctl", "search", "@s", "user", f"ut-{tag}").stdout.strip()
    assert subprocess.run(["keyctl", "pipe", serial], capture_output=True, check=True).stdout == volume_key


def test_lvm2_activates_the_plain_lvs_of_an_lvcrypt_vg_and_refuses_the_crypt_ones(pair: Pair) -> None:
    lvcrypt(pair, "lvcreate", "-L", "4M", "-n", "lin", VG)
    crypt_lv(pair, "cr", "4M")
    write_lv(pair, "lin", payload(4 * MIB, "plain"))
    write_lv(pair, "cr", payload(4 * MIB, "secret"))
    result = pair.lvm("vgchange", "-ay", VG, check=False)
    try:
        assert f"{VG}-lin" in dm_devices()
        assert not any(name.startswith(f"{VG}-cr") for name in dm_devices()), result.stderr
        assert read_dev(Path("/dev/mapper") / f"{VG}-lin", 4 * MIB) == payload(4 * MIB, "plain")
        attrs = lv_attrs(pair, "lvcrypt")  # lvcrypt sees lvm2's device by uuid
        assert attrs["lin"][4] == "a" and attrs["cr"][4] == "-"
    finally:
        pair.lvm("vgchange", "-an", VG, check=False)
        Path("/dev/mapper", f"{VG}-lin").unlink(missing_ok=True)
    assert dm_devices() == set()
    assert read_lv(pair, "cr") == payload(4 * MIB, "secret")
    lvchange(pair, "-ay", "--key-file", str(pair.tmp / "pass"), f"{VG}/cr")
    assert read_dev(mapper("cr"), 4 * MIB) == payload(4 * MIB, "secret")
    lvchange(pair, "-an", f"{VG}/cr")


def _active(names: list[str]) -> set[str]:
    return {name for name in names if f"{VG}-{name}" in dm_devices()}


def _deactivate_with_lvm2(pair: Pair) -> None:
    pair.lvm("vgchange", "-an", VG, check=False)
    for node in Path("/dev/mapper").glob(f"{VG}-*"):
        node.unlink(missing_ok=True)


@contextlib.contextmanager
def _system_dir(conf: Path) -> Iterator[None]:
    """LVM_SYSTEM_DIR for both tools: lvm2 runs as a process, lvcrypt in this one."""
    saved = os.environ.get("LVM_SYSTEM_DIR")
    os.environ["LVM_SYSTEM_DIR"] = str(conf)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("LVM_SYSTEM_DIR")
        else:
            os.environ["LVM_SYSTEM_DIR"] = saved


def test_volume_list_and_host_tags_leave_lvs_inactive_as_lvm2_does(pair: Pair) -> None:
    """An LV activation/volume_list does not match is passed over in silence, exit 0 (lvm2's rule for
    clusters that keep an LV on one host with tags); lvm2 activates the plain LVs, lvcrypt all."""
    for name in ("lin", "other"):
        lvcrypt(pair, "lvcreate", "-L", "4M", "-n", name, VG)
    crypt_lv(pair, "cr", "4M")
    key = ["--key-file", str(pair.tmp / "pass")]
    listed = f'activation {{ volume_list = [ "{VG}/lin", "@mine" ] }}'
    try:
        for tool in ("lvm2", "lvcrypt"):
            for name in ("lin", "other"):
                argv = ("lvchange", "--config", listed, "-ay", f"{VG}/{name}")
                result = pair.lvm(*argv, check=False) if tool == "lvm2" else lvchange(pair, *argv[1:], check=False)
                assert result.returncode == 0, (tool, name, result.stderr)
            assert _active(["lin", "other"]) == {"lin"}, tool
            if tool == "lvm2":
                _deactivate_with_lvm2(pair)
            else:
                lvchange(pair, "-an", f"{VG}/lin")
        lvchange(pair, "--config", listed, "-ay", *key, f"{VG}/cr")
        assert _active(["cr"]) == set()
        lvcrypt(pair, "lvchange", "--addtag", "mine", f"{VG}/other")
        assert pair.lvm("lvchange", "--config", listed, "-ay", f"{VG}/other", check=False).returncode == 0
        assert _active(["other"]) == {"other"}
        _deactivate_with_lvm2(pair)
        lvchange(pair, "--config", listed, "-ay", f"{VG}/other")
        assert _active(["other"]) == {"other"}
        lvchange(pair, "-an", f"{VG}/other")
        lvcrypt(pair, "lvchange", "--addtag", "onhost", f"{VG}/cr")
        # Host tags come from the files alone in lvm2: given with --config they do not count.
        ignored = "tags { onhost { } }"
        assert pair.lvm("vgchange", "--config", ignored, "-ay", VG, check=False).returncode != 0  # refuses cr
        assert _active(["lin", "other"]) == {"lin", "other"}
        _deactivate_with_lvm2(pair)
        lvcrypt(pair, "vgchange", "--config", ignored, "-ay", *key, VG)
        assert _active(["lin", "other", "cr"]) == {"lin", "other", "cr"}
        lvcrypt(pair, "vgchange", "-an", VG)
        conf = pair.tmp / "lvm-conf"
        conf.mkdir()
        (conf / "lvm.conf").write_text("tags { onhost { } }\n")  # no volume_list: LVs with a host tag only
        with _system_dir(conf):
            result = subprocess.run(["vgchange", "--devices", pair.device_list, "-ay", VG], capture_output=True,
                                    text=True, env={**ENV, "LVM_SYSTEM_DIR": str(conf)})
            assert _active(["lin", "other"]) == set(), result.stderr
            lvcrypt(pair, "vgchange", "-ay", *key, VG)
            assert _active(["lin", "other", "cr"]) == {"cr"}
            lvcrypt(pair, "vgchange", "-an", VG)
            vgwide = f'activation {{ volume_list = [ "{VG}" ] }}'
            lvcrypt(pair, "vgchange", "--config", vgwide, "-ay", *key, VG)
            assert _active(["lin", "other", "cr"]) == {"lin", "other", "cr"}
    finally:
        lvcrypt(pair, "vgchange", "-an", VG, check=False)
        _deactivate_with_lvm2(pair)
    assert dm_devices() == set()


def _read_only(name: str) -> bool:
    return "READ-ONLY" in sh("dmsetup", "info", f"{VG}-{name}").stdout


def test_read_only_and_activation_skip_lvs_as_lvm2_activates_them(pair: Pair) -> None:
    """lvm2's per-LV flags, set by lvm2 itself: an LV without write permission (`-pr`), or one
    activation/read_only_volume_list names, is a read-only dm device, its hidden layers too, and
    lvcrypt's own writes refuse it; the activation-skip flag (`-ky`) keeps an LV inactive unless -K;
    vgchange says how many of the VG's LVs the kernel has afterwards, as lvm2 counts them; lvcrypt's
    `lvchange -p` of an active LV makes its devices read-only and writable again."""
    for name in ("ro", "rw", "skipme"):
        lvcrypt(pair, "lvcreate", "-L", "4M", "-n", name, VG)
    pair.lvm("lvchange", "-pr", f"{VG}/ro")  # before any crypt LV: lvm2 changes plain VGs only
    pair.lvm("lvchange", "-ky", f"{VG}/skipme")
    said = {}
    try:
        for tool in ("lvm2", "lvcrypt"):
            run = (lambda *argv: pair.lvm(*argv).stdout) if tool == "lvm2" else \
                (lambda *argv: lvcrypt(pair, *argv).stdout.decode())
            said[tool] = [run("vgchange", "-ay", VG)]
            assert _active(["ro", "rw", "skipme"]) == {"ro", "rw"}, tool
            assert _read_only("ro") and not _read_only("rw"), tool
            run("lvchange", "-ay", f"{VG}/skipme")
            assert _active(["skipme"]) == set(), tool
            run("lvchange", "-ay", "-K", f"{VG}/skipme")
            assert _active(["skipme"]) == {"skipme"}, tool
            said[tool] += [run("vgchange", "-ay", VG), run("vgchange", "-an", VG)]
            assert _active(["ro", "rw", "skipme"]) == set(), tool
            _deactivate_with_lvm2(pair)
        assert said["lvcrypt"] == said["lvm2"]
        assert said["lvm2"][0] == f'  2 logical volume(s) in volume group "{VG}" now active\n'
        # Writable in the metadata, read-only in the kernel (the list): -prw is lvm2's refresh of the kernel's
        # state, "changed" and exit 0, not "already writable" (exit 5); lvcrypt does the same. Before the
        # crypt LV: lvm2 changes no VG that has one.
        only_rw = f'activation {{ read_only_volume_list = [ "{VG}/rw" ] }}'
        pair.lvm("lvchange", "--config", only_rw, "-ay", f"{VG}/rw")
        assert _read_only("rw")
        refreshed = {"lvm2": pair.lvm("lvchange", "-prw", f"{VG}/rw").stdout}
        assert not _read_only("rw")
        _deactivate_with_lvm2(pair)
        lvcrypt(pair, "lvchange", "--config", only_rw, "-ay", f"{VG}/rw")
        assert _read_only("rw")
        refreshed["lvcrypt"] = lvcrypt(pair, "lvchange", "-prw", f"{VG}/rw").stdout.decode()
        assert not _read_only("rw")
        assert refreshed["lvcrypt"] == refreshed["lvm2"] == (
            f"  Logical volume {VG}/rw is already writable.  Refreshing kernel state.\n"
            f"  Logical volume {VG}/rw changed.\n")
        lvcrypt(pair, "lvchange", "-an", f"{VG}/rw")
        crypt_lv(pair, "cr", "4M", "-i", "2", "-I", "64k")  # a hidden striped layer under the crypt target
        key = ["--key-file", str(pair.tmp / "pass")]
        lvchange(pair, "-ay", f"{VG}/ro")
        with pytest.raises(OSError):
            write_dev(mapper("ro"), b"x" * 4096)
        refused = lvcrypt(pair, "write", *key, f"{VG}/ro", input=b"y" * 4096, check=False)
        assert refused.returncode == 5 and "read-only" in refused.stderr
        listed = f'activation {{ read_only_volume_list = [ "{VG}/rw", "{VG}/cr" ] }}'
        lvcrypt(pair, "vgchange", "--config", listed, "-ay", *key, VG)
        layers = [name for name in dm_devices() if name.startswith(f"{VG}-cr")]
        assert len(layers) > 1 and all("READ-ONLY" in sh("dmsetup", "info", layer).stdout for layer in layers)
        assert _read_only("rw")
        lvcrypt(pair, "vgchange", "-an", VG)
        pair.lvm("lvchange", "--config", listed, "-ay", f"{VG}/rw", check=False)  # lvm2 reads its list alike
        assert _read_only("rw")
        # lvchange -p on an active LV reloads its stack, as lvm2's does: the device enforces the new permission.
        lvcrypt(pair, "lvchange", "-ay", *key, f"{VG}/cr")
        lvcrypt(pair, "lvchange", "-pr", f"{VG}/cr")
        assert all("READ-ONLY" in sh("dmsetup", "info", layer).stdout for layer in layers)
        with pytest.raises(OSError):
            write_dev(mapper("cr"), b"x" * 4096)
        lvcrypt(pair, "lvchange", "-prw", f"{VG}/cr")
        assert not any("READ-ONLY" in sh("dmsetup", "info", layer).stdout for layer in layers)
        write_dev(mapper("cr"), b"x" * 4096)
    finally:
        lvcrypt(pair, "vgchange", "-an", VG, check=False)
        _deactivate_with_lvm2(pair)
    assert dm_devices() == set()


def test_faults_leave_nothing_behind(pair: Pair) -> None:
    crypt_lv(pair, "cr", "8M", "-i", "2", "-I", "64k")  # a hidden striped layer under the crypt target
    before = system_state()
    wrong = fails_cleanly(lvchange(pair, "-ay", "--key-file", str(pair.tmp / "wrong"), f"{VG}/cr", check=False),
                          before)
    assert "passphrase" in wrong or "key" in wrong

    sh("dmsetup", "create", f"{VG}-cr", "--table", "0 8 zero")
    try:
        before = system_state()
        taken = fails_cleanly(lvchange(pair, "-ay", "--key-file", str(pair.tmp / "pass"), f"{VG}/cr",
                                       check=False), before)
        assert "taken" in taken
        # The layer's name taken: the top would be created after it; the key must not stay either.
        sh("dmsetup", "remove", f"{VG}-cr")
        sh("dmsetup", "create", f"{VG}-cr-crypt0", "--table", "0 8 zero")
        before = system_state()
        fails_cleanly(lvchange(pair, "-ay", "--key-file", str(pair.tmp / "pass"), f"{VG}/cr", check=False), before)
        sh("dmsetup", "remove", f"{VG}-cr-crypt0")
        # The LV's uuid taken under another name: found only when the top is created, after the layer
        # and the key: both must be undone.
        sh("dmsetup", "create", "intruder", "--uuid", top_uuid(pair, "cr"), "--table", "0 8 zero")
        before = system_state()
        message = fails_cleanly(lvchange(pair, "-ay", "--key-file", str(pair.tmp / "pass"), f"{VG}/cr",
                                         check=False), before)
        assert "already exists" in message
    finally:
        for name in (f"{VG}-cr", f"{VG}-cr-crypt0", "intruder"):
            subprocess.run(["dmsetup", "remove", name], capture_output=True, env=ENV)

    before = system_state()
    assert "not active" in fails_cleanly(lvchange(pair, "--refresh", "--key-file", str(pair.tmp / "pass"),
                                                  f"{VG}/cr", check=False), before)

    # The volume key cannot be linked where asked: the activation that had succeeded is taken back.
    before = system_state()
    message = fails_cleanly(lvchange(pair, "-ay", "--key-file", str(pair.tmp / "pass"), "--link-vk-to-keyring",
                                     "%:no-such-keyring::%user:vk", f"{VG}/cr", check=False), before)
    assert "no-such-keyring" in message

    before = system_state()
    one_pv = subprocess.run([sys.executable, "-m", "lvcrypt", "lvchange", "-ay", "--devices", pair.devices[0],
                             "--key-file", str(pair.tmp / "pass"), f"{VG}/cr"],
                            capture_output=True, text=True, env=pair.env)
    assert "missing" in fails_cleanly(one_pv, before)

    # Deactivation needs no keystore and no passphrase: it works with a PV gone.
    lvchange(pair, "-ay", "--key-file", str(pair.tmp / "pass"), f"{VG}/cr")
    lvchange(Pair(pair.devices[:1], pair.tmp), "-an", f"{VG}/cr")
    assert system_state() == before


def top_uuid(pair: Pair, lv: str) -> str:
    """The LV's dm uuid (`LVM-<vg uuid><lv uuid>`, dashes dropped), from lvcrypt's own report."""
    vg_id = lvcrypt(pair, "vgs", "--noheadings", "-o", "vg_uuid", VG).stdout.decode().strip()
    lv_id = lvcrypt(pair, "lvs", "--noheadings", "-o", "lv_uuid", f"{VG}/{lv}").stdout.decode().strip()
    return "LVM-" + (vg_id + lv_id).replace("-", "")


def test_image_file_pvs_get_loop_devices_that_go_with_deactivation(tmp_path: Path) -> None:
    images = []
    for number in range(2):
        image = tmp_path / f"img{number}.pv"
        with open(image, "wb") as f:
            f.truncate(32 * MIB)
        images.append(str(image))
    pair = Pair(images, tmp_path)
    (tmp_path / "pass").write_bytes(b"image pass")
    lvcrypt(pair, "pvcreate", *images)
    lvcrypt(pair, "vgcreate", VG, *images)
    crypt_lv(pair, "cr", "8M", "-i", "2", "-I", "64k")
    try:
        # A failure after the loops are attached (the LV's uuid is taken): they go with the undo.
        sh("dmsetup", "create", "intruder", "--uuid", top_uuid(pair, "cr"), "--table", "0 8 zero")
        before = system_state()
        fails_cleanly(lvchange(pair, "-ay", "--key-file", str(tmp_path / "pass"), f"{VG}/cr", check=False),
                      before)
        sh("dmsetup", "remove", "intruder")
        before = system_state()
        lvchange(pair, "-ay", "--key-file", str(tmp_path / "pass"), f"{VG}/cr")
        attached = loops()
        assert all(image in attached for image in images)
        write_dev(mapper("cr"), payload(8 * MIB, "images"))
        lvchange(pair, "-an", f"{VG}/cr")
        assert system_state() == before
        assert read_lv(pair, "cr") == payload(8 * MIB, "images")
    finally:
        for name in (f"{VG}-cr", f"{VG}-cr-crypt0", "intruder"):
            subprocess.run(["dmsetup", "remove", name], capture_output=True, env=ENV)
            Path("/dev/mapper", name).unlink(missing_ok=True)
        free_images(tmp_path)
