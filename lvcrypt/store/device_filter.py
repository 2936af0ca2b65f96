"""lvm.conf's `devices/global_filter` and `devices/filter`: the devices an administrator hid from LVM.

A script or an administrator hides a disk from lvm2 with these regex lists (a
guest's disk image, a multipath component, a disk another host owns); lvcrypt
must not look at, show or write what lvm2 would not.  lvm2's rules: each
pattern is `a` (accept) or `r` (reject) followed by a regex between two
delimiters (any character; `(`, `[` and `{` close with their pair); for each
path name of a device the first pattern that matches decides; a device is
accepted if any of its names is accepted, rejected if its names were only
rejected, and accepted when no pattern matched any name.  The global filter and
the filter must both accept.  As in lvm2 2.03, `--devices` names devices
exactly and bypasses both (a malformed pattern still fails the command).
"""

from __future__ import annotations

import os
import re

from lvcrypt.errors import ConfigError, DeviceError
from lvcrypt.records import dataclass
from lvcrypt.store import lvm_config

_CLOSING = {"(": ")", "[": "]", "{": "}"}
# lvm2's order: the global filter is applied first, and its errors are named "global".
_SETTINGS = (("devices/global_filter", "global regex device filter"), ("devices/filter", "regex device filter"))


@dataclass(frozen=True)
class Pattern:
    accept: bool
    regex: re.Pattern[str]


def parse_pattern(text: str, what: str) -> Pattern:
    """One `a|regex|` item; a malformed one is lvm2's refusal, not an item skipped (that would show more)."""
    def invalid(reason: str) -> ConfigError:
        return ConfigError(f'Invalid filter pattern "{text}" ({reason}): failed to create {what}.')

    if not text or text[0] not in "ar":
        raise invalid("pattern must begin with 'a' or 'r'")
    if len(text) < 3:
        raise invalid("invalid separator at end of regex")
    closing = _CLOSING.get(text[1], text[1])
    if text[-1] != closing:
        raise invalid("invalid separator at end of regex")
    try:
        regex = re.compile(text[2:-1])
    except re.error as error:
        raise invalid(f"parse error in regex: {error}") from None
    return Pattern(text[0] == "a", regex)


def parse_filter(value: object, what: str) -> tuple[Pattern, ...]:
    """A setting's patterns: lvm2 takes a list of strings or a single string."""
    items = value if isinstance(value, list) else [value]
    return tuple(parse_pattern(item if isinstance(item, str) else str(item), what) for item in items)


def accepts(patterns: tuple[Pattern, ...], names: list[str]) -> bool:
    """lvm2's verdict over every name of one device (see the module docstring)."""
    rejected = False
    for name in names:
        for pattern in patterns:
            if pattern.regex.search(name):
                if pattern.accept:
                    return True
                rejected = True
                break
    return not rejected


def configured() -> tuple[tuple[Pattern, ...], ...]:
    """The filters lvm.conf sets: none by default, and then no device's names are looked up."""
    filters = []
    for path, what in _SETTINGS:
        value = lvm_config.setting(path, [])
        if value != []:
            filters.append(parse_filter(value, what))
    return tuple(filters)


def device_names(path: str) -> list[str]:
    """The names lvm2 knows a device by: the path given, the node it resolves to and udev's links to it."""
    names = list(dict.fromkeys([path, os.path.realpath(path)]))
    try:
        import pyudev

        device = pyudev.Devices.from_device_file(pyudev.Context(), names[-1])
        names += [link for link in device.device_links if link not in names]
    except Exception:  # noqa: BLE001 - an image file, or no udev database: the paths above are its names
        pass
    return names


def accepted(filters: tuple[tuple[Pattern, ...], ...], path: str) -> bool:
    """Whether every filter keeps the device; its names are looked up only when a filter is set."""
    if not filters:
        return True
    names = device_names(path)
    return all(accepts(patterns, names) for patterns in filters)


def rejection(path: str) -> str | None:
    """lvm2's refusal of a device named on the command line that the filters hide, or None.

    The commands that write raise it; pvs and pvdisplay report it beside the others' rows."""
    if accepted(configured(), path):
        return None
    return f"Cannot use {path}: device is rejected by filter config"


def refuse_rejected(paths: list[str]) -> None:
    for path in paths:
        message = rejection(path)
        if message:
            raise DeviceError(message)
