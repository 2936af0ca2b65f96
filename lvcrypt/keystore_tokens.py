"""Token administration of a keystore, as `cryptsetup token add|remove|import|export`.

A target is an image file or VG/KEYSTORE, as for every keystore command
(`keystore_admin.open_target`).  Keyring tokens (`luks2-keyring`) are what
activation can use without a prompt; tokens of other types are moved as
JSON text verbatim, so a token systemd or a vendor tool made survives a
round trip through lvcrypt.
"""

from __future__ import annotations

import sys

from lvcrypt.errors import HandlerError
from lvcrypt.handlers.base import TokenInfo
from lvcrypt.keystore_admin import open_target

MAX_TOKEN_JSON = 4 * 1024 * 1024  # a token larger than the biggest LUKS2 JSON area cannot fit


def add_keyring_token(target: str, devices: str | None, key_description: str, keyslots: list[int],
                      token: int | None) -> int:
    """`token add --key-description`: a luks2-keyring token; its keyslots must be in use."""
    with open_target(target, writable=True, devices=devices) as store:
        return store.session.add_keyring_token(key_description, keyslots, token)


def remove_token(target: str, devices: str | None, token: int) -> None:
    with open_target(target, writable=True, devices=devices) as store:
        store.session.remove_token(token)


def _read_json(path: str | None) -> str:
    """The JSON text of `token import`: --json-file, or standard input when none (or `-`) is given."""
    name = "standard input" if path in (None, "-") else path
    try:
        if path in (None, "-"):
            raw = sys.stdin.buffer.read(MAX_TOKEN_JSON + 1)
        else:
            with open(path, "rb") as source:
                raw = source.read(MAX_TOKEN_JSON + 1)
    except OSError as error:
        raise HandlerError(f"cannot read {name}: {error.strerror}") from None
    if len(raw) > MAX_TOKEN_JSON:
        raise HandlerError(f"{name} holds more than any LUKS2 JSON area")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise HandlerError(f"{name} is not UTF-8 JSON text") from None


def import_token(target: str, devices: str | None, json_file: str | None, token: int | None,
                 replace: bool = False) -> int:
    """`token import`: the token as given, checked against the header before anything is written."""
    text = _read_json(json_file)
    with open_target(target, writable=True, devices=devices) as store:
        return store.session.import_token(text, token, replace)


def export_token(target: str, devices: str | None, token: int, json_file: str | None) -> str | None:
    """`token export`: the token's JSON text written to --json-file, or returned for standard output."""
    with open_target(target, writable=False, devices=devices) as store:
        text = store.session.export_token(token)
    if json_file in (None, "-"):
        return text
    try:
        with open(json_file, "w", encoding="utf-8") as out:
            out.write(text)
    except OSError as error:
        raise HandlerError(f"cannot write {json_file}: {error.strerror}") from None
    return None


def list_tokens(target: str, devices: str | None) -> list[TokenInfo]:
    with open_target(target, writable=False, devices=devices) as store:
        return store.session.list_tokens()
