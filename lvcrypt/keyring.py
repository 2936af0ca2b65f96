"""The kernel keyring through libkeyutils (add_key, request_key, keyctl_*) with ctypes.

The kernel backend hands volume keys to dm-crypt as `logon` keys referenced
by description, and cryptsetup's keyring options (--link-vk-to-keyring,
--volume-key-keyring) name keys and keyrings in their own spellings; both
live here.  The calls go through libkeyutils (Debian's libkeyutils1, which
keyctl(1) itself uses) rather than raw syscalls, whose numbers differ on
every architecture Debian ships: the library knows them on each.

Payloads go in from bytes or bytearrays and come out in bytearrays that the
caller wipes; they never appear in messages or reprs.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re

from lvcrypt.errors import KeyringError
from lvcrypt.records import dataclass

# The soname of Debian's libkeyutils1 (keyutils' library) on every architecture.
LIBRARY = "libkeyutils.so.1"

# Special keyring ids (linux/keyctl.h) and their keyctl(1) spellings.
KEY_SPEC_THREAD_KEYRING = -1
KEY_SPEC_PROCESS_KEYRING = -2
KEY_SPEC_SESSION_KEYRING = -3
KEY_SPEC_USER_KEYRING = -4
KEY_SPEC_USER_SESSION_KEYRING = -5
KEY_SPEC_GROUP_KEYRING = -6
SPECIAL_KEYRINGS = {"@t": KEY_SPEC_THREAD_KEYRING, "@p": KEY_SPEC_PROCESS_KEYRING, "@s": KEY_SPEC_SESSION_KEYRING,
                    "@u": KEY_SPEC_USER_KEYRING, "@us": KEY_SPEC_USER_SESSION_KEYRING,
                    "@g": KEY_SPEC_GROUP_KEYRING}

KEY_TYPES = ("user", "logon")
MAX_DESCRIPTION = 4095  # the kernel's limit on a key description (PAGE_SIZE - 1)


@dataclass(frozen=True)
class KeySpec:
    """A key named the way cryptsetup names it: `%TYPE:DESCRIPTION` (type user if omitted)."""

    type: str
    description: str

    def __str__(self) -> str:
        return f"%{self.type}:{self.description}"


@dataclass(frozen=True)
class KeyringSpec:
    """A keyring: a special one (@s...), a serial number, or a keyring found by name (%:NAME)."""

    special: int | None = None
    serial: int | None = None
    name: str | None = None


@dataclass(frozen=True)
class KeyInfo:
    """KEYCTL_DESCRIBE's answer: `type;uid;gid;perm;description`."""

    serial: int
    type: str
    uid: int
    gid: int
    perm: int
    description: str


def parse_key_spec(text: str) -> KeySpec:
    """`%user:vk1`, `%logon:svc:vk1` or a bare `vk1` (user), as --volume-key-keyring takes it.

    A logon description needs a `service:` prefix (the kernel refuses others),
    so that is checked here, where the message can name the option's value.
    """
    key_type, description = "user", text
    match = re.fullmatch(r"%([a-z]*):(.*)", text, re.DOTALL)
    if match:
        key_type, description = match.group(1) or "user", match.group(2)
    if key_type not in KEY_TYPES:
        raise KeyringError(f"key type '{key_type}' is not supported (use %user: or %logon:)")
    if not description or len(description.encode()) > MAX_DESCRIPTION or "\0" in description:
        raise KeyringError("key description must be 1 to 4095 bytes without NUL")
    if key_type == "logon" and (":" not in description or description.startswith(":")):
        raise KeyringError("a logon key description needs a 'service:' prefix, e.g. %logon:cryptsetup:vk1")
    return KeySpec(key_type, description)


def parse_keyring_spec(text: str) -> KeyringSpec:
    """`@s`, `@u`, `@us`, `@p`, `@t`, `@g`, a serial number, or `%:NAME` / `%keyring:NAME`."""
    if text in SPECIAL_KEYRINGS:
        return KeyringSpec(special=SPECIAL_KEYRINGS[text])
    if re.fullmatch(r"[0-9]+", text):
        return KeyringSpec(serial=int(text))
    match = re.fullmatch(r"%(?:keyring)?:(.+)", text, re.DOTALL)
    if match and "\0" not in match.group(1):
        return KeyringSpec(name=match.group(1))
    raise KeyringError(f"'{text}' is not a keyring (use @s, @u, @us, @p, @t, a key id or %:NAME)")


def parse_link_spec(text: str) -> tuple[KeyringSpec, KeySpec]:
    """cryptsetup's `--link-vk-to-keyring KEYRING::KEY`, e.g. `@s::%user:vk1`."""
    keyring, separator, key = text.partition("::")
    if not separator:
        raise KeyringError(f"'{text}' is not KEYRING::KEY (e.g. @s::%user:vk1)")
    return parse_keyring_spec(keyring), parse_key_spec(key)


