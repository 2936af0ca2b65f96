"""`lvchange -ay|-an [--refresh] VG/LV` and `vgchange -ay|-an VG`: the kernel backend.

Volume keys for crypt LVs come, in cryptsetup's order (lvcrypt.unlock), from
`--volume-key-keyring` (a key already in the kernel keyring, checked against
the keystore before use), from --key-file, from a LUKS2 `luks2-keyring`
token (the passphrase is a keyring key the token names), or from a prompt.
`--link-vk-to-keyring` also leaves the volume key in a keyring of the
user's choice.  lvcrypt.activation does the work; keys live in the command's
KeyCache and are wiped at exit; dm-crypt gets them as `logon` keys, never as hex.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Callable

from lvcrypt.cli import lvm2_options, not_found_status
from lvcrypt.cli.options import (ALLOC_POLICIES, add_key_file_option, add_keyring_options, add_tag_options,
                                 add_token_options, alloc_policy, key_sources)

if TYPE_CHECKING:
    from lvcrypt.activation import ActivationRequest
    from lvcrypt.property_changes import LvChange
    from lvcrypt.store.transaction import VgTransaction


def _request(args: argparse.Namespace, refresh: bool) -> "ActivationRequest":
    from lvcrypt.activation import ActivationRequest

    return ActivationRequest(activate=args.activate in ("y", "ey", "sy"), refresh=refresh,
                             link_vk_to_keyring=args.link_vk_to_keyring, shared=args.activate == "sy",
                             ignore_skip=args.ignoreactivationskip)


def _lv_change(args: argparse.Namespace) -> "LvChange":
    from lvcrypt.errors import UsageError
    from lvcrypt.property_changes import LvChange

    if args.alloc is not None and args.contiguous is not None:
        raise UsageError("Command does not accept option combination: --contiguous  with --alloc ")
    alloc = args.alloc if args.contiguous is None else ("contiguous" if args.contiguous == "y" else "inherit")
    skip = None if args.setactivationskip is None else args.setactivationskip == "y"
    return LvChange(tuple(args.addtag), tuple(args.deltag), args.permission, alloc, skip)


def _reload(args: argparse.Namespace) -> Callable[["VgTransaction", str], None]:
    """A permission change of an active LV: its tables again, read-only or not (the keys stay in the keyring)."""
    def reload(tx: "VgTransaction", lv_name: str) -> None:
        from lvcrypt.activation import ActivationRequest, change_lv
        from lvcrypt.keycache import KeyCache

        with KeyCache() as keys:
            change_lv(tx, lv_name, keys, ActivationRequest(activate=True, refresh=True, link_vk_to_keyring=None,
                                                           shared=False, ignore_skip=False), key_sources(args))
    return reload


def cmd_lvchange(args: argparse.Namespace) -> int:
    from lvcrypt.activation import change_lv, check_before_starting
    from lvcrypt.errors import UsageError
    from lvcrypt.keycache import KeyCache
    from lvcrypt.object_names import lv_targets
    from lvcrypt.store.transaction import VgTransaction, warn

    change = _lv_change(args)
    if args.activate is None and not args.refresh and not change:
        raise UsageError("lvchange: give -ay, -an or --refresh, or a property to change "
                         "(-p, -k, --alloc, -C, --addtag, --deltag)")
    if args.refresh and args.activate == "n":
        raise UsageError("lvchange: --refresh reloads an active LV; it does not go with -an")
    if args.refresh and change:
        raise UsageError("Command does not accept option: --refresh.")
    targets = lv_targets(args.devices, args.lvs)
    refusals: list[str] = []
    if change:
        from lvcrypt.property_changes import change_lvs, reload_permission_changes

        outcomes = change_lvs(args.devices, targets, change)
        for outcome in outcomes:
            for notice in outcome.notices:
                print(f"  {notice}")
            if outcome.changed:
                print(f"  Logical volume {outcome.vg}/{outcome.lv} changed.")
        reload_permission_changes(args.devices, outcomes, _reload(args))
        refusals = [refusal for outcome in outcomes for refusal in outcome.refusals]
        if args.activate is not None:
            warn("Combining activation change with other commands is not advised.")
    if args.activate is not None or args.refresh:
        if args.refresh:
            args.activate = "y"
        request, sources = _request(args, args.refresh), key_sources(args)
        check_before_starting(request, sources)
        for vg_name, lv_name in targets:
            with VgTransaction(args.devices, vg_name, exclusive=False, allow_missing=True) as tx, \
                    KeyCache() as keys:
                change_lv(tx, lv_name, keys, request, sources)
    return not_found_status(refusals)  # lvm2's status 5 when any LV refused, after the rest was done


def cmd_vgchange(args: argparse.Namespace) -> int:
    """Every visible LV of each VG (keystores are metadata, never activated themselves)."""
    from lvcrypt.activation import active_lv_count, change_lvs, check_before_starting, vg_activation_targets
    from lvcrypt.errors import UsageError
    from lvcrypt.keycache import KeyCache
    from lvcrypt.property_changes import VgChange
    from lvcrypt.store.transaction import VgTransaction, warn

    if args.lock_start or args.lock_stop:
        from lvcrypt.activation import activate_lock_lv, deactivate_lock_lv
        from lvcrypt.store.lockspaces import LockLvSwitch, change_lockspaces

        change_lockspaces(args.devices, args.vgs, args.lock_start, LockLvSwitch(activate_lock_lv, deactivate_lock_lv))
        return 0
    if not args.vgs:
        raise UsageError("vgchange: name a VG")
    change = VgChange(None if args.resizeable is None else args.resizeable == "y", tuple(args.addtag),
                      tuple(args.deltag), args.alloc)
    if change and args.activate is not None:
        raise UsageError(f"Command does not accept option: --activate {args.activate}.")
    from lvcrypt.object_names import expand_vg_arguments

    vg_names = expand_vg_arguments(args.devices, args.vgs)
    if change:
        from lvcrypt.property_changes import change_vgs

        change_vgs(args.devices, vg_names, change, lambda vg: print(f"  Volume group \"{vg}\" successfully changed"))
        return 0
    if args.activate is None:
        raise UsageError("vgchange: give -ay or -an, or a property to change (-x, --alloc, --addtag, --deltag)")
    request, sources = _request(args, False), key_sources(args)
    check_before_starting(request, sources)
    for vg_name in vg_names:
        with VgTransaction(args.devices, vg_name, exclusive=False, allow_missing=True) as tx, KeyCache() as keys:
            names, skipped = vg_activation_targets(tx.vg)
            for problem in skipped:
                warn(f"skipping: {problem}")  # lvm2's LVs stay lvm2's; the rest are activated
            change_lvs(tx, names, keys, request, sources)
            print(f"  {active_lv_count(tx.vg)} logical volume(s) in volume group \"{vg_name}\" now active")
    return 0


def register(sub: argparse._SubParsersAction, name: str) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser(name, parents=[lvm2_options()],
                            help="activate or deactivate an LV (device-mapper)" if name == "lvchange"
                            else "activate or deactivate every LV of a VG (device-mapper)")
    parser.add_argument("-a", "--activate", choices=("y", "n", "ey", "sy"),
                        help="y: create the dm devices; n: remove them; in a shared VG ey (as y) takes the LV's "
                        "lock exclusively, sy shared")
    parser.add_argument("-K", "--ignoreactivationskip", action="store_true",
                        help="activate LVs with the activation-skip flag too (lvm2's lvcreate -ky)")
    add_key_file_option(parser)
    add_keyring_options(parser)
    add_token_options(parser)
    add_tag_options(parser)
    parser.add_argument("--alloc", type=alloc_policy, choices=ALLOC_POLICIES,
                        help="allocation policy of the LV's (the VG's) next extents, kept in the metadata")
    if name == "lvchange":
        parser.add_argument("--refresh", action="store_true", help="reload an active LV's tables (after lvextend)")
        parser.add_argument("-p", "--permission", choices=("r", "rw"),
                            help="r: read-only (an active LV is reloaded read-only), rw: writable")
        parser.add_argument("-C", "--contiguous", choices=("y", "n"),
                            help="y: allocation policy contiguous, n: inherit (the VG's)")
        parser.add_argument("-k", "--setactivationskip", choices=("y", "n"),
                            help="y: -ay passes over the LV unless -K is given")
        parser.add_argument("lvs", nargs="+", metavar="VG/LV", help="LVs; a VG for all its LVs; @tag")
        parser.set_defaults(func=cmd_lvchange)
    else:
        lockspace = parser.add_mutually_exclusive_group()
        lockspace.add_argument("--lock-start", "--lockstart", action="store_true",
                               help="join the lockspaces of shared VGs (lvmlockd)")
        lockspace.add_argument("--lock-stop", "--lockstop", action="store_true",
                               help="leave the lockspaces of shared VGs (lvmlockd)")
        parser.add_argument("-x", "--resizeable", choices=("y", "n"),
                            help="n: vgextend and vgreduce refuse the VG")
        parser.add_argument("vgs", nargs="*", metavar="VG")
        parser.set_defaults(func=cmd_vgchange)
