"""Sizes printed and parsed the way lvm2 does (`--units`, `-L 10G`)."""

from __future__ import annotations

import re

from lvcrypt.errors import UsageError

# lvm2's unit letters: lower case are powers of 1024, upper case powers of 1000.
_POWERS = {"b": 0, "s": None, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5, "e": 6}
_SIZE = re.compile(r"([0-9]+(?:\.[0-9]+)?)([bBsSkKmMgGtTpPeE]?)\Z")


def format_size(size_bytes: int, unit: str = "h") -> str:
    """`12.00m` like lvm2; `h` picks the largest unit that keeps the number >= 1, `<` marks a value shown rounded up."""
    if unit in ("h", "H"):
        base = 1024 if unit == "h" else 1000
        letters = "bkmgtpe" if unit == "h" else "BKMGTPE"
        power = 0
        while power < 6 and size_bytes >= base ** (power + 1):
            power += 1
        if power == 0:
            return f"{size_bytes}{'B' if unit == 'H' else 'b'}" if size_bytes else "0 "
        value = size_bytes / base ** power
        shown = f"{value:.2f}"
        # lvm2 (dm_size_to_string, units r): round to nearest, mark with "<" when that rounded up.
        prefix = "<" if float(shown) * base ** power > size_bytes else ""
        return f"{prefix}{shown}{letters[power]}"
    letter = unit.lower()
    if letter not in _POWERS:
        raise UsageError(f"unknown unit '{unit}' (use one of h H b s k m g t p e, upper case for powers of 1000)")
    if letter == "s":
        return f"{size_bytes // 512}s" if unit == "s" else f"{size_bytes // 512}S"
    power = _POWERS[letter]
    assert power is not None
    base = 1000 if unit.isupper() else 1024
    return f"{size_bytes / base ** power:.2f}{unit}"


def parse_size(text: str, default_unit: str = "m") -> int:
    """Bytes for an lvm2 size argument such as `10G`, `512k`, `100s`; units are powers of 1024."""
    match = _SIZE.match(text.strip())
    if not match:
        raise UsageError(f"invalid size '{text}'")
    number, letter = match.groups()
    letter = (letter or default_unit).lower()
    if letter == "s":
        return int(float(number) * 512)
    power = _POWERS[letter]
    assert power is not None
    return int(float(number) * 1024 ** power)
