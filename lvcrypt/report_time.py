"""Time values in `-S/--select` (`lv_time`, `lv_time_removed`), read as lvm2 2.03.16 reads them.

A script that selects LVs by creation time with lvm2 must keep the same rows, so this is a
port of lvm2's two parsers rather than a new one:

- `@SECONDS` (seconds since the epoch): one instant.
- libdm's formatted date and time (libdm-report.c `_parse_formatted_date_time`):
  `YYYY[-MM[-DD]]` or `YYYY[MM[DD]]`, then `hh[:mm[:ss]]` or `hh[mm[ss]]`, then a zone
  `[+-]hh[:mm]`.  A value that leaves out the seconds is the range it names (the day, the
  hour, the month...); the zone is the one of the computer otherwise.
- lvm2's "fuzzy" words (lib/report/report.c `_lv_time_handler_parse_fuzzy_name`): `today`,
  `yesterday`, weekdays, month names, `noon`, `midnight`, `AM`/`PM`, units with `ago`
  (`2 hours ago`, `1 week ago`), mixed with numbers (`Feb 24 2015`, `12:00 yesterday`).  Tried
  first, for any value that is not only digits, `-`, `:` and `+`; always a range.

A range is (first second, last second).  lvm2's quirks are kept because scripts see them: the
last day of most months is taken as a month-long range (libdm counts the month's days one
month off), `!=` on a range selects the same rows as `=`, and a time of day at the end of a
quoted fuzzy value makes lvm2 read on past the closing quote (`tail` below) and fail when
anything but the end of the selection follows.
"""

from __future__ import annotations

import enum
import re
import time
from lvcrypt.records import replace

from lvcrypt.errors import LvcryptError
from lvcrypt.records import dataclass

_LONG_MAX = 2 ** 63 - 1
_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_EPOCH = re.compile(r"(?=.)[0-9]*\.?[0-9]*")  # libdm's number: digits and one point, not empty


@dataclass(frozen=True)
class TimeValue:
    """A selection's time: one second, or the range first..last (both included)."""

    first: int
    last: int | None = None


@dataclass(frozen=True)
class Tm:
    """C's struct tm as lvm2 fills it: year since 1900, month 0-11, isdst -1 for mktime to decide."""

    year: int
    mon: int
    mday: int
    hour: int
    min: int
    sec: int
    isdst: int = -1


def _mktime(tm: Tm) -> int:
    """C's mktime(), which normalises fields out of range (day 32 is the next month's first)."""
    try:
        return int(time.mktime((tm.year + 1900, tm.mon + 1, tm.mday, tm.hour, tm.min, tm.sec, -1, -1, tm.isdst)))
    except (OverflowError, ValueError) as error:
        raise LvcryptError("Time value out of range.") from error


def _local_tm(seconds: int) -> Tm:
    now = time.localtime(seconds)
    return Tm(now.tm_year - 1900, now.tm_mon - 1, now.tm_mday, now.tm_hour, now.tm_min, now.tm_sec, now.tm_isdst)


def _is_leap(year: int) -> bool:
    return (year % 4 == 0 and year % 100 != 0) or year % 400 == 0


def _days_in_month(month: int, year: int) -> int:
    """lvm2's `_get_days_in_month(month 1-12, year)`; its callers sometimes pass month 0-11 and the
    year since 1900, and the answer is then another month's (month 0 is December here)."""
    return _DAYS_IN_MONTH[month - 1] + (1 if month == 2 and _is_leap(year) else 0)


def _char(text: str, index: int) -> str:
    """The character at `index`, NUL past the end (the C strings these parsers walk)."""
    return text[index] if 0 <= index < len(text) else "\0"


def _isspace(c: str) -> bool:
    return c in " \t\n\v\f\r"


def _isdigit(c: str) -> bool:
    return "0" <= c <= "9"


def _skip_space(text: str, index: int) -> int:
    while _isspace(_char(text, index)):
        index += 1
    return index


