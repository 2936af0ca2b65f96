"""The few lvm.conf settings lvcrypt must share with lvm2 on the same machine.

lvm2 reads `$LVM_SYSTEM_DIR/lvm.conf` (default /etc/lvm) and merges
`lvmlocal.conf` over it; an empty LVM_SYSTEM_DIR means no configuration file.
Only plain `section { key = value }` settings are read (strings, numbers,
lists of them): enough for global/locking_dir and friends, and no lvm2 or
parser import on the path of every command.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path

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


@lru_cache(maxsize=None)
def settings() -> dict[str, Setting]:
    """lvm.conf with lvmlocal.conf merged over it (unreadable files count as empty, as lvm2's defaults)."""
    directory = config_dir()
    merged: dict[str, Setting] = {}
    if directory is None:
        return merged
    for name in ("lvm.conf", "lvmlocal.conf"):
        try:
            merged.update(_parse(_tokens((directory / name).read_text(errors="replace"))))
        except OSError:
            continue
    return merged


def setting(path: str, default: Setting) -> Setting:
    """The value of `section/key`, or lvm2's default when the file does not set it."""
    return settings().get(path, default)


def flag(path: str, default: bool) -> bool:
    value = setting(path, int(default))
    return bool(value) if isinstance(value, (int, float)) else default
