"""`dataclass` as the standard library makes it, without compiling a method per class but `__init__`.

The standard decorator writes every generated method as source text and
compiles it when the class is created, and gives a class without a docstring
one made by `inspect.signature`.  Commands are short processes that create
some seventy data classes before doing any work: on a 4 KiB `read` of a crypt
LV that was 52 ms of CPU, a quarter of the whole command, a frozen class
costing twice a mutable one (its `__setattr__` and `__delattr__` are compiled
too; benchmarks/startup.py).  Here the standard decorator only collects the
fields (so `dataclasses.fields`, `replace`, `asdict` and `is_dataclass` work
as for any data class) and compiles nothing; this module compiles `__init__`
alone (run for every object, so worth compiling) from a short source without
annotations, and the comparison, representation, hash and a frozen class's
guards come from small closures over the field names, with the standard
library's semantics: `__init__` takes the `init` fields in order, fills
defaults and factories and calls `__post_init__`; `__eq__` compares the
`compare` fields of two objects of the same class (else `NotImplemented`),
`__repr__` shows the `repr` fields and guards against recursion, a frozen
class refuses assignment and deletion of its fields (`FrozenInstanceError`)
and hashes its hashed fields, a mutable one is unhashable, and methods a class
defines itself are kept.  tests/test_records.py holds it to the standard
decorator.
"""

from __future__ import annotations

import dataclasses
import reprlib
from typing import Any, Callable, TypeVar, overload

C = TypeVar("C", bound=type)

_MISSING = dataclasses.MISSING


class _Factory:
    """The default of an `__init__` argument whose field has a `default_factory`: call the factory."""

    def __repr__(self) -> str:
        return "<factory>"


_FACTORY = _Factory()


def _getter(names: tuple[str, ...]) -> Callable[[object], tuple[Any, ...]]:
    def values(obj: object) -> tuple[Any, ...]:
        return tuple([getattr(obj, name) for name in names])

    return values


def _init(cls: type, fields: tuple[dataclasses.Field[Any], ...], frozen: bool) -> Callable[..., None]:
    """`__init__` from a few lines of source, its defaults and factories passed in its globals; `kw_only`
    fields after a `*`, as the standard library orders them."""
    namespace: dict[str, Any] = {"__name__": cls.__module__, "_dc_set": object.__setattr__, "_dc_factory": _FACTORY}
    params, keywords, body, defaults = ["self"], [], [], False
    for index, field in enumerate(fields):
        name = field.name
        if field.default_factory is not _MISSING:
            namespace[f"_dc_f{index}"] = field.default_factory
            value = f"_dc_f{index}() if {name} is _dc_factory else {name}" if field.init else f"_dc_f{index}()"
        elif field.init:
            value = name
        else:
            continue  # no init, no factory: the class attribute holds the default
        if field.init:
            has_default = field.default is not _MISSING or field.default_factory is not _MISSING
            if has_default:
                namespace[f"_dc_d{index}"] = field.default if field.default is not _MISSING else _FACTORY
            if field.kw_only:
                keywords.append(f"{name}=_dc_d{index}" if has_default else name)
            elif has_default:
                params.append(f"{name}=_dc_d{index}")
                defaults = True
            elif defaults:
                raise TypeError(f"non-default argument {name!r} follows default argument")
            else:
                params.append(name)
        body.append(f"_dc_set(self, {name!r}, {value})" if frozen else f"self.{name} = {value}")
    if hasattr(cls, "__post_init__"):
        body.append("self.__post_init__()")
    source = f"def __init__({', '.join(params + ['*'] * bool(keywords) + keywords)}):\n    " + ("\n    ".join(body) or "pass") + "\n"
    exec(source, namespace)  # noqa: S102 - our own text, built from identifiers the class declares
    init: Callable[..., None] = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    return init


def _signature_doc(cls: type, fields: tuple[dataclasses.Field[Any], ...]) -> str:
    """Like the docstring the standard library gives a class without one: its name and its fields."""
    params = []
    for field in fields:
        if not field.init:
            continue
        text = f"{field.name}: {field.type!r}" if isinstance(field.type, str) else field.name
        if field.default_factory is not _MISSING:
            text += " = <factory>"
        elif field.default is not _MISSING:
            text += f" = {field.default!r}"
        params.append(text)
    return f"{cls.__name__}({', '.join(params)})"


def _frozen_guards(cls: type, names: frozenset[str]) -> dict[str, Any]:
    """The standard library's frozen `__setattr__` and `__delattr__`: fields are neither set nor deleted."""
    def __setattr__(self: object, name: str, value: object) -> None:
        if type(self) is cls or name in names:
            raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")
        super(cls, self).__setattr__(name, value)

    def __delattr__(self: object, name: str) -> None:
        if type(self) is cls or name in names:
            raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")
        super(cls, self).__delattr__(name)

    return {"__setattr__": __setattr__, "__delattr__": __delattr__}


def _add_methods(cls: C, frozen: bool, documented: bool) -> C:
    own = cls.__dict__
    explicit_hash = own.get("__hash__", _MISSING)
    has_explicit_hash = not (explicit_hash is _MISSING or (explicit_hash is None and "__eq__" in own))
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

    if "__init__" not in own:
        cls.__init__ = _init(cls, fields, frozen)  # type: ignore[misc]
    if not documented:
        cls.__doc__ = _signature_doc(cls, fields)
    if frozen:
        for name, guard in _frozen_guards(cls, frozenset(field.name for field in fields)).items():
            if name in own:
                raise TypeError(f"Cannot overwrite attribute {name} in class {cls.__name__}")
            guard.__qualname__ = f"{cls.__qualname__}.{name}"
            setattr(cls, name, guard)
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
        documented = bool(klass.__dict__.get("__doc__"))
        if not documented:
            klass.__doc__ = klass.__name__  # spares the standard decorator its inspect.signature; replaced below
        made = dataclasses.dataclass(klass, init=False, repr=False, eq=False)
        return _add_methods(made, frozen, documented)

    return wrap if cls is None else wrap(cls)
