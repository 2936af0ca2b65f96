"""`lvconvert --encrypt | --decrypt | --reencrypt VG/LV`: an LV converted in place, chunk by chunk.

Each chunk is read through the LV's current mapping, written through the
mapping it will have (new free extents, the target form), and committed with
the conversion record (lvcrypt/conversion_record.py); the extents it freed are
then overwritten when they held plaintext or data under a key being replaced,
and the next commit drops them from the record.  A crash anywhere leaves a VG
whose LV is a valid mix of old and new segments; the same command resumes
(owed wipes first), `--abort` takes the done part back to the original form.
The keystore a conversion makes is committed (with the record) before the
first chunk, so a crash never loses the key of data already written; a keystore
it drops is overwritten (an owed wipe like the others), since its keyslots would
still unwrap the old key with the old passphrase.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Callable

from lvcrypt.activate.userspace import Ciphers
from lvcrypt.activation import ChunkSwitch
from lvcrypt.chunk_copy import Pace, Progress, copy_through, wipe_extents
from lvcrypt.conversion_record import Conversion, read_conversion, write_conversion
from lvcrypt.cryptlv import new_keystore
from lvcrypt.errors import LvcryptError, UsageError
from lvcrypt.extent_mover import MoveRefused, check_live, check_movable, convert_chunk, in_form, next_chunk, uncovered
from lvcrypt.handlers import registry
from lvcrypt.handlers.base import FormatOptions
from lvcrypt.keycache import KeyCache
from lvcrypt.keystore_admin import KeystoreRequest, pbkdf_request
from lvcrypt.keystores import KeystoreSessions, attrs_of, close_area, keystore_segment, open_area
from lvcrypt.lv_checks import find_lv
from lvcrypt.records import dataclass, field, replace
from lvcrypt.unlock import KeySources, read_passphrase, unlock_keystore

if TYPE_CHECKING:
    from lvcrypt.handlers.secret import Secret
    from lvcrypt.metadata.model import LogicalVolume
    from lvcrypt.store.transaction import VgTransaction

DEFAULT_CHUNK_BYTES = 32 << 20


@dataclass(frozen=True)
class ConversionRequest:
    """What lvconvert asked: the action ("" with `--abort` alone), `--keystore` to share (encrypt), a new
    keystore's options, the shared-keystore choice (reencrypt), `--abort`, `--chunk-size`, `--rate` (bytes
    per second)."""

    action: str
    keystore: str | None = None
    new: KeystoreRequest = KeystoreRequest()
    all_users: bool = False
    new_keystore: bool = False
    abort: bool = False
    chunk_bytes: int | None = None
    rate: int | None = None


@dataclass
class ConversionDone:
    lvs: list[str] = field(default_factory=list)
    created: str | None = None
    removed: list[str] = field(default_factory=list)
    resumed: bool = False
    longest_pause: float | None = None  # seconds; None when no LV was active in the kernel


def convert_lv(devices: str | None, vg_name: str, lv_name: str, request: ConversionRequest, sources: KeySources,
               progress: Progress | None = None, sysfs_root: str = "/sys") -> ConversionDone:
    """Run (or resume, or abort) the conversion of VG/LV to its end; see the module docstring."""
    from lvcrypt.store.transaction import VgTransaction

    with VgTransaction(devices, vg_name) as tx, KeyCache() as keys:
        lv = find_lv(tx.vg, lv_name)
        check_live(tx.vg, lv, sysfs_root)
        check_movable(tx.vg, lv)
        done = ConversionDone()
        record = read_conversion(lv)
        chunk = max(1, (request.chunk_bytes or DEFAULT_CHUNK_BYTES) // tx.vg.extent_bytes)
        if record is None:
            if request.abort:
                raise LvcryptError(f"no conversion of {vg_name}/{lv_name} is in progress")
            users = _start(tx, lv, request, sources, keys, done, chunk, sysfs_root)
        else:
            users = _resume(tx, lv, record, request, sources, keys, done)
        pace = Pace(request.rate, progress)
        pace.total = sum(_remaining(tx.vg.lvs[name]) for name in users) * tx.vg.extent_bytes
        for name in users:
            pause = _run(tx, tx.vg.lvs[name], chunk, keys, pace, sysfs_root)
            if pause is not None:
                done.longest_pause = max(pause, done.longest_pause or 0.0)
        done.lvs = users
        done.removed = _finish(tx, users)
        return done


def _remaining(lv: "LogicalVolume") -> int:
    record = read_conversion(lv)
    return in_form(lv, record.source) if record else 0


def _check_request(record: Conversion, request: ConversionRequest, where: str) -> None:
    if request.action and record.action != request.action:
        raise LvcryptError(f"{where}: an lvconvert --{record.action} is in progress; run it again to finish it, "
                           f"or with --abort")
    if record.aborting and not request.abort:
        raise LvcryptError(f"{where}: lvconvert --{record.action} --abort is in progress; run it again to finish")


def _resume(tx: "VgTransaction", lv: "LogicalVolume", record: Conversion, request: ConversionRequest,
            sources: KeySources, keys: KeyCache, done: ConversionDone) -> list[str]:
    """Every LV converted together with `lv` (a shared keystore's users), their records flipped by --abort."""
    _check_request(record, request, f"{tx.vg.name}/{lv.name}")
    done.resumed = True
    together = [other.name for other in tx.vg.lvs.values()
                if (found := read_conversion(other)) is not None
                and {found.source, found.target} == {record.source, record.target}]
    if _only_wipes_left(tx, record):
        if request.abort:
            raise LvcryptError(f"{tx.vg.name}/{lv.name}: lvconvert --{record.action} is done and its old keystore "
                               f"{record.source} removed; run it again (without --abort) to finish wiping it")
        return together
    if request.abort and not record.aborting:
        for name in together:
            found = read_conversion(tx.vg.lvs[name])
            assert found is not None
            write_conversion(tx.vg.lvs[name], found.aborted())
    _unlock(tx, [store for store in (record.source, record.target) if store], sources, keys)
    return together


def _only_wipes_left(tx: "VgTransaction", record: Conversion) -> bool:
    """The conversion's last commit removed its source keystore: no chunk is left, only the owed wipes
    (the removed keystore's header among them), which need no key."""
    return record.source is not None and record.source not in tx.vg.lvs


def _start(tx: "VgTransaction", lv: "LogicalVolume", request: ConversionRequest, sources: KeySources,
           keys: KeyCache, done: ConversionDone, chunk: int, sysfs_root: str) -> list[str]:
    """Check the LV, make or unlock the keystores, and commit the record (with a new keystore) before any data moves.

    A VG without free extents for one chunk (once a new keystore has its own) is refused before
    anything is written.
    """
    where = f"{tx.vg.name}/{lv.name}"

    def room(source: str | None, target: str | None) -> None:
        next_chunk(tx.vg, lv, source, target, chunk)
    stores = lv.keystores()
    users = [lv.name]
    if request.action == "encrypt":
        if stores:
            raise MoveRefused(f"{where} is already encrypted (keystore {stores[0]}); use --reencrypt")
        if request.keystore:
            _existing_keystore(tx, request.keystore)
            room(None, request.keystore)
            _unlock(tx, [request.keystore], sources, keys)
            target = request.keystore
        else:
            with read_passphrase(sources, f"Enter passphrase for the new keystore of {where}: ",
                                 verify=True) as passphrase:
                target = _new_keystore(tx, request.new, passphrase, keys, lambda name: room(None, name))
            done.created = target
        records = {lv.name: Conversion("encrypt", None, target)}
    else:
        if len(stores) != 1:
            raise MoveRefused(f"{where} is not encrypted" if not stores else
                              f"{where} uses several keystores ({', '.join(stores)}); convert them one at a time")
        source = stores[0]
        if request.action == "decrypt":
            room(source, None)
            _unlock(tx, [source], sources, keys)
            records = {lv.name: Conversion("decrypt", source, None)}
        else:
            users = _reencrypt_users(tx, lv, source, request, sysfs_root)
            with read_passphrase(sources, f"Enter passphrase for {where}: ") as passphrase:
                with KeystoreSessions(tx.vg, tx.loaded.device_of) as sessions:
                    unlock_keystore(sessions.session(source), source, passphrase, keys)
                target = _new_keystore(tx, _like(tx, source, request.new), passphrase, keys,
                                       lambda name: room(source, name))
            done.created = target
            records = {name: Conversion("reencrypt", source, target) for name in users}
    for name, record in records.items():
        write_conversion(tx.vg.lvs[name], record)
    tx.commit()
    return users


def _reencrypt_users(tx: "VgTransaction", lv: "LogicalVolume", source: str, request: ConversionRequest,
                     sysfs_root: str) -> list[str]:
    """The shared-keystore rule: every user (`--all-users`) or this LV alone on a new keystore (`--new-keystore`)."""
    others = [user.name for user in tx.vg.users_of_keystore(source) if user.name != lv.name]
    if request.all_users and request.new_keystore:
        raise UsageError("lvconvert --reencrypt: --all-users and --new-keystore exclude each other")
    if not others:
        return [lv.name]
    if request.all_users:
        for name in others:
            check_live(tx.vg, tx.vg.lvs[name], sysfs_root)
            check_movable(tx.vg, tx.vg.lvs[name])
            if read_conversion(tx.vg.lvs[name]) is not None:
                raise MoveRefused(f"{tx.vg.name}/{name} has a conversion in progress; finish it first")
        return [lv.name, *others]
    if request.new_keystore:
        return [lv.name]
    raise MoveRefused(f"keystore {tx.vg.name}/{source} is shared with {', '.join(others)}: add --all-users to "
                      "re-encrypt every LV that uses it, or --new-keystore to give this LV a keystore of its own")


def _existing_keystore(tx: "VgTransaction", name: str) -> None:
    store = tx.vg.lvs.get(name)
    if store is None or not store.is_keystore:
        raise LvcryptError(f"keystore {tx.vg.name}/{name} does not exist")


def _like(tx: "VgTransaction", source: str, new: KeystoreRequest) -> KeystoreRequest:
    """The re-encryption's new keystore: the old one's handler, cipher and key size unless the user said otherwise."""
    attrs = attrs_of(keystore_segment(tx.vg, source))
    return KeystoreRequest(handler=new.handler or attrs.handler, cipher=new.cipher or attrs.cipher or None,
                           key_bits=new.key_bits or attrs.key_size or None, hash=new.hash, pbkdf=new.pbkdf,
                           iter_time_ms=new.iter_time_ms, memory_kib=new.memory_kib, parallel=new.parallel,
                           force_iterations=new.force_iterations)


def _new_keystore(tx: "VgTransaction", new: KeystoreRequest, passphrase: "Secret", keys: KeyCache,
                  check: Callable[[str], None]) -> str:
    """A keystore formatted in free extents with one keyslot for `passphrase`; its key goes into `keys`.
    `check(name)` runs once its extents are taken in the model and before anything is written.

    Its header puts the payload right after the keystore's extents (not a detached header), so the
    converted LV is laid out as an imported LUKS volume and `lvconvert --type linear` exports it.
    """
    handler = registry.get(new.handler or registry.DEFAULT)
    attrs = handler.new_attrs(new.cipher, new.key_bits, new.hash)
    options = FormatOptions(pbkdf=pbkdf_request(handler, new), sector_size=handler.default_sector_size,
                            data_offset=0)
    store = new_keystore(tx.vg, attrs, handler.area_size(attrs, options))
    check(store.name)
    options = replace(options, data_offset=store.extent_count * tx.vg.extent_size)
    area = open_area(tx.vg, store.name, tx.loaded.device_of, writable=True)
    try:
        keys.put(store.name, handler.format(area, attrs, passphrase, options))
    finally:
        close_area(area)
    for attr, value in attrs.extra.items():
        store.segments[0].raw[attr] = value
    return store.name


def _unlock(tx: "VgTransaction", stores: list[str], sources: KeySources, keys: KeyCache) -> None:
    """One passphrase for every keystore still locked (a re-encryption's new keystore got the same one)."""
    stores = [store for store in stores if store not in keys]
    if not stores:
        return
    with read_passphrase(sources, f"Enter passphrase for {tx.vg.name}/{stores[0]}: ") as passphrase, \
            KeystoreSessions(tx.vg, tx.loaded.device_of) as sessions:
        for store in stores:
            unlock_keystore(sessions.session(store), store, passphrase, keys)


def _run(tx: "VgTransaction", lv: "LogicalVolume", chunk: int, keys: KeyCache, pace: Pace,
         sysfs_root: str) -> float | None:
    """Chunk after chunk, each committed (switched under the running device when the LV is active in
    the kernel); ends with the record cleared of work.  Returns the longest I/O pause (seconds) of an
    active LV, None for an inactive one.

    The extents a commit owes a wipe are usually where the next chunk goes (they were just freed):
    its data overwrites them whole, so only the owed extents it does not cover are zeroed (all of
    them after the last chunk).  Until the next commit the record on disk still owes them all, so a
    crash or Ctrl-C in between is finished by a resume, which wipes them before anything else.
    """
    record = read_conversion(lv)
    assert record is not None
    device_of = tx.loaded.device_of
    live = check_live(tx.vg, lv, sysfs_root)
    with KeystoreSessions(tx.vg, device_of) as sessions, Ciphers(keys) as ciphers, \
            ChunkSwitch(tx, sessions, keys) as switch:
        if live:
            switch.settle(lv.name)
        while True:
            owed, record.wipes = record.wipes, []
            write_conversion(lv, record)  # in memory: the owed extents may take the next chunk
            found = next_chunk(tx.vg, lv, record.source, record.target, chunk)
            wipe_extents(tx.vg, device_of, uncovered(owed, found.targets if found else ()))
            if found is None:
                break
            before = copy.deepcopy(tx.vg)
            freed = convert_chunk(lv, found, record.target)
            record.wipes = freed if record.wipes_freed else []
            write_conversion(lv, record)
            extent = tx.vg.extent_bytes
            switch.commit(lv.name, before, lambda: copy_through(
                switch.table(before, lv.name), switch.table(tx.vg, lv.name), ciphers, found.start * extent,
                found.count * extent, pace), live)
    return switch.longest if live else None


def _finish(tx: "VgTransaction", users: list[str]) -> list[str]:
    """Clear the records and remove the keystores nobody uses any more.

    A removed keystore's header still unwraps the old volume key with the old passphrase (exactly what
    `--decrypt`, `--reencrypt` or an `--abort` dropping its new keystore is meant to remove), so its extents
    are owed wipes in the commit that removes it; they are overwritten, then a last commit clears the
    record.  A crash in between leaves the wipe recorded (and the extents unallocatable): the same
    command finishes it.
    """
    records = {name: read_conversion(tx.vg.lvs[name]) for name in users}
    sources = {record.source for record in records.values() if record is not None and record.source}
    removed = [store for store in sorted(sources) if store in tx.vg.lvs and not tx.vg.users_of_keystore(store)]
    wipes = [pair for store in removed for segment in tx.vg.lvs[store].segments for pair in segment.pv_areas()]
    for store in removed:
        del tx.vg.lvs[store]
    for name in users:
        write_conversion(tx.vg.lvs[name], None)
    first = records[users[0]]
    if wipes:
        assert first is not None  # every LV converted together has a record until here
        write_conversion(tx.vg.lvs[users[0]], replace(first, wipes=wipes))
        tx.commit(backup=False)
        wipe_extents(tx.vg, tx.loaded.device_of, wipes)
        write_conversion(tx.vg.lvs[users[0]], None)
    tx.commit()
    return removed
