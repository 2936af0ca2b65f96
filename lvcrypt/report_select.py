"""`-S/--select`: lvm2's selection language over the rows of pvs, vgs and lvs.

Scripts filter reports with lvm2's rules (libdm's report selection), so the
same expression must keep the same rows: `=`/`!=` on every field, `<` `<=` `>`
`>=` on numbers, sizes and percentages only, `=~`/`!~` regular expressions on
strings only, string lists (tags, devices) matched by one item, `[a,b]` (exactly
these), `[a||b]` (any of these) or `{a,b}` (at least these), sizes with lvm2's
unit letters (MiB when none), `&&`/`,` binding tighter than `||`/`#`, and `!`
before a parenthesised group.  The grammar is report_select.lark; what a value
means depends on the field's type, so values are read here.
"""

from __future__ import annotations

import functools
import re
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Union

from lvcrypt import report_time
from lvcrypt.errors import LvcryptError
from lvcrypt.records import dataclass
from lvcrypt.report_time import TimeValue

if TYPE_CHECKING:
    from lark import Lark, Tree

    from lvcrypt.reportfields import Field

# lvm2's field types (lib/report/columns.h) for the fields lvcrypt reports; the rest are strings.
NUMBER_FIELDS = frozenset({
    "pv_count", "lv_count", "snap_count", "vg_extent_count", "vg_free_count", "vg_seqno", "max_lv", "max_pv",
    "vg_mda_count", "seg_count", "pvseg_start", "pvseg_size", "stripes",
    "seg_start_pe", "pv_pe_count", "pv_pe_alloc_count", "pv_mda_count",
    "pe_start", "crypt_key_size", "raid_mismatch_count", "raid_write_behind", "raid_min_recovery_rate",
    "raid_max_recovery_rate", "raidintegrityblocksize", "integritymismatches", "writecache_block_size",
    "cache_total_blocks", "cache_used_blocks", "cache_dirty_blocks", "cache_read_hits", "cache_read_misses",
    "cache_write_hits", "cache_write_misses", "kernel_metadata_format", "vdo_used_size", "vdo_saving_percent",
    "writecache_total_blocks", "writecache_free_blocks", "writecache_writeback_blocks", "writecache_error",
    "vg_missing_pv_count", "vg_mda_used_count", "vg_mda_copies", "pv_ext_vsn", "pv_mda_used_count",
    "lv_major", "lv_minor", "lv_kernel_major", "lv_kernel_minor"})
# Binary fields: numbers to lvm2 (1 set, 0 not, -1 unknown), printed as words (`allocatable`, ``,
# `unknown`) or, with --binary, as those numbers.
BINARY_FIELDS = frozenset({
    "lv_initial_image_sync", "lv_image_synced", "lv_merging", "lv_converting", "lv_allocation_locked",
    "lv_fixed_minor", "lv_skip_activation", "lv_autoactivation", "lv_active_locally", "lv_active_remotely",
    "lv_active_exclusively", "lv_historical", "lv_suspended", "lv_live_table", "lv_inactive_table",
    "lv_device_open", "lv_check_needed", "lv_merge_failed", "lv_snapshot_invalid", "vg_extendable",
    "vg_exported", "vg_autoactivation", "vg_partial", "vg_clustered", "vg_shared", "pv_allocatable",
    "pv_exported", "pv_missing", "pv_in_use", "pv_duplicate"})
NUMBER_FIELDS |= BINARY_FIELDS
TIME_FIELDS = frozenset({"lv_time", "lv_time_removed"})  # seconds since the epoch, 0 when unknown
PERCENT_FIELDS = frozenset({"data_percent", "metadata_percent", "snap_percent", "copy_percent", "sync_percent"})
LIST_FIELDS = frozenset({"lv_tags", "vg_tags", "pv_tags", "devices", "seg_pe_ranges", "lv_role", "lv_layout",
                         "lv_ancestors", "lv_full_ancestors", "lv_descendants", "lv_full_descendants", "lv_modules",
                         "kernel_cache_settings"})
