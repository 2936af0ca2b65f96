"""Unlocking: where a command takes volume keys from, in cryptsetup's order, and how each is checked.

The order is one rule for every command that needs an LV's keys (activation,
`read`/`write`/`table --show-keys`/`mount`, wiping, kdump registration):

1. `--volume-key-keyring`: a `user` key already in the kernel keyring, used
   as the volume key only after the keystore's handler verified it;
2. a LUKS2 `luks2-keyring` token whose passphrase is a keyring key, when no
   key file is given or a token switch (`--token-id`, `--token-type`,
   `--token-only`) says to try tokens; the switches narrow which tokens;
3. `--key-file`: a passphrase or key file, unless `--token-only`;
4. the terminal prompt (a callable the CLI passes in), unless `--token-only`.

A key file given explicitly skips the tokens unless a token switch is given,
as cryptsetup 2.6's `open` does.  Every
key that enters a `KeyCache` has been checked against its keystore here:
`unlock_keystore` for passphrases, `adopt_volume_key` for volume keys, both
through the keystore's handler session (one header parse per command).
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import TYPE_CHECKING, Callable, Iterator

from lvcrypt.errors import HandlerError, KeyringError, UsageError, WrongPassphrase
from lvcrypt.handlers.secret import Secret, read_key_file
from lvcrypt.keycache import KeyCache
from lvcrypt.keystores import KeystoreSessions
from lvcrypt.records import dataclass

if TYPE_CHECKING:
    from lvcrypt.handlers.base import KeyringToken, KeystoreSession
    from lvcrypt.store.transaction import VgTransaction

Prompt = Callable[[str], Secret]
KEYRING_TOKEN_TYPE = "luks2-keyring"  # the token type whose passphrase lvcrypt fetches from the kernel keyring


@dataclass(frozen=True)
class KeySources:
    """The key sources a user named for one command (none of them is a secret itself)."""

    key_file: str | None = None  # "-" = standard input
    keyfile_offset: int = 0
    keyfile_size: int | None = None
    volume_key_keyring: str | None = None  # %user:DESC
    prompt: Prompt | None = None  # reads one passphrase from the terminal; None: no terminal to ask
    token_only: bool = False  # --token-only: tokens are the only source after the volume key
    token_id: int | None = None  # --token-id: only this token
    token_type: str | None = None  # --token-type: only tokens of this type

    @property
    def tries_tokens(self) -> bool:
        """cryptsetup tries tokens when no key file is given, or when a token switch asks for them."""
        return (self.key_file is None or self.token_only or self.token_id is not None
                or self.token_type is not None)


def read_passphrase(sources: KeySources, prompt: str, verify: bool = False) -> Secret:
    """A passphrase from a key file (honouring the offset and size) or the terminal.

    As cryptsetup: `--key-file -` on a terminal is the prompt (and takes no offset).
    A source that can keep us waiting (a prompt, stdin, a pipe) is read with
    no VG lock held, so `lvs` and lvm2 never block behind a prompt; the
    locks are taken again afterwards and the command stops if its VG changed.
    """
    key_file = sources.key_file
    if key_file is not None and key_file != "-" and os.path.isfile(key_file):
        return _read_passphrase(sources, prompt, verify)
    from lvcrypt.store.lock import released_while

    return released_while(lambda: _read_passphrase(sources, prompt, verify))


def _read_passphrase(sources: KeySources, prompt: str, verify: bool) -> Secret:
    key_file, offset, size = sources.key_file, sources.keyfile_offset or 0, sources.keyfile_size
    if key_file == "-" and sys.stdin.isatty():
        if offset:
            raise HandlerError("Cannot use offset with terminal input.")
        key_file = None
    if key_file == "-":
        return read_key_file(sys.stdin.buffer, offset, size)
    if key_file is not None:
        try:
            with open(key_file, "rb") as f:
                secret = read_key_file(f, offset, size)
            secret.named_key_file = True
            return secret
        except OSError as error:
            raise HandlerError(f"cannot read key file {key_file}: {error.strerror}") from None
    if sources.prompt is None or not sys.stdin.isatty():
        raise UsageError("no passphrase: give --key-file FILE (or '-' for stdin) or run on a terminal")
    secret = sources.prompt(prompt)
    if verify:
        with sources.prompt("Verify passphrase: ") as again:
            if again != secret:
                secret.close()
                raise HandlerError("passphrases do not match")
    return secret


@contextmanager
def keystore_sessions(tx: "VgTransaction", given: KeystoreSessions | None = None) -> Iterator[KeystoreSessions]:
    """The command's open keystores if it passed them, else ones open for this step only.

    A command that asks a keystore more than one thing (its table and its
    key) passes one `KeystoreSessions`, so each header is parsed once.
    """
    if given is not None:
        yield given
        return
    with KeystoreSessions(tx.vg, tx.loaded.device_of) as own:
        yield own


def unlock_keystore(session: "KeystoreSession", store: str, passphrase: Secret, keys: KeyCache,
                    keyslot: int | None = None) -> None:
    """One keystore unlocked with a passphrase into the cache (no-op when the cache already has it)."""
    if store not in keys:
        keys.put(store, session.unlock(passphrase, keyslot))


def verified_volume_key(session: "KeystoreSession", key: Secret) -> Secret:
    """`key` once the keystore's handler verified it as the volume key; wiped and refused otherwise."""
    try:
        session.verify_volume_key(key)
    except BaseException:
        key.close()
        raise
    return key


