"""The one exception family of lvcrypt.

Every failure a user can cause (bad input, bad arguments, missing devices, a
wrong passphrase) is an `LvcryptError`; the CLI maps the class to an exit
status in one place (`lvcrypt.cli.main`).  Messages are one line and must
never contain key material or passphrases.
"""

from __future__ import annotations


class LvcryptError(Exception):
    """A failure of a command: exit status 5."""

    exit_status = 5


class UsageError(LvcryptError):
    """The command line itself is wrong: exit status 3, like lvm2's EINVALID_CMD_LINE."""

    exit_status = 3


class MetadataError(LvcryptError):
    """Metadata text that cannot be parsed or does not validate.

    `source` and `line` locate the problem so the message reads like a
    compiler's: ``vg0.txt:12: segment1: extent_count must be > 0``.
    """

    def __init__(self, problem: str, source: str | None = None, line: int | None = None):
        self.problem = problem
        self.source = source
        self.line = line
        super().__init__(self._format())

    def _format(self) -> str:
        where = self.source or "<metadata>"
        if self.line is not None:
            where = f"{where}:{self.line}"
        return f"{where}: {self.problem}"

    def at(self, source: str) -> "MetadataError":
        """The same error, attributed to a named file (parsers see only text)."""
        return type(self)(self.problem, source, self.line)


class DeviceError(LvcryptError):
    """A device or image file is missing, unreadable or not what was expected."""


class ConfigError(LvcryptError):
    """lvm.conf sets something lvcrypt must apply and cannot read (a malformed device filter)."""


class FormatError(LvcryptError):
    """Binary on-disk data (label, PV header, mda, LUKS header) is malformed."""


class HandlerError(LvcryptError):
    """A key handler failed: unsupported cipher, missing handler, bad keystore."""


class NeedsRepair(HandlerError):
    """One copy of a keystore header is damaged or stale: changes wait for `lvcrypt keystore repair`.

    The message names the command; `at` fills in the keystore as the user
    named it (handlers only see an area).
    """

    def __init__(self, problem: str, target: str | None = None):
        self.problem = problem
        self.target = target
        command = "lvcrypt keystore repair" + (f" {target}" if target else "")
        super().__init__(f"{problem}; run '{command}' before changing this keystore")

    def at(self, target: str) -> "NeedsRepair":
        return type(self)(self.problem, target)


class WrongPassphrase(HandlerError):
    """No keyslot opened with the given passphrase or key file."""


class LockError(LvcryptError):
    """A VG lock could not be taken."""


class KeyringError(LvcryptError):
    """The kernel keyring refused an operation, or a keyring/key spelling is malformed."""


class KdumpError(LvcryptError):
    """The kernel's crash_dm_crypt_keys interface is missing or refused, or a kdump limit is exceeded."""