def _strtol(text: str, index: int) -> tuple[int, int]:
    """C's strtol(text + index, &end, 10): (value, end); end is index when no digits follow."""
    position = _skip_space(text, index)
    sign = 1
    if _char(text, position) in "+-":
        sign = -1 if _char(text, position) == "-" else 1
        position += 1
    start = position
    while _isdigit(_char(text, position)):
        position += 1
    if position == start:
        return 0, index
    return max(-_LONG_MAX - 1, min(_LONG_MAX, sign * int(text[start:position]))), position


# --- libdm's formatted date and time ---------------------------------------------------------

class _Range(enum.IntEnum):
    NONE = 0
    SECOND = 1
    MINUTE = 2
    HOUR = 3
    DAY = 4
    MONTH = 5
    YEAR = 6


def _bad(message: str) -> LvcryptError:
    return LvcryptError(message)


def _three_numbers(text: str, delimiter: str, widths: tuple[int, int, int]) -> tuple[list[int], int, int]:
    """`n1[D n2[D n3]]` as libdm reads a date or a time: the numbers (-1 when absent), the end,
    and the length it compares with the compact forms (each number counted at its standard width)."""
    numbers = [-1, -1, -1]
    numbers[0], end = _strtol(text, 0)
    length = 0
    if _char(text, end) == delimiter:
        length += widths[0] - end
        start = end + 1
        if _isdigit(_char(text, start)):
            numbers[1], end = _strtol(text, start)
            length += widths[1] - (end - start)
            if _char(text, end) == delimiter:
                start = end + 1
                numbers[2], end = _strtol(text, start)
                length += widths[2] - (end - start)
    return numbers, end, length + end


