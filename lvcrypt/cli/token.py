"""`lvcrypt token add|remove|import|export|list`: a keystore's LUKS2 tokens, as `cryptsetup token`.

TARGET is an image file or block device holding a LUKS2 keystore, or
VG/KEYSTORE naming a keystore LV.  `add --key-description DESC` makes a
luks2-keyring token: activation then reads the keyslot's passphrase from the
kernel-keyring key DESC instead of asking.  `import` and `export` move any
token as JSON text, kept verbatim.
"""

from __future__ import annotations

import argparse
import sys

from lvcrypt.cli import common_options
from lvcrypt.cli.options import non_negative


def cmd_add(args: argparse.Namespace) -> int:
    from lvcrypt.keystore_tokens import add_keyring_token

    number = add_keyring_token(args.target, args.devices, args.key_description, args.key_slot or [], args.token_id)
    print(f"Token {number} created.")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    from lvcrypt.keystore_tokens import remove_token

    remove_token(args.target, args.devices, args.token_id)
    print(f"Token {args.token_id} removed.")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from lvcrypt.keystore_tokens import import_token

    number = import_token(args.target, args.devices, args.json_file, args.token_id, args.token_replace)
    print(f"Token {number} created.")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from lvcrypt.keystore_tokens import export_token

    text = export_token(args.target, args.devices, args.token_id, args.json_file)
    if text is not None:
        sys.stdout.write(text)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from lvcrypt.keystore_tokens import list_tokens

    for token in list_tokens(args.target, args.devices):
        slots = ",".join(map(str, token.keyslots))
        described = f" key_description={token.key_description}" if token.key_description is not None else ""
        print(f"{token.token}\t{token.type}\tkeyslots={slots}{described}")
    return 0


def register(sub: argparse._SubParsersAction, name: str) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser(name, help="add, remove, import, export and list tokens", description=__doc__)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", parser_class=type(parser))
    actions.required = True
    common = [common_options()]

    add = actions.add_parser("add", parents=common, help="add a luks2-keyring token (like token add)")
    add.add_argument("target", metavar="TARGET")
    add.add_argument("--key-description", required=True, metavar="DESC",
                     help="the kernel-keyring user key holding the keyslot's passphrase")
    add.add_argument("-S", "--key-slot", type=non_negative, action="append", metavar="N",
                     help="keyslot the token opens (repeatable; default none)")
    add.add_argument("--token-id", type=non_negative, metavar="N", help="default: the first free token")
    add.set_defaults(func=cmd_add)

    remove = actions.add_parser("remove", parents=common, help="remove a token (like token remove)")
    remove.add_argument("target", metavar="TARGET")
    remove.add_argument("--token-id", type=non_negative, required=True, metavar="N")
    remove.set_defaults(func=cmd_remove)

    imp = actions.add_parser("import", parents=common, help="add a token from JSON (like token import)")
    imp.add_argument("target", metavar="TARGET")
    imp.add_argument("--json-file", metavar="FILE", help="the token's JSON (default and '-': standard input)")
    imp.add_argument("--token-id", type=non_negative, metavar="N", help="default: the first free token")
    imp.add_argument("--token-replace", action="store_true", help="replace the token --token-id names")
    imp.set_defaults(func=cmd_import)

    exp = actions.add_parser("export", parents=common, help="print a token's JSON (like token export)")
    exp.add_argument("target", metavar="TARGET")
    exp.add_argument("--json-file", metavar="FILE", help="write it here (default and '-': standard output)")
    exp.add_argument("--token-id", type=non_negative, required=True, metavar="N")
    exp.set_defaults(func=cmd_export)

    listing = actions.add_parser("list", parents=common, help="list tokens")
    listing.add_argument("target", metavar="TARGET")
    listing.set_defaults(func=cmd_list)
