"""A stand-in lvmlockd on a socket of our own: it records every request byte for byte and answers
as the test says, so lvm2 (pointed at it by LVM_LVMLOCKD_SOCKET) and lvcrypt can be compared.

lvm2 only connects when lvmlockd's pid file (/run/lvmlockd.pid, compiled in) exists; `fake_lvmlockd`
creates it for the test when it is missing and removes what it created.  Tests using it share one
xdist group so that no two of them create and remove that file at once.
"""

from __future__ import annotations

import fcntl
import io
import os
import re
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import pytest

PID_FILE = Path("/run/lvmlockd.pid")
# How many stand-ins (in any xdist worker) rely on a PID_FILE one of them made; its lock orders them.
PID_USERS = Path("/run/lvcrypt-test-fake-lvmlockd.users")
END = b"\n##\n"
HELLO_REPLY = b'response = "OK"\nprotocol = "lvmlockd"\nversion = 1\n' + END
_LINE = re.compile(r'\s*(\w+)\s*=\s*(?:"([^"]*)"|(-?\d+))')

Answer = Callable[[dict[str, str], int], dict[str, str | int]]


def parse(raw: bytes) -> dict[str, str]:
    """A recorded request as key -> value text (numbers as their digits)."""
    out = {}
    for line in raw.decode().splitlines():
        match = _LINE.match(line)
        if match:
            out[match.group(1)] = match.group(2) if match.group(2) is not None else match.group(3)
    return out


def normalised(raw: bytes) -> bytes:
    """A request with its pid replaced, the one field two runs of the same command never share."""
    return re.sub(rb"\npid =-?[0-9]+\n", b"\npid =PID\n", raw)


def reply_text(values: dict[str, str | int]) -> bytes:
    lines = [f"{key} = {value}" if isinstance(value, int) else f'{key} = "{value}"' for key, value in values.items()]
    return ("\n".join(lines) + "\n").encode() + END


def granted(request: dict[str, str], counter: int) -> dict[str, str | int]:
    """Every lock granted; sanlock's init_lv hands out the next lease offset, 1 MiB apart."""
    answer: dict[str, str | int] = {"response": "OK", "op_result": 0, "lock_type": "sanlock",
                                    "result_flags": "none"}
    if request.get("request") == "init_lv":
        answer["lv_lock_args"] = f"1.0.0:{70254592 + counter * 1048576}"
    return answer


@dataclass
class FakeLvmlockd:
    path: Path
    answer: Answer = granted
    requests: list[bytes] = field(default_factory=list)
    sock: socket.socket | None = None
    acceptor: threading.Thread | None = None

    def start(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(self.path))
        self.sock.listen(16)
        self.acceptor = threading.Thread(target=self._accept, daemon=True)
        self.acceptor.start()

    def _accept(self) -> None:
        assert self.sock is not None
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        buffer = b""
        with client:
            while True:
                data = client.recv(4096)
                if not data:
                    return
                buffer += data
                while END in buffer:
                    raw, buffer = buffer.split(END, 1)
                    raw += END
                    request = parse(raw)
                    if request.get("request") == "hello":
                        client.sendall(HELLO_REPLY)
                        continue
                    self.requests.append(raw)
                    client.sendall(reply_text(self.answer(request, len(self.requests))))

    def take(self) -> list[bytes]:
        """The requests recorded since the last take, pids normalised."""
        taken = [normalised(raw) for raw in self.requests]
        self.requests.clear()
        return taken

    def stop(self) -> None:
        """Wake the accept thread (shutdown makes a listener's accept fail) and wait for it to end
        before the descriptor is closed: closed first, its number went to the next test's listener,
        where this daemon's thread, still on its way into accept(), took the next test's connections
        and answered them as this test had asked (seen under load, lvcrypt's requests "lost")."""
        if self.sock is None:
            return
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # not connected is fine: the shutdown only has to end a pending accept
        if self.acceptor is not None:
            self.acceptor.join()
        self.sock.close()


def _use_pid_file(step: int) -> bool:
    """lvm2 believes lvmlockd runs while PID_FILE exists. Stand-ins in several xdist workers share one
    file: the first makes it, the last removes it (a count kept under a lock), and a file a real
    lvmlockd made is never touched.  Returns whether the stand-ins own the file."""
    while True:
        with open(PID_USERS, "a+") as users:
            fcntl.flock(users, fcntl.LOCK_EX)
            try:
                if os.stat(PID_USERS).st_ino == os.fstat(users.fileno()).st_ino:
                    return _count_users(users, step)
            except FileNotFoundError:
                pass  # the last user removed it while this one waited: open it anew


def _count_users(users: "io.TextIOWrapper[str]", step: int) -> bool:
    """The count in `users` (locked by the caller) moved by `step`, PID_FILE made or removed with it."""
    users.seek(0)
    count = int(users.read().strip() or 0)
    if step > 0 and count == 0:
        if PID_FILE.exists():
            return False  # a real lvmlockd's, or one this count does not know: leave it alone
        PID_FILE.write_text(f"{os.getpid()}\n")
    count += step
    if count == 0:
        PID_FILE.unlink(missing_ok=True)
        os.unlink(PID_USERS)  # under the lock: a waiter sees another inode and opens the file anew
        return True
    users.seek(0)
    users.truncate()
    users.write(f"{count}\n")
    users.flush()
    return True


@pytest.fixture
def fake_lvmlockd(tmp_path: Path) -> Iterator[FakeLvmlockd]:
    """A recording lvmlockd, with LVM_LVMLOCKD_SOCKET and an lvm.conf (LVM_SYSTEM_DIR) using it,
    for lvm2 and lvcrypt alike."""
    config = tmp_path / "lvm-lockd"
    config.mkdir()
    (config / "lvm.conf").write_text("global {\n\tuse_lvmlockd = 1\n}\n")
    daemon = FakeLvmlockd(tmp_path / "lvmlockd.socket")
    daemon.start()
    made_here = _use_pid_file(+1)
    saved = {key: os.environ.get(key) for key in ("LVM_LVMLOCKD_SOCKET", "LVM_SYSTEM_DIR")}
    os.environ["LVM_LVMLOCKD_SOCKET"] = str(daemon.path)
    os.environ["LVM_SYSTEM_DIR"] = str(config)
    try:
        yield daemon
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        daemon.stop()
        if made_here:
            _use_pid_file(-1)
