"""`dataclass`, `field` and `replace` with the standard library's semantics, without importing `dataclasses`.

The standard decorator writes every generated method as source text and
compiles it when the class is created, and gives a class without a docstring
one made by `inspect.signature`; importing `dataclasses` alone (inspect, ast,
dis, tokenize) cost a 4 KiB `read` of a crypt LV some 41M of its 436M
instructions (benchmarks/startup.py).  Commands are short processes that
create some seventy data classes before doing any work, so this module
collects the fields itself, as the standard decorator does (annotations in
order, base classes' fields first, `ClassVar` left out, `field()` options,
the same refusals), and compiles nothing per class.  `__init__` (run for
every object, so real code, not a generic loop) is a template compiled once
per shape (which fields take arguments, have factories, are keyword-only;
frozen or not) and renamed to the class's fields, most classes sharing a
shape with another, and compiled only when a class of a shape not compiled
yet makes its 33rd object: the first objects take a generic loop over the
fields (a 4 KiB `read` makes 84 objects of 39 classes, at most 17 of one, and
compiling their 27 shapes cost 22M of its instructions); the comparison, representation, hash and a frozen class's guards are small
closures over the field names.  All keep the
standard library's semantics: `__init__` takes the `init` fields in order,
`kw_only` ones after a `*`, fills defaults and factories and calls
`__post_init__`; `__eq__` compares the `compare` fields of two objects of the
same class (else `NotImplemented`), `__repr__` shows the `repr` fields and
guards against recursion, a frozen class refuses assignment and deletion of
its fields (`dataclasses.FrozenInstanceError`, imported only then) and
hashes its hashed fields, a mutable one is unhashable, and methods a class
defines itself are kept.

A class body may use the standard library's `field()` too.  The standard
library's own functions (`dataclasses.fields`, `replace`, `asdict`,
`is_dataclass`, and its decorator on a subclass) still work on
these classes: their `__dataclass_fields__` and `__dataclass_params__` are
made on first use (by a caller that has imported `dataclasses`) from a twin
class the standard decorator builds with the same fields.  InitVar and
KW_ONLY annotations are refused.  tests/test_records.py holds it all to the
standard decorator.
"""

from __future__ import annotations

import reprlib
import sys
import types
import typing
from typing import Any, Callable, TypeVar, overload

C = TypeVar("C", bound=type)


class _Missing:
    """The absence of a default, as `dataclasses.MISSING` marks it."""

    def __repr__(self) -> str:
        return "MISSING"


_MISSING: Any = _Missing()


class Field:
    """One field of a data class: `dataclasses.Field`'s attributes, those `field()` takes here."""

    __slots__ = ("name", "type", "default", "default_factory", "init", "repr", "hash", "compare", "kw_only")

    def __init__(self, default: Any, default_factory: Any, init: bool, repr: bool, hash: bool | None,
                 compare: bool, kw_only: Any) -> None:
        self.name: str = ""
        self.type: Any = None
        self.default = default
        self.default_factory = default_factory
        self.init = init
        self.repr = repr
        self.hash = hash
        self.compare = compare
        self.kw_only = kw_only

    def __repr__(self) -> str:
        return (f"Field(name={self.name!r},type={self.type!r},default={self.default!r},"
                f"default_factory={self.default_factory!r},init={self.init!r},repr={self.repr!r},"
                f"hash={self.hash!r},compare={self.compare!r},kw_only={self.kw_only!r})")


def field(*, default: Any = _MISSING, default_factory: Any = _MISSING, init: bool = True, repr: bool = True,
          hash: bool | None = None, compare: bool = True, kw_only: Any = _MISSING) -> Any:
    """`dataclasses.field` (without `metadata`): a field's default or factory and where it takes part."""
    if default is not _MISSING and default_factory is not _MISSING:
        raise ValueError("cannot specify both default and default_factory")
    return Field(default, default_factory, init, repr, hash, compare, kw_only)


