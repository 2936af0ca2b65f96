"""What `read` and `lvs` load: only what their work needs.

Start-up is most of these commands' run time (benchmarks/startup.py: a 4 KiB
`read` of a crypt LV against lvm2's `lvs`), so every module below was taken
off their path on purpose, and loading one again would cost every run without
failing anything else.  The commands run as users run them, in a process of
their own, which then reports its modules and threads.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_lvcrypt

# The command, then what it left loaded: its module names, its thread count, and the sources it compiled
# that are no module file (a template, a typing ForwardRef): the first compile() of a process costs a
# millisecond, a 20th of a 4 KiB read's run.
PROBE = ("import os, sys, lvcrypt.cli\n"
         "compiled = []\n"
         "sys.addaudithook(lambda event, args: event == 'compile' and str(args[1]).startswith('<')\n"
         "                 and compiled.append(str(args[1])))\n"
         "status = lvcrypt.cli.main(sys.argv[2:])\n"
         "with open(sys.argv[1], 'w') as out:\n"
         "    out.write(' '.join(sorted(sys.modules)) + '\\n' + str(len(os.listdir('/proc/self/task')))\n"
         "              + '\\n' + ' '.join(compiled))\n"
         "sys.exit(status)\n")

# Not needed by `read --key-file` of a LUKS2/PBKDF2 crypt LV, and why.
NOT_FOR_READ = {
    "importlib.metadata": "built-in key handlers resolve without installed-package metadata",
    "email": "importlib.metadata's dependency",
    "argon2": "the keystore's keyslot uses PBKDF2",
    "cryptography": "PBKDF2 and the AF merge run in lvcrypt's compiled module (its bindings cost more than the unlock)",
    "lvcrypt.keyring": "the passphrase comes from a key file, not a keyring token",
    "lvcrypt.handlers.luks1": "only the keystore's own handler loads",
    "lvcrypt.handlers.plain": "only the keystore's own handler loads",
    "lvcrypt.handlers.hashed": "only the keystore's own handler loads",
    "ctypes": "secrets are locked and wiped by lvcrypt's compiled module",
    "subprocess": "nothing is run",
    "socket": "no lvmlockd in lvm.conf and no system ID from the host name",
    "shutil": "no help is printed (argparse's metavar check asks no terminal width)",
    "tempfile": "no file is written",
    "secrets": "no id is made",
    "random": "no id is made and no VG version archived",
    "uuid": "no LUKS header is formatted",
    "getpass": "no prompt",
    "traceback": "no --debug",
    "lvcrypt.metadata.write": "no metadata is written",
    "pyudev": "--devices names the devices",
    "mfusepy": "nothing is mounted",
    "tabulate": "no table is printed",
    "dataclasses": "lvcrypt.records makes the data classes (importing it ran inspect, ast and dis)",
    "inspect": "dataclasses' dependency",
}
# Not needed by `lvs`: it reads metadata and prints it.
NOT_FOR_LVS = {
    "lvcrypt.crypto._sectors": "no data is encrypted",
    "cryptography": "no key is derived",
    "argon2": "no key is derived",
    "lvcrypt.handlers.registry": "no keystore is opened",
    "importlib.metadata": "no handler is looked up",
    "subprocess": "nothing is run",
    "socket": "no lvmlockd in lvm.conf and no system ID from the host name",
    "shutil": "no help is printed (argparse's metavar check asks no terminal width)",
    "tempfile": "no file is written",
    "traceback": "no --debug",
    "pickle": "the model cache unpickles the VG's head with the C unpickler alone (_pickle)",
}


def loaded_by(tmp_path: Path, env: dict[str, str], *argv: str) -> tuple[set[str], int]:
    """The second run's modules: the first fills the parse cache (a miss loads the parser and writes an entry)."""
    run_lvcrypt(*argv, env=env, check=True)
    report = tmp_path / "modules"
    result = subprocess.run([sys.executable, "-c", PROBE, str(report), *argv], capture_output=True, env=env)
    assert result.returncode == 0, result.stderr
    modules, threads, _ = report.read_text().split("\n")
    return set(modules.split()), int(threads)


def compiled_in_last_probe(tmp_path: Path) -> list[str]:
    return (tmp_path / "modules").read_text().split("\n")[2].split()


def top_level_hits(loaded: set[str], forbidden: dict[str, str]) -> dict[str, str]:
    return {name: why for name, why in forbidden.items()
            if name in loaded or any(module.startswith(name + ".") for module in loaded)}


@pytest.fixture
def crypt_lv(tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    """A LUKS2 crypt LV (PBKDF2, 1000 iterations) on an image file; its --devices and key-file options."""
    image = tmp_path / "pv.img"
    with open(image, "wb") as f:
        f.truncate(32 << 20)
    env = dict(os.environ)
    env.update(LVCRYPT_STATE_DIR=str(tmp_path / "state"), LVCRYPT_RUN_DIR=str(tmp_path / "run"))
    (tmp_path / "pass").write_bytes(b"correct horse battery staple")
    devices = ["--devices", str(image)]
    run_lvcrypt("pvcreate", *devices, str(image), env=env, check=True)
    run_lvcrypt("vgcreate", *devices, "vgs0", str(image), env=env, check=True)
    run_lvcrypt("lvcreate", *devices, "--encrypt", "--handler", "luks2", "--pbkdf", "pbkdf2",
                "--pbkdf-force-iterations", "1000", "--key-file", str(tmp_path / "pass"), "-L", "4M", "-n", "data",
                "vgs0", env=env, check=True)
    return [*devices, "--key-file", str(tmp_path / "pass")], env


def test_read_of_a_crypt_lv_loads_only_what_it_needs(crypt_lv: tuple[list[str], dict[str, str]],
                                                      tmp_path: Path) -> None:
    options, env = crypt_lv
    loaded, threads = loaded_by(tmp_path, env, "read", *options, "--length", "4096", "vgs0/data")
    assert "lvcrypt.crypto.sector" in loaded and "lvcrypt.handlers.luks2" in loaded  # it did decrypt
    assert top_level_hits(loaded, NOT_FOR_READ) == {}
    assert threads == 1, "a thread was started: a 4 KiB read needs none"
    assert compiled_in_last_probe(tmp_path) == [], "source compiled: a records shape or a string ForwardRef?"


def test_lvs_loads_no_crypto(crypt_lv: tuple[list[str], dict[str, str]], tmp_path: Path) -> None:
    options, env = crypt_lv
    loaded, _ = loaded_by(tmp_path, env, "lvs", *options[:2], "vgs0")
    assert "lvcrypt.reportfields" in loaded  # it did report
    assert top_level_hits(loaded, NOT_FOR_LVS) == {}
    assert compiled_in_last_probe(tmp_path) == [], "source compiled: a records shape (the report fields')?"


def test_a_built_in_handler_option_reads_no_package_metadata(crypt_lv: tuple[list[str], dict[str, str]],
                                                             tmp_path: Path) -> None:
    """`--handler luks2` is checked against the built-in names: no entry-point scan (importlib.metadata)."""
    options, env = crypt_lv
    report = tmp_path / "modules"
    result = subprocess.run([sys.executable, "-c", PROBE, str(report), "lvconvert", *options, "--encrypt",
                             "--handler", "luks2", "vgs0/data"], capture_output=True, env=env)
    assert result.returncode == 5 and b"already encrypted" in result.stderr  # parsed, then refused
    loaded = set(report.read_text().split("\n")[0].split())
    assert top_level_hits(loaded, {"importlib.metadata": "luks2 is built in", "email": "its dependency"}) == {}
