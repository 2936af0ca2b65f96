"""The model cache: a hit gives the model a parse would, and anything else (another text, other code, a damaged
entry) is a miss that parses the text again."""

from __future__ import annotations

import marshal
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from lvcrypt.lvops import new_uuid
from lvcrypt.metadata import parse as parse_module
from lvcrypt.metadata.convert import vg_to_tree
from lvcrypt.metadata.model import Area, LogicalVolume, PhysicalVolume, StripedSegment, VolumeGroup
from lvcrypt.metadata.tree import ordered_items
from lvcrypt.metadata.write import write_text
from lvcrypt.store import cache
from lvcrypt.store.commit import parse_vg


def metadata_text(lv_names: list[str]) -> bytes:
    vg = VolumeGroup("vgcache", new_uuid(), seqno=3)
    vg.pvs["pv0"] = PhysicalVolume("pv0", new_uuid(), "/dev/loop7", ["ALLOCATABLE"], [], [], 1 << 20, 2048, 100)
    for index, name in enumerate(lv_names):
        vg.lvs[name] = LogicalVolume(name, new_uuid(), ["READ", "WRITE", "VISIBLE"], [], ["t1"], 1700000000, "h",
                                     [StripedSegment(0, 2, "striped", stripes=[Area("pv0", 2 * index)])])
    return write_text(vg_to_tree(vg)).encode()


@pytest.fixture
def run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LVCRYPT_RUN_DIR", str(tmp_path / "run"))
    return tmp_path / "run"


def no_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> None:
        raise AssertionError("the text was parsed")

    monkeypatch.setattr(parse_module, "parse_bytes", refuse)


