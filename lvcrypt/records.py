"""`dataclass` as the standard library makes it, without compiling methods per class.

The standard decorator writes every generated method as source text and
compiles it when the class is created, and gives a class without a docstring
one made by `inspect.signature`.  Commands are short processes that create
some seventy data classes before doing any work: on a 4 KiB `read` of a crypt
LV that was 52 ms of CPU, a quarter of the whole command, a frozen class
costing twice a mutable one (its `__setattr__` and `__delattr__` are compiled
too; benchmarks/startup.py).  Here the standard decorator only collects the
fields (so `dataclasses.fields`, `replace`, `asdict` and `is_dataclass` work
as for any data class) and compiles nothing.  `__init__` (run for every
object, so real code, not a generic loop) is a template compiled once per
shape (which fields take arguments, have factories, are keyword-only; frozen
or not) and renamed to the class's fields, most classes sharing a shape with
another; the comparison, representation, hash and a frozen class's guards are
small closures over the field names.  All keep the standard library's
semantics: `__init__` takes the `init` fields in order, `kw_only` ones after a
`*`, fills defaults and factories and calls `__post_init__`; `__eq__` compares
the `compare` fields of two objects of the same class (else
`NotImplemented`), `__repr__` shows the `repr` fields and guards against
recursion, a frozen class refuses assignment and deletion of its fields
(`FrozenInstanceError`) and hashes its hashed fields, a mutable one is
unhashable, and methods a class defines itself are kept.
tests/test_records.py holds it to the standard decorator.
"""

from __future__ import annotations

import dataclasses
import reprlib
import types
from typing import Any, Callable, TypeVar, overload

C = TypeVar("C", bound=type)

_MISSING = dataclasses.MISSING


class _Factory:
    """The default of an `__init__` argument whose field has a `default_factory`: call the factory."""

    def __repr__(self) -> str:
        return "<factory>"


_FACTORY = _Factory()
_TEMPLATES: dict[tuple[object, ...], types.CodeType] = {}  # (field kinds, frozen, __post_init__) -> code


def _getter(names: tuple[str, ...]) -> Callable[[object], tuple[Any, ...]]:
    def values(obj: object) -> tuple[Any, ...]:
        return tuple([getattr(obj, name) for name in names])

    return values


def _template(kinds: tuple[str, ...], frozen: bool, post_init: bool) -> types.CodeType:
    """The code of an `__init__` for fields of these kinds, named `_dc_a0`, `_dc_a1`...: `a` an argument,
    `f` one whose default is a factory's, `x` a field set from its factory alone, `k` a keyword-only one."""
    params, keywords, body = ["self"], [], []
    for index, kind in enumerate(kinds):
        name = f"_dc_a{index}"
        if kind == "x":
            value = f"_dc_f{index}()"
        else:
            (keywords if kind.startswith("k") else params).append(name)
            value = f"_dc_f{index}() if {name} is _dc_factory else {name}" if kind.endswith("f") else name
        body.append(f"_dc_set(self, {name!r}, {value})" if frozen else f"self.{name} = {value}")
    if post_init:
        body.append("self.__post_init__()")
    source = f"def __init__({', '.join(params + ['*'] * bool(keywords) + keywords)}):\n    " + \
        ("\n    ".join(body) or "pass") + "\n"
    module = compile(source, "<records>", "exec")
    return next(const for const in module.co_consts if isinstance(const, types.CodeType))


def _init(cls: type, fields: tuple[dataclasses.Field[Any], ...], frozen: bool) -> Callable[..., None]:
    """`__init__` from a template compiled once per shape of class (most share one) and renamed to the
    fields; defaults and factories reach it as the function's defaults and globals."""
    namespace: dict[str, Any] = {"__name__": cls.__module__, "_dc_set": object.__setattr__, "_dc_factory": _FACTORY}
    names: list[str] = []
    kinds: list[str] = []
    defaults: list[object] = []
    keyword_defaults: dict[str, object] = {}
    for field in fields:
        factory = field.default_factory is not _MISSING
        if factory:
            namespace[f"_dc_f{len(kinds)}"] = field.default_factory
        if not field.init:
            if factory:  # else the class attribute holds the default
                names.append(field.name)
                kinds.append("x")
            continue
        has_default = factory or field.default is not _MISSING
        default = _FACTORY if factory else field.default
        if field.kw_only:
            if has_default:
                keyword_defaults[field.name] = default
        elif has_default:
            defaults.append(default)
        elif defaults:
            raise TypeError(f"non-default argument {field.name!r} follows default argument")
        names.append(field.name)
        kinds.append(("k" if field.kw_only else "") + ("f" if factory else "a"))
    key = (tuple(kinds), frozen, hasattr(cls, "__post_init__"))
    template = _TEMPLATES.get(key)
    if template is None:
        template = _TEMPLATES[key] = _template(*key)
    real = {f"_dc_a{index}": name for index, name in enumerate(names)}
    code = template.replace(co_varnames=tuple(real.get(name, name) for name in template.co_varnames),
                            co_names=tuple(real.get(name, name) for name in template.co_names),
                            co_consts=tuple(real.get(const, const) if isinstance(const, str) else const
                                            for const in template.co_consts),
                            co_qualname=f"{cls.__qualname__}.__init__")
    init = types.FunctionType(code, namespace, "__init__", tuple(defaults) or None)
    init.__kwdefaults__ = keyword_defaults or None
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
