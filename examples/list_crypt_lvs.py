"""List every encrypted LV of a VG with its keystore, handler and cipher, with the Python API.

    python examples/list_crypt_lvs.py vg0.txt        # a metadata file
"""

from __future__ import annotations

import sys

from lvcrypt.api import MetadataFile
from lvcrypt.errors import LvcryptError


def main(source: str) -> int:
    try:
        md = MetadataFile.open(source)
    except LvcryptError as error:
        print(f"error: {error}", file=sys.stderr)
        return 5
    for lv in md.crypt_lvs():
        store = md.keystore_of(lv)
        size = lv.extent_count * md.vg.extent_bytes
        print(f"{md.vg.name}/{lv.name}\t{size >> 20} MiB\tkeystore={','.join(lv.keystores())}"
              f"\thandler={store.handler}\tcipher={store.cipher}\tkey_size={store.key_size}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
