"""The few lvm.conf settings lvcrypt must share with lvm2 on the same machine.

lvm2 reads `$LVM_SYSTEM_DIR/lvm.conf` (default /etc/lvm) and merges
`lvmlocal.conf` over it, then a command's `--config` string over both; an
empty LVM_SYSTEM_DIR means no configuration file.  Only plain
`section { key = value }` settings are read (strings, numbers, lists of them):
enough for global/locking_dir and friends, and no lvm2 or parser import on the
path of every command.  The files are read leniently (what is not understood
is skipped, as a missing key); a `--config` string is the user's command line
and is parsed strictly, with lvm2's errors.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path

from lvcrypt.errors import UsageError

Setting = str | int | float | list[str | int | float]

# A run of blanks and comments is one match with an empty group, the rest a token each: lvm.conf is
# some 2,400 lines of mostly comments, and a Python step per comment line showed in every command's start-up.
_TOKEN = re.compile(r'(?:\s+|#[^\n]*)+|("(?:[^"\\]|\\.)*"|[{}\[\]=,]|[^\s{}\[\]=,"#]+)', re.S)


def config_dir() -> Path | None:
    configured = os.environ.get("LVM_SYSTEM_DIR")
    if configured is None:
        return Path("/etc/lvm")
    return Path(configured) if configured else None


def _tokens(text: str) -> list[str]:
    return [token for token in _TOKEN.findall(text) if token]


def _scalar(token: str) -> str | int | float:
    if token.startswith('"'):
        return re.sub(r"\\(.)", r"\1", token[1:-1])
    for kind in (int, float):
        try:
            return kind(token)
        except ValueError:
            continue
    return token


def _parse(tokens: list[str]) -> dict[str, Setting]:
    """Flatten `a { b = 1 }` into {"a/b": 1}; anything it does not understand is skipped, as a missing key."""
    settings: dict[str, Setting] = {}
    path: list[str] = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        following = tokens[index + 1] if index + 1 < len(tokens) else ""
        if token == "}":
            path = path[:-1]
            index += 1
        elif following == "{":
            path.append(token)
            settings.setdefault(_section_key(path), [])
            index += 2
        elif following == "=" and index + 2 < len(tokens):
            value_token = tokens[index + 2]
            key = "/".join([*path, token])
            if value_token == "[":
                end = tokens.index("]", index + 3) if "]" in tokens[index + 3:] else len(tokens)
                settings[key] = [_scalar(item) for item in tokens[index + 3:end] if item != ","]
                index = end + 1
            else:
                settings[key] = _scalar(value_token)
                index += 3
        else:
            index += 1
    return settings


class _Override:
    """A command line's `--config` settings, for the rest of the process's command (see `override`)."""

    settings: dict[str, Setting] = {}


def override(text: str | None) -> None:
    """Merge `--config TEXT` over the files for this command (None: the files alone again), or refuse
    it as lvm2 does (exit 3, before anything is read)."""
    _Override.settings = {} if text is None else parse_command_line(text)
    reread()


def parse_command_line(text: str) -> dict[str, Setting]:
    """`--config`'s text, with lvm2's refusals: a syntax error says where ("Parse error at byte N (line
    L): ..."), and nothing set at all is "Failed to set overridden configuration entries."."""
    tokens = [(match.start(), match.group(1)) for match in _TOKEN.finditer(text) if match.group(1)]
    if not tokens:
        raise UsageError("Failed to set overridden configuration entries.")
    parsed: dict[str, Setting] = {}
    index = 0

    def fail(reason: str) -> UsageError:
        at = tokens[index][0] if index < len(tokens) else len(text)
        return UsageError(f"Parse error at byte {at + 1} (line {text.count(chr(10), 0, at) + 1}): {reason}")

    def token() -> str | None:
        return tokens[index][1] if index < len(tokens) else None

    def scalar() -> str | int | float:
        nonlocal index
        found = token()
        if found is None or found in _PUNCTUATION:
            raise fail("expected a value")
        index += 1
        return _scalar(found)

    def value() -> Setting:
        nonlocal index
        if token() != "[":
            return scalar()
        index += 1
        items: list[str | int | float] = []
        while token() != "]":
            items.append(scalar())
            if token() == ",":
                index += 1
        index += 1
        return items

    def section(path: list[str], closed: bool) -> None:
        nonlocal index
        while (name := token()) != ("}" if closed else None):
            if name is None or name in _PUNCTUATION or name.startswith('"'):
                raise fail("unexpected token")
            index += 1
            if token() == "{":
                index += 1
                parsed.setdefault(_section_key([*path, name]), [])
                section([*path, name], True)
            elif token() == "=":
                index += 1
                parsed["/".join([*path, name])] = value()
            else:
                raise fail("unexpected token")
        index += 1

    section([], False)
    return parsed


_PUNCTUATION = frozenset("{}[]=,")


@lru_cache(maxsize=None)
def _read() -> tuple[dict[str, Setting], dict[str, Setting]]:
    """(the files' settings, with `--config`'s over them), read once per command (`reread`)."""
    directory = config_dir()
    files: dict[str, Setting] = {}
    for name in ("lvm.conf", "lvmlocal.conf") if directory is not None else ():
        try:
            files.update(_parse(_tokens((directory / name).read_text(errors="replace"))))
        except OSError:
            continue
    return files, {**files, **_Override.settings}


def file_settings() -> dict[str, Setting]:
    """lvm.conf with lvmlocal.conf merged over it (unreadable files count as empty, as lvm2's defaults);
    lvm2 takes the host's tags from these alone, never from `--config`."""
    return _read()[0]


def settings() -> dict[str, Setting]:
    """The files' settings with `--config`'s over them."""
    return _read()[1]


def reread() -> None:
    """Read the files again at the next lookup: a new command in the same process (tests, tools)."""
    _read.cache_clear()


def _section_key(path: list[str]) -> str:
    """A section is recorded as its path and a slash (no setting's key ends so): `tags { mytag {} }` defines
    the host tag `mytag` by the section alone."""
    return "/".join(path) + "/"


def sections(path: str, found: dict[str, Setting]) -> list[str]:
    """The names of the sections directly inside `path` in `found` (`tags` -> the host tags it defines)."""
    prefix = path + "/"
    names = (key[len(prefix):-1] for key in found if key.startswith(prefix) and key.endswith("/"))
    return [name for name in names if name and "/" not in name]


def setting(path: str, default: Setting) -> Setting:
    """The value of `section/key`, or lvm2's default when the file does not set it."""
    return settings().get(path, default)


def flag(path: str, default: bool) -> bool:
    value = setting(path, int(default))
    return bool(value) if isinstance(value, (int, float)) else default
