"""`-O/--sort`: lvm2's row order for pvs, vgs and lvs.

lvm2 sorts the rows it collected (VGs by name, each VG's LVs in metadata order)
with a stable sort on the keys given, `-field` descending; without -O it uses
each command's default keys, which is the order lvcrypt builds its rows in.
Numbers, sizes and times compare as numbers, everything else as strings (C locale).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lvcrypt.errors import LvcryptError, UsageError
from lvcrypt.report_select import kind, list_items, number_of, resolve, value_of

if TYPE_CHECKING:
    from lvcrypt.reportfields import Field


def sort_keys(spec: list[str] | None, fields: dict[str, "Field"], prefix: str) -> list[tuple[str, bool]]:
    """(field, descending) for each key of `-O a,-b`."""
    keys: list[tuple[str, bool]] = []
    for item in spec or []:
        for word in (part.strip() for part in item.split(",")):
            if not word:
                continue
            descending = word.startswith("-")
            name = resolve(word.lstrip("+-"), fields, prefix)
            if name is None:
                raise UsageError(f"Unrecognised field: {word.lstrip('+-')}")
            keys.append((name, descending))
    return keys


def _key(row: object, name: str, fields: dict[str, "Field"]) -> object:
    value = value_of(row, name, fields)
    field_kind = kind(name, fields[name])
    if field_kind in ("number", "size"):
        return number_of(name, field_kind, value)
    if field_kind == "time":
        return value  # seconds since the epoch
    if field_kind == "list":
        return ",".join(list_items(value)).encode()
    return str(value).encode()


def sort_rows(rows: list[object], keys: list[tuple[str, bool]], fields: dict[str, "Field"],
              base_order: list[object] | None = None) -> list[object]:
    """The rows in -O order: stable, from lvm2's collection order (`base_order` when given)."""
    if not keys:
        return rows
    ordered = list(base_order) if base_order is not None else list(rows)
    for name, descending in reversed(keys):
        try:
            ordered.sort(key=lambda row: _key(row, name, fields), reverse=descending)  # noqa: B023
        except (TypeError, ValueError) as error:
            raise LvcryptError(f"cannot sort on {name}: {error}") from error
    return ordered
