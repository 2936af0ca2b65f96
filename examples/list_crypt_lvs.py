"""List every encrypted LV of a VG with its keystore, handler and cipher, with the Python API.

    python examples/list_crypt_lvs.py vg0.txt                      # a metadata file
    python examples/list_crypt_lvs.py vg0 --devices /dev/sdb,/dev/sdc   # a VG on its PVs
"""

from __future__ import annotations

import argparse
import os
import sys

from lvcrypt.api import MetadataFile, VolumeGroupEditor, open_vg
from lvcrypt.errors import LvcryptError


def show(md: VolumeGroupEditor) -> None:
    for lv in md.crypt_lvs():
        store = md.keystore_of(lv)
        size = lv.extent_count * md.vg.extent_bytes
        print(f"{md.vg.name}/{lv.name}\t{size >> 20} MiB\tkeystore={','.join(lv.keystores())}"
              f"\thandler={store.handler}\tcipher={store.cipher}\tkey_size={store.key_size}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("source", help="a metadata file or a VG name")
    parser.add_argument("--devices", help="devices to scan for the VG")
    args = parser.parse_args()
    try:
        if os.path.exists(args.source):
            show(MetadataFile.open(args.source))
        else:
            with open_vg(args.source, args.devices) as vg:
                show(vg)
    except LvcryptError as error:
        print(f"error: {error}", file=sys.stderr)
        return 5
    return 0


if __name__ == "__main__":
    sys.exit(main())
