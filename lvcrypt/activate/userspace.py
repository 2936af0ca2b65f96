"""The userspace backend: a table stack interpreted in Python over PV files or block devices.

`MappedDevice` reads and writes at any byte offset and length, like the dm
device the kernel would build from the same tables: linear and striped
targets translate offsets, crypt targets decrypt and encrypt whole
encryption sectors (partial sectors by read-modify-write).  Work is cut into
bounded chunks so memory stays constant whatever the LV size.  Runs of whole
sectors are read and deciphered in the caller's buffer, or enciphered from it
into the staging buffer (or in it, when the caller has no further use for it):
no copy between buffers.
"""

from __future__ import annotations

from typing import Iterator, Mapping, Protocol

from lvcrypt.activate.tables import (
    SECTOR,
    CryptTarget,
    DeviceRef,
    LayerDevice,
    LinearTarget,
    PvDevice,
    StripedTarget,
    Table,
    Target,
)
from lvcrypt.blockfile import BlockFile, aligned_buffer
from lvcrypt.crypto.sector import SectorCipher, open_sector_cipher
from lvcrypt.errors import DeviceError, LvcryptError

# Bytes per step of a crypt target, and of the streams (activate/stream.py): bounds memory, batches the cipher.
# One huge page (`aligned_buffer`): half the Python steps of 1 MiB, and each buffer one TLB entry and one pin
# for an O_DIRECT read or write instead of 512.
CHUNK = 2 << 20
ZEROS = bytes(CHUNK)  # what staging buffers are wiped with: no buffer allocated (and faulted in) per wipe


class BlockIO(Protocol):
    def readinto(self, offset: int, buffer: memoryview) -> None: ...

    def write(self, offset: int, data: memoryview) -> None: ...