def test_a_hit_gives_the_parsed_model_without_parsing(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = metadata_text(["alpha", "beta", "gamma"])
    parsed = parse_vg(text, "test", "vg-id")
    no_parser(monkeypatch)
    cached = parse_vg(text, "test", "vg-id")
    assert cached == parsed and cached is not parsed
    # What a later write keeps (unknown keys, order): the trees it was read from (write_text stamps the time).
    assert ordered_items(cached.raw) == ordered_items(parsed.raw) and cached.header == parsed.header
    assert cached.lvs["beta"].raw.line_of("id") == parsed.lvs["beta"].raw.line_of("id")  # errors still name lines
    cached.lvs.pop("alpha")  # a command changing its model changes no later reader's
    assert list(parse_vg(text, "test", "vg-id").lvs) == ["alpha", "beta", "gamma"]


def test_another_text_or_other_code_misses(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = metadata_text(["alpha"])
    parse_vg(text, "test", "vg-id")
    assert cache.lookup("vg-id", text) is not None
    assert cache.lookup("vg-id", text.replace(b"alpha", b"alpho")) is None
    assert cache.lookup("other-id", text) is None
    convert_py = Path(parse_module.__file__).with_name("convert.py")
    before = os.stat(convert_py)
    try:
        os.utime(convert_py, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
        assert cache.lookup("vg-id", text) is None  # the converter changed: its old models are not used
    finally:
        os.utime(convert_py, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert cache.lookup("vg-id", text) is not None


def test_a_damaged_entry_is_ignored_and_the_text_parsed(run_dir: Path) -> None:
    text = metadata_text(["alpha", "beta"])
    parse_vg(text, "test", "vg-id")
    (entry,) = (run_dir / "cache").iterdir()
    whole = entry.read_bytes()
    for damaged in (whole[: len(whole) // 2], whole[:-40] + bytes(40), b"", os.urandom(300)):
        entry.write_bytes(damaged)
        assert cache.lookup("vg-id", text) is None
        assert list(parse_vg(text, "test", "vg-id").lvs) == ["alpha", "beta"]


def test_derived_data_is_kept_for_exactly_its_text_and_code_and_never_runs(run_dir: Path, tmp_path: Path) -> None:
    text = metadata_text(["alpha"])
    code_file = tmp_path / "deriver.py"
    code_file.write_text("# the code that derived the data\n")
    code = (str(code_file),)
    data = (["alpha"], [], [[1, 2], ["x"]])
    cache.store_derived("lvs", "vg-id", text, code, data)
    assert cache.lookup_derived("lvs", "vg-id", text, code) == data
    assert cache.lookup_derived("lvs", "vg-id", text + b"\n", code) is None  # another text
    assert cache.lookup_derived("vgs", "vg-id", text, code) is None  # another kind
    assert cache.lookup_derived("lvs", "other-id", text, code) is None
    before = os.stat(code_file)
    os.utime(code_file, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
    assert cache.lookup_derived("lvs", "vg-id", text, code) is None  # the deriving code changed
    os.utime(code_file, ns=(before.st_atime_ns, before.st_mtime_ns))
    (entry,) = (path for path in (run_dir / "cache").iterdir() if path.name.endswith(".lvs"))
    whole = entry.read_bytes()
    for damaged in (whole[: len(whole) // 2], b"", os.urandom(300)):
        entry.write_bytes(damaged)
        assert cache.lookup_derived("lvs", "vg-id", text, code) is None
    marker = tmp_path / "ran"

    class Exploit:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, (f"touch {marker}",))

    cache.store_derived("lvs", "vg-id", text, code, pickle.dumps(Exploit()))
    assert type(cache.lookup_derived("lvs", "vg-id", text, code)) is bytes and not marker.exists()  # never unpickled


def test_a_hit_gives_the_head_first_and_the_model_when_asked(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The head (what finding a VG and lvs' cached view read) is the VG without LVs or text sections; the whole
    model comes from the same entry only when asked, and a damaged whole model is parsed again."""
    text = metadata_text(["alpha", "beta"])
    parsed = parse_vg(text, "test", "vg-id")
    found = cache.lookup_head("vg-id", text)
    assert found is not None
    head, model = found
    assert head.lvs == {} and head.pvs == parsed.pvs and head.header == parsed.header
    assert (head.name, head.id, head.seqno, head.status, head.flags) == (parsed.name, parsed.id, parsed.seqno,
                                                                         parsed.status, parsed.flags)
    assert head.raw == {key: value for key, value in parsed.raw.items() if key not in ("physical_volumes",
                                                                                        "logical_volumes")}
    assert head.raw.line_of("seqno") == parsed.raw.line_of("seqno")
    assert model() == parsed
    (entry,) = (run_dir / "cache").iterdir()
    # Damage under a correct sum (the sum is against damage, not a secret): the pickle check still catches it.
    stamp, digest, (head_part, _) = marshal.loads(cache.entry_body(entry.read_bytes()))
    entry.write_bytes(cache.sealed_entry(marshal.dumps((stamp, digest, (head_part, b"\x80\x05damaged")))))
    found = cache.lookup_head("vg-id", text)
    assert found is not None and found[1]() is None and cache.lookup("vg-id", text) is None
    assert parse_vg(text, "test", "vg-id") == parsed  # parsed again
    no_parser(monkeypatch)
    assert parse_vg(text, "test", "vg-id") == parsed  # and stored whole again


def test_a_head_only_entry_gives_the_head_and_the_model_by_a_parse(run_dir: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A command that needs only the head (a cold `lvs`) stores only the head: finding the VG again reads it
    without a parse, while the whole model is a miss that parses the text once and stores the entry whole."""
    text = metadata_text(["alpha", "beta"])
    parsed = parse_vg(text, "test")
    cache.store("vg-id", text, parsed, whole=False)
    found = cache.lookup_head("vg-id", text)
    assert found is not None and found[0].lvs == {} and found[0].pvs == parsed.pvs
    assert found[1]() is None and cache.lookup("vg-id", text) is None
    assert parse_vg(text, "test", "vg-id") == parsed  # parsed, and stored whole
    no_parser(monkeypatch)
    assert parse_vg(text, "test", "vg-id") == parsed


def test_a_damaged_entry_is_not_read_by_marshal(run_dir: Path, tmp_path: Path) -> None:
    """marshal believes the lengths in its data: 300 random bytes in place of an entry once made it
    allocate 8.5 GiB and the OOM killer ended the process.  Here a tuple of 2**26 items (512 MiB of
    pointers, which marshal makes before it finds the items missing) stands in the entry's place: the
    lookup misses without marshal reading it (peak RSS of the lookup process, whose own start is ~30 MiB)."""
    text = metadata_text(["alpha"])
    parse_vg(text, "test", "vg-id")
    (entry,) = (run_dir / "cache").iterdir()
    greedy = b"(" + (1 << 26).to_bytes(4, "little")
    entry.write_bytes(greedy + bytes(300))
    (tmp_path / "text").write_bytes(text)
    # VmHWM, not getrusage's maxrss: Linux carries that across exec from the (large) test worker that forked.
    probe = ("import re, sys\n"
             "from lvcrypt.store import cache\n"
             "text = open(sys.argv[1], 'rb').read()\n"
             "assert cache.lookup_head('vg-id', text) is None\n"
             "print(re.search(r'VmHWM:\\s*(\\d+)', open('/proc/self/status').read()).group(1))\n")
    result = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "text")], capture_output=True, text=True,
                            env={**os.environ, "LVCRYPT_RUN_DIR": str(run_dir)})
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) < 200 << 10, f"peak RSS {int(result.stdout) >> 10} MiB"
