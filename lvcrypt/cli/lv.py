"""`lvcreate lvremove lvextend lvreduce lvrename` for plain (linear and striped) LVs, lvm2's options.

Argument handling only: sizes become extent counts in lvcrypt.lvsize, the
changes themselves are the functions of lvcrypt.lvops, run inside a VgTransaction.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import TYPE_CHECKING

from lvcrypt.cli import lvm2_options
from lvcrypt.cli.options import (ALLOC_POLICIES, add_encrypt_options, add_sysfs_root_option, add_tag_options,
                                 alloc_policy)

if TYPE_CHECKING:
    from lvcrypt.lvsize import SizeRequest, Sizing
    from lvcrypt.metadata.model import LogicalVolume, VolumeGroup

_EXTENTS = re.compile(r"([+-]?)([0-9]+)(?:%(FREE|VG|PVS))?\Z", re.IGNORECASE)


def _size_request(text: str) -> "SizeRequest":
    from lvcrypt.errors import UsageError
    from lvcrypt.lvsize import SizeRequest
    from lvcrypt.units import parse_size

    sign = text[:1] if text[:1] in "+-" else ""
    size = parse_size(text[len(sign):], "m")
    if size == 0:
        raise UsageError("--size may not be zero.")  # lvm2's refusal, also for +0 and -0
    return SizeRequest(sign, bytes=size)


def _extents_request(text: str) -> "SizeRequest":
    from lvcrypt.errors import UsageError
    from lvcrypt.lvsize import SizeRequest

    match = _EXTENTS.match(text.strip())
    if not match:
        raise UsageError(f"invalid extent count '{text}' (N, N%FREE, N%VG or N%PVS)")
    sign, number, percent = match.groups()
    if int(number) == 0:
        raise UsageError("--extents may not be zero.")
    return SizeRequest(sign, extents=int(number), percent_of=percent.upper() if percent else None)


def _pv_keys(tx: object, paths: list[str]) -> list[str] | None:
    from lvcrypt.errors import LvcryptError

    if not paths:
        return None
    by_uuid = {pv.uuid: key for key, pv in tx.loaded.pvs.items()}  # type: ignore[attr-defined]
    keys = []
    for path in paths:  # as the user named it at pvcreate or since: relative, a symlink, another node
        pv = tx.scan.pv_at(path)  # type: ignore[attr-defined]
        if pv is None or pv.uuid not in by_uuid:
            raise LvcryptError(f"physical volume {path} is not in the volume group")
        keys.append(by_uuid[pv.uuid])
    return keys


def _split_lv(text: str, vg: str | None = None) -> tuple[str, str]:
    """VG/LV, /dev/VG/LV, /dev/mapper/VG-LV, or a bare LV name in `vg`."""
    from lvcrypt.object_names import lv_argument

    return lv_argument(text, vg)


def _request(args: argparse.Namespace) -> "SizeRequest":
    from lvcrypt.errors import UsageError

    if (args.size is None) == (args.extents is None):
        raise UsageError("give exactly one of -L/--size and -l/--extents")
    return args.size if args.size is not None else args.extents


def _print_notes(sizing: "Sizing") -> None:
    for line in sizing.rounding:
        print(line, file=sys.stderr)
    for note in sizing.notes:
        print(note)


def _create_alloc(args: argparse.Namespace) -> str | None:
    """lvcreate's policy word: --alloc, or -C y (contiguous)."""
    return "contiguous" if args.contiguous == "y" else args.alloc


def _record_properties(vg: "VolumeGroup", lv: "LogicalVolume", args: argparse.Namespace) -> None:
    """What lvm2's lvcreate keeps in the new LV's metadata: the policy given (for later extensions),
    -p r, -k y."""
    from lvcrypt.property_changes import LvChange, apply_to_lv

    alloc = _create_alloc(args)
    apply_to_lv(vg, lv, LvChange(permission="r" if args.permission == "r" else None,
                                 alloc=None if alloc in (None, "inherit") else alloc,
                                 activation_skip=True if args.setactivationskip == "y" else None),
                thick_origins=frozenset())  # a new LV: no snapshot names it


