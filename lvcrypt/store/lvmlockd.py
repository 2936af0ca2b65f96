"""The lvmlockd client: the requests lvm2 sends over lvmlockd's socket, and what lvm2 makes of the answers.

lvm2 2.03.16 (lib/locking/lvmlockd.c over libdaemon): a command whose lvm.conf says
`global/use_lvmlockd = 1` connects once, if lvmlockd's pid file exists, to `$LVM_LVMLOCKD_SOCKET`
(default /run/lvm/lvmlockd.socket), says hello (protocol "lvmlockd", version 1), then sends one
request per lock: a config text `request="lock_vg"` followed by `key ="string"` or `key =number`
lines, ended by a line `##`.  lvmlockd answers in the same text with `response = "OK"` and
`op_result` (0, or a negative errno or one of lvmlockd's own codes below).

The VG lock is asked for before the VG is read, so its lock type is not known yet ("none"); the
answer is kept (`vg_lock_state`) and judged once the VG is read: a local VG ignores it, a shared
VG whose lock failed is read with a warning (sh) or refused (ex), as `_access_vg_lock_type`.
A host without use_lvmlockd never opens the socket.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import sys
import time
from typing import Callable, Iterator

from lvcrypt.errors import LockError, UsageError
from lvcrypt.metadata.model import LogicalVolume, VolumeGroup
from lvcrypt.records import dataclass, field
from lvcrypt.store import lvm_config

SOCKET_ENV = "LVM_LVMLOCKD_SOCKET"
DEFAULT_SOCKET = "/run/lvm/lvmlockd.socket"
PID_FILE = "/run/lvmlockd.pid"  # lvm2's LVMLOCKD_PIDFILE: lvm2 does not connect when it is missing
LVMLOCK_LV = "lvmlock"  # sanlock's leases live in this hidden LV of the VG
PROTOCOL = "lvmlockd"
PROTOCOL_VERSION = 1
END = b"\n##\n"
MODES = ("sh", "ex", "un")

# lvmlockd-client.h's own result codes (answered negated), next to the errno values it uses.
ENOLS = 210  # lockspace not found: the VG's lockspace is not started (or the VG is local)
ESTARTING = 211
EARGS = 212
EHOSTID = 213
EMANAGER = 214  # the lock manager (sanlock, dlm) is not running
EPREPARE = 215
ELOCKD = 216
EVGKILLED = 217
ELOCKIO = 218
EREMOVED = 219
EDEVOPEN = 220
ELMERR = 221
EAGAIN = errno.EAGAIN  # the lock is held by another host

Field = tuple[str, "str | int"]

# Compiled at first use (re's cache): most commands ask no lvmlockd.
_REPLY_LINE = r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|(-?[0-9]+))\s*\Z'


def encode(request: str, fields: list[Field]) -> bytes:
    """One request as lvm2's daemon_request_make + daemon_request_extend write it, byte for byte."""
    lines = [f'request="{request}"']
    for key, value in fields:
        lines.append(f"{key} ={value}" if isinstance(value, int) else f'{key} ="{_escaped(value)}"')
    return ("\n".join(lines) + "\n").encode() + END


