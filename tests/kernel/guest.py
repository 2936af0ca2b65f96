"""Boot Debian's stock kernel under QEMU, with this machine's root as its root, to run one command.

The host kernel here has no device-mapper, but a guest kernel does. Instead of a
distribution initramfs (or virtme-ng, about 3x slower to boot), we build a tiny
one: static busybox plus the virtio/9p modules, whose /init mounts the host's
root read-only over 9p and `exec chroot`s into it. The first process itself must
be in the host root, or the kernel cannot auto-load crypto modules like
`xts(aes)` later (their request helper runs /sbin/modprobe in PID 1's root).

Three 9p shares: the host root (read-only, cache=loose: ~4x faster dm tests),
the checkout (read-write, at the same path, so the venv and editable install
work unchanged) and a per-run transfer directory (read-write, no cache, so that
every line the guest writes there is visible to the host at once; results are
read from it even when the guest is killed).

Run `python tests/kernel/guest.py -- CMD ARGS...` to run a command in the guest.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import lzma
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

CHECKOUT = Path(__file__).resolve().parents[2]
GUEST_ENV = "LVCRYPT_KERNEL_GUEST"
GUEST_XFER = "/run/lvcrypt-guest"
MEMORY_MIB = 512
BOOT_MODULES = ("virtio_pci", "9pnet_virtio", "9p")
NINEP_OPTIONS = "trans=virtio,version=9p2000.L,msize=512000"


def opens_with_o_direct(path: Path) -> bool:
    """True if the existing file `path` opens with O_DIRECT; False where its file system refuses it
    (EINVAL: tmpfs, where tests/run.sh puts scratch files); any other error is a real one, raised.
    The one probe of the tests: also conftest's `disk_tmp_path`."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    except OSError as error:
        if error.errno != errno.EINVAL:
            raise
        return False
    os.close(fd)
    return True


def host_cache_mode(image: Path) -> str:
    """QEMU's cache mode for a disk two guests share: `none` (O_DIRECT, nothing cached on the host)
    where the image's file system takes O_DIRECT, else `writethrough` (tmpfs refuses O_DIRECT; both
    QEMU processes then go through the one host page cache, which keeps them coherent too)."""
    return "none" if opens_with_o_direct(image) else "writethrough"


class GuestUnavailable(Exception):
    """This machine cannot start the guest (missing qemu, kernel, busybox...): tests skip."""


@dataclass(frozen=True)
class GuestKernel:
    """A bootable kernel image and the module tree of the same release."""

    image: Path
    modules: Path


@dataclass
class GuestResult:
    """How one guest run ended, for reporting; `status` is None if the command did not finish."""

    started: bool
    status: int | None
    problem: str | None
    console_tail: str
    seconds: float


@dataclass
class CpioEntry:
    """One member of a newc archive (the format the kernel unpacks as initramfs)."""

    name: str
    mode: int
    data: bytes = b""
    rdev: tuple[int, int] = (0, 0)


# newc header: magic then 13 fields, each 8 hexadecimal ASCII digits.
NEWC_MAGIC = b"070701"
NEWC_FIELDS = ("ino", "mode", "uid", "gid", "nlink", "mtime", "filesize", "devmajor",
               "devminor", "rdevmajor", "rdevminor", "namesize", "check")
NEWC_FORMAT = "6s" + "8s" * len(NEWC_FIELDS)

# ELF64 header fields needed to find the program headers, and one program header.
ELF64_PHDR_LOCATION = ("e_phoff", "e_phentsize", "e_phnum")
ELF64_PHDR_LOCATION_FORMAT = "<32xQ10xHH"
ELF64_PHDR_TYPE_FORMAT = "<I"
PT_INTERP = 3