_SERIAL = ctypes.c_int32  # key_serial_t
# The libkeyutils functions used here (keyutils.h): name -> (return type, argument types).
_PROTOTYPES: dict[str, tuple[type, list[type]]] = {
    "add_key": (_SERIAL, [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t, _SERIAL]),
    "request_key": (_SERIAL, [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, _SERIAL]),
    "keyctl_get_keyring_ID": (_SERIAL, [_SERIAL, ctypes.c_int]),
    "keyctl_join_session_keyring": (_SERIAL, [ctypes.c_char_p]),
    "keyctl_revoke": (ctypes.c_long, [_SERIAL]),
    "keyctl_describe": (ctypes.c_long, [_SERIAL, ctypes.c_void_p, ctypes.c_size_t]),
    "keyctl_clear": (ctypes.c_long, [_SERIAL]),
    "keyctl_link": (ctypes.c_long, [_SERIAL, _SERIAL]),
    "keyctl_unlink": (ctypes.c_long, [_SERIAL, _SERIAL]),
    "keyctl_search": (ctypes.c_long, [_SERIAL, ctypes.c_char_p, ctypes.c_char_p, _SERIAL]),
    "keyctl_read": (ctypes.c_long, [_SERIAL, ctypes.c_void_p, ctypes.c_size_t]),
    "keyctl_set_timeout": (ctypes.c_long, [_SERIAL, ctypes.c_uint]),
    "keyctl_invalidate": (ctypes.c_long, [_SERIAL]),
}


class _Library:
    """libkeyutils with its prototypes declared, loaded once per process."""

    def __init__(self) -> None:
        try:
            self.library = ctypes.CDLL(LIBRARY, use_errno=True)
        except OSError:
            raise KeyringError(f"kernel keyring: {LIBRARY} is missing (install Debian's libkeyutils1)") from None
        for name, (restype, argtypes) in _PROTOTYPES.items():
            function = getattr(self.library, name)
            function.restype, function.argtypes = restype, argtypes

    def call(self, what: str, function: str, *args: object) -> int:
        """One libkeyutils call; a negative result raises _OsError with its errno."""
        result = getattr(self.library, function)(*args)
        if result < 0:
            raise _OsError(ctypes.get_errno(), what)
        return int(result)


class _OsError(Exception):
    """An errno from a keyring call, turned into a KeyringError by the public functions."""

    def __init__(self, code: int, what: str):
        super().__init__(code, what)
        self.code = code
        self.what = what

    def keyring_error(self) -> KeyringError:
        return KeyringError(f"kernel keyring: {self.what}: {os.strerror(self.code)}")


_library: _Library | None = None


def _lib() -> _Library:
    global _library
    if _library is None:
        _library = _Library()
    return _library


def _keyctl(what: str, function: str, *args: object) -> int:
    try:
        return _lib().call(what, function, *args)
    except _OsError as error:
        raise error.keyring_error() from None


def _payload_pointer(payload: bytes | bytearray) -> ctypes.c_char_p | ctypes.Array[ctypes.c_char]:
    """A pointer into the caller's own buffer: the payload is never copied on the Python side."""
    if isinstance(payload, bytearray):
        return (ctypes.c_char * len(payload)).from_buffer(payload) if payload else ctypes.c_char_p(b"")
    return ctypes.c_char_p(bytes(payload))


def resolve_keyring(keyring: str | int | KeyringSpec, create: bool = False) -> int:
    """The serial number of a keyring given in any accepted spelling (special ids resolved)."""
    if isinstance(keyring, KeyringSpec):
        spec = keyring
    elif isinstance(keyring, int):
        spec = KeyringSpec(special=keyring) if keyring < 0 else KeyringSpec(serial=keyring)
    else:
        spec = parse_keyring_spec(keyring)
    if spec.serial is not None:
        return spec.serial
    if spec.name is not None:
        found = request_key("keyring", spec.name)
        if found is None:
            raise KeyringError(f"no keyring named '{spec.name}' is reachable from this process")
        return found
    assert spec.special is not None
    return _keyctl("keyring id", "keyctl_get_keyring_ID", spec.special, 1 if create else 0)


def _ring_id(keyring: str | int | KeyringSpec) -> int:
    """The id to hand the kernel: a special keyring as its special id (-4 for @u), others as their serial.

    The kernel treats a keyring named by its special id as possessed by the
    caller, and keys found through it with the possessor's permissions (as
    keyctl(1) does).  Named by its serial instead, @u is possessed only when
    this session's keyring links it: from any other session (a restarted
    kdump service, `keyctl session -`) a logon key in @u is then found but
    refused, "Permission denied", as its owner has only `view` on it.
    """
    if isinstance(keyring, int):
        return keyring
    spec = keyring if isinstance(keyring, KeyringSpec) else parse_keyring_spec(keyring)
    if spec.special is not None:
        return spec.special
    return resolve_keyring(spec)


