"""A `cryptsetup luksDump`-style description of a LUKS2 keystore (never key material)."""

from __future__ import annotations

from lvcrypt.handlers.luks2.disk import Loaded
from lvcrypt.handlers.luks2.json_area import Digest, Keyslot, Metadata, Segment, Token

_PRIORITIES = {0: "ignored", 1: "normal", 2: "preferred", None: "normal"}


def _hex(data: bytes, indent: str = "\t            ") -> str:
    rows = [" ".join(f"{byte:02x}" for byte in data[i:i + 16]) + " " for i in range(0, len(data), 16)]
    return f"\n{indent}".join(rows)


def _segment(number: int, segment: Segment) -> list[str]:
    lines = [f"  {number}: {segment.type}", f"\toffset: {segment.offset} [bytes]",
             "\tlength: (whole device)" if segment.size is None else f"\tlength: {segment.size} [bytes]"]
    if segment.type == "crypt":
        lines.append(f"\tcipher: {segment.encryption}")
        lines.append(f"\tsector: {segment.sector_size} [bytes]")
        if segment.iv_tweak:
            lines.append(f"\tIV tweak: {segment.iv_tweak}")
    if segment.flags:
        lines.append(f"\tflags : {' '.join(segment.flags)}")
    return lines


def _keyslot(number: int, slot: Keyslot, metadata: Metadata) -> list[str]:
    owner = metadata.digest_of_keyslot(number)
    default = metadata.default_segment()
    bound = owner is not None and default is not None and default in owner[1].segments
    lines = [f"  {number}: {slot.type}{'' if bound else ' (unbound)'}"]
    if slot.type == "luks2" and slot.kdf is not None and slot.af is not None:
        lines += _luks2_keyslot(slot)
    elif slot.type == "reencrypt":
        lines += _reencrypt_keyslot(slot)
    lines += [f"\tArea offset:{slot.area.offset} [bytes]", f"\tArea length:{slot.area.size} [bytes]"]
    if owner is not None:
        lines.append(f"\tDigest ID:  {owner[0]}")
    return lines


def _luks2_keyslot(slot: Keyslot) -> list[str]:
    assert slot.kdf is not None and slot.af is not None
    lines = [f"\tKey:        {slot.key_size * 8} bits", f"\tPriority:   {_PRIORITIES.get(slot.priority, '?')}",
             f"\tCipher:     {slot.area.encryption}", f"\tCipher key: {(slot.area.key_size or 0) * 8} bits",
             f"\tPBKDF:      {slot.kdf.type}"]
    if slot.kdf.type == "pbkdf2":
        lines += [f"\tHash:       {slot.kdf.hash}", f"\tIterations: {slot.kdf.iterations}"]
    else:
        lines += [f"\tTime cost:  {slot.kdf.time}", f"\tMemory:     {slot.kdf.memory}",
                  f"\tThreads:    {slot.kdf.cpus}"]
    return lines + [f"\tSalt:       {_hex(slot.kdf.salt)}", f"\tAF stripes: {slot.af.stripes}",
                    f"\tAF hash:    {slot.af.hash}"]


def _reencrypt_keyslot(slot: Keyslot) -> list[str]:
    """The state of an interrupted reencryption (cryptsetup keeps it in a keyslot of its own)."""
    lines = [f"\tKey:        {slot.key_size * 8} bits",
             f"\tPriority:   {_PRIORITIES.get(slot.extra.get('priority'), '?')}"]
    for label, key in (("Mode:       ", "mode"), ("Direction:  ", "direction")):
        if isinstance(slot.extra.get(key), str):
            lines.append(f"\t{label}{slot.extra[key]}")
    lines.append(f"\tResilience: {slot.area.type}")
    if isinstance(slot.area.extra.get("shift_size"), str):
        lines.append(f"\tShift size: {slot.area.extra['shift_size']}[bytes]")
    if isinstance(slot.area.extra.get("hash"), str):
        lines.append(f"\tHash:       {slot.area.extra['hash']}")
    return lines


def _token(number: int, token: Token) -> list[str]:
    lines = [f"  {number}: {token.type}"]
    if token.key_description is not None:
        lines.append(f"\tKey description: {token.key_description}")
    lines += [f"\tKeyslot:    {slot}" for slot in token.keyslots]
    return lines


def _digest(number: int, digest: Digest) -> list[str]:
    lines = [f"  {number}: {digest.type}"]
    if digest.type == "pbkdf2":
        lines += [f"\tHash:       {digest.hash}", f"\tIterations: {digest.iterations}",
                  f"\tSalt:       {_hex(digest.salt)}", f"\tDigest:     {_hex(digest.digest)}"]
    return lines


def dump(loaded: Loaded) -> str:
    header, metadata = loaded.header, loaded.metadata
    config = metadata.config
    lines = ["LUKS header information", "Version:       \t2", f"Epoch:         \t{header.seqid}",
             f"Metadata area: \t{config.json_size + 4096} [bytes]",
             f"Keyslots area: \t{config.keyslots_size} [bytes]", f"UUID:          \t{header.uuid}",
             f"Label:         \t{header.label or '(no label)'}",
             f"Subsystem:     \t{header.subsystem or '(no subsystem)'}",
             f"Flags:       \t{' '.join(config.flags) if config.flags else '(no flags)'}"]
    if config.requirements:
        lines.append("Requirements:\t" + "".join(f"{requirement} " for requirement in config.requirements))
    for problem in (loaded.primary_error, loaded.secondary_error):
        if problem:
            lines.append(f"Warning:       \t{problem}")
    lines += ["", "Data segments:"]
    for number in sorted(metadata.segments):
        lines += _segment(number, metadata.segments[number]) + [""]
    lines.append("Keyslots:")
    for number in sorted(metadata.keyslots):
        lines += _keyslot(number, metadata.keyslots[number], metadata)
    lines.append("Tokens:")
    for number in sorted(metadata.tokens):
        lines += _token(number, metadata.tokens[number])
    lines.append("Digests:")
    for number in sorted(metadata.digests):
        lines += _digest(number, metadata.digests[number])
    return "\n".join(lines) + "\n"