# Fields whose value lvm2 selects and sorts on is the LV's bare name, without the brackets it
# prints around hidden LVs.
BARE_NAME_FIELDS = frozenset({"lv_name", "origin", "pool_lv", "data_lv", "metadata_lv", "mirror_log",
                              "convert_lv", "lv_parent"})

# Bytes per unit letter in a selection value (libdm's dm_units_to_factor).
_POWERS = {"b": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5, "e": 6}
_NUMBER = re.compile(r"([0-9]*\.?[0-9]*)(.*)\Z", re.S)
_EPSILON = sys.float_info.epsilon


def kind(name: str, field: "Field") -> str:
    """lvm2's type of a field: number, size, percent, time, string list or string."""
    if field.size:
        return "size"
    if name in NUMBER_FIELDS:
        return "number"
    if name in PERCENT_FIELDS:
        return "percent"
    if name in TIME_FIELDS:
        return "time"
    return "list" if name in LIST_FIELDS else "string"


def resolve(name: str, fields: dict[str, "Field"], prefix: str) -> str | None:
    """The field a user's name means, as lvm2 matches it: case and `_` ignored, the report's
    prefix (`lv_` for lvs) optional (`size` is lv_size, `LVNAME` is lv_name)."""
    wanted = name.replace("_", "").lower()
    short = prefix.replace("_", "")
    for known in fields:
        canonical = known.replace("_", "")
        if canonical == wanted or (canonical.startswith(short) and canonical[len(short):] == wanted):
            return known
    return None


# lvm2's reserved values (lib/report/values.h): words a selection may use for a number, and the
# names of binary and named string fields.  An undefined number is lvm2's UINT64_MAX: equal to
# itself (`-1`, `undefined`), never greater or less than anything, sorted after every number.
UNDEFINED = 2 ** 64 - 1
UNDEFINED_WORDS = ("-1", "unknown", "undefined", "undef")
BINARY_WORDS: dict[str, tuple[str, ...]] = {
    "pv_allocatable": ("allocatable",), "pv_exported": ("exported",), "pv_missing": ("missing",),
    "pv_in_use": ("used", "in use"), "pv_duplicate": ("duplicate",), "vg_extendable": ("extendable",),
    "vg_exported": ("exported",), "vg_partial": ("partial",), "vg_clustered": ("clustered",),
    "vg_shared": ("shared",), "lv_initial_image_sync": ("initial image sync", "sync"),
    "lv_image_synced": ("image synced", "synced"), "lv_merging": ("merging",), "lv_converting": ("converting",),
    "lv_allocation_locked": ("allocation locked", "locked"), "lv_fixed_minor": ("fixed minor", "fixed"),
    "lv_active_locally": ("active locally", "active", "locally"),
    "lv_active_remotely": ("active remotely", "active", "remotely"),
    "lv_active_exclusively": ("active exclusively", "active", "exclusively"),
    "lv_merge_failed": ("merge failed", "failed"), "lv_snapshot_invalid": ("snapshot invalid", "invalid"),
    "lv_suspended": ("suspended",), "lv_live_table": ("live table present", "live table", "live"),
    "lv_inactive_table": ("inactive table present", "inactive table", "inactive"), "lv_device_open": ("open",),
    "lv_skip_activation": ("skip activation", "skip"), "lv_check_needed": ("check needed", "needed")}
NAMED_STRINGS: dict[str, dict[str, str]] = {
    "lv_when_full": {"error when full": "error", "error if no space": "error", "queue when full": "queue",
                     "queue if no space": "queue", "undefined": ""},
    "lv_permissions": {"rw": "writeable", "read-write": "writeable", "r": "read-only", "ro": "read-only",
                       "ro-override": "read-only-override", "r-override": "read-only-override",
                       "R": "read-only-override"},
    "vg_permissions": {"rw": "writeable", "read-write": "writeable", "r": "read-only", "ro": "read-only"},
    "lv_health_status": {"undefined": ""}, "kernel_discards": {"undefined": ""}}
