"""Edit a metadata file offline with the Python API (e.g. a vgcfgbackup file before a vgcfgrestore).

    python examples/edit_metadata_offline.py vg0.txt

Tags an LV, renames another, removes one whose keystore then goes too, and
saves: every change is validated before it is accepted.
"""

from __future__ import annotations

import argparse
import sys

from lvcrypt.api import MetadataFile
from lvcrypt.errors import LvcryptError


def main(path: str) -> int:
    try:
        with MetadataFile.open(path) as md:
            md.add_tag("data", "nightly-backup")
            md.rename_lv("data", "data2")
            md.remove_lv("secret")  # its keystore cryptostore0 has no other user: removed too
            try:
                md.remove_lv("cryptostore1")  # still used by "home": refused, nothing changes
            except LvcryptError as refused:
                print(f"refused as expected: {refused}")
            md.save()
            print("now:", ", ".join(lv.name for lv in md.lvs(hidden=True)))
    except LvcryptError as error:
        print(f"error: {error}", file=sys.stderr)
        return 5
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", help="a metadata file (changed in place)")
    sys.exit(main(parser.parse_args().path))
