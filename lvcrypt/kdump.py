"""Volume keys for the kdump kernel: the kernel's crash_dm_crypt_keys interface and the keys behind it.

A crash kernel cannot ask for a passphrase nor afford Argon2, so it reuses
the volume keys of the kernel that crashed (kernel/crash_dump_dm_crypt.c,
Linux 6.16+ with CONFIG_CRASH_DM_CRYPT):

- first kernel: configfs `crash_dm_crypt_keys/` holds one directory per key
  (made by mkdir) with a `description` attribute, and a read-only `count`.
  When the kdump kernel is loaded (kexec_file_load), the kernel looks each
  description up as a **logon** key through request_key from the loading
  process and copies the payloads into crash-reserved memory;
- kdump kernel: writing `yes` to `crash_dm_crypt_keys/restore` (configfs
  there too; the SPEC's sysfs spelling `kernel/crash_dm_crypt_keys/restore`
  is accepted as a fallback) adds each key back as a **user** key with the
  same description to the user keyring (@u) of the writer.

So lvcrypt registers `logon` keys named exactly as the kernel backend names
the keys it hands to dm-crypt (`lvcrypt:<LV uuid>`, `tables.key_description`),
linked into the user keyring @u: kdump scripts run kexec from their own
session, and the user keyring is what every session of the user reaches
(pam_keyinit links it into login sessions; processes without a session use
the user-session keyring, which links it).  In the kdump kernel the same
description names a `user` key, readable, which `--volume-key-keyring
%user:lvcrypt:<LV uuid>` takes.

Limits are the kernel's: at most 128 keys; a description of at most 128
bytes is accepted by configfs but copied into a 128-byte buffer with its NUL
(strscpy), so only 127 bytes survive: lvcrypt refuses more than 127.
"""

from __future__ import annotations

import struct
from pathlib import Path

from lvcrypt import keyring
from lvcrypt.errors import KdumpError, KeyringError
from lvcrypt.records import dataclass

SUBSYSTEM = "crash_dm_crypt_keys"
MAX_KEYS = 128
MAX_DESCRIPTION = 127
USER_KEYRING = "@u"
PREFIX = "lvcrypt:"
ENTRY_PREFIX = "lvcrypt-"


@dataclass(frozen=True)
class Entry:
    """One registered key: its configfs directory name and the key description it names."""

    id: str
    description: str


def entry_id(description: str) -> str:
    """A configfs directory name for a description (`lvcrypt:U[:store]` -> `lvcrypt-U[-store]`)."""
    return description.replace(":", "-")


def check_description(description: str) -> None:
    size = len(description.encode())
    if size > MAX_DESCRIPTION:
        raise KdumpError(f"key description '{description[:40]}...' has {size} bytes; the kernel keeps at most "
                         f"{MAX_DESCRIPTION} for kdump")


class CrashKeys:
    """The first kernel's `<configfs>/crash_dm_crypt_keys` directory."""

    def __init__(self, configfs_root: str = "/sys/kernel/config"):
        self.dir = Path(configfs_root) / SUBSYSTEM

    def check(self) -> None:
        if not self.dir.is_dir():
            raise KdumpError(f"{self.dir} does not exist: the kernel lacks crash dm-crypt key support "
                             "(CONFIG_CRASH_DM_CRYPT) or configfs is not mounted")

    def count(self) -> int:
        try:
            return int((self.dir / "count").read_text().strip())
        except (OSError, ValueError) as error:
            raise KdumpError(f"cannot read {self.dir / 'count'}: {_reason(error)}") from None

    def entries(self) -> list[Entry]:
        found = []
        for item in sorted(self.dir.iterdir()):
            if not item.is_dir():
                continue
            try:
                description = (item / "description").read_text().rstrip("\n")
            except OSError:
                description = ""
            found.append(Entry(item.name, "" if description == "(null)" else description))
        return found

    def add(self, entry: Entry) -> None:
        """mkdir + write `description`; the directory goes again if the kernel refuses the description."""
        path = self.dir / entry.id
        try:
            path.mkdir()
        except OSError as error:
            raise KdumpError(f"cannot create {path}: {_reason(error)}") from None
        try:
            with open(path / "description", "w") as attribute:
                attribute.write(entry.description + "\n")
        except OSError as error:
            self.remove(entry.id)
            raise KdumpError(f"{path / 'description'}: the kernel refused '{entry.description}': "
                             f"{_reason(error)}") from None

    def remove(self, entry_id: str) -> None:
        try:
            (self.dir / entry_id).rmdir()
        except FileNotFoundError:
            return
        except OSError as error:
            raise KdumpError(f"cannot remove {self.dir / entry_id}: {_reason(error)}") from None


