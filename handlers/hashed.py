"""The `hashed` handler: a passphrase hashed into the key, as cryptsetup's plain mode with --hash.

cryptsetup (lib/crypt_plain.c) fills the key with hash digests: round r
hashes r bytes of "A" followed by the passphrase (the hashalot rule for keys
longer than one digest), and the digests are concatenated and cut to the key
size.  `--hash name:N` hashes only N bytes of key and pads the rest with
zeros; `--hash plain` copies the passphrase itself.  This equals what
`cryptsetup open --type plain --hash H` maps for a typed passphrase or
`--key-file -`.  For a key file given by name cryptsetup ignores --hash and
takes the file's first key-size bytes as the key; keystores made since
issue 15 follow that rule too and say so in the attribute
`key_file_rule = "cryptsetup"`.  Older keystores have no such attribute and
keep the rule they were made with (every key file hashed), so they still
open with the same command line.  The key check block is the plain handler's.
"""

from __future__ import annotations

import hashlib

from lvcrypt.errors import FormatError, HandlerError
from lvcrypt.handlers.base import Area, FormatOptions, KeystoreAttrs
from lvcrypt.handlers.plain import PlainHandler
from lvcrypt.handlers.secret import Secret, wipe

# The keystore attribute naming how a key file given by name becomes the key; absent: hashed like a passphrase.
KEY_FILE_RULE = "key_file_rule"
CRYPTSETUP_RULE = "cryptsetup"  # the file's bytes are the key, as `cryptsetup open --type plain --key-file FILE`


def parse_hash_spec(spec: str, key_bytes: int) -> tuple[str, int]:
    """(hash name, bytes to hash) from cryptsetup's `hash[:length]`."""
    name, _, length = spec.partition(":")
    if not length:
        return name, key_bytes
    if not length.isdigit() or int(length) > key_bytes:
        raise HandlerError(f"hash length in {spec!r} must be a number no larger than the key ({key_bytes} bytes)")
    return name, int(length)


def plain_hash(spec: str, passphrase: Secret, key_bytes: int) -> Secret:
    """cryptsetup's crypt_plain_hash: the key plain mode derives from a passphrase."""
    name, hashed_bytes = parse_hash_spec(spec, key_bytes)
    key = Secret(key_bytes)
    if name == "plain":
        if len(passphrase) < hashed_bytes:
            key.close()
            raise HandlerError(f"passphrase is shorter than the {hashed_bytes}-byte key")
        key.buffer[:hashed_bytes] = memoryview(passphrase.buffer)[:hashed_bytes]
        return key
    try:
        hashlib.new(name.replace("-", "_"))
    except ValueError:
        key.close()
        raise HandlerError(f"hash {name} is not supported") from None
    filled = 0
    round_ = 0
    while filled < hashed_bytes:
        digest = bytearray(hashlib.new(name.replace("-", "_"), b"A" * round_ + passphrase.buffer).digest())
        take = min(len(digest), hashed_bytes - filled)
        key.buffer[filled:filled + take] = digest[:take]
        wipe(digest)
        filled += take
        round_ += 1
    return key


class HashedHandler(PlainHandler):
    name = "hashed"

    def key_hash(self, requested: str | None) -> str | None:
        """cryptsetup's plain-mode default hash."""
        return requested or "ripemd160"

    def derive_key(self, attrs: KeystoreAttrs, passphrase: Secret) -> Secret:
        if not attrs.key_hash:
            raise HandlerError("hashed keystore needs a key_hash (e.g. sha256)")
        if passphrase.named_key_file and _follows_cryptsetup(attrs):
            return super().derive_key(attrs, passphrase)
        return plain_hash(attrs.key_hash, passphrase, attrs.key_bytes)

    def format(self, area: Area, attrs: KeystoreAttrs, passphrase: Secret,
               options: FormatOptions) -> Secret:
        """New keystores take key files as cryptsetup's plain mode does."""
        attrs.extra[KEY_FILE_RULE] = CRYPTSETUP_RULE
        return super().format(area, attrs, passphrase, options)

    def validate(self, area: Area, attrs: KeystoreAttrs) -> None:
        _follows_cryptsetup(attrs)
        super().validate(area, attrs)


def _follows_cryptsetup(attrs: KeystoreAttrs) -> bool:
    """Whether a named key file's bytes are the key (True) or hashed like a passphrase (no attribute)."""
    rule = attrs.extra.get(KEY_FILE_RULE)
    if rule is not None and rule != CRYPTSETUP_RULE:
        raise FormatError(f"hashed keystore has an unknown {KEY_FILE_RULE} {rule!r} (known: {CRYPTSETUP_RULE})")
    return rule == CRYPTSETUP_RULE
