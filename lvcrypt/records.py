"""`dataclass` as the standard library makes it, without compiling `__repr__`, `__eq__` and `__hash__` per class.

The standard decorator writes every generated method as source text and
compiles it when the class is created.  Commands are short processes that
create some seventy data classes before doing any work: on a 4 KiB `read` of
a crypt LV that was 35 ms of CPU, a third of the whole command
(benchmarks/startup.py).  Here the standard decorator still makes the class
and its `__init__` (run for every object, so worth compiling), and the
comparison, representation and hash come from small closures over the field
names instead, with the standard library's semantics: `__eq__` compares the
`compare` fields of two objects of the same class (else `NotImplemented`),
`__repr__` shows the `repr` fields and guards against recursion, a frozen
class hashes its hashed fields, a mutable one is unhashable, and methods a
class defines itself are kept.  `dataclasses.fields`, `replace` and `asdict`
work as for any data class.
"""

from __future__ import annotations

import dataclasses
import reprlib
from typing import Any, Callable, TypeVar, overload

C = TypeVar("C", bound=type)


def _getter(names: tuple[str, ...]) -> Callable[[object], tuple[Any, ...]]:
    def values(obj: object) -> tuple[Any, ...]:
        return tuple([getattr(obj, name) for name in names])

    return values


def _add_methods(cls: C, frozen: bool) -> C:
    own = cls.__dict__
    explicit_hash = own.get("__hash__", dataclasses.MISSING)
    has_explicit_hash = not (explicit_hash is dataclasses.MISSING or (explicit_hash is None and "__eq__" in own))
    fields = dataclasses.fields(cls)
    shown = tuple(field.name for field in fields if field.repr)
    compared = _getter(tuple(field.name for field in fields if field.compare))
    hashed = _getter(tuple(field.name for field in fields if (field.compare if field.hash is None else field.hash)))

    @reprlib.recursive_repr()
    def __repr__(self: object) -> str:
        return f"{type(self).__qualname__}({', '.join(f'{name}={getattr(self, name)!r}' for name in shown)})"

    def __eq__(self: object, other: object) -> bool:
        if other.__class__ is self.__class__:
            return compared(self) == compared(other)
        return NotImplemented

    def __hash__(self: object) -> int:
        return hash(hashed(self))

    methods: dict[str, Any] = {"__repr__": __repr__, "__eq__": __eq__}
    if not has_explicit_hash:
        methods["__hash__"] = __hash__ if frozen else None
    for name, method in methods.items():
        if name not in own or (name == "__hash__" and not has_explicit_hash):
            if method is not None:
                method.__qualname__ = f"{cls.__qualname__}.{name}"
            setattr(cls, name, method)
    return cls


@overload
def dataclass(cls: C, /) -> C: ...


@overload
def dataclass(*, frozen: bool = False) -> Callable[[C], C]: ...


def dataclass(cls: C | None = None, /, *, frozen: bool = False) -> C | Callable[[C], C]:
    """`@dataclass` or `@dataclass(frozen=True)`, the two forms lvcrypt uses."""
    def wrap(klass: C) -> C:
        return _add_methods(dataclasses.dataclass(klass, repr=False, eq=False, frozen=frozen), frozen)

    return wrap if cls is None else wrap(cls)