RESERVED_SIZES = {"lv_read_ahead": ("auto",)}


def binary(value: object) -> int:
    """A binary field's number as --binary prints it: its word means 1, empty 0, `unknown` -1."""
    return -1 if value == "unknown" else 1 if value else 0


def number_of(name: str, field_kind: str, value: object) -> float:
    """The number lvm2 selects and sorts a number, binary or size field on (sizes in sectors)."""
    if name in BINARY_FIELDS:
        number = binary(value)
        return UNDEFINED if number < 0 else number
    if name == "origin_size" and value == "":
        return 0  # the one empty size lvm2 gives the value zero
    if not isinstance(value, int) or value < 0:
        return UNDEFINED  # empty number, `auto`, `unmanaged`, -1: lvm2's reserved undefined value
    return value / 512 if field_kind == "size" else value


def value_of(row: object, name: str, fields: dict[str, "Field"]) -> object:
    """What lvm2 selects and sorts on where it differs from what it prints (hidden LVs' bare names,
    times in seconds)."""
    field = fields[name]
    value = field.key(row) if field.key is not None else field.get(row)
    return str(value).strip("[]") if name in BARE_NAME_FIELDS else value


def list_items(value: object) -> list[str]:
    """A string list field's items, sorted as lvm2 keeps them (an empty field is an empty list)."""
    text = str(value)
    return sorted(text.split(",")) if text else []


@functools.lru_cache(maxsize=1)
def _parser() -> "Lark":
    from lark import Lark

    return Lark((Path(__file__).parent / "report_select.lark").read_text(), parser="lalr")


Operand = Union[str, float, int, "re.Pattern[str]", tuple[str, list[str]], TimeValue]
# libdm's operators for time fields only, and the comparison each is the same as.
TIME_OPERATORS = {"since": ">=", "after": ">", "until": "<=", "before": "<"}


@dataclass(frozen=True)
class Item:
    """One `field OP value` of a selection."""

    field: str
    kind: str
    op: str
    operand: Operand

    def __call__(self, row: object, fields: dict[str, "Field"]) -> bool:
        value = value_of(row, self.field, fields)
        if self.op in ("=~", "!~"):
            assert isinstance(self.operand, re.Pattern)
            return (self.operand.search(str(value)) is not None) == (self.op == "=~")
        if self.kind == "percent":
            return False  # lvcrypt shows no percentage (no active LV of those types): lvm2 matches none
        if self.kind == "list":
            assert isinstance(self.operand, tuple)
            return _list_matches(list_items(value), *self.operand) == (self.op == "=")
        if self.kind == "string":
            return (str(value) == self.operand) == (self.op == "=")
        if self.kind == "time":
            assert isinstance(self.operand, TimeValue) and isinstance(value, int)
            return _compare_time(value, self.op, self.operand)
        number = number_of(self.field, self.kind, value)
        assert isinstance(self.operand, (int, float))
        if UNDEFINED in (number, self.operand) and self.op not in ("=", "!="):
            return False
        return _compare(number, self.op, self.operand)


def _compare(value: float, op: str, operand: float) -> bool:
    equal = abs(value - operand) < _EPSILON
    return {"=": equal, "!=": not equal, ">": value > operand and not equal, ">=": value > operand or equal,
            "<": value < operand and not equal, "<=": value < operand or equal}[op]


def _compare_time(value: int, op: str, operand: TimeValue) -> bool:
    """libdm's _cmp_field_time: a range is its first second for `>=` and `<`, its last for `>`
    and `<=`; `=` is inside the range, and so is `!=` (lvm2 2.03.16 does not negate a range)."""
    first, last = operand.first, operand.last
    if last is None:
        return {"=": value == first, "!=": value != first, ">": value > first, ">=": value >= first,
                "<": value < first, "<=": value <= first}[op]
    return {"=": first <= value <= last, "!=": first <= value <= last, ">": value > last, ">=": value >= first,
            "<": value < first, "<=": value <= last}[op]