def _date(text: str) -> tuple[Tm, _Range, str]:
    if not _isdigit(_char(text, 0)):
        raise _bad("Incorrect date format.")
    (year, month, day), end, length = _three_numbers(text, "-", (4, 2, 2))
    span = _Range.NONE
    if day == -1:
        if month == -1:
            if length == 4:
                span, month, day = _Range.YEAR, 1, 1
            elif length == 6:
                span, day, month, year = _Range.MONTH, 1, year % 100, year // 100
            elif length == 8:
                span, day, month, year = _Range.DAY, year % 100, (year // 100) % 100, year // 10000
            else:
                raise _bad("Incorrect date format.")
        elif length == 7:
            span, day = _Range.MONTH, 1
        else:
            raise _bad("Incorrect date format.")
    if not 1 <= month <= 12:
        raise _bad("Specified month out of range.")
    if not 1 <= day <= _days_in_month(month, year):
        raise _bad("Specified day out of range.")
    return Tm(year - 1900, month - 1, day, -1, -1, -1), span or _Range.DAY, text[_skip_space(text, end):]


def _time_of_day(text: str, tm: Tm, span: _Range) -> tuple[Tm, _Range, str]:
    if not _isdigit(_char(text, 0)):
        return replace(tm, hour=0, min=0, sec=0), span, text[_skip_space(text, 0):]
    (hour, minute, second), end, length = _three_numbers(text, ":", (2, 2, 2))
    new_span = _Range.NONE
    if second == -1:
        if minute == -1:
            if length == 2:
                new_span, minute, second = _Range.HOUR, 0, 0
            elif length == 4:
                new_span, second, minute, hour = _Range.MINUTE, 0, hour % 100, hour // 100
            elif length == 6:
                new_span, second, minute, hour = _Range.SECOND, hour % 100, (hour // 100) % 100, hour // 10000
            else:
                raise _bad("Incorrect time format.")
        elif length == 5:
            new_span, second = _Range.MINUTE, 0
        else:
            raise _bad("Incorrect time format.")
    if not 0 <= hour <= 23:
        raise _bad("Specified hours out of range.")
    if not 0 <= minute <= 60:
        raise _bad("Specified minutes out of range.")
    if not 0 <= second <= 60:
        raise _bad("Specified seconds out of range.")
    if span != _Range.DAY:
        raise _bad("Full date specification needed.")
    return replace(tm, hour=hour, min=minute, sec=second), new_span, text[_skip_space(text, end):]


def _zone(text: str) -> tuple[int | None, str]:
    """The zone's offset from GMT in seconds (None: no zone given) and what follows it."""
    start, sign = 0, 1
    if not _isdigit(_char(text, 0)):
        if _char(text, 0) not in "+-":
            return None, text[_skip_space(text, 0):]
        start, sign = 1, -1 if text[0] == "-" else 1
    hours, end = _strtol(text, start)
    minutes, length = -1, 0
    if _char(text, end) == ":":
        length = 2 - (end - start)
        start = end + 1
        if _isdigit(_char(text, start)):
            minutes, end = _strtol(text, start)
            length = 2 - (end - start)
    length += end - start
    if minutes == -1:
        if length == 2:
            minutes = 0
        elif length == 4:
            minutes, hours = hours % 100, hours // 100
        else:
            raise _bad("Incorrect time zone format.")
    if not 0 <= minutes <= 60 or not 0 <= hours <= 14:
        raise _bad("Incorrect time zone format.")
    return sign * (hours * 3600 + minutes * 60), text[_skip_space(text, end):]


def _local_offset(seconds: int) -> int:
    gmt = time.gmtime(seconds)
    as_local = _mktime(Tm(gmt.tm_year - 1900, gmt.tm_mon - 1, gmt.tm_mday, gmt.tm_hour, gmt.tm_min, gmt.tm_sec, 0))
    if time.localtime(as_local).tm_isdst > 0:
        as_local -= 3600
    return seconds - as_local


def _span_end(tm: Tm, span: _Range) -> Tm:
    """The first second after the range, stepped as libdm steps it (carrying into the next field
    at the end of one, with its month-off day count)."""
    if span == _Range.SECOND and tm.sec < 59:
        return replace(tm, sec=tm.sec + 1)
    if span <= _Range.MINUTE and span != _Range.NONE and tm.min < 59:
        return replace(tm, min=tm.min + 1)
    if span <= _Range.HOUR and span != _Range.NONE and tm.hour < 23:
        return replace(tm, hour=tm.hour + 1)
    if span <= _Range.DAY and span != _Range.NONE and tm.mday < _days_in_month(tm.mon, tm.year):
        return replace(tm, mday=tm.mday + 1)
    if span <= _Range.MONTH and span != _Range.NONE and tm.mon < 11:
        return replace(tm, mon=tm.mon + 1)
    if span != _Range.NONE:
        return replace(tm, year=tm.year + 1)
    return tm


def formatted(text: str) -> TimeValue:
    """libdm's `YYYY-MM-DD hh:mm:ss +hh:mm` and its shorter and compact forms."""
    tm, span, rest = _date(text)
    tm, span, rest = _time_of_day(rest, tm, span)
    offset, rest = _zone(rest)
    if rest:
        raise _bad("Incorrect date and time format.")
    first = _mktime(tm)
    last = _mktime(_span_end(tm, span)) - 1
    if offset is not None:
        shift = offset - _local_offset(first)
        first, last = first - shift, last - shift
    return TimeValue(first, last if span != _Range.NONE else None)


# --- lvm2's fuzzy words ----------------------------------------------------------------------

_IDS = ("NULL NUM STR NUM__START NUM_MULTIPLIER NUM_MULTIPLIER_NEGATIVE NUM_DAY NUM_YEAR NUM__END "
        "STR_TIMEZONE FRAME__START FRAME_AGO FRAME__END LABEL_DATE__START LABEL_DATE_TODAY "
        "LABEL_DATE_YESTERDAY WEEKDAY__START SUNDAY MONDAY TUESDAY WEDNESDAY THURSDAY FRIDAY SATURDAY "
        "WEEKDAY__END LABEL_DATE__END LABEL_TIME__START NOON MIDNIGHT LABEL_TIME__END UNIT__START SECOND "
        "SECOND_REL MINUTE MINUTE_REL HOUR HOUR_REL AM PM DAY WEEK MONTH YEAR TZ_MINUTE TZ_HOUR UNIT__END "
        "MONTH__START JANUARY FEBRUARY MARCH APRIL MAY JUNE JULY AUGUST SEPTEMBER OCTOBER NOVEMBER DECEMBER "
        "MONTH__END")
# lvm2's time_id_t, in its order: granularities compare by it.
T = enum.IntEnum("T", _IDS, start=0)  # type: ignore[misc]

_DATE, _TIME, _ABS, _REL = 1, 2, 4, 8
# id: (flags, granularity), lvm2's _time_props.
_PROPS: dict[int, tuple[int, int]] = {
    T.NUM_DAY: (_DATE | _ABS, T.DAY), T.NUM_YEAR: (_DATE | _ABS, T.YEAR),
    T.STR_TIMEZONE: (_TIME | _ABS, T.NULL), T.FRAME_AGO: (_DATE | _TIME | _REL, T.NULL),
    T.LABEL_DATE_TODAY: (_DATE | _ABS, T.DAY), T.LABEL_DATE_YESTERDAY: (_DATE | _ABS, T.DAY),
    **{day: (_DATE | _ABS, T.DAY) for day in range(T.SUNDAY, T.SATURDAY + 1)},
    T.NOON: (_TIME | _ABS, T.SECOND), T.MIDNIGHT: (_TIME | _ABS, T.SECOND),
    T.SECOND: (_TIME | _ABS, T.SECOND), T.SECOND_REL: (_TIME | _REL, T.SECOND),
    T.MINUTE: (_TIME | _ABS, T.MINUTE), T.MINUTE_REL: (_TIME | _REL, T.MINUTE),
    T.HOUR: (_TIME | _ABS, T.HOUR), T.HOUR_REL: (_TIME | _REL, T.HOUR),
    T.AM: (_TIME | _ABS, T.HOUR), T.PM: (_TIME | _ABS, T.HOUR),
    T.DAY: (_DATE | _REL, T.DAY), T.WEEK: (_DATE | _REL, T.WEEK), T.MONTH: (_DATE | _REL, T.MONTH),
    T.YEAR: (_DATE | _REL, T.YEAR), T.TZ_MINUTE: (_TIME | _ABS, T.NULL), T.TZ_HOUR: (_TIME | _ABS, T.NULL),
    **{month: (_DATE | _ABS, T.MONTH) for month in range(T.JANUARY, T.DECEMBER + 1)},
}
_WEEKDAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")
# lvm2's _time_reg in its order (the first match wins): name, id, plural with "s" too.
_WORDS: tuple[tuple[str, int, bool], ...] = (
    ("ago", T.FRAME_AGO, False), ("today", T.LABEL_DATE_TODAY, False),
    ("yesterday", T.LABEL_DATE_YESTERDAY, False),
    *((name, T.SUNDAY + index, plural) for index, day in enumerate(_WEEKDAYS)
      for name, plural in ((day, True), (day[:3], False))),
    ("noon", T.NOON, True), ("midnight", T.MIDNIGHT, True),
    ("second", T.SECOND, True), ("sec", T.SECOND, True), ("s", T.SECOND, False),
    ("minute", T.MINUTE, True), ("min", T.MINUTE, True), ("m", T.MINUTE, False),
    ("hour", T.HOUR, True), ("hr", T.HOUR, True), ("h", T.HOUR, False), ("AM", T.AM, False), ("PM", T.PM, False),
    ("day", T.DAY, True), ("week", T.WEEK, True), ("month", T.MONTH, True), ("year", T.YEAR, True),
    ("yr", T.YEAR, True),
    *((name, T.JANUARY + index, False) for index, month in enumerate(_MONTHS)
      for name in dict.fromkeys((month, month[:3]))),
)


@dataclass
class _Item:
    id: int
    text: str  # from the item's first character to the end of the value (C's ti->s)
    length: int


def _in(item_id: int, low: int, high: int) -> bool:
    return low < item_id < high


def _item_end(text: str, index: int) -> int:
    """A number ends at its last digit (`12hours` is two items), a word at a space."""
    number = _isdigit(_char(text, index))
    while _char(text, index) != "\0" and not _isspace(_char(text, index)):
        if number and not _isdigit(_char(text, index)):
            break
        index += 1
    return index


def _clock(text: str, index: int, items: list[_Item], zone: int) -> tuple[bool, int]:
    """`hh:mm[:ss]` (a zone `hh:mm` when `zone` is 1 or -1) as multiplier and unit items."""
    parts = (T.TZ_HOUR, T.TZ_MINUTE) if zone else (T.HOUR, T.MINUTE)
    for position, unit in enumerate((*parts, T.SECOND)):
        end = _item_end(text, index)
        items += [_Item(T.NUM_MULTIPLIER_NEGATIVE if zone == -1 and position < 2 else T.NUM_MULTIPLIER,
                        text[index:], end - index), _Item(unit, text[end:], 0)]
        if position == 0 and _char(text, end) != ":":
            return False, index
        if position == 1 and (_char(text, end) != ":" or zone):
            return _char(text, end) != ":", end + 1
        index = end + 1
    return True, index


def _preparse(text: str) -> list[_Item] | None:
    """lvm2's first pass: words, numbers, clock times and zones; None when the value is not
    fuzzy (only digits, `-`, `:`, `+`) or has a character neither uses."""
    items: list[_Item] = []
    fuzzy = False
    index = _skip_space(text, 0)
    while (c := _char(text, index)) != "\0":
        if not (_isdigit(c) or c in "-:+"):
            fuzzy = True
        end = _item_end(text, index)
        if c.isascii() and c.isalpha():
            item_id = T.STR
        elif _isdigit(c):
            if _char(text, end) == ":":
                done, index = _clock(text, index, items, 0)
                if not done:
                    return None
                continue
            item_id = T.NUM
        elif c in "+-":
            done, index = _clock(text, index + 1, items, -1 if c == "-" else 1)
            if not done:
                return None
            continue
        else:
            return None
        items.append(_Item(item_id, text[index:], end - index))
        index = _skip_space(text, end)
    return items if fuzzy else None


def _match_word(items: list[_Item], at: int) -> int:
    item = items[at]
    for name, word_id, plural in _WORDS:
        size = len(name)
        if item.length != size and not (plural and item.length == size + 1 and item.text[size:size + 1] == "s"):
            continue
        if item.text[:size].lower() == name.lower():
            if _in(word_id, T.UNIT__START, T.UNIT__END) and at > 0 and items[at - 1].id == T.NUM:
                items[at - 1].id = T.NUM_MULTIPLIER
            return word_id
    return T.NULL


def _match_number(items: list[_Item], at: int) -> int:
    item = items[at]
    after = items[at + 1] if at + 1 < len(items) else None
    after2 = items[at + 2] if at + 2 < len(items) else None
    before = items[at - 1] if at > 0 else None
    if after is not None and _in(after.id, T.MONTH__START, T.MONTH__END):
        if after2 is not None and after2.id == T.NUM:
            day_first = item.length < after2.length  # 24 Feb 2015, else 2015 Feb 24
            item.id, after2.id = (T.NUM_DAY, T.NUM_YEAR) if day_first else (T.NUM_YEAR, T.NUM_DAY)
            return item.id
        return T.NUM_DAY if item.length <= 2 else T.NUM_YEAR
    if before is not None and _in(before.id, T.MONTH__START, T.MONTH__END):
        return T.NUM_DAY if item.length <= 2 else T.NUM_YEAR
    return T.NUM_YEAR


@dataclass
class _Granularity:
    min_abs_date: int = T.UNIT__END
    max_abs_date: int = T.UNIT__START
    min_abs_time: int = T.UNIT__END
    min_rel_time: int = T.UNIT__END

    def see(self, item_id: int) -> None:
        flags, granularity = _PROPS.get(item_id, (0, T.NULL))
        if granularity == T.NULL:
            return
        if flags & _DATE and flags & _ABS:
            self.max_abs_date = max(self.max_abs_date, granularity)
            self.min_abs_date = min(self.min_abs_date, granularity)
        elif flags & _ABS and granularity < self.min_abs_time:
            self.min_abs_time = granularity
        elif flags & _REL and granularity < self.min_rel_time:
            self.min_rel_time = granularity


_RELATIVE = {T.SECOND: T.SECOND_REL, T.MINUTE: T.MINUTE_REL, T.HOUR: T.HOUR_REL}


def _recognize(items: list[_Item]) -> _Granularity:
    for at, item in enumerate(items):
        if item.id == T.STR:
            item.id = _match_word(items, at)
            if item.id == T.NULL:
                raise _bad(f'Unrecognized string in date/time specification at "{item.text}".')
        if item.id == T.FRAME_AGO:
            for earlier in reversed(items[:at]):
                if earlier.id == T.FRAME_AGO:
                    break
                earlier.id = _RELATIVE.get(earlier.id, earlier.id)
    granularity = _Granularity()
    for at, item in enumerate(items):
        if item.id == T.NUM:
            item.id = _match_number(items, at)
        granularity.see(item.id)
    return granularity


def _check(items: list[_Item], granularity: _Granularity) -> None:
    date_relative = time_relative = -1
    label_date = label_time = False
    for item in items:
        flags = _PROPS.get(item.id, (0, T.NULL))[0]
        relative = flags & _REL
        if flags & _DATE:
            if date_relative < 0:
                date_relative = relative
            elif date_relative != relative and granularity.max_abs_date >= granularity.min_rel_time:
                raise _bad(f'Mixed absolute and relative date specification found at "{item.text}".')
            if label_date:
                raise _bad(f'Ambiguous date specification found at "{item.text}".')
            label_date = label_date or _in(item.id, T.LABEL_DATE__START, T.LABEL_DATE__END)
        elif flags & _TIME:
            if time_relative < 0:
                time_relative = relative
            elif time_relative != relative:
                raise _bad(f'Mixed absolute and relative time specification found at "{item.text}".')
            if label_time:
                raise _bad(f'Ambiguous time specification found at "{item.text}".')
            label_time = label_time or _in(item.id, T.LABEL_TIME__START, T.LABEL_TIME__END)


def _number(item: _Item) -> int:
    value, end = _strtol(item.text, 0)
    if abs(value) >= _LONG_MAX:
        raise _bad("_translate_time_items: invalid time.")
    return value


def _back_months(tm: Tm, months: int) -> Tm:
    """lvm2's `N months ago`: whole years first, then the rest (which may cross a year)."""
    year, rest = tm.year - int(months / 12), months - 12 * int(months / 12)
    if rest > tm.mon + 1:
        return replace(tm, year=year - 1, mon=12 - rest + tm.mon)
    return replace(tm, year=year, mon=tm.mon - rest)


def _translate(items: list[_Item], granularity: _Granularity, now: int) -> TimeValue:
    today = _local_tm(now)
    tm = replace(today, isdst=0)
    back = 0  # seconds into the past before the absolute time
    multiplier = 1
    previous: _Item | None = None
    for item in items:
        kind = item.id
        if _in(kind, T.NUM__START, T.NUM__END):
            number = _number(item)
            if kind == T.NUM_MULTIPLIER_NEGATIVE:
                multiplier = -number
            elif kind == T.NUM_MULTIPLIER:
                multiplier = number
            elif kind == T.NUM_DAY:
                tm = replace(tm, mday=number)
            elif kind == T.NUM_YEAR:
                tm = replace(tm, year=number - 1900)
        elif _in(kind, T.MONTH__START, T.MONTH__END):
            tm = replace(tm, mon=kind - T.MONTH__START - 1)
        elif _in(kind, T.WEEKDAY__START, T.WEEKDAY__END):
            wday, weekday = (time.localtime(now).tm_wday + 1) % 7, kind - T.WEEKDAY__START - 1
            back += (7 - weekday + wday if wday < weekday else wday - weekday) * 86400
        elif kind == T.LABEL_DATE_YESTERDAY:
            back += 86400
        elif kind == T.NOON:
            tm = replace(tm, hour=12, min=0, sec=0)
        elif kind == T.MIDNIGHT:
            tm = replace(tm, hour=0, min=0, sec=0)
        elif _in(kind, T.UNIT__START, T.UNIT__END):
            tm, back = _unit(kind, multiplier, tm, back, previous)
        previous = item
    return _span(granularity, *_adjust(granularity, tm, back))


def _unit(kind: int, multiplier: int, tm: Tm, back: int, previous: _Item | None) -> tuple[Tm, int]:
    if kind == T.SECOND:
        return replace(tm, sec=multiplier), back
    if kind == T.MINUTE:
        return replace(tm, min=multiplier), back
    if kind == T.HOUR:
        return replace(tm, hour=multiplier), back
    steps = {T.SECOND_REL: 1, T.MINUTE_REL: 60, T.HOUR_REL: 3600, T.DAY: 86400, T.WEEK: 7 * 86400}
    if kind in steps:
        return tm, back + multiplier * steps[kind]
    after_number = previous is not None and previous.id == T.NUM_MULTIPLIER
    if kind == T.AM and after_number:
        return replace(tm, hour=multiplier), back
    if kind == T.PM:
        if previous is not None and _in(previous.id, T.UNIT__START, T.UNIT__END):
            return tm, back - 12 * 3600
        if after_number:
            return replace(tm, hour=multiplier + 12), back
    if kind == T.MONTH:
        return _back_months(tm, multiplier), back
    if kind == T.YEAR:
        return replace(tm, year=tm.year - multiplier), back
    return tm, back


def _adjust(granularity: _Granularity, tm: Tm, back: int) -> tuple[Tm, int]:
    """Drop what is finer than the value named: `Feb 2015` starts on the first at midnight."""
    if granularity.min_abs_date == T.YEAR:
        tm = replace(tm, mon=0, mday=1)
    elif granularity.min_abs_date == T.MONTH:
        tm = replace(tm, mday=1)
    if granularity.min_abs_time == T.HOUR:
        tm = replace(tm, min=0, sec=0)
    elif granularity.min_abs_time == T.MINUTE:
        tm = replace(tm, sec=0)
    elif granularity.min_abs_time == T.UNIT__END and (
            granularity.min_rel_time == T.UNIT__END or T.DAY <= granularity.min_rel_time <= T.YEAR):
        tm = replace(tm, hour=0, min=0, sec=0)
    return tm, back


def _span(granularity: _Granularity, tm: Tm, back: int) -> TimeValue:
    first = _mktime(tm) - back
    last = first
    if granularity.min_abs_time != T.UNIT__END:
        last += {T.MINUTE: 59, T.HOUR: 3599}.get(granularity.min_abs_time, 0)
    elif granularity.min_rel_time != T.UNIT__END:
        if granularity.min_rel_time == T.MINUTE:
            first -= 61
        elif granularity.min_rel_time == T.HOUR:
            first -= 3601
        elif T.DAY <= granularity.min_rel_time <= T.YEAR:
            last += 86399
    elif granularity.min_abs_date == T.MONTH:
        last += 86400 * _days_in_month(tm.mon + 1, tm.year) - 1
    elif granularity.min_abs_date != T.UNIT__END:
        last += 86399
    if time.localtime(first).tm_isdst > 0:
        first -= 3600
    if time.localtime(last).tm_isdst > 0:
        last -= 3600
    return TimeValue(first, last)


def fuzzy(text: str, now: int) -> TimeValue | None:
    """lvm2's words for times; None when `text` is not made of them (try `formatted`)."""
    items = _preparse(text)
    if items is None:
        return None
    try:
        granularity = _recognize(items)
        _check(items, granularity)
        return _translate(items, granularity, now)
    except LvcryptError:
        return None  # lvm2 then tries the formatted parser, which refuses the words


def parse(token: str, tail: str, now: int) -> TimeValue:
    """A selection's time value as lvm2 reads `token` (quotes included); `tail` is the selection
    after the value, which lvm2's fuzzy parser may read on into (see the module's docstring)."""
    if token.startswith("@"):
        if not _EPOCH.fullmatch(token[1:]):
            raise _bad("Failed to parse time value.")
        return TimeValue(int(token[1:].split(".")[0] or 0))  # strtoull: the digits before any point
    quoted = token[:1] in "\"'" and len(token) > 1 and token[-1] == token[0]
    inner = token[1:-1] if quoted else token
    found = fuzzy(inner + "\0" + (tail if quoted else ""), now)
    return found if found is not None else formatted(inner)
