"""issue 12: every lvcrypt command on every LV of VGs that lvm2 made with every LV type it has.

The fixtures (tests/data/lvm2_types/*.vg) are `vgcfgbackup` files written by lvm2 itself in
the kernel guest (make_fixtures.sh there regenerates them): linear/striped, thin pools with
thin snapshots, old-style snapshots (one merging), raid1/5/10, mirrors with core and disk
logs, dm-cache and dm-writecache, raid1 with dm-integrity, historical LVs, and a mix.
Each is restored here by lvm2 (`pvcreate --uuid --restorefile`, `vgcfgrestore --force`) onto
loop devices, and every data byte of every PV gets a pattern unique to its place.

The invariant is outcome-agnostic, so the matrix stays valid whatever each command decides:
a command either succeeds, and then lvm2 (`vgck`, `lvs -a`) reads the VG without error or
warning, or it is refused (exit 5, or 3 for arguments) with one `lvcrypt: ` line on stderr
and nothing written; either way every extent that the named LV does not own (its own areas
and the LVs it refers to, transitively, plus LVs the command created) is unchanged.

A command that succeeds must also leave no hidden sub-LV that nothing uses any more (leaked
extents), and a data command (`write`, read-write `mount`) may only change extents that no
other LV refers to (not a thin pool's data, a snapshot's origin or cow, a raid image...).
`test_refuses_what_lvm2_refuses` runs lvm2 itself on a copy first: where lvm2 refuses to
rename/remove/extend/reduce an LV of its own VG (for a reason other than this host's missing
device-mapper), lvcrypt must refuse too. `test_unreferenced_lvs_keep_working` checks that plain
and crypt LVs next to all of this still work.

Each case is one test id `FIXTURE-LV-COMMAND` (or `FIXTURE-vg-COMMAND`), so
`-k "thin-pool_tdata"` or `-k "snap- and lvreduce"` runs a subset. Each run takes, per command,
one LV of each role (`lv_role`: thin/plain and mixed/plain1 are alike), seeded anew per run
(tests/sampling.py: LVCRYPT_TEST_SEED reruns a sample). LVCRYPT_MATRIX_FULL=1 (or
LVCRYPT_TEST_FULL=1) runs every LV, including those whose role another fixture already covers;
LVCRYPT_MATRIX_LOG=FILE appends what each command decided (case, exit status, first stderr line).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Union

import pytest

import sampling
from conftest import LVM_ENV, ROOT

pytestmark = pytest.mark.slow

DATA = Path(__file__).parent.parent / "data" / "lvm2_types"
FAST = ["--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000"]
PASSPHRASE = b"matrix passphrase"
BLOCK = 4096
# lvm2's one expected complaint: lvcrypt's own segment types, which it lists but does not know.
KNOWN_NOISE = re.compile(r"Unrecognised segment type crypt(-keystore)?$")
# What every lvm2 command prints on this host before deciding anything.
HOST_NOISE = re.compile(r"/dev/mapper/control: open failed|Failure to communicate with kernel device-mapper|"
                        r"Check that device-mapper is available|Incompatible libdevmapper|Activation disabled")

Value = Union[str, int, list, dict]


# ---- a small reader for lvm2's text metadata, independent of lvcrypt's parser ----

TOKEN = re.compile(r'\s*(?:#[^\n]*|("(?:[^"\\]|\\.)*")|([A-Za-z0-9_.+\-]+)|([=\[\]{},]))')


def _tokens(text: str) -> list[str]:
    tokens: list[str] = []
    position = 0
    while position < len(text):
        match = TOKEN.match(text, position)
        if not match or match.end() == position:
            if text[position:].strip():
                raise ValueError(f"cannot read metadata at {text[position:position + 40]!r}")
            break
        position = match.end()
        token = match.group(1) or match.group(2) or match.group(3)
        if token:
            tokens.append(token)
    return tokens


def _value(token: str) -> Value:
    if token.startswith('"'):
        return token[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return int(token) if re.fullmatch(r"-?\d+", token) else token


def parse_metadata(text: str) -> dict[str, Value]:
    """The text as nested dicts (sections) holding str, int and lists of them."""
    tokens = _tokens(text)
    stack: list[dict[str, Value]] = [{}]
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if token == "}":
            stack.pop()
            index += 1
        elif tokens[index + 1] == "{":
            section: dict[str, Value] = {}
            stack[-1][token] = section
            stack.append(section)
            index += 2
        elif tokens[index + 2] == "[":
            items: list[Value] = []
            index += 3
            while tokens[index] != "]":
                if tokens[index] != ",":
                    items.append(_value(tokens[index]))
                index += 1
            stack[-1][token] = items
            index += 1
        else:
            stack[-1][token] = _value(tokens[index + 2])
            index += 3
    return stack[0]


@dataclass(frozen=True)
class Pv:
    """One PV of a fixture, as its backup describes it (sizes in 512-byte sectors)."""

    key: str
    uuid: str
    dev_size: int
    pe_start: int
    pe_count: int


@dataclass
class VgLayout:
    """What a VG's metadata says about PVs, LVs, their areas and references."""

    name: str
    extent_size: int
    pvs: list[Pv]
    lvs: dict[str, dict[str, Value]]
    historical: list[str]

    @classmethod
    def from_text(cls, text: str) -> "VgLayout":
        tree = parse_metadata(text)
        name = next(key for key, value in tree.items() if isinstance(value, dict))
        vg = tree[name]
        pvs = [Pv(key, pv["id"], pv["dev_size"], pv["pe_start"], pv["pe_count"])
               for key, pv in vg["physical_volumes"].items()]
        return cls(name, vg["extent_size"], pvs, dict(vg.get("logical_volumes", {})),
                   sorted(vg.get("historical_logical_volumes", {})))

    def segments(self, lv: str) -> list[dict[str, Value]]:
        return [value for key, value in self.lvs[lv].items() if key.startswith("segment") and isinstance(value, dict)]

    def references(self, lv: str) -> set[str]:
        """LVs that `lv`'s segments name: any string value equal to an LV name (as for unknown types).

        The segment type is not a reference even where an LV has the same name (`striped`).
        """
        found: set[str] = set()
        for segment in self.segments(lv):
            for key, value in segment.items():
                if key in ("type", "tags"):
                    continue
                for item in value if isinstance(value, list) else [value]:
                    if isinstance(item, str) and item in self.lvs and item != lv:
                        found.add(item)
        return found

    def closure(self, lv: str) -> set[str]:
        """`lv` and every LV it refers to, transitively: what a change of `lv` may write through."""
        seen: set[str] = set()
        todo = [lv]
        while todo:
            name = todo.pop()
            if name in seen or name not in self.lvs:
                continue
            seen.add(name)
            todo.extend(self.references(name))
        return seen

    def extents(self, lv: str) -> set[tuple[str, int]]:
        """(PV key, extent) pairs that `lv`'s own segments place on PVs."""
        pv_keys = {pv.key for pv in self.pvs}
        owned: set[tuple[str, int]] = set()
        for segment in self.segments(lv):
            count = int(segment.get("extent_count", 0))
            pairs = [value for value in segment.values() if isinstance(value, list)]
            for items in pairs:
                areas = [(items[i], items[i + 1]) for i in range(0, len(items) - 1)
                         if items[i] in pv_keys and isinstance(items[i + 1], int)]
                if not areas:
                    continue
                length = int(segment.get("area_len", count // max(1, int(segment.get("stripe_count", 1)))))
                for key, start in areas:
                    owned.update((key, start + extent) for extent in range(length))
        return owned

    def referenced(self) -> set[str]:
        return {name for lv in self.lvs for name in self.references(lv)}

    def leaked_from(self, before: "VgLayout") -> set[str]:
        """Hidden LVs that something used before and nothing uses now: extents lost to the VG."""
        return {lv for lv in self.lvs if "VISIBLE" not in self.lvs[lv].get("status", [])
                and lv in before.referenced() and lv not in self.referenced()}

    def writable_through(self, lv: str) -> set[tuple[str, int]]:
        """Extents that writing `lv`'s data may change: its closure less LVs that others also use.

        Writing a thin pool's data, a snapshot's origin or cow, or a cache's origin behind the
        back of the LV that refers to it changes what that other LV holds, so those extents
        are not the named LV's to write.
        """
        closure = self.closure(lv)
        shared = {name for name in closure
                  if any(name in self.references(other) for other in self.lvs if other not in closure)}
        owned: set[tuple[str, int]] = set()
        for name in closure - shared:
            owned |= self.extents(name)
        return owned

    def owned_by(self, lvs: set[str]) -> set[tuple[str, int]]:
        owned: set[tuple[str, int]] = set()
        for lv in lvs:
            for name in self.closure(lv):
                owned |= self.extents(name)
        return owned


# ---- fixtures: restore each lvm2 backup once, fill its data, copy it per case ----

@dataclass(frozen=True)
class Fixture:
    name: str
    path: Path
    layout: VgLayout

    @property
    def vg(self) -> str:
        return self.layout.name


def _load_fixtures() -> list[Fixture]:
    return [Fixture(path.stem, path, VgLayout.from_text(path.read_text())) for path in sorted(DATA.glob("*.vg"))]


FIXTURES = _load_fixtures()


def lvm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["lvm", *args], capture_output=True, text=True, env=LVM_ENV)


def attach(images: list[Path]) -> list[str]:
    devices = []
    try:
        for image in images:
            devices.append(subprocess.run(["losetup", "-f", "--show", str(image)], capture_output=True,
                                          text=True, check=True).stdout.strip())
    except subprocess.CalledProcessError:
        detach(devices)
        raise
    return devices


def backing_file(device: str) -> str | None:
    try:
        return Path(f"/sys/block/{Path(device).name}/loop/backing_file").read_text().strip()
    except OSError:
        return None


def detach(devices: list[str]) -> None:
    """Flush and detach; retried, because another process scanning devices can hold one open briefly, but
    only while the device still holds our image: once it is free, another test (another xdist worker) may
    attach its own image to the same number, and a retry would detach theirs."""
    for device in devices:
        subprocess.run(["blockdev", "--flushbufs", device], capture_output=True)
        ours = backing_file(device)
        for _ in range(50):
            if ours is None or backing_file(device) != ours:
                break
            if subprocess.run(["losetup", "-d", device], capture_output=True).returncode == 0:
                break
            time.sleep(0.1)


def pattern(fixture: str, pv: str, start_block: int, blocks: int) -> bytes:
    """Blocks that say where they belong, so any byte moved or overwritten is seen."""
    return b"".join(f"{fixture}:{pv}:{block:08d}|".encode().ljust(64, b".") * (BLOCK // 64)
                    for block in range(start_block, start_block + blocks))


def build_images(fixture: Fixture, directory: Path) -> list[Path]:
    """The fixture's PVs as image files: lvm2 restores the VG, then the data areas get the pattern."""
    directory.mkdir(parents=True)
    images = []
    for pv in fixture.layout.pvs:
        image = directory / f"{pv.key}.img"
        with open(image, "wb") as f:
            f.truncate(pv.dev_size * 512)
        images.append(image)
    devices = attach(images)
    try:
        device_list = ",".join(devices)
        for pv, device in zip(fixture.layout.pvs, devices):
            result = lvm("pvcreate", "-q", "--devices", device_list, "--uuid", pv.uuid,
                         "--restorefile", str(fixture.path), device)
            assert result.returncode == 0, result.stderr
        result = lvm("vgcfgrestore", "-q", "--force", "--devices", device_list, "-f", str(fixture.path), fixture.vg)
        assert result.returncode == 0, result.stderr
        check_lvm2_reads(device_list, fixture.vg)
    finally:
        detach(devices)
    for pv, image in zip(fixture.layout.pvs, images):
        start = pv.pe_start * 512
        assert start % BLOCK == 0
        with open(image, "r+b") as f:
            f.seek(start)
            f.write(pattern(fixture.name, pv.key, start // BLOCK, (pv.dev_size * 512 - start) // BLOCK))
    return images


@pytest.fixture(scope="session")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Fixture], list[Path]]:
    """Restored and filled images per fixture, built once per session (per xdist worker)."""
    if os.geteuid() != 0 or shutil.which("losetup") is None or shutil.which("lvm") is None:
        pytest.skip("needs root, losetup and lvm2")
    built: dict[str, list[Path]] = {}

    def get(fixture: Fixture) -> list[Path]:
        if fixture.name not in built:
            built[fixture.name] = build_images(fixture, tmp_path_factory.mktemp("lvm2types") / fixture.name)
        return built[fixture.name]

    return get


def lvm2_problems(result: subprocess.CompletedProcess[str]) -> list[str]:
    """lvm2's errors and warnings, less the known noise of this host (no device-mapper)."""
    problems = [line.strip() for line in result.stderr.splitlines()
                if ("WARNING" in line or "rror" in line or "nvalid" in line or "ailed" in line)
                and not KNOWN_NOISE.search(line) and not HOST_NOISE.search(line)]
    if result.returncode != 0:
        problems.append(f"exit status {result.returncode}")
    return problems


def check_lvm2_reads(device_list: str, vg: str) -> None:
    for args in (["vgck", "--devices", device_list, vg], ["lvs", "-a", "--devices", device_list, vg]):
        result = lvm(*args)
        assert not lvm2_problems(result), f"lvm {' '.join(args)}:\n{result.stderr}"


@dataclass
class Workspace:
    """One case's copy of a fixture: images, loop devices, lvcrypt's own state and run dirs."""

    fixture: Fixture
    tmp: Path
    images: list[Path]
    devices: list[str]

    @property
    def device_list(self) -> str:
        return ",".join(self.devices)

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "LVCRYPT_STATE_DIR": str(self.tmp / "state"),
                "LVCRYPT_RUN_DIR": str(self.tmp / "run")}

    def device_of(self, pv_key: str) -> str:
        return self.devices[[pv.key for pv in self.fixture.layout.pvs].index(pv_key)]

    def lvcrypt(self, words: list[str], args: list[str], stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
        """`lvcrypt WORDS --devices OURS ARGS` as a user runs it."""
        return subprocess.run([sys.executable, "-m", "lvcrypt", *words, "--devices", self.device_list, *args],
                              input=stdin, capture_output=True, env=self.env, cwd=ROOT, timeout=300)

    def lvm2_text(self, vg: str) -> str | None:
        """The VG's metadata as lvm2 reads it now (None if it cannot)."""
        out = self.tmp / "lvm2-now.vg"
        result = lvm("vgcfgbackup", "-q", "--devices", self.device_list, "-f", str(out), vg)
        return out.read_text() if result.returncode == 0 and out.exists() else None


@pytest.fixture
def workspace(templates: Callable[[Fixture], list[Path]], tmp_path: Path,
              request: pytest.FixtureRequest) -> Iterator[Callable[[Fixture, int], Workspace]]:
    """A factory: a fresh copy of a fixture's filled images on loop devices (+ extra blank PVs)."""
    spaces: list[Workspace] = []

    def make(fixture: Fixture, extra: int = 0) -> Workspace:
        directory = tmp_path / f"copy{len(spaces)}"
        directory.mkdir()
        (directory / "pass").write_bytes(PASSPHRASE)
        images = []
        for template in templates(fixture):
            copy = directory / template.name
            shutil.copyfile(template, copy)
            images.append(copy)
        blanks = []
        for index in range(extra):
            blank = directory / f"blank{index}.img"
            with open(blank, "wb") as f:
                f.truncate(16 << 20)
            blanks.append(blank)
        space = Workspace(fixture, directory, images, [])
        spaces.append(space)
        space.devices = attach(images + blanks)
        return space

    yield make
    for space in spaces:
        if os.path.ismount(space.tmp / "mnt"):
            subprocess.run(["fusermount3", "-u", "-z", str(space.tmp / "mnt")], capture_output=True)
        detach(space.devices)
        # Every case copies its fixture's images (tens of MiB); ~800 cases would fill the disk.
        shutil.rmtree(space.tmp, ignore_errors=True)


@pytest.mark.parametrize("fixture", FIXTURES, ids=[fixture.name for fixture in FIXTURES])
def test_fixture_restores_with_every_lv(fixture: Fixture, workspace: Callable[..., Workspace]) -> None:
    """The ground the matrix stands on: lvm2 restores each backup here, without dm, and lists all its LVs."""
    space = workspace(fixture)
    result = lvm("lvs", "-a", "--devices", space.device_list, "--reportformat", "json", "-o", "lv_name", fixture.vg)
    assert not lvm2_problems(result), result.stderr
    listed = {row["lv_name"].strip("[]") for row in json.loads(result.stdout)["report"][0]["lv"]}
    # lvm2 never lists the snapshotN LVs that tie an old-style snapshot's cow to its origin.
    internal = {lv for lv in fixture.layout.lvs
                if any(segment.get("type") == "snapshot" for segment in fixture.layout.segments(lv))}
    assert listed == set(fixture.layout.lvs) - internal


# ---- the invariant ----

def outcome_text(result: subprocess.CompletedProcess[bytes]) -> str:
    return (f"exit {result.returncode}\nstdout: {result.stdout[:400]!r}\n"
            f"stderr: {result.stderr.decode(errors='replace')}")


def log_outcome(case: str, result: subprocess.CompletedProcess[bytes]) -> None:
    """With LVCRYPT_MATRIX_LOG=FILE, one line per case (what each command decided), for reviewing the matrix."""
    path = os.environ.get("LVCRYPT_MATRIX_LOG")
    if path:
        first = (result.stderr.decode(errors="replace").splitlines() or [""])[0]
        with open(path, "a") as log:
            log.write(f"{case}\t{result.returncode}\t{first}\n")


def assert_clean_refusal(result: subprocess.CompletedProcess[bytes]) -> None:
    stderr = result.stderr.decode(errors="replace")
    assert result.returncode in (3, 5), outcome_text(result)
    assert "Traceback" not in stderr, outcome_text(result)
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("lvcrypt: "), outcome_text(result)


def changed_extents(space: Workspace, templates: list[Path]) -> dict[str, list[int]]:
    """PV key -> extents (or -1 for the metadata area, -2 for the tail) that differ from the template."""
    layout = space.fixture.layout
    extent = layout.extent_size * 512
    changed: dict[str, list[int]] = {}
    for pv, image, template in zip(layout.pvs, space.images, templates):
        now, before = image.read_bytes(), template.read_bytes()
        if now == before:
            continue
        start = pv.pe_start * 512
        diffs = [-1] if now[:start] != before[:start] else []
        for index in range(pv.pe_count):
            low = start + index * extent
            if now[low:low + extent] != before[low:low + extent]:
                diffs.append(index)
        tail = start + pv.pe_count * extent
        if now[tail:] != before[tail:]:
            diffs.append(-2)
        changed[pv.key] = diffs
    return changed


@dataclass(frozen=True)
class Command:
    """One lvcrypt command of the matrix: how to run it on an LV (or the VG) of a workspace."""

    name: str
    run: Callable[[Workspace, str | None, str], subprocess.CompletedProcess[bytes]]
    read_only: bool = False
    writes_data: bool = False
    removes_vg: bool = False
    renames_vg_to: str | None = None
    renames_lv_to: str | None = None
    moves_extents: bool = False  # pvmove: any LV's extents after the move may have been written


def _write(space: Workspace, lv: str | None, vg: str) -> subprocess.CompletedProcess[bytes]:
    return space.lvcrypt(["write"], ["--key-file", str(space.tmp / "pass"), "--offset", "0", f"{vg}/{lv}"],
                         stdin=b"written by the lvcrypt matrix test")


def _read(space: Workspace, lv: str | None, vg: str) -> subprocess.CompletedProcess[bytes]:
    return space.lvcrypt(["read"], ["--key-file", str(space.tmp / "pass"), "--length", "4096", f"{vg}/{lv}"])


def _mount_write(space: Workspace, lv: str | None, vg: str) -> subprocess.CompletedProcess[bytes]:
    """A read-write FUSE mount; if it succeeds, a write through it must succeed, then umount."""
    mountpoint = space.tmp / "mnt"
    mountpoint.mkdir(exist_ok=True)
    result = space.lvcrypt(["mount"], ["--key-file", str(space.tmp / "pass"), f"{vg}/{lv}", str(mountpoint)])
    if result.returncode != 0:
        return result
    try:
        with open(mountpoint / str(lv), "r+b") as f:
            f.write(b"written through the FUSE mount")
    finally:
        umount = subprocess.run([sys.executable, "-m", "lvcrypt", "umount", str(mountpoint)],
                                capture_output=True, env=space.env, cwd=ROOT, timeout=120)
    assert umount.returncode == 0, umount.stderr
    return result


def _lvcreate_wipe(space: Workspace, lv: str | None, vg: str) -> subprocess.CompletedProcess[bytes]:
    return space.lvcrypt(["lvcreate"], ["--encrypt", *FAST, "--key-file", str(space.tmp / "pass"), "--wipe",
                                        "-l", "2", "-n", "fresh", "-y", vg])


def _lvconvert_encrypt(space: Workspace, lv: str | None, vg: str) -> subprocess.CompletedProcess[bytes]:
    return space.lvcrypt(["lvconvert"], ["--encrypt", *FAST, "--key-file", str(space.tmp / "pass"), "--chunk-size",
                                         "1m", f"{vg}/{lv}"])


def _simple(words: list[str], *args: str) -> Callable[[Workspace, str | None, str], subprocess.CompletedProcess[bytes]]:
    """A command whose arguments only name the LV (`{lv}`), the VG (`{vg}`) or the fixture file."""
    def run(space: Workspace, lv: str | None, vg: str) -> subprocess.CompletedProcess[bytes]:
        values = {"lv": f"{vg}/{lv}", "vg": vg, "fixture": str(space.fixture.path),
                  "backup": str(space.tmp / "backup.vg"), "tag_path": f"logical_volumes.{lv}.tags"}
        return space.lvcrypt(words, [arg.format(**values) for arg in args])
    return run


LV_COMMANDS = [
    Command("lvrename", _simple(["lvrename"], "{lv}", "renamedlv"), renames_lv_to="renamedlv"),
    Command("lvremove", _simple(["lvremove"], "-y", "{lv}")),
    Command("lvextend", _simple(["lvextend"], "-l", "+1", "{lv}")),
    Command("lvreduce", _simple(["lvreduce"], "-l", "-1", "-y", "{lv}")),
    Command("lvconvert_crypt", _simple(["lvconvert"], "--type", "crypt", "{lv}")),
    Command("lvconvert_linear", _simple(["lvconvert"], "--type", "linear", "{lv}")),
    Command("lvconvert_encrypt", _lvconvert_encrypt),
    Command("lvchange_ay", _simple(["lvchange"], "-ay", "{lv}")),
    Command("lvchange_props", _simple(["lvchange"], "-ky", "--alloc", "cling", "--addtag", "matrix", "{lv}")),
    Command("write", _write, writes_data=True),
    Command("read", _read, read_only=True),
    Command("mount_rw", _mount_write, writes_data=True),
    Command("metadata_set_tags", _simple(["metadata", "set"], "{vg}", '{tag_path}=["matrix"]')),
]

VG_COMMANDS = [
    Command("lvcreate_wipe", _lvcreate_wipe),
    Command("vgremove", _simple(["vgremove"], "-f", "{vg}"), removes_vg=True),
    Command("vgextend", lambda space, lv, vg: space.lvcrypt(["vgextend"], ["-y", vg, space.devices[-1]])),
    Command("vgrename", _simple(["vgrename"], "{vg}", "renamedvg"), renames_vg_to="renamedvg"),
    Command("vgcfgbackup", _simple(["vgcfgbackup"], "-f", "{backup}", "{vg}"), read_only=True),
    Command("vgchange_props", _simple(["vgchange"], "-xn", "--alloc", "contiguous", "{vg}")),
    Command("vgcfgrestore", _simple(["vgcfgrestore"], "-f", "{fixture}", "{vg}")),
]


def _pv_command(kind: str, pv_key: str) -> Command:
    def run(space: Workspace, lv: str | None, vg: str) -> subprocess.CompletedProcess[bytes]:
        device = space.device_of(pv_key)
        return space.lvcrypt([kind], [vg, device] if kind == "vgreduce" else [device] if kind == "pvmove"
                             else ["-y", device])
    return Command(f"{kind}_{pv_key}", run, moves_extents=kind == "pvmove")


# LVs whose role another fixture already covers: skipped unless LVCRYPT_MATRIX_FULL=1, to keep the
# matrix near 4 minutes on 2 cores (mixed and history repeat thin/snapshot/raid/mirror roles; the
# images of raid5/raid10 are raid images like raid1's).
FULL = os.environ.get("LVCRYPT_MATRIX_FULL") == "1" or sampling.full()
REPEATED_ROLES = {
    "mixed": re.compile(r"^(?!plain)"),
    "history": re.compile(r"^(pool|lvol0_pmspare)"),
    "raid": re.compile(r"^r(5|10)_"),
}


def matrix_lvs(fixture: "Fixture") -> list[str]:
    """The LVs each command runs on: all, but only the first of numbered sub-LVs (_rimage_0, not _1...)."""
    names = [lv for lv in fixture.layout.lvs if FULL or not re.search(r"_(rimage|rmeta|mimage|iorig|imeta)_[1-9]", lv)]
    repeated = REPEATED_ROLES.get(fixture.name)
    # lvm2 names a historical LV with a leading "-" (`lvremove vg/-name` removes it).
    historical = [f"-{name}" for name in fixture.layout.historical]
    return [lv for lv in names if FULL or not repeated or not repeated.search(lv)] + historical


def lv_role(fixture: Fixture, lv: str) -> tuple[object, ...]:
    """What makes two LVs the same kind of case: segment types and stripes, visibility, the keys by
    which they name other LVs and are named by them, lvm2's sub-LV suffix (thin/plain and
    mixed/plain1 are alike; raid/r1_rimage_0 and raid/r1_rmeta_0 are not)."""
    if lv.startswith("-"):
        return ("historical",)
    layout = fixture.layout
    segments = layout.segments(lv)

    def names_lv(value: Value, target: str | None) -> bool:
        items = value if isinstance(value, list) else [value]
        return any(isinstance(item, str) and item in layout.lvs and item != lv and target in (None, item)
                   for item in items)

    shape = sorted({(str(segment.get("type")), int(segment.get("stripe_count", 1))) for segment in segments})
    names = sorted({key for segment in segments for key, value in segment.items()
                    if key not in ("type", "tags") and names_lv(value, None)})
    named_by = sorted({(str(segment.get("type")), key) for other in layout.lvs if other != lv
                       for segment in layout.segments(other) for key, value in segment.items()
                       if key not in ("type", "tags") and names_lv(value, lv)})
    suffix = re.findall(r"_(rimage|rmeta|mimage|mlog|tmeta|tdata|cdata|cmeta|corig|wcorig|iorig|imeta|cvol|pmspare)",
                        lv)
    return (tuple(shape), len(segments), "VISIBLE" in layout.lvs[lv].get("status", []), tuple(names),
            tuple(named_by), tuple(suffix))


def sampled_lvs(kind: str) -> set[tuple[str, str]]:
    """(fixture, LV) pairs a command runs on in this run: one LV of each role (lv_role), seeded
    (tests/sampling.py; all with LVCRYPT_TEST_FULL=1 or LVCRYPT_MATRIX_FULL=1)."""
    by_role: dict[tuple[object, ...], list[tuple[str, str]]] = {}
    for fixture in FIXTURES:
        for lv in matrix_lvs(fixture):
            by_role.setdefault(lv_role(fixture, lv), []).append((fixture.name, lv))
    if FULL:
        return {case for members in by_role.values() for case in members}
    return {case for role, members in by_role.items() for case in sampling.pick(members, 1, (kind, role))}


def cases() -> Iterator[object]:
    chosen = {command.name: sampled_lvs(f"matrix {command.name}") for command in LV_COMMANDS}
    for fixture in FIXTURES:
        lvs = matrix_lvs(fixture)
        for lv in lvs:
            for command in LV_COMMANDS:
                # Without device-mapper, activation is refused before the LV is looked at: one LV says it.
                if command.name == "lvchange_ay":
                    if lv != lvs[0] and not FULL:
                        continue
                elif (fixture.name, lv) not in chosen[command.name]:
                    continue
                yield pytest.param(fixture, lv, command, id=f"{fixture.name}-{lv}-{command.name}")
        vg_commands = VG_COMMANDS + [_pv_command(kind, pv.key) for pv in fixture.layout.pvs
                                     for kind in ("vgreduce", "pvremove", "pvmove")]
        for command in vg_commands:
            yield pytest.param(fixture, None, command, id=f"{fixture.name}-vg-{command.name}")


def _owned_after(space: Workspace, command: Command, lv: str | None) -> set[tuple[str, int]]:
    """Extents the command may write: the LV's (before and after) and those of LVs it created."""
    layout = space.fixture.layout
    if command.writes_data:
        return layout.writable_through(lv) if lv else set()
    owned = layout.owned_by({lv}) if lv else set()
    vg_now = command.renames_vg_to or layout.name
    text = space.lvm2_text(vg_now) if not command.removes_vg else None
    if text:
        after = VgLayout.from_text(text)
        names = {name for name in (lv, command.renames_lv_to) if name}
        owned |= after.owned_by({name for name in names if name in after.lvs})
        owned |= after.owned_by(set(after.lvs) - set(layout.lvs) - names)
        if command.moves_extents:
            owned |= after.owned_by(set(after.lvs))
    return owned


@pytest.mark.sampled
@pytest.mark.parametrize("fixture,lv,command", list(cases()))
def test_command_keeps_lvm2_vg_intact(fixture: Fixture, lv: str | None, command: Command,
                                      workspace: Callable[..., Workspace],
                                      templates: Callable[[Fixture], list[Path]]) -> None:
    space = workspace(fixture, extra=1)
    result = command.run(space, lv, fixture.vg)
    log_outcome(f"{fixture.name}-{lv or 'vg'}-{command.name}", result)
    if result.returncode == 0:
        vg_now = command.renames_vg_to or fixture.vg
        if command.removes_vg:
            vgs = lvm("vgs", "--devices", space.device_list, "-o", "vg_name", "--noheadings")
            assert not lvm2_problems(vgs), vgs.stderr
            assert fixture.vg not in vgs.stdout.split(), f"vgremove succeeded but lvm2 still sees {fixture.vg}"
        else:
            check_lvm2_reads(space.device_list, vg_now)
            after = VgLayout.from_text(space.lvm2_text(vg_now) or "")
            leaked = after.leaked_from(fixture.layout)
            assert not leaked, f"hidden LVs left behind, used by nothing: {sorted(leaked)}"
        owned = _owned_after(space, command, lv)
    else:
        assert_clean_refusal(result)
        owned = set()
    detach(space.devices)
    space.devices = []
    changed = changed_extents(space, templates(fixture))
    unexpected = {key: [index for index in indexes if (key, index) not in owned]
                  for key, indexes in changed.items()}
    unexpected = {key: indexes for key, indexes in unexpected.items() if indexes}
    if result.returncode != 0 or command.read_only:
        assert not changed, f"nothing may be written ({outcome_text(result)}); changed: {changed}"
    if result.returncode == 0:
        # Metadata areas (-1) change on success; data extents only where the LV owns them.
        unexpected = {key: [i for i in indexes if i != -1] for key, indexes in unexpected.items()}
        unexpected = {key: indexes for key, indexes in unexpected.items() if indexes}
    assert not unexpected, (f"extents not owned by {lv} changed (-1 metadata area, -2 tail): {unexpected}\n"
                            f"{outcome_text(result)}")


# ---- what must keep working next to all of this ----

# Each fixture with a plain or a crypt LV, dealt by the seed: both kinds and every fixture in each run.
UNREFERENCED = sampling.cover(FIXTURES, [False, True], 1, "unreferenced LVs")


@pytest.mark.sampled
@pytest.mark.parametrize("fixture,encrypted", UNREFERENCED,
                         ids=[f"{fixture.name}-{'crypt' if encrypted else 'plain'}" for fixture, encrypted in UNREFERENCED])
def test_unreferenced_lvs_keep_working(fixture: Fixture, encrypted: bool, workspace: Callable[..., Workspace],
                                       templates: Callable[[Fixture], list[Path]]) -> None:
    """Create, extend, rename, write, read and remove an LV nothing references; lvm2 reads the VG after each."""
    space = workspace(fixture)
    vg = fixture.vg
    key = ["--key-file", str(space.tmp / "pass")]
    create = ["--encrypt", *FAST, *key] if encrypted else []
    owned: set[tuple[str, int]] = set()

    def step(words: list[str], args: list[str], stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
        result = space.lvcrypt(words, args, stdin)
        assert result.returncode == 0, f"lvcrypt {' '.join(words + args)}: {outcome_text(result)}"
        check_lvm2_reads(space.device_list, vg)
        text = space.lvm2_text(vg)
        assert text is not None
        after = VgLayout.from_text(text)
        owned.update(after.owned_by(set(after.lvs) - set(fixture.layout.lvs)))
        return result

    step(["lvcreate"], [*create, "-l", "2", "-n", "mine", "-y", vg])
    step(["lvextend"], ["-l", "+1", f"{vg}/mine"])
    step(["lvrename"], [f"{vg}/mine", f"{vg}/ours"])
    payload = b"next to lvm2's own LVs" * 100
    step(["write"], [*key, "--offset", "4096", f"{vg}/ours"], stdin=payload)
    read = step(["read"], [*key, "--offset", "4096", "--length", str(len(payload)), f"{vg}/ours"])
    assert read.stdout == payload
    step(["lvremove"], ["-y", f"{vg}/ours"])
    assert not (set(VgLayout.from_text(space.lvm2_text(vg) or "").lvs) - set(fixture.layout.lvs))
    detach(space.devices)
    space.devices = []
    changed = changed_extents(space, templates(fixture))
    unexpected = {pv: [i for i in indexes if i != -1 and (pv, i) not in owned] for pv, indexes in changed.items()}
    assert not any(unexpected.values()), f"extents of lvm2's LVs changed: {unexpected}"


# ---- lvm2 as the oracle for what must be refused ----

LVM2_ORACLE = {
    "lvrename": (["lvrename", "--driverloaded", "n", "{lv}", "{vg}/renamedlv"], ["lvrename", "{lv}", "renamedlv"]),
    "lvremove": (["lvremove", "--driverloaded", "n", "-y", "{lv}"], ["lvremove", "-y", "{lv}"]),
    "lvextend": (["lvextend", "--driverloaded", "n", "-l", "+1", "{lv}"], ["lvextend", "-l", "+1", "{lv}"]),
    "lvreduce": (["lvreduce", "--driverloaded", "n", "-y", "-l", "-1", "{lv}"], ["lvreduce", "-l", "-1", "-y", "{lv}"]),
    "lvchange_props": (["lvchange", "--driverloaded", "n", "-ky", "--alloc", "cling", "{lv}"],
                       ["lvchange", "-ky", "--alloc", "cling", "{lv}"]),
}
# lvm2 refusals that only say this host has no device-mapper: they decide nothing about the LV.
NO_DM_REFUSAL = re.compile(r"driver|device-mapper|kernel|activ|not detected", re.I)


def oracle_cases() -> Iterator[object]:
    chosen = {name: sampled_lvs(f"oracle {name}") for name in LVM2_ORACLE}
    for fixture in FIXTURES:
        for lv in matrix_lvs(fixture):
            for name in LVM2_ORACLE:
                if (fixture.name, lv) not in chosen[name]:
                    continue
                yield pytest.param(fixture, lv, name, id=f"{fixture.name}-{lv}-{name}")


@pytest.mark.sampled
@pytest.mark.parametrize("fixture,lv,name", list(oracle_cases()))
def test_refuses_what_lvm2_refuses(fixture: Fixture, lv: str, name: str,
                                   workspace: Callable[..., Workspace]) -> None:
    """Where lvm2 itself refuses to rename/remove/extend/reduce an LV of its own VG, lvcrypt refuses too.

    The matrix above only sees damage lvm2 can detect afterwards; a thin pool's data LV extended
    alone or an origin reduced under its snapshot read back cleanly but are what lvm2 refuses.
    """
    lvm2_args, lvcrypt_args = LVM2_ORACLE[name]
    values = {"lv": f"{fixture.vg}/{lv}", "vg": fixture.vg}
    theirs = workspace(fixture)
    decided = lvm(lvm2_args[0], "--devices", theirs.device_list,
                  *[arg.format(**values) for arg in lvm2_args[1:]])
    lvm2_said = [line.strip() for line in decided.stderr.splitlines()
                 if line.strip() and not HOST_NOISE.search(line)]
    if decided.returncode == 0:
        pytest.skip("lvm2 accepts this here; test_command_keeps_lvm2_vg_intact checks lvcrypt's outcome")
    if not lvm2_said or any(NO_DM_REFUSAL.search(line) for line in lvm2_said):
        pytest.skip(f"lvm2 refuses only for want of device-mapper here: {lvm2_said[:2]}")
    ours = workspace(fixture)
    result = ours.lvcrypt([lvcrypt_args[0]], [arg.format(**values) for arg in lvcrypt_args[1:]])
    assert result.returncode != 0, f"lvm2 refuses ({' / '.join(lvm2_said[:3])}) but lvcrypt did it:\n{outcome_text(result)}"
    assert_clean_refusal(result)