def _list_matches(items: list[str], mode: str, wanted: list[str]) -> bool:
    """libdm's three list matches: `strict` ([a,b]), `subset` ({a,b}), `any` (a, [a||b], {a})."""
    if not items:
        return "" in wanted if mode == "any" else wanted == [""]
    if mode == "any":
        return any(item in items for item in wanted)
    if mode == "strict":
        return items == wanted
    return set(wanted) <= set(items)


def _syntax(at: str) -> LvcryptError:
    return LvcryptError(f"Selection syntax error at '{at}'.")


def _unfinished(text: str) -> LvcryptError:
    """libdm's words for a selection that ends too early: inside a group, the missing parenthesis;
    otherwise the unfinished last item (`vg_free`, `vg_free>`), or nothing after a trailing `&&`."""
    depth, last_item, quote = 0, 0, ""
    for position, char in enumerate(text):
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char in ",#" or text.startswith(("&&", "||"), position):
            last_item = position + (1 if char in ",#" else 2)
    if depth > 0:
        return LvcryptError("Syntax error: right parenthesis expected at ''")
    return _syntax(text[last_item:].strip())


def _unquote(text: str) -> str:
    return text[1:-1] if text[:1] in "\"'" and text[-1:] == text[:1] and len(text) > 1 else text


def _list_operand(token: str, name: str) -> tuple[str, list[str]]:
    if token[:1] not in "[{":
        return "any", [_unquote(token)]
    body = token[1:-1]
    separators = re.findall(r"&&|,|\|\||#", body)
    if len(set(s in ("&&", ",") for s in separators)) > 1:
        raise LvcryptError("Only one type of logical operator allowed in selection list at a time.")
    items = sorted(_unquote(item.strip()) for item in re.split(r"&&|,|\|\||#", body))
    if separators and separators[0] in ("||", "#"):
        return "any", items
    if token[0] == "{":
        return ("subset" if separators else "any"), items
    return "strict", [item for item in items if item] or [""]


def _number_operand(token: str, name: str, field_kind: str) -> float:
    match = _NUMBER.match(token)
    assert match is not None
    digits, rest = match.groups()
    if not digits or digits == ".":
        raise LvcryptError(f"Failed to parse numeric value for selection field {name}.")
    if rest and rest[0] == "%":
        if field_kind != "percent":
            raise LvcryptError(f"Found percent value but {'numeric' if field_kind == 'number' else 'size'} "
                               f"value expected for selection field {name}.")
        rest = rest[1:]
    elif rest and (rest[0].lower() in _POWERS or rest[0] in "sS"):
        if field_kind != "size":
            raise LvcryptError(f"Found size unit specifier but {'numeric' if field_kind == 'number' else 'percent'}"
                               f" value expected for selection field {name}.")
        letter, rest = rest[0], rest[1:]
        factor = 512 if letter in "sS" else (1000 if letter.isupper() else 1024) ** _POWERS[letter.lower()]
        if rest:
            raise _syntax(rest)
        return float(digits) * factor / 512
    if rest:
        raise _syntax(rest)
    if field_kind == "size":
        return float(digits) * 1024 * 1024 / 512  # no unit: MiB, as lvcreate -L
    return int(float(digits)) if field_kind == "number" else float(digits)