def _escaped(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


HELLO = b'request = "hello"\n' + END


@dataclass
class Reply:
    """An answer: `values` holds every key (strings and numbers), `result` is op_result."""

    values: dict[str, str | int]

    @property
    def result(self) -> int:
        value = self.values.get("op_result")
        if not isinstance(value, int):
            raise LockError("lvmlockd answered without op_result")
        return value

    @property
    def flags(self) -> str:
        value = self.values.get("result_flags", "")
        return value if isinstance(value, str) else ""

    def text(self, key: str) -> str | None:
        value = self.values.get(key)
        return value if isinstance(value, str) else None


def decode(data: bytes) -> Reply:
    """An answer's text (without its `##` line): flat `key = value` lines, as libdaemon writes them."""
    values: dict[str, str | int] = {}
    for line in data.decode(errors="replace").splitlines():
        match = re.match(_REPLY_LINE, line)
        if match:
            key, text, number = match.groups()
            values[key] = int(number) if number is not None else re.sub(r"\\(.)", r"\1", text)
    return Reply(values)


class Connection:
    """One socket to lvmlockd, greeted; `send` is one request and its answer."""

    def __init__(self, path: str):
        import socket  # only hosts with use_lvmlockd = 1 connect: every other command skips its import

        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.sock.connect(path)
            hello = self._exchange(HELLO)
        except OSError:
            self.sock.close()
            raise
        if hello.text("response") != "OK" or hello.text("protocol") != PROTOCOL \
                or hello.values.get("version") != PROTOCOL_VERSION:
            self.sock.close()
            raise OSError(errno.EPROTO, "lvmlockd spoke another protocol")

    def _exchange(self, request: bytes) -> Reply:
        self.sock.sendall(request)
        data = b""
        while not data.endswith(END):
            chunk = self.sock.recv(4096)
            if not chunk:
                raise OSError(errno.ECONNRESET, "lvmlockd closed the connection")
            data += chunk
        return decode(data[:-len(END)])

    def send(self, request: str, fields: list[Field]) -> Reply:
        reply = self._exchange(encode(request, fields))
        if reply.text("response") != "OK":
            raise LockError(f"lvmlockd refused the {request} request")
        return reply

    def close(self) -> None:
        self.sock.close()


def enabled() -> bool:
    """lvm.conf's global/use_lvmlockd (default 0): only then does any command talk to lvmlockd."""
    return lvm_config.flag("global/use_lvmlockd", False)


def socket_path() -> str:
    return os.environ.get(SOCKET_ENV) or DEFAULT_SOCKET


@dataclass
class _Session:
    """This process's link to lvmlockd, opened on the first lock as lvm2 opens it at command start."""

    tried: bool = False
    vg_locks: bool = True
    connection: Connection | None = None
    command: str | None = None
    vg_states: dict[str, "VgLockState"] = field(default_factory=dict)


_session = _Session()


def reset() -> None:
    """Forget the connection and the VG lock answers, and read lvm.conf again: the next lock
    starts a new session, as a new lvm2 command would (callers running several commands in one
    process)."""
    if _session.connection is not None:
        _session.connection.close()
    lvm_config.reread()
    _session.__init__()  # type: ignore[misc]


def set_command(name: str) -> None:
    """The command name sent in every lock request, for callers that are not the command line."""
    _session.command = name or "none"


def _command() -> str:
    """lvm2 sends its command's name (lvs, lvcreate ...): lvcrypt's is its first argument."""
    if _session.command is None:
        _session.command = next((arg for arg in sys.argv[1:] if not arg.startswith("-")), "none")
    return _session.command


def warn(message: str) -> None:
    """lvm2's log_warn: the message as is, indented (it carries its own WARNING: where lvm2's does)."""
    print(f"  {message}", file=sys.stderr)


def connection() -> Connection | None:
    """The connection, or None when lvmlockd is not used or not reachable (lvm2's warnings then)."""
    if not enabled():
        return None
    if not _session.tried:
        _session.tried = True
        if not os.path.exists(PID_FILE):
            warn("WARNING: lvmlockd process is not running.")
        else:
            try:
                _session.connection = Connection(socket_path())
            except OSError:
                warn("WARNING: lvmlockd connect failed.")
    return _session.connection


def _request(name: str, fields: list[Field]) -> Reply | None:
    link = connection()
    if link is None:
        return None
    try:
        return link.send(name, fields)
    except (OSError, LockError):
        return None


def _lock_fields(mode: str, opts: str | None = None) -> list[Field]:
    return [("cmd", _command()), ("pid", os.getpid()), ("mode", mode), ("opts", opts or "none")]


@dataclass
class VgLockState:
    """What lock_vg answered: `failed` when there is no lock (no lvmlockd, no lockspace, held elsewhere)."""

    mode: str
    result: int | None  # None: no answer (lvmlockd not used, not running)

    @property
    def failed(self) -> bool:
        return self.result != 0


def _retries() -> int:
    value = lvm_config.setting("global/lvmlockd_lock_retries", 3)
    return value if isinstance(value, int) else 3


def lock_gl_create(lock_type: str) -> None:
    """vgcreate's global lock, lvm2's lockd_global_create: ex, with the new VG's lock type.  The first
    sanlock VG has no global lock to take (lvmlockd answers -ENOLS with no lockspace at all): it
    goes on and the new VG's lockspace holds the global lock from then on.  A local VG's global lock
    is asked for the same way (lock type "none") and refused alike; without use_lvmlockd, nothing.

    Like lvm2 2.03.16 this asks before the devices are scanned, so sanlock VGs on them whose
    lockspace is not started do not stop "Enabling sanlock global lock" (lvm2's refusal for that
    case looks at a device cache still empty at this point)."""
    if not enabled():
        return
    fields = [*_lock_fields("ex"), ("vg_lock_type", lock_type)]
    reply = _request("lock_gl", fields)
    retries = 0
    while reply is not None and reply.result == -EAGAIN and retries < _retries():
        warn("Retrying ex global lock")
        time.sleep(1)
        retries += 1
        reply = _request("lock_gl", fields)
    if reply is None:
        raise LockError("Global lock failed: check that lvmlockd is running.")
    result = reply.result
    if result == -ENOLS:
        if "NO_GL_LS" in reply.flags and "NO_LOCKSPACES" in reply.flags and lock_type == "sanlock":
            print("  Enabling sanlock global lock")
            return
        raise LockError("Global lock failed: check that VG holding global lock exists and is started."
                        if lock_type == "sanlock" else "Global lock failed: check that global lockspace is started.")
    if result < 0:
        reasons = {-ESTARTING: "Global lock failed: lockspace is starting.",
                   -EAGAIN: "Global lock failed: held by other host.",
                   -errno.EPROTONOSUPPORT: f"VG create failed: lock manager {lock_type} is not supported by lvmlockd."}
        raise LockError(reasons.get(result, f"Global lock failed: error {result}"))


def unlock_gl() -> None:
    """vgcreate gives the global lock back once the new VG's lockspace is starting (lvm2's lock_global un)."""
    _request("lock_gl", [*_lock_fields("un"), ("vg_lock_type", "none")])


# lvm2's LOCK_TYPE_* numbers, which running_lm answers as its op_result.
_RUNNING_LOCK_TYPES = {2: "dlm", 3: "sanlock"}


def running_lock_type() -> str:
    """`vgcreate --shared` without --lock-type: the lock manager lvmlockd finds running (lvm2's
    lockd_running_lock_type); a usage error when there is none or more than one, as lvm2's."""
    reply = _request("running_lm", [("pid", os.getpid())])
    result = None if reply is None else reply.result
    if result is not None and result in _RUNNING_LOCK_TYPES:
        return _RUNNING_LOCK_TYPES[result]
    if result == -errno.EXFULL:
        raise UsageError("Found multiple lock managers, select one with --lock-type.")
    raise UsageError("Failed to detect a running lock manager to select lock type.")


def init_vg(vg_name: str, lock_type: str) -> str:
    """A new shared VG's lockspace made by lvmlockd (lvm2's _init_vg_sanlock / _init_vg_dlm): for
    sanlock it writes the leases into the VG's lvmlock LV, which must be active here; returns the
    VG's lock_args as lvmlockd answers them ("1.0.0:lvmlock", dlm: "1.0.0:<cluster>")."""
    fields: list[Field] = [("pid", os.getpid()), ("vg_name", vg_name), ("vg_lock_type", lock_type)]
    if lock_type == "sanlock":
        fields += [("vg_lock_args", LVMLOCK_LV), ("opts", "none")]
    reply = _request("init_vg", fields)
    result = -ELOCKD if reply is None else reply.result
    if result < 0:
        raise LockError(f"VG {vg_name} init failed: {_init_reason(vg_name, lock_type, result)}")
    args = reply.text("vg_lock_args") if reply is not None else None
    if not args:
        raise LockError(f"VG {vg_name} init failed: lock_args not returned")
    return args


def _init_reason(vg_name: str, lock_type: str, result: int) -> str:
    reasons = {-ELOCKD: "lvmlockd not available", -EARGS: f"invalid parameters for {lock_type}",
               -EMANAGER: f"lock manager {lock_type} is not running",
               -errno.EPROTONOSUPPORT: f"lock manager {lock_type} is not supported by lvmlockd",
               -errno.EEXIST: "a lockspace with the same name exists"}
    if lock_type == "sanlock":
        reasons[-EDEVOPEN] = f"sanlock cannot open device /dev/mapper/{vg_name}-{LVMLOCK_LV}"
        reasons[-errno.EMSGSIZE] = "no disk space for leases"
    return reasons.get(result, str(result))


def lock_gl(mode: str) -> int | None:
    """The global lock (vgcreate, vgremove, listing every VG), lvm2's lockd_global; None without lvmlockd.

    A failed ex request refuses the command, unless no lockspace holds a global lock yet (the first
    shared VG is being created); a failed sh request reads on with a warning."""
    reply = _request("lock_gl", [*_lock_fields(mode), ("vg_lock_type", "none")])
    if reply is None:
        return None
    result = reply.result
    if result == 0 or (result == -ENOLS and ("NO_GL_LS" in reply.flags or "NO_LOCKSPACES" in reply.flags)):
        return result
    reason = _gl_reason(result)
    if mode == "ex":
        raise LockError(f"Global lock failed: {reason}")
    warn(f"Skipping global lock: {reason}")
    return result


def _gl_reason(result: int) -> str:
    reasons = {-EAGAIN: "held by other host.", -ENOLS: "lockspace is not started.",
               -ESTARTING: "lockspace is starting.", -EMANAGER: "lock manager is not running.",
               -EVGKILLED: "storage failed for sanlock leases", -ELOCKIO: "storage errors for sanlock leases"}
    return reasons.get(result, f"error {result}")


@contextlib.contextmanager
def without_vg_locks() -> Iterator[None]:
    """lvm2's lockd_vg_disable: VGs read without asking lvmlockd (vgchange --lock-start, whose
    lockspace is not there yet)."""
    _session.vg_locks = False
    try:
        yield
    finally:
        _session.vg_locks = True


def lock_vg(name: str, mode: str) -> VgLockState:
    """lvm2's lockd_vg before reading: -EAGAIN is retried (global/lvmlockd_lock_retries, 1 s apart);
    an ex lock held elsewhere, a lockspace starting or failing refuses at once, sh reads on with a
    warning; -ENOLS (no lockspace: a local VG answers that too) is remembered for `access_problem`,
    which judges it once the VG's type is known."""
    if not _session.vg_locks:
        return VgLockState(mode, 0)
    if mode == "un":
        state = _session.vg_states.pop(name, None)
        if state is not None and not state.failed:
            _request("lock_vg", [*_lock_fields("un"), ("vg_name", name), ("vg_lock_type", "none"),
                                 ("vg_lock_args", "none")])
        return VgLockState("un", 0)
    fields = [*_lock_fields(mode), ("vg_name", name), ("vg_lock_type", "none"), ("vg_lock_args", "none")]
    reply = _request("lock_vg", fields)
    retries = 0
    while reply is not None and reply.result == -EAGAIN and retries < _retries():
        warn(f"Retrying {mode} lock on VG {name}")
        time.sleep(1)
        retries += 1
        reply = _request("lock_vg", fields)
    state = VgLockState(mode, None if reply is None else reply.result)
    _session.vg_states[name] = state
    reason = _vg_reason(state.result) if state.result else None
    if reason and mode == "ex":
        del _session.vg_states[name]
        raise LockError(f"VG {name} lock failed: {reason}")
    if reason:
        warn(f"VG {name} lock skipped: {reason}")
    return state


def _vg_reason(result: int) -> str | None:
    """Why lock_vg failed, in lvm2's words (lockd_vg); none for -ENOLS, which a local VG answers too."""
    if result == -ENOLS:
        return None
    reasons = {-EREMOVED: "removed", -ESTARTING: "lock start in progress",
               -EVGKILLED: "storage failed for sanlock leases", -ELOCKIO: "storage errors for sanlock leases",
               -EAGAIN: "held by other host."}
    return reasons.get(result, f"error {result}")


def vg_lock_state(name: str) -> VgLockState | None:
    return _session.vg_states.get(name)


def access_problem(name: str, lock_type: str) -> str | None:
    """For a shared VG read under lock_vg: lvm2's refusal when its ex lock failed; a failed sh lock
    only warns (the VG is read without a lock).  None: go on."""
    state = vg_lock_state(name)
    if state is None or not state.failed:
        return None
    if state.mode == "ex":
        return f"Cannot access VG {name} due to failed lock."
    warn(f"Reading VG {name} without a lock.")
    return None


@dataclass(frozen=True)
class LvTarget:
    """The VG and LV facts lock_lv, init_lv and free_lv carry."""

    vg_name: str
    vg_lock_type: str
    vg_lock_args: str
    lv_name: str
    lv_uuid: str
    lv_lock_args: str | None


def _lv_fields(target: LvTarget) -> list[Field]:
    return [("vg_name", target.vg_name), ("lv_name", target.lv_name), ("lv_uuid", target.lv_uuid),
            ("vg_lock_type", target.vg_lock_type), ("vg_lock_args", target.vg_lock_args)]


def lock_lv(target: LvTarget, mode: str, persistent: bool = True) -> None:
    """An LV's lock for activation (ex for -aey, sh for -asy, un for -an), lvm2's lockd_lv: refusals
    carry lvm2's messages; unlocking an LV that was not locked is fine."""
    if connection() is None:
        raise LockError(f"Cannot access VG {target.vg_name} due to failed lock.")
    fields = [*_lock_fields(mode, "persistent" if persistent else None), *_lv_fields(target),
              ("lv_lock_args", target.lv_lock_args or "none")]
    reply = _request("lock_lv", fields)
    where = f"{target.vg_name}/{target.lv_name}"
    if reply is None:
        raise LockError(f"Locking failed for LV {where}")
    result = reply.result
    if result == 0 or result == -errno.EALREADY or (result == -errno.ENOENT and mode == "un"):
        return
    raise LockError(lv_failure(result, where))


def lv_failure(result: int, where: str) -> str:
    """lvm2's message for a failed lock_lv answer."""
    if result == -EAGAIN:
        return f"LV locked by other host: {where}"
    if result == -errno.EEXIST:
        return f"LV is already locked with incompatible mode: {where}"
    if result == -ENOLS:
        return f"LV {where} lock failed: lockspace is inactive"
    if result in (-EVGKILLED, -ELOCKIO):
        return f"LV {where} lock failed: storage {'errors' if result == -ELOCKIO else 'failed'} for sanlock leases"
    return f"LV {where} lock failed: error {result}"


def init_lv(target: LvTarget) -> str:
    """A new LV's lock (lvcreate): sanlock first looks for a free lease, then answers its lv_lock_args;
    dlm needs no lease and lvm2 writes "dlm"."""
    if target.vg_lock_type == "dlm":
        return "dlm"
    where = f"{target.vg_name}/{target.lv_name}"
    if _request("find_free_lock", [("pid", os.getpid()), ("vg_name", target.vg_name)]) is None:
        raise LockError("Cannot allocate lock for new LV.")
    reply = _request("init_lv", [("pid", os.getpid()), *_lv_fields(target)])
    if reply is None:
        raise LockError("Cannot allocate lock for new LV.")
    if reply.result == -errno.EEXIST:
        raise LockError(f"Lock already exists for LV {where}")
    if reply.result == -errno.EMSGSIZE:
        raise LockError(f"No sanlock space for lock for LV {where}")
    args = reply.text("lv_lock_args")
    if reply.result or not args:
        raise LockError("Cannot allocate lock for new LV.")
    return args


def free_lv(target: LvTarget) -> None:
    """A removed LV's lease back to the VG's lockspace (lvremove)."""
    if target.vg_lock_type == "dlm":
        return
    reply = _request("free_lv", [("pid", os.getpid()), *_lv_fields(target),
                                 ("lv_lock_args", target.lv_lock_args or "none")])
    if reply is None or reply.result:
        raise LockError(f"Failed to free lock for LV {target.vg_name}/{target.lv_name}")


def vg_update(vg_name: str, seqno: int) -> None:
    """After a shared VG's metadata was written: lvmlockd tells other hosts (through the VG lock's
    lease) that their copy is older than `seqno`."""
    _request("vg_update", [("pid", os.getpid()), ("vg_name", vg_name), ("version", seqno)])


def start_vg(vg_name: str, lock_type: str, lock_args: str, vg_uuid: str, seqno: int, host_id: int,
             start_init: bool = False) -> int:
    """vgchange --lock-start: join the VG's lockspace (sanlock may take 20 s to 3 min: start_wait);
    `start_init` for the VG vgcreate just made."""
    reply = _request("start_vg", [("pid", os.getpid()), ("vg_name", vg_name), ("vg_lock_type", lock_type),
                                  ("vg_lock_args", lock_args), ("vg_uuid", vg_uuid), ("version", seqno),
                                  ("host_id", host_id), ("opts", "start_init" if start_init else "none")])
    return -ELOCKD if reply is None else reply.result


def start_wait() -> int:
    reply = _request("start_wait", [("pid", os.getpid())])
    return -ELOCKD if reply is None else reply.result


def stop_vg(vg_name: str) -> int:
    reply = _request("stop_vg", [("pid", os.getpid()), ("vg_name", vg_name)])
    return -ELOCKD if reply is None else reply.result


@dataclass(frozen=True)
class LvSnapshot:
    """What an LV was when the transaction read the VG: enough to see it created, removed or resized."""

    name: str
    extent_count: int
    lock_args: str | None


def needs_lock(lv: LogicalVolume) -> bool:
    """lvm2's lockd_lv_uses_lock, for the LVs lvcrypt makes: visible ones; hidden sub-LVs and the
    lvmlock LV itself ride on their top LV or the VG."""
    return lv.visible and lv.name != LVMLOCK_LV


def snapshot(vg: VolumeGroup) -> dict[str, LvSnapshot]:
    return {lv.id: LvSnapshot(lv.name, lv.extent_count, lv.lock_args) for lv in vg.lvs.values() if needs_lock(lv)}


def target(vg: VolumeGroup, lv_id: str, name: str, lock_args: str | None) -> LvTarget:
    return LvTarget(vg.name, vg.lock_type or "none", vg.lock_args or "none", name, lv_id, lock_args)


def before_commit(vg: VolumeGroup, before: dict[str, LvSnapshot]) -> list[Callable[[], None]]:
    """The LV locks lvm2 takes around writing a shared VG, in lvm2's order; returns what follows the
    write.  A new LV gets its lease (init_lv, lock_args written with it) and, not being activated,
    its persistent lock released after; a removed LV is locked ex (refused if active on any host)
    and released, its lease freed after the write; a resized one is locked ex for the command only;
    every write ends with vg_update so other hosts reread the VG."""
    after: list[Callable[[], None]] = []
    released: list[Callable[[], None]] = []
    now = {lv.id: lv for lv in vg.lvs.values() if needs_lock(lv)}
    for lv_id, lv in now.items():
        if lv_id not in before:
            lv.lock_args = init_lv(target(vg, lv_id, lv.name, None))
            new = target(vg, lv_id, lv.name, lv.lock_args)
            released.append(lambda new=new: lock_lv(new, "un"))  # type: ignore[misc]
        elif before[lv_id].extent_count != lv.extent_count:
            lock_lv(target(vg, lv_id, lv.name, lv.lock_args), "ex", persistent=False)
    for lv_id, old in before.items():
        if lv_id not in now:
            gone = target(vg, lv_id, old.name, old.lock_args)
            lock_lv(gone, "ex")
            lock_lv(gone, "un")
            after.append(lambda gone=gone: free_lv(gone))  # type: ignore[misc]
    after.append(lambda: vg_update(vg.name, vg.seqno))
    return after + released