def cmd_lvcreate(args: argparse.Namespace) -> int:
    from lvcrypt.alloc import policy_for
    from lvcrypt.errors import UsageError
    from lvcrypt.lvsize import create_extents
    from lvcrypt.lvops import check_new_lv_name, create_lv, free_lv_name
    from lvcrypt.object_names import is_lv_argument, vg_argument
    from lvcrypt.store.transaction import VgTransaction
    from lvcrypt.tags import apply as apply_tags

    vg_name, name = (_split_lv(args.vg) if is_lv_argument(args.vg) else (vg_argument(args.vg), args.name))
    request = _request(args)
    if request.sign:
        raise UsageError("lvcreate: a size cannot be relative (+/-)")
    stripes = args.stripes or 1
    if args.type == "linear" and stripes > 1:
        raise UsageError("lvcreate: --type linear cannot have several stripes")
    if args.type == "striped" and stripes < 2:
        stripes = 2 if args.stripes is None else stripes
    if stripes < 1:
        raise UsageError("lvcreate: -i needs at least 1 stripe")
    if args.contiguous is not None and args.alloc is not None:
        raise UsageError("Conflicting contiguous and alloc arguments.")
    if args.wipe and args.permission == "r":
        raise UsageError("lvcreate: --wipe writes the new LV; it does not go with -p r")
    encrypted = args.encrypt or args.type == "crypt"
    if not encrypted and (args.keystore or args.handler or args.wipe):
        raise UsageError("lvcreate: --keystore, --handler and --wipe need --encrypt")
    key = None
    with VgTransaction(args.devices, vg_name) as tx:
        name = free_lv_name(tx.vg) if name is None else name
        check_new_lv_name(vg_name, name)
        keys = _pv_keys(tx, args.pv)
        policy = policy_for(tx.vg, None, _create_alloc(args))
        sizing = create_extents(request, tx.vg, stripes, keys, policy)
        _print_notes(sizing)
        extents = sizing.extents
        if extents <= 0:
            raise UsageError("lvcreate: the size is zero extents")
        if encrypted:
            from lvcrypt.cli.options import encrypted_lv_request, key_sources
            from lvcrypt.encrypted_lv import create_encrypted

            lv, key = create_encrypted(tx, name, extents, stripes, args.stripesize, policy, keys,
                                       encrypted_lv_request(args), key_sources(args))
        else:
            lv = create_lv(tx.vg, name, extents, stripes, args.stripesize, policy, keys)
        _record_properties(tx.vg, lv, args)
        apply_tags(lv.tags, args.addtag, [])
        try:
            tx.commit()
            if args.wipe:
                from lvcrypt.cli.options import key_sources, wipe_progress
                from lvcrypt.encrypted_lv import wipe_lv

                wipe_lv(tx, name, key, key_sources(args), progress=wipe_progress(f"{vg_name}/{name}"))
                key = None
        finally:
            if key is not None:
                key.close()
    print(f"  Logical volume \"{name}\" created.")
    return 0


def cmd_lvremove(args: argparse.Namespace) -> int:
    from lvcrypt.cryptlv import remove_lv_and_keystores
    from lvcrypt.errors import LvcryptError
    from lvcrypt.lv_checks import find_lv, refuse_change
    from lvcrypt.object_names import expand_lv_arguments
    from lvcrypt.store.transaction import VgTransaction

    targets: dict[str, list[str]] = {}
    for item in expand_lv_arguments(args.devices, args.lv):  # @tag: none selected removes nothing, as lvm2
        vg_name, _, lv_name = item.partition("/")
        targets.setdefault(vg_name, []).extend([lv_name] if lv_name else [])
    for vg_name, names in targets.items():
        with VgTransaction(args.devices, vg_name) as tx:
            if not names:
                if not args.force and tx.vg.lvs:
                    raise LvcryptError(f"lvremove {vg_name}: removing every LV of the VG needs -f")
                names = [name for name, lv in tx.vg.lvs.items() if lv.visible]
            removed = []
            for name in names:
                refuse_change(tx.vg, find_lv(tx.vg, name), "remove", args.sysfs_root)
                removed += [name] + remove_lv_and_keystores(tx.vg, name)
            tx.commit()
        for name in removed:
            print(f"  Logical volume \"{name}\" successfully removed.")
    return 0