def replace(obj: Any, /, **changes: Any) -> Any:
    """`dataclasses.replace`: a new object of the same class, `changes` over the old one's `init` fields."""
    fields = getattr(type(obj), "__record_fields__", None)
    if fields is None:
        raise TypeError("replace() should be called on dataclass instances")
    for item in fields.values():
        if not item.init:
            if item.name in changes:
                raise ValueError(f"field {item.name} is declared with init=False, it cannot be specified with "
                                 "replace()")
        elif item.name not in changes:
            changes[item.name] = getattr(obj, item.name)
    return obj.__class__(**changes)


class _Factory:
    """The default of an `__init__` argument whose field has a `default_factory`: call the factory."""

    def __repr__(self) -> str:
        return "<factory>"


_FACTORY = _Factory()
_TEMPLATES: dict[tuple[object, ...], types.CodeType] = {}  # (field kinds, frozen, __post_init__) -> code
# Objects a class makes through `_Generic` before its shape's template is compiled: a compile costs
# about as much as some hundred generic objects, and most classes make a few objects in a command.
_GENERIC_OBJECTS = 32


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


class _Generic:
    """A class's `__init__` as a loop over its fields, for its first objects: `init` binds the arguments as the
    compiled one would and sets the fields in order, or returns False (having set nothing) where Python's
    binding would refuse them, so that the compiled `__init__` raises the refusal it words."""

    def __init__(self, steps: tuple[tuple[str, str, object, Any], ...], frozen: bool, post_init: bool) -> None:
        self.steps = steps  # (name, kind as in _template, default or _MISSING or _FACTORY, factory) per field
        self.positional = sum(1 for _, kind, _, _ in steps if kind in ("a", "f"))
        self.set = object.__setattr__ if frozen else setattr
        self.post_init = post_init

    def init(self, obj: object, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
        values = self._bind(args, kwargs)
        if values is None:
            return False
        for (name, _, _, factory), value in zip(self.steps, values):
            self.set(obj, name, factory() if value is _FACTORY else value)
        if self.post_init:
            obj.__post_init__()  # type: ignore[attr-defined]
        return True

    def _bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any] | None:
        if len(args) > self.positional:
            return None
        values: list[Any] = []
        position = taken = 0
        for name, kind, default, _ in self.steps:
            if kind == "x":
                values.append(_FACTORY)
                continue
            if kind in ("a", "f"):
                position += 1
                if position <= len(args):
                    if name in kwargs:
                        return None
                    values.append(args[position - 1])
                    continue
            if name in kwargs:
                values.append(kwargs[name])
                taken += 1
            elif default is not _MISSING:
                values.append(default)
            else:
                return None
        return values if taken == len(kwargs) else None