def _reason(error: Exception) -> str:
    return (error.strerror if isinstance(error, OSError) and error.strerror else str(error)) or "error"


def check_room(current: int, adding: int) -> None:
    if current + adding > MAX_KEYS:
        raise KdumpError(f"kdump takes at most {MAX_KEYS} keys: {current} registered, {adding} more asked for")


# --- keys in the first kernel ---------------------------------------------------------------------


def registered_key(description: str) -> int | None:
    """The logon key the kernel will copy at kexec load: in the user keyring (or reachable from it)."""
    return keyring.search(USER_KEYRING, "logon", description)


def link_existing_key(description: str) -> int | None:
    """A logon key this process can reach (e.g. the session key of `lvchange -ay`), linked into @u."""
    serial = keyring.request_key("logon", description)
    if serial is not None:
        keyring.link(serial, USER_KEYRING)
    return serial


def add_logon_key(description: str, volume_key: bytes | bytearray) -> int:
    return keyring.add_key("logon", description, volume_key, USER_KEYRING)


def drop_user_keyring_link(description: str) -> None:
    """Unlink the logon key from @u (the kernel backend's own session link, if any, stays)."""
    serial = registered_key(description)
    if serial is None:
        return
    try:
        keyring.unlink(serial, USER_KEYRING)
    except KeyringError:
        pass  # reachable from @u only through a nested keyring: not ours to cut


# --- the kdump kernel -----------------------------------------------------------------------------


def restore_file(configfs_root: str, sysfs_root: str) -> Path:
    """Where this kernel takes `yes`: configfs (Linux's interface), else the SPEC's sysfs spelling."""
    for candidate in (Path(configfs_root) / SUBSYSTEM / "restore", Path(sysfs_root) / "kernel" / SUBSYSTEM / "restore"):
        if candidate.exists():
            return candidate
    raise KdumpError(f"no {SUBSYSTEM}/restore under {configfs_root} or {sysfs_root}/kernel: this is not a "
                     "kdump kernel with dm-crypt key support")


def trigger_restore(path: Path) -> None:
    try:
        with open(path, "w") as flag:
            flag.write("yes\n")
    except OSError as error:
        raise KdumpError(f"{path}: the kernel refused to restore the keys: {_reason(error)}") from None


def restored_keys() -> dict[str, int]:
    """description -> serial of each `user` key named `lvcrypt:...` in the user keyring (what restore made)."""
    ring = keyring.resolve_keyring(USER_KEYRING, create=True)
    members = keyring.read_key(ring)
    try:
        serials = [value for (value,) in struct.iter_unpack("=i", bytes(members))]
    finally:
        members[:] = bytes(len(members))
    found = {}
    for serial in serials:
        try:
            info = keyring.describe(serial)
        except KeyringError:
            continue  # gone meanwhile, or not ours to see
        if info.type == "user" and info.description.startswith(PREFIX):
            found[info.description] = serial
    return found


def lv_uuid_of(description: str) -> str:
    """`lvcrypt:<LV uuid>[:<keystore>]` -> the LV uuid."""
    return description[len(PREFIX):].split(":", 1)[0]


def unlink_restored(serial: int) -> None:
    """Keys should not outlive their use: once dm-crypt holds the key, the keyring copy goes."""
    keyring.invalidate(serial)


def dm_available() -> bool:
    """Whether the kernel backend can work here (a control node without the driver does not count)."""
    from lvcrypt.activate.dm_ioctl import DeviceMapper
    from lvcrypt.errors import LvcryptError

    try:
        DeviceMapper().close()
    except (LvcryptError, OSError):
        return False
    return True