def _resize(args: argparse.Namespace, grow: bool | None) -> int:
    """lvextend (grow), lvreduce (not grow) and lvresize (None: the size given decides)."""
    from lvcrypt.activation import check_reload, live_table
    from lvcrypt.alloc import policy_for
    from lvcrypt.errors import LvcryptError, UsageError
    from lvcrypt.lvsize import resize_extents
    from lvcrypt.lv_checks import find_lv, refuse_change
    from lvcrypt.lvops import extend_lv, reduce_lv
    from lvcrypt.store.transaction import VgTransaction

    vg_name, name = _split_lv(args.lv)
    request = _request(args)
    verb = {True: "lvextend", False: "lvreduce", None: "lvresize"}[grow]
    if grow is not None and request.sign == ("-" if grow else "+"):
        raise UsageError(f"{verb}: a size of {request.sign}... does not {'grow' if grow else 'shrink'} an LV")
    with VgTransaction(args.devices, vg_name) as tx:
        lv = find_lv(tx.vg, name, f"Logical volume {name} not found in volume group {vg_name}.")
        before = lv.extent_count
        keys = _pv_keys(tx, getattr(args, "pv", []))
        policy = policy_for(tx.vg, lv.allocation_policy, args.alloc)
        if grow is None:
            target = resize_extents(request, tx.vg, before, 1, keys, policy).extents
            if target == before:
                raise LvcryptError(f"New size ({target} extents) matches existing size ({before} extents).")
            grow = target > before
        if not grow and not (args.yes or args.force):
            raise LvcryptError(f"{verb}: refusing to reduce {vg_name}/{name} without -y (data at its end is lost)")
        refuse_change(tx.vg, lv, "extend" if grow else "reduce", args.sysfs_root)
        stripes = (getattr(args, "stripes", None) or len(lv.segments[-1].pv_areas()) or 1) if grow else 1
        sizing = resize_extents(request, tx.vg, before, stripes, keys, policy)
        _print_notes(sizing)
        target = sizing.extents
        if target == before:
            raise LvcryptError(f"New size ({target} extents) matches existing size ({before} extents).")
        if grow:
            if target <= before:
                raise LvcryptError(f"{verb}: new size ({target} extents) is not larger than {before} extents")
            live = live_table(tx, name, args.sysfs_root)
            extend_lv(tx.vg, lv, target - before, getattr(args, "stripes", None), getattr(args, "stripesize", None),
                      policy, keys)
            if live is not None:
                warning = check_reload(tx, name, live, bool(args.force), args.sysfs_root)
                if warning:
                    print(f"  WARNING: {warning}", file=sys.stderr)
        else:
            if target >= before:
                raise LvcryptError(f"{verb}: new size ({target} extents) is not smaller than {before} extents")
            reduce_lv(tx.vg, lv, before - target)
        size = tx.vg.extent_bytes / 1048576
        tx.commit()
    print(f"  Size of logical volume {vg_name}/{name} changed from {before * size:.2f} MiB ({before} extents) "
          f"to {lv.extent_count * size:.2f} MiB ({lv.extent_count} extents).")
    print(f"  Logical volume {vg_name}/{name} successfully resized.")
    return 0


def cmd_lvextend(args: argparse.Namespace) -> int:
    return _resize(args, grow=True)


def cmd_lvreduce(args: argparse.Namespace) -> int:
    return _resize(args, grow=False)


def cmd_lvresize(args: argparse.Namespace) -> int:
    return _resize(args, grow=None)


def cmd_lvrename(args: argparse.Namespace) -> int:
    from lvcrypt.errors import UsageError
    from lvcrypt.lv_checks import find_lv, refuse_change
    from lvcrypt.lvops import rename_lv
    from lvcrypt.store.transaction import VgTransaction

    names = args.names
    if len(names) == 3:
        vg_name, old, new = names
    elif len(names) == 2:
        vg_name, old = _split_lv(names[0])
        new_vg, new = _split_lv(names[1], vg_name)
        if new_vg != vg_name:
            raise UsageError("lvrename: the new name must be in the same volume group")
    else:
        raise UsageError("lvrename VG OLD NEW, or lvrename VG/OLD [VG/]NEW")
    with VgTransaction(args.devices, vg_name) as tx:
        lv = find_lv(tx.vg, old, f"Existing logical volume \"{old}\" not found in volume group \"{vg_name}\"")
        refuse_change(tx.vg, lv, "rename", args.sysfs_root)
        rename_lv(tx.vg, old, new)
        tx.commit()
    print(f"  Renamed \"{old}\" to \"{new}\" in volume group \"{vg_name}\"")
    return 0


