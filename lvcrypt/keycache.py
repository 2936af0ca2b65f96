"""The master-key cache: the volume keys one command has unlocked, by keystore.

Handlers fill it, the activator reads it, and it is wiped when the command
ends (`with KeyCache() as keys:`).  Keys live in `Secret` buffers (mlocked
where the system allows, wiped on close); the cache never prints or logs
them, its repr shows keystore names only.
"""

from __future__ import annotations

from typing import Iterator, Mapping

from lvcrypt.handlers.secret import Secret


class KeyCache(Mapping[str, bytearray]):
    def __init__(self) -> None:
        self._keys: dict[str, Secret] = {}

    def put(self, keystore: str, key: Secret) -> None:
        """Take ownership of `key` (an older key for the same keystore is wiped)."""
        old = self._keys.pop(keystore, None)
        if old is not None and old is not key:
            old.close()
        self._keys[keystore] = key

    def secret(self, keystore: str) -> Secret:
        return self._keys[keystore]

    def __getitem__(self, keystore: str) -> bytearray:
        return self._keys[keystore].buffer

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"KeyCache({sorted(self._keys)})"

    def close(self) -> None:
        for key in self._keys.values():
            key.close()
        self._keys.clear()

    def __enter__(self) -> "KeyCache":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
