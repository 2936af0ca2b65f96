"""LUKS2 tokens: `luks2-keyring` understood, every other type kept verbatim.

A `luks2-keyring` token names a kernel-keyring key (`key_description`) whose
payload is the passphrase of the keyslots it lists, so the core can unlock
without a prompt.  The handler never reads the keyring itself (handlers do no
I/O besides their area); it tells the core which description to fetch.
Tokens of other types (systemd's, a vendor's) are imported and exported as
JSON text exactly as `cryptsetup token import/export` moves them.
"""

from __future__ import annotations

import json

from lvcrypt.errors import FormatError, HandlerError
from lvcrypt.handlers.base import KeyringToken, TokenInfo

from lvcrypt.handlers.luks2.json_area import MAX_TOKENS, Metadata, Token, parse_token

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
    wanted = _free_token(metadata, wanted)
    metadata.tokens[wanted] = Token(KEYRING_TYPE, sorted(keyslots), key_description)
    return wanted


def _free_token(metadata: Metadata, wanted: int | None, replace: bool = False) -> int:
    """The token number to use: the first free one, or the one asked for (in use only with `replace`)."""
    if wanted is None:
        free = next((n for n in range(MAX_TOKENS) if n not in metadata.tokens), None)
        if free is None:
            raise HandlerError(f"all {MAX_TOKENS} tokens are in use")
        return free
    if not 0 <= wanted < MAX_TOKENS:
        raise HandlerError(f"token {wanted} is out of range (0-{MAX_TOKENS - 1})")
    if wanted in metadata.tokens and not replace:
        raise HandlerError(f"token {wanted} is in use")
    return wanted


def import_token(metadata: Metadata, text: str, wanted: int | None, replace: bool = False) -> int:
    """A token from its JSON text (`cryptsetup token import`): any type, kept field for field."""
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        raise HandlerError("the token is not valid JSON") from None
    number = _free_token(metadata, wanted, replace)
    try:
        token = parse_token(document, number)
    except FormatError as error:
        raise HandlerError(str(error)) from None
    missing = [slot for slot in token.keyslots if slot not in metadata.keyslots]
    if missing:
        raise HandlerError(f"token {number} refers to keyslot {missing[0]}, which is not in use")
    metadata.tokens[number] = token
    return number


def export_token(metadata: Metadata, number: int) -> str:
    """A token's JSON text as `cryptsetup token export` prints it (compact, UTF-8, no newline)."""
    if number not in metadata.tokens:
        raise HandlerError(f"token {number} is not in use")
    return json.dumps(metadata.tokens[number].to_json(), separators=(",", ":"), ensure_ascii=False)


def token_infos(metadata: Metadata) -> list[TokenInfo]:
    return [TokenInfo(number, token.type, tuple(token.keyslots), token.key_description)
            for number, token in sorted(metadata.tokens.items())]


def remove_token(metadata: Metadata, number: int) -> None:
    if number not in metadata.tokens:
        raise HandlerError(f"token {number} is not in use")
    del metadata.tokens[number]


def unassign_keyslot(metadata: Metadata, slot: int) -> None:
    """A removed keyslot disappears from every token (tokens themselves stay, like cryptsetup's)."""
    for token in metadata.tokens.values():
        if slot in token.keyslots:
            token.keyslots.remove(slot)