def _size_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-L", "--size", type=_size_request, help="size (default unit m; +/- for relative)")
    parser.add_argument("-l", "--extents", type=_extents_request, help="extents, or N%%FREE, N%%VG, N%%PVS")


def _stripe_count(text: str) -> int:
    """lvm2's rule for -i: a positive whole number (it refuses a negative and a zero count alike)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid argument for --stripes: {text}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("--stripes may not be zero" if value == 0
                                         else f"invalid argument for --stripes: {text}")
    return value


def _stripe_options(parser: argparse.ArgumentParser) -> None:
    from lvcrypt.units import parse_size

    parser.add_argument("-i", "--stripes", type=_stripe_count, help="number of stripes")
    parser.add_argument("-I", "--stripesize", type=lambda text: parse_size(text, "k") // 512,
                        help="stripe size (default unit k)")
    parser.add_argument("--alloc", type=alloc_policy, choices=ALLOC_POLICIES,
                        help="allocation policy (default: the LV's, else the VG's, as lvm2)")


def _ignored_lvm2_options(parser: argparse.ArgumentParser) -> None:
    """Options lvm2 scripts pass that change nothing here (no activation, no zeroing of new LVs)."""
    parser.add_argument("-a", "--activate", choices=("y", "n", "ay"), help="accepted; LVs are not activated")
    parser.add_argument("-Z", "--zero", choices=("y", "n"), help="accepted; new LVs are not zeroed")
    parser.add_argument("-W", "--wipesignatures", choices=("y", "n"), help="accepted; nothing is wiped")


def register(sub: argparse._SubParsersAction, name: str) -> None:  # type: ignore[type-arg]
    common = [lvm2_options()]
    if name == "lvcreate":
        parser = sub.add_parser(name, parents=common, help="create a linear, striped or encrypted (--encrypt) logical volume")
        _size_options(parser)
        _stripe_options(parser)
        _ignored_lvm2_options(parser)
        parser.add_argument("-n", "--name", help="name of the new LV (default: lvolN, as lvm2)")
        parser.add_argument("--type", choices=("linear", "striped", "crypt"), help="segment type")
        parser.add_argument("-p", "--permission", choices=("r", "rw"), help="r: a read-only LV (default rw)")
        parser.add_argument("-k", "--setactivationskip", choices=("y", "n"),
                            help="y: -ay passes over the LV unless -K is given")
        parser.add_argument("-C", "--contiguous", choices=("y", "n"), help="y: allocation policy contiguous")
        add_encrypt_options(parser)
        add_tag_options(parser, delete=False)
        parser.add_argument("vg", help="VG (or VG/LV)")
        parser.add_argument("pv", nargs="*", help="allocate only on these PVs")
        parser.set_defaults(func=cmd_lvcreate)
    elif name == "lvremove":
        parser = sub.add_parser(name, parents=common, help="remove logical volumes")
        parser.add_argument("lv", nargs="+", help="VG/LV, or VG for all its LVs (with -f)")
        add_sysfs_root_option(parser)
        parser.set_defaults(func=cmd_lvremove)
    elif name in ("lvextend", "lvreduce", "lvresize"):
        grow = name != "lvreduce"  # lvresize takes lvextend's options
        parser = sub.add_parser(name, parents=common, help={
            "lvextend": "grow a logical volume", "lvreduce": "shrink a logical volume",
            "lvresize": "grow or shrink a logical volume (shrinking needs -y)"}[name])
        _size_options(parser)
        add_sysfs_root_option(parser)
        if grow:
            _stripe_options(parser)
        parser.set_defaults(alloc=None)
        parser.add_argument("lv", help="VG/LV")
        if grow:
            parser.add_argument("pv", nargs="*", help="allocate only on these PVs")
        parser.set_defaults(func={"lvextend": cmd_lvextend, "lvreduce": cmd_lvreduce, "lvresize": cmd_lvresize}[name])
    else:
        parser = sub.add_parser(name, parents=common, help="rename a logical volume")
        parser.add_argument("names", nargs="+", help="VG OLD NEW, or VG/OLD [VG/]NEW")
        add_sysfs_root_option(parser)
        parser.set_defaults(func=cmd_lvrename)