def add_key(key_type: str, description: str, payload: bytes | bytearray, keyring: str | int = "@s") -> int:
    """Add (or update) a key in `keyring`; returns its serial number."""
    target = _ring_id(keyring)
    try:
        return _lib().call(f"add {key_type} key", "add_key", key_type.encode(), description.encode(),
                           _payload_pointer(payload), len(payload), target)
    except _OsError as error:
        raise error.keyring_error() from None


def add_key_spec(spec: KeySpec, payload: bytes | bytearray, keyring: str | int = "@s") -> int:
    return add_key(spec.type, spec.description, payload, keyring)


def search(keyring: str | int, key_type: str, description: str, destination: str | int = 0) -> int | None:
    """The serial of a key found in `keyring` (recursively), or None; optionally linked to `destination`."""
    source = _ring_id(keyring)
    dest = _ring_id(destination) if destination else 0
    try:
        return _lib().call("search", "keyctl_search", source, key_type.encode(), description.encode(), dest)
    except _OsError as error:
        if error.code in (errno.ENOKEY, errno.EKEYEXPIRED, errno.EKEYREVOKED):
            return None
        raise error.keyring_error() from None


def request_key(key_type: str, description: str, destination: str | int = 0) -> int | None:
    """A key found in this process's keyrings (thread, process, session), without an upcall; None if absent."""
    dest = resolve_keyring(destination) if destination else 0
    try:
        return _lib().call("request", "request_key", key_type.encode(), description.encode(), None, dest)
    except _OsError as error:
        if error.code in (errno.ENOKEY, errno.EKEYEXPIRED, errno.EKEYREVOKED):
            return None
        raise error.keyring_error() from None


def find_key(spec: KeySpec) -> int | None:
    """Where cryptsetup looks for --volume-key-keyring keys: the process's keyrings."""
    return request_key(spec.type, spec.description)


def read_key(serial: int) -> bytearray:
    """The payload of a user key, in a bytearray the caller wipes (logon keys cannot be read)."""
    size = 64
    while True:
        buffer = bytearray(size)
        pointer = (ctypes.c_char * size).from_buffer(buffer)
        try:
            length = _keyctl("read", "keyctl_read", serial, pointer, size)
        finally:
            del pointer
        if length <= size:
            del buffer[length:]
            return buffer
        buffer[:] = bytes(size)
        size = length


def describe(serial: int) -> KeyInfo:
    size = 256
    while True:
        buffer = ctypes.create_string_buffer(size)
        length = _keyctl("describe", "keyctl_describe", serial, buffer, size)
        if length <= size:
            fields = buffer.value.decode(errors="replace").split(";", 4)
            if len(fields) != 5:
                raise KeyringError(f"kernel keyring: unexpected description of key {serial}")
            key_type, uid, gid, perm, description = fields
            return KeyInfo(serial, key_type, int(uid), int(gid), int(perm, 16), description)
        size = length


def link(serial: int, keyring: str | int) -> None:
    _keyctl("link", "keyctl_link", serial, _ring_id(keyring))


def unlink(serial: int, keyring: str | int) -> None:
    _keyctl("unlink", "keyctl_unlink", serial, _ring_id(keyring))


def revoke(serial: int) -> None:
    _keyctl("revoke", "keyctl_revoke", serial)


def invalidate(serial: int) -> None:
    """Make the key unusable at once and have the kernel unlink it everywhere."""
    _keyctl("invalidate", "keyctl_invalidate", serial)


def clear(keyring: str | int) -> None:
    _keyctl("clear", "keyctl_clear", resolve_keyring(keyring))


def set_timeout(serial: int, seconds: int) -> None:
    _keyctl("set timeout", "keyctl_set_timeout", serial, seconds)


def join_session_keyring(name: str | None = None) -> int:
    """Join (or create) a session keyring; without a name, a new anonymous one."""
    return _keyctl("join session keyring", "keyctl_join_session_keyring",
                   name.encode() if name is not None else None)


def has_own_session_keyring() -> bool:
    """False when @s is only the user-session keyring the kernel falls back to.

    dm-crypt then cannot find `logon` keys added "to the session" (a process
    started without pam_keyinit, e.g. a bare guest or a service).
    """
    return resolve_keyring("@s") != resolve_keyring("@us")


def ensure_session_keyring() -> int:
    """The session keyring's serial, joining a new anonymous one if the process has none."""
    if not has_own_session_keyring():
        return join_session_keyring()
    return resolve_keyring("@s")


def link_volume_key(spec_text: str, payload: bytes | bytearray) -> int:
    """--link-vk-to-keyring KEYRING::KEY: add the volume key under KEY, linked into KEYRING."""
    keyring, key = parse_link_spec(spec_text)
    return add_key_spec(key, payload, resolve_keyring(keyring, create=True))