def _align4(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def cpio_newc(entries: Sequence[CpioEntry]) -> bytes:
    """Serialise entries as a newc archive ending with the TRAILER!!! member."""
    out = bytearray()
    trailer = CpioEntry("TRAILER!!!", 0)
    for ino, entry in enumerate([*entries, trailer], start=1):
        name = entry.name.encode() + b"\0"
        values = {"ino": ino, "mode": entry.mode, "uid": 0, "gid": 0,
                  "nlink": 2 if entry.mode & 0o170000 == 0o040000 else 1, "mtime": 0,
                  "filesize": len(entry.data), "devmajor": 0, "devminor": 0,
                  "rdevmajor": entry.rdev[0], "rdevminor": entry.rdev[1],
                  "namesize": len(name), "check": 0}
        header = struct.pack(NEWC_FORMAT, NEWC_MAGIC,
                             *(b"%08X" % values[name] for name in NEWC_FIELDS))
        out += _align4(header + name)
        out += _align4(entry.data)
    return bytes(out)


def is_static_elf(path: Path) -> bool:
    """True if the ELF file has no program interpreter: it runs in an empty initramfs."""
    data = path.read_bytes()
    if data[:5] != b"\x7fELF\x02":
        return False
    values = dict(zip(ELF64_PHDR_LOCATION, struct.unpack_from(ELF64_PHDR_LOCATION_FORMAT, data)))
    for index in range(values["e_phnum"]):
        offset = values["e_phoff"] + index * values["e_phentsize"]
        if struct.unpack_from(ELF64_PHDR_TYPE_FORMAT, data, offset)[0] == PT_INTERP:
            return False
    return True


def _release_of(image: Path) -> str:
    return image.name.removeprefix("vmlinuz-")


def find_kernel() -> GuestKernel:
    """The kernel to boot: $LVCRYPT_KERNEL_IMAGE, else the newest /boot/vmlinuz-* with modules."""
    override = os.environ.get("LVCRYPT_KERNEL_IMAGE")
    candidates = [Path(override)] if override else sorted(Path("/boot").glob("vmlinuz-*"), reverse=True)
    for image in candidates:
        modules = Path("/lib/modules") / _release_of(image)
        if image.is_file() and (modules / "modules.dep").is_file():
            return GuestKernel(image, modules)
    raise GuestUnavailable("no kernel image with modules in /boot and /lib/modules "
                           "(bash install.sh test installs linux-image-amd64)")


def _module_name(path: str) -> str:
    base = path.rsplit("/", 1)[-1]
    return base[:base.index(".ko")].replace("-", "_")


def module_load_order(modules: Path, wanted: Sequence[str]) -> list[Path]:
    """Module files to insmod for `wanted`, each after its dependencies (from modules.dep)."""
    depends: dict[str, tuple[str, list[str]]] = {}
    for line in (modules / "modules.dep").read_text().splitlines():
        target, _, deps = line.partition(":")
        depends[_module_name(target)] = (target, deps.split())
    builtin_file = modules / "modules.builtin"
    builtin = {_module_name(line) for line in builtin_file.read_text().split()} if builtin_file.exists() else set()
    order: list[Path] = []

    def visit(name: str) -> None:
        if name in builtin or any(_module_name(p.name) == name for p in order):
            return
        if name not in depends:
            raise GuestUnavailable(f"kernel module {name} not found in {modules}")
        target, deps = depends[name]
        for dep in deps:
            visit(_module_name(dep))
        order.append(modules / target)

    for name in wanted:
        visit(name)
    return order


def _module_bytes(path: Path) -> bytes:
    """The module as busybox insmod wants it: uncompressed."""
    if path.name.endswith(".ko"):
        return path.read_bytes()
    if path.name.endswith(".ko.xz"):
        return lzma.decompress(path.read_bytes())
    raise GuestUnavailable(f"cannot load compressed module {path} from the initramfs")


def _stage1_script(module_names: Sequence[str]) -> str:
    """/init: load the 9p modules, mount the shares, chroot into the host root."""
    bb = "/bin/busybox"
    lines = [
        f"#!{bb} sh",
        f"fail() {{ echo \"lvcrypt-guest: $*\"; {bb} poweroff -f; }}",
        *(f"{bb} insmod /modules/{name} || fail insmod {name}" for name in module_names),
        f"{bb} mount -t 9p -o ro,cache=loose,{NINEP_OPTIONS} hostroot /newroot || fail mount host root",
        f"{bb} mount -t tmpfs -o mode=0755 run /newroot/run || fail mount /run",
        f"{bb} mkdir -p /newroot{GUEST_XFER}",
        f"{bb} mount -t 9p -o {NINEP_OPTIONS} xfer /newroot{GUEST_XFER} || fail mount xfer",
        f"exec {bb} chroot /newroot /bin/sh {GUEST_XFER}/stage2.sh",
    ]
    return "\n".join(lines) + "\n"


def build_initramfs(kernel: GuestKernel, busybox: Path) -> bytes:
    """The initramfs as bytes: busybox, /init, the boot modules and a console node."""
    modules = module_load_order(kernel.modules, BOOT_MODULES)
    names = [f"{index:02d}-{path.name.removesuffix('.xz')}" for index, path in enumerate(modules)]
    entries = [CpioEntry(d, 0o040755) for d in ("bin", "dev", "proc", "newroot", "modules")]
    entries.append(CpioEntry("dev/console", 0o020600, rdev=(5, 1)))
    entries.append(CpioEntry("bin/busybox", 0o100755, busybox.read_bytes()))
    entries.append(CpioEntry("init", 0o100755, _stage1_script(names).encode()))
    entries += [CpioEntry(f"modules/{name}", 0o100644, _module_bytes(path))
                for name, path in zip(names, modules)]
    return cpio_newc(entries)


def stage2_script(argv: Sequence[str], env: Mapping[str, str], cwd: Path) -> str:
    """Runs in the host root: writable /etc /var /root over tmpfs, the checkout read-write,
    then the command in its own session keyring; its exit status goes to the transfer dir."""
    exports = "".join(f"export {name}={shlex.quote(value)}\n" for name, value in env.items())
    overlays = "".join(
        f"mkdir -p /run/overlay/{d}/upper /run/overlay/{d}/work\n"
        f"mount -t overlay -o lowerdir=/{d},upperdir=/run/overlay/{d}/upper,"
        f"workdir=/run/overlay/{d}/work overlay /{d} || fail overlay /{d}\n"
        for d in ("etc", "var", "root"))
    checkout = shlex.quote(str(CHECKOUT))
    return f"""export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
fail() {{ echo "lvcrypt-guest: $*"; /bin/busybox poweroff -f; }}
mount -t proc proc /proc && mount -t sysfs sysfs /sys && mount -t devtmpfs dev /dev || fail mount
mkdir -p /dev/pts /dev/shm /run/lock
mount -t devpts devpts /dev/pts && mount -t tmpfs shm /dev/shm && mount -t tmpfs tmp /tmp || fail mount
modprobe overlay || fail modprobe overlay
{overlays}mkdir -p {checkout}
mount -t 9p -o cache=loose,{NINEP_OPTIONS} checkout {checkout} || fail mount checkout
echo booted > {GUEST_XFER}/started
{exports}cd {shlex.quote(str(cwd))} || fail cd
keyctl session - {shlex.join(argv)} > {GUEST_XFER}/output.log 2>&1 < /dev/null
echo $? > {GUEST_XFER}/status
sync
/bin/busybox poweroff -f
"""


def choose_accel() -> str:
    """TCG unless $LVCRYPT_KERNEL_ACCEL says otherwise or a real KVM is there.

    Our /dev/kvm is paravirtual (kvm_pvm): a stock kernel hangs under it at boot."""
    override = os.environ.get("LVCRYPT_KERNEL_ACCEL")
    if override:
        return override
    if os.access("/dev/kvm", os.R_OK | os.W_OK) and not Path("/sys/module/kvm_pvm").exists():
        return "kvm"
    return "tcg"


QEMU_NICE = -5  # ahead of the host tests running beside it (root may raise a priority)


def _die_with_parent() -> None:
    """In QEMU's child process: get SIGKILL when the test process dies, even by SIGKILL; and run ahead
    of the host tests sharing the CPUs: a guest is the suite's longest path, and a starved TCG guest
    misses sanlock's I/O timeouts."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    try:
        os.setpriority(os.PRIO_PROCESS, 0, QEMU_NICE)
    except OSError:
        pass  # not permitted: the guest runs at the test's own priority


def _read_status(path: Path) -> int | None:
    """The command's exit status as the guest wrote it; None if it wrote none (or was cut off)."""
    try:
        return int(path.read_text())
    except (FileNotFoundError, ValueError):
        return None


def _tail(path: Path, lines: int = 25) -> str:
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Guest:
    """One QEMU boot in a private temporary directory, removed on exit (also on failure)."""

    boot_timeout: float = 180.0
    total_timeout: float = 900.0
    cpus: int = 1
    # Raw images attached as virtio disks (/dev/vda ...), uncached and unlocked so that two guests
    # may open one image at once (a disk shared between hosts, for lvmlockd and sanlock).
    shared_disks: tuple[Path, ...] = ()
    workdir: Path = field(init=False)
    xfer: Path = field(init=False)
    kernel: GuestKernel = field(init=False)
    qemu: str = field(init=False)
    busybox: Path = field(init=False)
    # QEMU while `run` runs it: `kill` pulls the plug (a host dying with its leases held).
    process: "subprocess.Popen[bytes] | None" = field(init=False, default=None)

    def __enter__(self) -> "Guest":
        self._check_machine()
        self.workdir = Path(tempfile.mkdtemp(prefix="lvcrypt-guest-"))
        self.xfer = self.workdir / "xfer"
        self.xfer.mkdir()
        return self

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _check_machine(self) -> None:
        if platform.machine() != "x86_64":
            raise GuestUnavailable(f"the guest is x86_64 only (this is {platform.machine()})")
        if os.geteuid() != 0:
            raise GuestUnavailable("the guest needs root (QEMU exports the host root over 9p)")
        qemu = shutil.which("qemu-system-x86_64")
        if qemu is None:
            raise GuestUnavailable("qemu-system-x86_64 is not installed (bash install.sh test installs it)")
        self.qemu = qemu
        self.kernel = find_kernel()
        busybox = Path(shutil.which("busybox") or "/bin/busybox")
        if not busybox.exists() or not is_static_elf(busybox):
            raise GuestUnavailable("no static busybox (bash install.sh test installs busybox-static)")
        self.busybox = busybox
        if shutil.which("keyctl") is None:
            raise GuestUnavailable("keyctl is not installed (bash install.sh installs keyutils)")

    def qemu_argv(self, initramfs: Path, console: Path) -> list[str]:
        def share(tag: str, path: Path, readonly: bool) -> list[str]:
            ro = ",readonly=on" if readonly else ""
            return ["-fsdev", f"local,id={tag},path={path},security_model=passthrough,multidevs=remap{ro}",
                    "-device", f"virtio-9p-pci,fsdev={tag},mount_tag={tag}"]

        return [self.qemu, "-accel", choose_accel(), "-cpu", "max", "-smp", str(self.cpus),
                "-m", str(MEMORY_MIB), "-nodefaults", "-no-user-config", "-display", "none",
                "-no-reboot", "-serial", f"file:{console}", "-monitor", "none",
                "-kernel", str(self.kernel.image), "-initrd", str(initramfs),
                # no_timer_check: under TCG on a loaded host the kernel's IO-APIC timer check can time out
                # and panic ("IO-APIC + timer doesn't work!"), seen in CI runs here.
                "-append", "console=ttyS0 panic=-1 loglevel=4 rdinit=/init no_timer_check",
                *share("hostroot", Path("/"), True), *share("checkout", CHECKOUT, False),
                *share("xfer", self.xfer, False),
                *(arg for disk in self.shared_disks for arg in
                  ("-drive", f"file={disk},format=raw,if=virtio,cache={host_cache_mode(disk)},file.locking=off"))]

    def run(self, argv: Sequence[str], env: Mapping[str, str] | None = None,
            cwd: Path = CHECKOUT) -> GuestResult:
        """Boot, run `argv` in the guest, power off. Never raises for guest trouble: see problem."""
        initramfs = self.workdir / "initramfs.cpio"
        console = self.workdir / "console.log"
        initramfs.write_bytes(build_initramfs(self.kernel, self.busybox))
        guest_env = {GUEST_ENV: "1", "HOME": "/root", "LC_ALL": "C.UTF-8", "DM_DISABLE_UDEV": "1",
                     "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1", **(env or {})}
        (self.xfer / "stage2.sh").write_text(stage2_script(argv, guest_env, cwd))
        start = time.monotonic()
        qemu_log = self.workdir / "qemu.log"
        with open(qemu_log, "wb") as log:
            process = subprocess.Popen(self.qemu_argv(initramfs, console), stdin=subprocess.DEVNULL,
                                       stdout=log, stderr=log, preexec_fn=_die_with_parent)
        self.process = process
        try:
            problem = self._wait(process, start)
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()
            self.process = None
        status = _read_status(self.xfer / "status")
        if problem is None and status is None:
            problem = f"the guest stopped before the command finished (QEMU exit {process.returncode})" \
                      f"\n{_tail(qemu_log)}"
        return GuestResult(started=(self.xfer / "started").exists(), status=status, problem=problem,
                           console_tail=_tail(console), seconds=time.monotonic() - start)

    def kill(self) -> None:
        """SIGKILL to QEMU, from another thread than `run`'s: the guest stops dead, as a host losing
        power does (its sanlock leases stay on the shared disk until they expire)."""
        process = self.process
        if process is not None and process.poll() is None:
            process.kill()

    def _wait(self, process: subprocess.Popen[bytes], start: float) -> str | None:
        """Poll until QEMU exits; a problem text if the boot or the whole run took too long."""
        started = self.xfer / "started"
        while process.poll() is None:
            elapsed = time.monotonic() - start
            if not started.exists() and elapsed > self.boot_timeout:
                return f"the guest did not boot within {self.boot_timeout:.0f} s"
            if elapsed > self.total_timeout:
                return f"the guest run exceeded {self.total_timeout:.0f} s"
            time.sleep(0.1)
        return None


def main(argv: Sequence[str]) -> int:
    """Run a command in the guest and print what it printed (a debugging aid)."""
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        print(f"usage: {sys.argv[0]} -- COMMAND [ARGS...]", file=sys.stderr)
        return 3
    try:
        with Guest() as guest:
            result = guest.run(argv)
            output = guest.xfer / "output.log"
            if output.exists():
                sys.stdout.write(output.read_text(errors="replace"))
    except GuestUnavailable as error:
        print(f"guest unavailable: {error}", file=sys.stderr)
        return 5
    print(f"[guest: {result.seconds:.1f} s, status {result.status}]", file=sys.stderr)
    if result.problem:
        print(f"[guest problem: {result.problem}]\n{result.console_tail}", file=sys.stderr)
        return 5
    return result.status or 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
