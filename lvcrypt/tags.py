"""lvm2's tags on LVs, VGs and PVs: `--addtag`/`--deltag` and the checks lvm2 makes of a tag.

Tags are kept in the metadata where lvm2 keeps them (`tags = [...]` of each LV, VG
and PV section, written by lvcrypt.metadata.convert), so lvm2 reads what lvcrypt
adds and the other way round.  lvchange and pvchange apply every --addtag first,
then every --deltag, whatever their order on the command line, as `apply` does;
vgchange deletes first (lvcrypt.property_changes, which changes them).
"""

from __future__ import annotations

import re
from lvcrypt.errors import UsageError

# lvm2's validate_tag: A-Z a-z 0-9 . _ - + / = ! : & #; `@` in front is the selector and is dropped.
_TAG = re.compile(r"[A-Za-z0-9._+/=!:&#-]+\Z")


def tag_argument(text: str, option: str) -> str:
    """A tag as given to --addtag/--deltag (a leading `@` is accepted, as lvm2 accepts it)."""
    tag = text[1:] if text.startswith("@") else text
    if not _TAG.match(tag):
        raise UsageError(f"Invalid argument for {option}: {text}")
    return tag


def apply(tags: list[str], add: list[str], delete: list[str]) -> bool:
    """Change `tags` in place (added at the end, each once; then deletions); whether anything changed."""
    before = list(tags)
    tags.extend(tag for tag in dict.fromkeys(add) if tag not in tags)
    tags[:] = [tag for tag in tags if tag not in delete]
    return tags != before