def adopt_volume_key(tx: "VgTransaction", store: str, key: Secret, keys: KeyCache,
                     sessions: KeystoreSessions | None = None) -> None:
    """Take `key` into the cache as `store`'s volume key once its handler verified it (wiped if refused)."""
    try:
        with keystore_sessions(tx, sessions) as opened:
            verified_volume_key(opened.session(store), key)
    except BaseException:
        key.close()
        raise
    keys.put(store, key)


def volume_key_from_keyring(spec_text: str) -> Secret:
    """--volume-key-keyring: the payload of a `user` key (not yet checked against any keystore)."""
    from lvcrypt import keyring

    spec = keyring.parse_key_spec(spec_text)
    if spec.type != "user":
        raise KeyringError(f"{spec}: a logon key cannot be read back to check it against the keystore; "
                           "use a %user: key")
    serial = keyring.find_key(spec)
    if serial is None:
        raise KeyringError(f"no key {spec} in this process's keyrings")
    return Secret.adopt(keyring.read_key(serial))


def volume_key_from_file(path: str, key_bytes: int) -> Secret:
    """--volume-key-file: the first `key_bytes` bytes of the file, as cryptsetup reads it (a shorter file is refused)."""
    try:
        with open(path, "rb") as source:
            return read_key_file(source, 0, key_bytes)
    except OSError as error:
        raise HandlerError(f"cannot read volume key file {path}: {error.strerror}") from None
    except HandlerError:
        raise HandlerError(f"cannot read {key_bytes} bytes from volume key file {path}") from None


def _unlock_from_volume_key_keyring(spec_text: str, tx: "VgTransaction", stores: list[str], keys: KeyCache,
                                    sessions: KeystoreSessions) -> None:
    """--volume-key-keyring: a `user` key whose payload must verify as each keystore's volume key."""
    for store in stores:
        adopt_volume_key(tx, store, volume_key_from_keyring(spec_text), keys, sessions)


def _usable_tokens(session: "KeystoreSession", sources: KeySources) -> list["KeyringToken"]:
    """The keyring tokens the switches leave (keyring tokens are the only type lvcrypt can use)."""
    if sources.token_type is not None and sources.token_type != KEYRING_TOKEN_TYPE:
        return []
    return [token for token in session.keyring_tokens()
            if sources.token_id is None or token.token == sources.token_id]


def _unlock_from_token(session: "KeystoreSession", store: str, keys: KeyCache, sources: KeySources) -> bool:
    """The keystore's keyring tokens (LUKS2's `luks2-keyring`): try each whose passphrase is in the keyring."""
    from lvcrypt import keyring  # with its dataclasses and libkeyutils: only when no key file is given

    for token in _usable_tokens(session, sources):
        serial = keyring.request_key("user", token.key_description)
        if serial is None:
            continue
        with Secret.adopt(keyring.read_key(serial)) as passphrase:
            for slot in token.keyslots:
                try:
                    unlock_keystore(session, store, passphrase, keys, slot)
                    return True
                except WrongPassphrase:
                    continue
    return False


def _refuse_token_only(vg_name: str, lv_name: str, locked: list["KeystoreSession"], sources: KeySources) -> None:
    """--token-only and a keystore still locked: say whether no token applied or none had its key."""
    kind = f" (type {sources.token_type})" if sources.token_type else ""
    which = f" {sources.token_id}" if sources.token_id is not None else ""
    if any(not _usable_tokens(session, sources) for session in locked):
        raise HandlerError(f"{vg_name}/{lv_name}: no usable token{which}{kind} is available (--token-only)")
    raise WrongPassphrase(f"{vg_name}/{lv_name}: no token{which}{kind} opened it: the kernel keyring holds no "
                          "matching passphrase (--token-only)")


def unlock_lv(tx: "VgTransaction", lv_name: str, keys: KeyCache, sources: KeySources,
              sessions: KeystoreSessions | None = None) -> None:
    """Every keystore of the LV unlocked into `keys`, from the first source that applies.

    The passphrase (key file or prompt) is read once for every keystore still
    locked (a second keystore mid-reencryption too).  `sessions` are the
    command's open keystores, when it asks them more than this.
    """
    stores = tx.vg.lvs[lv_name].keystores()
    if not stores or all(store in keys for store in stores):
        return
    with keystore_sessions(tx, sessions) as opened:
        if sources.volume_key_keyring:
            _unlock_from_volume_key_keyring(sources.volume_key_keyring, tx, [s for s in stores if s not in keys],
                                            keys, opened)
        elif sources.tries_tokens:
            for store in stores:
                if store not in keys:
                    _unlock_from_token(opened.session(store), store, keys, sources)
        if all(store in keys for store in stores):
            return
        if sources.token_only:
            _refuse_token_only(tx.vg.name, lv_name, [opened.session(s) for s in stores if s not in keys], sources)
        with read_passphrase(sources, f"Enter passphrase for {tx.vg.name}/{lv_name}: ") as passphrase:
            for store in stores:
                unlock_keystore(opened.session(store), store, passphrase, keys)