def _item(tree: "Tree", fields: dict[str, "Field"], prefix: str, context: "_Context") -> Item:
    field_token, op_token, value_tree = tree.children
    name = resolve(str(field_token), fields, prefix)
    if name is None:
        raise LvcryptError(f"Unrecognised selection field: {field_token}")
    field_kind = kind(name, fields[name])
    value_token = value_tree.children[0]  # type: ignore[union-attr]
    op, token = str(op_token), str(value_token)
    if op in TIME_OPERATORS:
        if field_kind != "time":
            raise LvcryptError(f"Operator can be used only with time fields: {field_token}")
        op = TIME_OPERATORS[op]
    if op in ("=~", "!~"):
        if field_kind != "string":
            raise LvcryptError(f"dm_report: incompatible comparison type for selection field {name}")
        pattern = token[1:-1] if token[:1] in "([{\"'" else token
        try:
            return Item(name, field_kind, op, re.compile(pattern))
        except re.error as error:
            raise LvcryptError(f"dm_report: failed to create regex matcher for selection field {name}") from error
    if op in ("<", "<=", ">", ">=") and field_kind in ("string", "list"):
        raise LvcryptError(f"Operator can be used only with number, size, time or percent fields: {field_token}")
    if field_kind == "list":
        return Item(name, field_kind, op, _list_operand(token, name))
    if field_kind == "time":
        end = getattr(value_token, "end_pos", None)
        try:
            value = report_time.parse(token, context.text[end:] if end is not None else "", context.now)
        except LvcryptError as error:
            raise LvcryptError(f"Failed to parse time value for selection field {name}: {error}") from None
        return Item(name, field_kind, op, value)
    text = _unquote(token)
    if field_kind == "string":
        return Item(name, field_kind, op, NAMED_STRINGS.get(name, {}).get(text, text))
    if field_kind == "number" and text in UNDEFINED_WORDS or text in RESERVED_SIZES.get(name, ()):
        return Item(name, field_kind, op, UNDEFINED)
    if text in BINARY_WORDS.get(name, ()):
        return Item(name, field_kind, op, 1)
    return Item(name, field_kind, op, _number_operand(text, name, field_kind))


Node = Callable[[object, dict[str, "Field"]], bool]


@dataclass(frozen=True)
class _Context:
    """What reading a time value needs beyond its token: the whole selection (lvm2's parser may
    read past the value) and the one `now` of the command, as lvm2 takes it once per report."""

    text: str
    now: int


def _build(tree: "Tree | object", fields: dict[str, "Field"], prefix: str, used: set[str],
           context: _Context) -> Node:
    from lark import Token

    data = getattr(tree, "data", None)
    if data == "item":
        item = _item(tree, fields, prefix, context)  # type: ignore[arg-type]
        used.add(item.field)
        return item
    children = [child for child in tree.children if not isinstance(child, Token)]  # type: ignore[attr-defined]
    parts = [_build(child, fields, prefix, used, context) for child in children]
    if data == "negated":
        inner = children[0]
        if getattr(inner, "data", None) == "negated":  # lvm2 sets one "not" flag: `!(!(x))` is `!(x)`
            return parts[0]
        return lambda row, f: not parts[0](row, f)
    if data == "and_ex":
        return lambda row, f: all(part(row, f) for part in parts)
    if data == "or_ex":
        return lambda row, f: any(part(row, f) for part in parts)
    raise LvcryptError(f"Selection syntax error at '{tree}'.")


def parse(text: str, fields: dict[str, "Field"], prefix: str) -> tuple[Node | None, set[str]]:
    """The selection as a test of one row, and the fields it reads; None selects every row
    (empty or `all`, as lvm2)."""
    if not text.strip() or text.strip().lower() == "all":
        return None, set()
    from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedToken

    try:
        tree = _parser().parse(text)
    except UnexpectedToken as error:
        if error.token.type == "$END":
            raise _unfinished(text) from None
        raise _syntax(text[error.token.start_pos:] if error.token.start_pos is not None else text) from None
    except (UnexpectedCharacters, UnexpectedEOF) as error:
        position = getattr(error, "pos_in_stream", None) or 0
        raise _syntax(text[position:]) from None
    used: set[str] = set()
    return _build(tree, fields, prefix, used, _Context(text, int(time.time()))), used


def select(rows: list[object], test: Node | None, fields: dict[str, "Field"]) -> list[object]:
    """The rows the selection keeps, in their order."""
    return rows if test is None else [row for row in rows if test(row, fields)]