def _init(cls: type, fields: tuple[Field, ...], frozen: bool) -> Callable[..., None]:
    """`__init__` from a template compiled once per shape of class (most share one) and renamed to the
    fields; defaults and factories reach it as the function's defaults and globals.  A shape not compiled
    yet is compiled when the class makes its `_GENERIC_OBJECTS + 1`th object: a command uses few of the classes
    it loads, and makes few objects of most of those it uses."""
    namespace: dict[str, Any] = {"__name__": cls.__module__, "_dc_set": object.__setattr__, "_dc_factory": _FACTORY}
    names: list[str] = []
    kinds: list[str] = []
    defaults: list[object] = []
    keyword_defaults: dict[str, object] = {}
    steps: list[tuple[str, str, object, Any]] = []
    for field in fields:
        factory = field.default_factory is not _MISSING
        if factory:
            namespace[f"_dc_f{len(kinds)}"] = field.default_factory
        if not field.init:
            if factory:  # else the class attribute holds the default
                names.append(field.name)
                kinds.append("x")
                steps.append((field.name, "x", _FACTORY, field.default_factory))
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
        steps.append((field.name, kinds[-1], default, field.default_factory))
    key = (tuple(kinds), frozen, hasattr(cls, "__post_init__"))
    qualname = f"{cls.__qualname__}.__init__"

    def build() -> Callable[..., None]:
        template = _TEMPLATES.get(key)
        if template is None:
            template = _TEMPLATES[key] = _template(*key)
        real = {f"_dc_a{index}": name for index, name in enumerate(names)}
        code = template.replace(co_varnames=tuple(real.get(name, name) for name in template.co_varnames),
                                co_names=tuple(real.get(name, name) for name in template.co_names),
                                co_consts=tuple(real.get(const, const) if isinstance(const, str) else const
                                                for const in template.co_consts),
                                co_qualname=qualname)
        init = types.FunctionType(code, namespace, "__init__", tuple(defaults) or None)
        init.__kwdefaults__ = keyword_defaults or None
        init.__qualname__ = qualname
        return init

    if key in _TEMPLATES:
        return build()
    generic = _Generic(tuple(steps), frozen, key[2])
    made = 0

    def first_init(self: object, *args: Any, **kwargs: Any) -> None:
        nonlocal made
        made += 1
        if made <= _GENERIC_OBJECTS and key not in _TEMPLATES and generic.init(self, args, kwargs):
            return
        init = build()
        setattr(cls, "__init__", init)
        init(self, *args, **kwargs)

    first_init.__name__, first_init.__qualname__ = "__init__", qualname
    return first_init


def _signature_doc(cls: type, fields: tuple[Field, ...]) -> str:
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
            from dataclasses import FrozenInstanceError
            raise FrozenInstanceError(f"cannot assign to field {name!r}")
        super(cls, self).__setattr__(name, value)

    def __delattr__(self: object, name: str) -> None:
        if type(self) is cls or name in names:
            from dataclasses import FrozenInstanceError
            raise FrozenInstanceError(f"cannot delete field {name!r}")
        super(cls, self).__delattr__(name)

    return {"__setattr__": __setattr__, "__delattr__": __delattr__}


def _pseudo_field(cls: type, annotation: Any) -> bool:
    """Whether an annotation is a `ClassVar` (no field), as the standard library tells: a string names it in the
    class's module (``ClassVar[...]``, ``typing.ClassVar[...]``).  InitVar and KW_ONLY are refused."""
    if not isinstance(annotation, str):
        if getattr(annotation, "__module__", None) == "dataclasses":
            raise TypeError(f"lvcrypt.records makes no InitVar or KW_ONLY fields ({cls.__qualname__})")
        return annotation is typing.ClassVar or typing.get_origin(annotation) is typing.ClassVar
    module, _, name = annotation.partition("[")[0].strip().rpartition(".")
    if name in ("InitVar", "KW_ONLY"):
        raise TypeError(f"lvcrypt.records makes no InitVar or KW_ONLY fields ({cls.__qualname__})")
    namespace = vars(sys.modules[cls.__module__]) if cls.__module__ in sys.modules else {}
    if module:
        return name == "ClassVar" and namespace.get(module) is typing
    return namespace.get(name) is typing.ClassVar


def _own_field(value: object) -> Field | None:
    """A `field()` in a class body: this module's, or the standard library's (then `dataclasses` is loaded)."""
    if isinstance(value, Field):
        return value
    standard = sys.modules.get("dataclasses")
    if standard is None or not isinstance(value, standard.Field):
        return None
    missing = standard.MISSING
    return Field(_MISSING if value.default is missing else value.default,
                 _MISSING if value.default_factory is missing else value.default_factory, value.init, value.repr,
                 value.hash, value.compare, _MISSING if value.kw_only is missing else value.kw_only)