class FileIO:
    """A PV: an image file or block device, by path, with positional I/O bounded by its size."""

    def __init__(self, path: str, writable: bool):
        self.path = path
        self._file = BlockFile(path, writable)
        self.size = self._file.size
        self._unsent: tuple[int, int] | None = None  # bytes written since the last start_writeback

    def readinto(self, offset: int, buffer: memoryview) -> None:
        if offset + len(buffer) > self.size:
            raise DeviceError(f"{self.path}: read beyond the end of the device (byte {offset + len(buffer)})")
        self._file.readinto_at(offset, buffer)

    def write(self, offset: int, data: memoryview) -> None:
        if offset + len(data) > self.size:
            raise DeviceError(f"{self.path}: write beyond the end of the device (byte {offset + len(data)})")
        self._file.write_at(offset, data)
        lo, hi = self._unsent or (offset, offset)
        self._unsent = (min(lo, offset), max(hi, offset + len(data)))

    def start_writeback(self) -> None:
        if self._unsent is not None:
            lo, hi = self._unsent
            self._file.start_writeback(lo, hi - lo)
            self._unsent = None

    def bypass_cache(self) -> None:
        self._file.bypass_cache()

    def sync(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class Ciphers:
    """The sector ciphers of one set of volume keys, by (keystore, cipher, sector size), for every table that
    asks: targets of one key, cipher and sector size share one cipher (an LV in the middle of a
    conversion has many crypt targets, each a table entry but one cipher).  The extent
    mover keeps one for a whole conversion (a stack per chunk would otherwise set its ciphers up again
    each chunk); `close()` wipes them."""

    def __init__(self, volume_keys: Mapping[str, bytes | bytearray]):
        self._keys = volume_keys
        self._open: dict[tuple[str, str, int], SectorCipher] = {}

    def of(self, target: CryptTarget) -> SectorCipher:
        same = (target.key.keystore, target.cipher, target.sector_size)
        if same in self._open:
            return self._open[same]
        key = self._keys.get(target.key.keystore)
        if key is None:
            raise LvcryptError(f"the volume key of {target.key.keystore} is not unlocked")
        if len(key) != target.key.key_bytes:
            raise LvcryptError(f"the volume key of {target.key.keystore} has {len(key) * 8} bits, "
                               f"the table needs {target.key.key_bytes * 8}")
        self._open[same] = open_sector_cipher(target.cipher, key, target.sector_size)
        return self._open[same]

    def copy(self) -> "Ciphers":
        """The same ciphers with their OpenSSL contexts duplicated, for another thread (a cipher is not
        safe to share); the key does not pass through Python again."""
        twin = Ciphers(self._keys)
        twin._open = {same: cipher.copy() for same, cipher in self._open.items()}
        return twin

    def close(self) -> None:
        for cipher in self._open.values():
            cipher.close()
        self._open.clear()

    def __enter__(self) -> "Ciphers":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class MappedDevice:
    """One table of a stack, readable and writable at byte granularity; its ciphers come from `ciphers`,
    closed by `wipe()` when the device owns them and by their owner otherwise."""

    def __init__(self, table: Table, lower: Mapping[DeviceRef, BlockIO], ciphers: Ciphers, owns_ciphers: bool):
        self.table = table
        self.size = table.size * SECTOR
        self._lower = lower
        self._source = ciphers
        self._own = ciphers if owns_ciphers else None
        try:
            self._ciphers = {index: ciphers.of(target) for index, target in enumerate(table.targets)
                             if isinstance(target, CryptTarget)}
        except BaseException:
            if self._own is not None:
                self._own.close()
            raise
        # Staging for crypt targets only, page-aligned so that its ciphertext can be written around the page
        # cache (`Stack.bypass_cache`).
        self._buffer = aligned_buffer(CHUNK) if self._ciphers else bytearray()
        self._staged = 0  # bytes of the staging buffer handed out so far: what `wipe` clears

    def _pieces(self, offset: int, length: int) -> list[tuple[int, Target, int, int]]:
        """(target index, target, offset inside the target, byte count) covering [offset, offset+length)."""
        if offset < 0 or length < 0 or offset + length > self.size:
            raise LvcryptError(f"{self.table.name}: range {offset}+{length} is outside the {self.size}-byte device")
        pieces = []
        for index, target in enumerate(self.table.targets):
            begin, end = target.start * SECTOR, (target.start + target.length) * SECTOR
            if end <= offset or begin >= offset + length:
                continue
            lo, hi = max(offset, begin), min(offset + length, end)
            pieces.append((index, target, lo - begin, hi - lo))
        return pieces

    def readinto(self, offset: int, buffer: memoryview) -> None:
        done = 0
        for index, target, inner, count in self._pieces(offset, len(buffer)):
            out = buffer[done:done + count]
            if isinstance(target, CryptTarget):
                self._crypt_read(index, target, inner, out)
            else:
                for io, where, (lo, hi) in self._translate(target, inner, count):
                    io.readinto(where, out[lo:hi])
            done += count

    def _translate(self, target: Target, inner: int, count: int) -> list[tuple[BlockIO, int, tuple[int, int]]]:
        """Where bytes [inner, inner+count) of a linear or striped target live: (io, offset, (lo, hi))."""
        if isinstance(target, LinearTarget):
            return [(self._lower[target.device], target.offset * SECTOR + inner, (0, count))]
        assert isinstance(target, StripedTarget)
        chunk = target.chunk * SECTOR
        stripes = len(target.stripes)
        parts = []
        position = inner
        while position < inner + count:
            number, within = divmod(position, chunk)
            row, stripe = divmod(number, stripes)
            take = min(chunk - within, inner + count - position)
            device, start = target.stripes[stripe]
            parts.append((self._lower[device], start * SECTOR + row * chunk + within,
                          (position - inner, position - inner + take)))
            position += take
        return parts

    def _windows(self, target: CryptTarget, inner: int, length: int) -> Iterator[tuple[int, memoryview, int, int]]:
        """Whole encryption sectors covering [inner, inner+length), at most CHUNK bytes at a time:
        (first byte of the window, the staging buffer for it, where the caller's bytes start in it, how many)."""
        unit = target.sector_size
        end = inner + length
        position = inner
        buffer = memoryview(self._buffer)
        while position < end:
            first = position - position % unit
            stop = min(first + CHUNK, -(-end // unit) * unit)
            take = min(stop, end) - position
            self._staged = max(self._staged, stop - first)
            yield first, buffer[:stop - first], position - first, take
            position += take

    def _crypt_read(self, index: int, target: CryptTarget, inner: int, out: memoryview) -> None:
        cipher, lower, base = self._ciphers[index], self._lower[target.device], target.offset * SECTOR
        done = 0
        for first, work, head, take in self._windows(target, inner, len(out)):
            if head == 0 and take == len(work):
                work = out[done:done + take]  # whole sectors: decrypt in the caller's buffer, no copy
            lower.readinto(base + first, work)
            cipher.decrypt_into(work, work, first // SECTOR + target.iv_offset)
            if work.obj is self._buffer:
                out[done:done + take] = work[head:head + take]
            done += take

    def write(self, offset: int, data: memoryview, in_place: bool = False) -> None:
        """Write `data` at `offset`; with `in_place`, runs of whole encryption sectors are enciphered in `data`
        itself, which then holds ciphertext (see `Stack.write`)."""
        done = 0
        for index, target, inner, count in self._pieces(offset, len(data)):
            piece = data[done:done + count]
            if isinstance(target, CryptTarget):
                self._crypt_write(index, target, inner, piece, in_place)
            else:
                for io, where, (lo, hi) in self._translate(target, inner, count):
                    io.write(where, piece[lo:hi])
            done += count

    def _crypt_write(self, index: int, target: CryptTarget, inner: int, data: memoryview, in_place: bool) -> None:
        cipher, lower, base = self._ciphers[index], self._lower[target.device], target.offset * SECTOR
        done = 0
        for first, work, head, take in self._windows(target, inner, len(data)):
            iv = first // SECTOR + target.iv_offset
            if head == 0 and take == len(work):
                # Whole sectors: encrypt straight from the caller's buffer into the staging one, or into the
                # caller's buffer itself when it may be overwritten (one buffer fewer through the CPU's caches).
                if in_place:
                    work = data[done:done + take]
                cipher.encrypt_into(data[done:done + take], work, iv)
            else:
                # Partial encryption sectors: decrypt what is there and patch it.
                lower.readinto(base + first, work)
                cipher.decrypt_into(work, work, iv)
                work[head:head + take] = data[done:done + take]
                cipher.encrypt_into(work, work, iv)
            lower.write(base + first, work)
            done += take

    def twin(self, lower: Mapping[DeviceRef, BlockIO]) -> "MappedDevice":
        """This device over `lower` with copies of its ciphers (shared where they were) and a staging buffer
        of its own: what a second thread needs, since neither is safe to share.  The twin owns the copies."""
        return MappedDevice(self.table, lower, self._source.copy(), owns_ciphers=True)

    def wipe(self) -> None:
        """Clear the plaintext staging buffer and close the ciphers it owns (freeing their keys' OpenSSL
        contexts); a shared `Ciphers` is closed by its owner.  Only the part ever handed out is cleared: the
        rest was never written, and clearing it would fault in a megabyte of pages a short read never used."""
        self._buffer[:self._staged] = memoryview(ZEROS)[:self._staged]
        self._staged = 0
        if self._own is not None:
            self._own.close()


class Stack:
    """A whole table stack over opened PVs: the LV's top device plus its layers.

    `keys` are either the volume keys, whose ciphers the stack sets up and closes itself, or a `Ciphers`
    that outlives the stack (the extent mover's, set up once per conversion) and that its owner closes.
    """

    def __init__(self, table: Table, keys: Mapping[str, bytes | bytearray] | Ciphers, writable: bool = False):
        self.files: dict[str, FileIO] = {}
        self.devices: list[MappedDevice] = []
        # Each device reaches the ones below it, and itself, through this map: close() empties it, so a
        # closed stack's buffers and ciphers go at once, not at the next cyclic GC (a pass per chunk
        # would otherwise hold several, growing with the LV size).
        self._lower: dict[DeviceRef, BlockIO] = {}
        lower = self._lower
        try:
            for layer in table.walk():
                for target in layer.targets:
                    for ref in _devices_of(target):
                        if isinstance(ref, PvDevice) and ref not in lower:
                            io = self.files.get(ref.path) or FileIO(ref.path, writable)
                            self.files[ref.path] = io
                            lower[ref] = io
                own = not isinstance(keys, Ciphers)
                device = MappedDevice(layer, lower, Ciphers(keys) if own else keys, own)
                self.devices.append(device)
                lower[LayerDevice(layer.name)] = device
        except BaseException:
            self.close()
            raise
        self.top = self.devices[-1]

    def twin(self) -> "Stack":
        """The same stack for a second thread: over the same opened PVs (positional I/O, safe to share), with
        its own ciphers and staging buffers.  Closing it wipes those and leaves the PVs to this stack."""
        twin = object.__new__(Stack)
        twin.files = {}
        twin._lower = {ref: io for ref, io in self._lower.items() if isinstance(ref, PvDevice)}
        twin.devices = []
        for device in self.devices:
            copy = device.twin(twin._lower)
            twin.devices.append(copy)
            twin._lower[LayerDevice(device.table.name)] = copy
        twin.top = twin.devices[-1]
        return twin

    @property
    def size(self) -> int:
        return self.top.size

    def read(self, offset: int, length: int) -> bytes:
        buffer = bytearray(length)
        self.top.readinto(offset, memoryview(buffer))
        return bytes(buffer)

    def readinto(self, offset: int, buffer: memoryview) -> None:
        self.top.readinto(offset, buffer)

    def write(self, offset: int, data: bytes | bytearray | memoryview, in_place: bool = False) -> None:
        """Write `data` at `offset`.  With `in_place` (a writable buffer the caller has no further use for, such
        as a stream's input), whole encryption sectors are enciphered in it rather than copied into a staging
        buffer: it is left holding ciphertext."""
        self.top.write(offset, memoryview(data).cast("B"), in_place)

    def whole_sectors_at(self, offset: int, step: int) -> bool:
        """Whether pieces cut at offset + k*step of the top device cover whole encryption sectors each.

        Two processes writing neighbouring pieces (the streams' worker) must
        never read-modify-write the same sector.  Only the top device's crypt
        targets are checked: below it, where a byte lands depends on every
        mapping above, so a stack with crypt targets lower down says no.
        """
        for device in self.devices:
            for target in device.table.targets:
                if not isinstance(target, CryptTarget):
                    continue
                if device is not self.top or (offset - target.start * SECTOR) % target.sector_size \
                        or step % target.sector_size:
                    return False
        return True

    def start_writeback(self) -> None:
        """Send what was written since the last call towards the disks, without waiting (see
        `BlockFile.start_writeback`)."""
        for io in self.files.values():
            io.start_writeback()

    def bypass_cache(self) -> None:
        """Write whole pages of the PVs, and read them from block devices, with O_DIRECT from now on
        (`BlockFile.bypass_cache`): for long streams whose data nobody reads again soon.  `sync` still makes
        writes durable."""
        for io in self.files.values():
            io.bypass_cache()

    def sync(self) -> None:
        for io in self.files.values():
            io.sync()

    def close(self) -> None:
        for device in self.devices:
            device.wipe()
        for io in self.files.values():
            io.close()
        self.files.clear()
        self._lower.clear()

    def __enter__(self) -> "Stack":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _devices_of(target: Target) -> list[DeviceRef]:
    if isinstance(target, (LinearTarget, CryptTarget)):
        return [target.device]
    return [device for device, _ in target.stripes]
