"""Semantic difference of two metadata trees: what a person means by "what changed".

Key order, layout and comments are ignored; each difference is a dotted path
with the old and the new value.
"""

from __future__ import annotations


from lvcrypt.metadata.tree import Section, Value
from lvcrypt.metadata.write import scalar
from lvcrypt.records import dataclass


@dataclass(frozen=True)
class Difference:
    path: str
    old: Value | None  # None: added
    new: Value | None  # None: removed

    def __str__(self) -> str:
        if self.old is None:
            return f"+ {self.path} = {show(self.new)}"
        if self.new is None:
            return f"- {self.path} = {show(self.old)}"
        return f"~ {self.path}: {show(self.old)} -> {show(self.new)}"


def show(value: Value | None) -> str:
    if isinstance(value, Section):
        return "{...}"
    if isinstance(value, list):
        return "[" + ", ".join(scalar(item) for item in value) + "]"
    return scalar(value) if value is not None else ""


def differences(old: Section, new: Section, prefix: str = "", vg_relative: bool = False) -> list[Difference]:
    """Differences as dotted paths.

    With `vg_relative`, two texts of the same VG are compared by their VG
    sections, named without the VG name as `metadata get`/`set` name them; the
    top-level keys (description, creation_time...) describe the file or the
    commit that wrote it, not the VG, and are left out.
    """
    if vg_relative:
        old_vgs = [(k, v) for k, v in old.items() if isinstance(v, Section)]
        new_vgs = [(k, v) for k, v in new.items() if isinstance(v, Section)]
        if len(old_vgs) == 1 and len(new_vgs) == 1 and old_vgs[0][0] == new_vgs[0][0]:
            return differences(old_vgs[0][1], new_vgs[0][1])
    out: list[Difference] = []
    for key, value in old.items():
        path = f"{prefix}{key}"
        if key not in new:
            out.append(Difference(path, value, None))
        elif isinstance(value, Section) and isinstance(new[key], Section):
            out.extend(differences(value, new[key], path + "."))  # type: ignore[arg-type]
        elif value != new[key] or type(value) is not type(new[key]):
            out.append(Difference(path, value, new[key]))
    for key, value in new.items():
        if key not in old:
            out.append(Difference(f"{prefix}{key}", None, value))
    return out