def _collect(cls: type, frozen: bool) -> dict[str, Field]:
    """The class's fields by name, its bases' first, as the standard decorator finds them and with its refusals;
    a `field()` or default in the class body becomes the class attribute the standard decorator leaves."""
    fields: dict[str, Field] = {}
    bases_frozen: set[bool] = set()
    for base in cls.__mro__[-1:0:-1]:
        inherited = getattr(base, "__record_fields__", None)
        if inherited is not None:
            fields.update(inherited)
            bases_frozen.add(base.__record_frozen__)  # type: ignore[attr-defined]
        elif "__dataclass_fields__" in base.__dict__:
            raise TypeError(f"{cls.__qualname__}: a standard data class {base.__qualname__} cannot be a base")
    if bases_frozen and (True in bases_frozen) != frozen:
        raise TypeError("cannot inherit frozen dataclass from a non-frozen one" if frozen else
                        "cannot inherit non-frozen dataclass from a frozen one")
    annotations = cls.__dict__.get("__annotations__", {})
    for name, annotation in annotations.items():
        if _pseudo_field(cls, annotation):
            continue
        default = getattr(cls, name, _MISSING)
        item = _own_field(default)
        if item is not None:
            if item.default is _MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, item.default)
        else:
            item = Field(_MISSING if isinstance(default, types.MemberDescriptorType) else default, _MISSING, True,
                         True, None, True, _MISSING)
        item.name, item.type = name, annotation
        if item.kw_only is _MISSING:
            item.kw_only = False
        if item.default.__class__.__hash__ is None:
            raise ValueError(f"mutable default {type(item.default)} for field {name} is not allowed: use "
                             "default_factory")
        fields[name] = item
    standard = sys.modules.get("dataclasses")
    field_types = (Field, standard.Field) if standard is not None else Field  # what `_own_field` takes
    for name, value in cls.__dict__.items():
        if isinstance(value, field_types):
            raise TypeError(f"{name!r} is a field but has no type annotation")
    return fields


class _Standard:
    """`__dataclass_fields__` or `__dataclass_params__` of a class made here, for the standard library's functions:
    those of a twin class its decorator makes with the same fields, on first use."""

    def __init__(self, cls: type, attribute: str) -> None:
        self.cls, self.attribute = cls, attribute

    def __get__(self, obj: object, owner: type | None = None) -> Any:
        twin = self.cls.__dict__.get("__record_twin__")
        if twin is None:
            import dataclasses
            fields = self.cls.__record_fields__.values()  # type: ignore[attr-defined]
            namespace: dict[str, Any] = {"__module__": self.cls.__module__, "__qualname__": self.cls.__qualname__,
                                         "__annotations__": {item.name: item.type for item in fields}}
            for item in fields:
                namespace[item.name] = dataclasses.field(
                    default=dataclasses.MISSING if item.default is _MISSING else item.default,
                    default_factory=dataclasses.MISSING if item.default_factory is _MISSING else item.default_factory,
                    init=item.init, repr=item.repr, hash=item.hash, compare=item.compare, kw_only=item.kw_only)
            twin = dataclasses.dataclass(type(self.cls.__name__, (), namespace),
                                         frozen=self.cls.__record_frozen__)  # type: ignore[attr-defined]
            setattr(self.cls, "__record_twin__", twin)
        return twin.__dict__[self.attribute]


def _add_methods(cls: C, frozen: bool, documented: bool) -> C:
    own = cls.__dict__
    explicit_hash = own.get("__hash__", _MISSING)
    has_explicit_hash = not (explicit_hash is _MISSING or (explicit_hash is None and "__eq__" in own))
    by_name = _collect(cls, frozen)
    fields = tuple(by_name.values())
    cls.__record_fields__ = by_name  # type: ignore[attr-defined]
    cls.__record_frozen__ = frozen  # type: ignore[attr-defined]
    for attribute in ("__dataclass_fields__", "__dataclass_params__"):
        setattr(cls, attribute, _Standard(cls, attribute))
    if "__match_args__" not in own:
        cls.__match_args__ = tuple(field.name for field in fields if field.init and not field.kw_only)
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
        return _add_methods(klass, frozen, bool(klass.__dict__.get("__doc__")))

    return wrap if cls is None else wrap(cls)
