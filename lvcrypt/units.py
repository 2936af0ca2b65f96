"""Sizes printed and parsed the way lvm2 does (`--units`, `-L 10G`)."""

from __future__ import annotations

import math
import re
import sys
from lvcrypt.records import dataclass

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


# --- lvm2's --units and dm_size_to_string (libdm/libdm-string.c), as reports and displays print sizes --

@dataclass(frozen=True)
class Units:
    """A parsed `--units`: lvm2's unit type letter (`U` for a custom number of units) and the
    bytes one unit is (1 for the human units h, H, r, R)."""

    letter: str
    factor: int


DEFAULT_UNITS = Units("r", 1)  # lvm.conf's global/units default
_EPSILON = sys.float_info.epsilon
# Patterns only some commands use are strings, compiled at first use (re's cache): not at every start-up.
_STRTOD = (r"0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)(?:[pP][+-]?[0-9]+)?"
           r"|[0-9]+\.?[0-9]*(?:[eE][+-]?[0-9]+)?")
_MULTIPLIERS = {"b": 1, "B": 1, "s": 512, "S": 512, **{letter: 1024 ** power for power, letter in enumerate("kmgtpe", 1)},
                **{letter: 1000 ** power for power, letter in enumerate("KMGTPE", 1)}}


def _strtod(text: str) -> tuple[float, str]:
    match = re.match(_STRTOD, text)
    assert match is not None  # text starts with a digit
    number = match.group()
    if number[:2] in ("0x", "0X"):
        hexadecimal = number if "p" in number.lower() else number + "p0"
        try:
            return float.fromhex(hexadecimal), text[match.end():]
        except ValueError:
            return 0.0, text[1:]  # "0x" with no digit: C reads the 0
    return float(number), text[match.end():]


def parse_units(text: str) -> Units:
    """lvm2's --units (dm_units_to_factor, strict): a letter, or a number then one letter.

    A whole number before a letter other than h/H/r/R makes a custom unit printed `U`
    (`--units 3m`: sizes in units of 3 MiB); a fraction before a letter with whole part 1 keeps
    the letter (`1.5k`: 1536-byte units printed `k`); a number before h/H/r/R is ignored (unless
    it truncates to 0). Anything else, and any unit of 0 bytes, is refused as lvm2 refuses it."""
    custom = 0.0
    whole = 1
    rest = text
    if text[:1].isdigit():
        custom, rest = _strtod(text)
        whole = int(re.match(r"[0-9]+", text).group())  # type: ignore[union-attr]
        if abs(whole - custom) < _EPSILON:
            custom = 0.0
    if len(rest) != 1 or (rest not in _MULTIPLIERS and rest not in "hHrR"):
        raise UsageError("Invalid units specification")
    letter = rest if whole == 1 else "U"
    if rest in "hHrR":
        letter, multiplier, whole = rest, 1, 1
    else:
        multiplier = _MULTIPLIERS[rest]
    factor = whole * multiplier if abs(custom) < _EPSILON else int(custom * multiplier)
    if factor <= 0:
        raise UsageError("Invalid units specification")
    return Units(letter, factor)


# dm_size_to_string's table: (long, short, unit letter) per base and prefix.
_SHARED = [(" Exabyte", " EB", "E"), (" Petabyte", " PB", "P"), (" Terabyte", " TB", "T"),
           (" Gigabyte", " GB", "G"), (" Megabyte", " MB", "M"), (" Kilobyte", " KB", "K"), (" Byte    ", " B", "B")]
_BINARY = [(" Exbibyte", " EiB", "e"), (" Pebibyte", " PiB", "p"), (" Tebibyte", " TiB", "t"),
           (" Gibibyte", " GiB", "g"), (" Mebibyte", " MiB", "m"), (" Kibibyte", " KiB", "k"), (" Byte    ", " B", "b")]
_DECIMAL = [(" Exabyte", " EB", "E"), (" Petabyte", " PB", "P"), (" Terabyte", " TB", "T"),
            (" Gigabyte", " GB", "G"), (" Megabyte", " MB", "M"), (" Kilobyte", " kB", "K")]
_SPECIAL = [(" Byte    ", " B ", "B"), (" Units   ", " Un", "U"), (" Sectors ", " Se", "S")]
_UNKNOWN = ("         ", "   ", " ")
LONG, SHORT, UNIT = 0, 1, 2  # dm_size_suffix_t: which column of the table a size ends with


def _table_entry(letter: str, si: bool) -> tuple[list[tuple[str, str, str]], int] | None:
    """The (table, row) of a unit letter, found as dm_size_to_string finds it; None for h/H/r/R."""
    if not si:
        rows = [row for row in range(6) if letter.upper() == _SHARED[row][2]]
        if rows:
            return _SHARED, rows[0]
    else:
        for table in (_DECIMAL, _BINARY):
            rows = [row for row in range(6) if letter == table[row][2]]
            if rows:
                return table + _SPECIAL if table is _DECIMAL else table, rows[0]
    rows = [row for row in range(3) if letter.upper() == _SPECIAL[row][2]]
    return (_SPECIAL, rows[0]) if rows else None


def size_to_string(size_bytes: int, units: Units = DEFAULT_UNITS, suffix: bool = True, style: int = UNIT,
                   si: bool = True) -> str:
    """lvm2's dm_size_to_string: how every report and display prints a size (lvm2 counts in
    sectors, so a size is first truncated to whole sectors)."""
    sectors = size_bytes // 512
    entry = _table_entry(units.letter, si)
    if sectors == 0:
        if entry is None:
            return "0" + (_UNKNOWN[style] if suffix else "")
        table, row = entry
        return "0" + (table[row][style] if suffix else "")
    size = sectors * 512
    prefix = ""
    if entry is not None:
        table, row = entry
        byte = units.factor
    else:
        base = 1000 if units.letter in "HR" else 1024
        table = (_DECIMAL + _SPECIAL if base == 1000 else _BINARY) if si else _SHARED
        byte, row = base ** 6, 0
        while row < 6 and size < byte:
            byte //= base
            row += 1
        if row < 6 and units.letter in "rR":
            hundredths = 100.0 * size / byte
            if abs(math.floor(hundredths) - round(hundredths)) >= _EPSILON:
                prefix = "<"  # two decimals show it rounded up: 2043m is "<2.00g"
        suffix = True  # human units always say which unit they chose
    precision = 0 if table[row][2].upper() in "BS" else 2
    return f"{prefix}{size / byte:.{precision}f}{table[row][style] if suffix else ''}"
