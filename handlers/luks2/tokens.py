"""LUKS2 tokens: `luks2-keyring` understood, every other type kept verbatim.

A `luks2-keyring` token names a kernel-keyring key (`key_description`) whose
payload is the passphrase of the keyslots it lists, so the core can unlock
without a prompt.  The handler never reads the keyring itself (handlers do no
I/O besides their area); it tells the core which description to fetch.
"""

from __future__ import annotations

from lvcrypt.errors import HandlerError
from lvcrypt.handlers.base import KeyringToken

from lvcrypt.handlers.luks2.json_area import MAX_TOKENS, Metadata, Token

KEYRING_TYPE = "luks2-keyring"


def keyring_tokens(metadata: Metadata) -> list[KeyringToken]:
    return [KeyringToken(number, token.key_description or "", tuple(token.keyslots))
            for number, token in sorted(metadata.tokens.items())
            if token.type == KEYRING_TYPE and token.key_description is not None]


def add_keyring_token(metadata: Metadata, key_description: str, keyslots: list[int],
                      wanted: int | None = None) -> int:
    """Add a `luks2-keyring` token (as `cryptsetup token add --key-description`); returns its number."""
    if not key_description:
        raise HandlerError("a keyring token needs a key description")
    missing = [slot for slot in keyslots if slot not in metadata.keyslots]
    if missing:
        raise HandlerError(f"keyslot {missing[0]} is not in use")
    if wanted is None:
        wanted = next((n for n in range(MAX_TOKENS) if n not in metadata.tokens), None)
        if wanted is None:
            raise HandlerError(f"all {MAX_TOKENS} tokens are in use")
    elif not 0 <= wanted < MAX_TOKENS or wanted in metadata.tokens:
        raise HandlerError(f"token {wanted} is in use or out of range")
    metadata.tokens[wanted] = Token(KEYRING_TYPE, sorted(keyslots), key_description)
    return wanted


def remove_token(metadata: Metadata, number: int) -> None:
    if number not in metadata.tokens:
        raise HandlerError(f"token {number} is not in use")
    del metadata.tokens[number]


def unassign_keyslot(metadata: Metadata, slot: int) -> None:
    """A removed keyslot disappears from every token (tokens themselves stay, like cryptsetup's)."""
    for token in metadata.tokens.values():
        if slot in token.keyslots:
            token.keyslots.remove(slot)
