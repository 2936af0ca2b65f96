"""`lvcrypt.records` against the standard library's `dataclasses`, its oracle: the same classes, compared, shown,
hashed, copied (`replace`) and refused alike, for the two forms lvcrypt uses (plain and frozen), and the standard
library's functions working on lvcrypt's classes."""

from __future__ import annotations

import dataclasses
from typing import Callable, ClassVar

import pytest

from lvcrypt import records
from lvcrypt.records import dataclass as record

FORMS = [pytest.param({}, id="plain"), pytest.param({"frozen": True}, id="frozen")]


@pytest.fixture(autouse=True, params=["generic", "compiled"])
def init_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test both ways a class's `__init__` runs: the generic loop of its first objects, and the template
    compiled for its shape (at once here); no shape compiled by another test."""
    monkeypatch.setattr(records, "_TEMPLATES", {})
    if request.param == "compiled":
        monkeypatch.setattr(records, "_GENERIC_OBJECTS", 0)


def make(decorator: Callable[..., object], options: dict[str, bool],
         field: Callable[..., object] = dataclasses.field) -> tuple[type, type]:
    """A base and a subclass with every kind of field: defaults, factories, hidden from repr or compare."""
    apply = decorator(**options) if options else decorator

    @apply
    class Base:
        name: str
        sizes: list[int] = field(default_factory=list)
        note: str = field(default="", repr=False)
        cached: int = field(default=0, compare=False)
        kind: ClassVar[str] = "base"  # not a field

    @apply
    class Child(Base):
        extra: tuple[int, ...] = ()

    return Base, Child


def behaviour(base: type, child: type) -> list[object]:
    """What a user of the classes sees: reprs, equalities, hashability and hash agreement."""
    a, b, c = base("a", [1]), base("a", [1], cached=5), base("a", [2], note="n")
    kid = child("a", [1])
    seen: list[object] = [repr(a).split(".")[-1], repr(c).split(".")[-1], repr(kid).split(".")[-1], a == b, a == c,
                          a != c, a == kid, kid == child("a", [1]), a == "a", base.__hash__ is None]
    if base.__hash__ is not None:
        frozen_a, frozen_b = base("a", (1,)), base("a", (1,), cached=9)  # type: ignore[arg-type]
        seen += [hash(frozen_a) == hash(frozen_b), len({frozen_a, frozen_b, base("b", (1,))})]
    return seen


@pytest.mark.parametrize("options", FORMS)
def test_the_same_behaviour_as_the_standard_dataclass(options: dict[str, bool]) -> None:
    ours = make(record, options, records.field)
    assert behaviour(*ours) == behaviour(*make(dataclasses.dataclass, options))
    assert behaviour(*make(record, options)) == behaviour(*ours)  # the standard library's field() taken as ours
    assert dataclasses.is_dataclass(ours[0])
    assert dataclasses.replace(ours[1]("a", extra=(1,)), name="b") == ours[1]("b", extra=(1,))
    assert dataclasses.asdict(ours[0]("a", [3])) == {"name": "a", "sizes": [3], "note": "", "cached": 0}


def test_frozen_stays_frozen_and_a_class_keeps_its_own_methods() -> None:
    @record(frozen=True)
    class Point:
        x: int

    with pytest.raises(dataclasses.FrozenInstanceError):
        Point(1).x = 2  # type: ignore[misc]

    @record
    class Own:
        value: int

        def __repr__(self) -> str:
            return "mine"

        def __eq__(self, other: object) -> bool:
            return True

    assert repr(Own(1)) == "mine" and Own(1) == 5 and Own.__hash__ is None  # as the standard library leaves it


def test_a_recursive_repr_ends() -> None:
    @record
    class Node:
        child: object = None

    node = Node()
    node.child = node
    assert repr(node).endswith("Node(child=...)")


@pytest.mark.parametrize("options", FORMS)
def test_init_takes_arguments_as_the_standard_dataclass_does(options: dict[str, bool]) -> None:
    """Keyword-only fields after the others, fields left out of `__init__`, `__post_init__`; a field without a
    default after one with a default is refused when the class is made, as the standard library refuses it."""
    def make_ordered(decorator: Callable[..., object], field: Callable[..., object]) -> type:
        apply = decorator(**options) if options else decorator

        @apply
        class Ordered:
            order: tuple[str, ...] = field(default=(), kw_only=True, compare=False)
            seen: list[str] = field(default_factory=list, init=False)

        @apply
        class Spec(Ordered):
            kind: str
            size: int = 4000
            extra: dict[str, int] = field(default_factory=dict)

            def __post_init__(self) -> None:
                self.seen.append(self.kind)

        return Spec

    ours, theirs = make_ordered(record, records.field), make_ordered(dataclasses.dataclass, dataclasses.field)
    for args, kwargs in (((("a",)), {}), (("a", 1, {"x": 1}), {"order": ("k",)}), ((), {"kind": "b", "size": 2})):
        mine, reference = ours(*args, **kwargs), theirs(*args, **kwargs)
        assert [(f.name, getattr(mine, f.name)) for f in dataclasses.fields(mine)] == \
            [(f.name, getattr(reference, f.name)) for f in dataclasses.fields(reference)]
    assert ours("a").extra is not ours("a").extra  # a new object from the factory each time
    for bad in ((), ("a", 1, {}, ("k",))):
        with pytest.raises(TypeError):
            ours(*bad)
    with pytest.raises(TypeError, match="non-default argument 'count' follows default argument"):
        record(type("Late", (), {"__annotations__": {"name": "str", "count": "int"}, "name": "", "__module__": __name__}))


def test_a_frozen_subclass_guards_its_fields_and_copies() -> None:
    """Copies (and pickles: the same protocol) restore a frozen object without its guarded `__setattr__`."""
    import copy

    @record(frozen=True)
    class Base:
        name: str

    @record(frozen=True)
    class Child(Base):
        size: int = 0

    child = Child("a", 3)
    for attempt in (lambda: setattr(child, "size", 4), lambda: delattr(child, "name")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            attempt()
    duplicate = copy.deepcopy(child)
    assert duplicate == child and duplicate is not child and hash(duplicate) == hash(child)


@pytest.mark.parametrize("options", FORMS)
def test_replace_copies_as_the_standard_replace_does(options: dict[str, bool]) -> None:
    """`records.replace`: the unchanged `init` fields carried over, an `init=False` field made anew and refused as a
    change, a non-data-class refused; and the standard library's own functions and decorator on these classes."""
    def outcome(decorator: Callable[..., object], field: Callable[..., object],
                replace: Callable[..., object]) -> list[object]:
        base, child = make(decorator, options, field)
        apply = decorator(**options) if options else decorator

        @apply
        class Counted(child):  # type: ignore[valid-type, misc]
            copies: list[int] = field(default_factory=list, init=False)

        start = Counted("a", [1], cached=3, extra=(2,))
        start.copies.append(1)
        copy = replace(start, note="n")
        seen: list[object] = [repr(copy).split(".")[-1], copy.cached, copy.note, copy.copies, copy == start]
        for bad in (lambda: replace(start, copies=[2]), lambda: replace("text", name="b")):
            with pytest.raises((ValueError, TypeError)) as refused:
                bad()
            seen.append((refused.type, str(refused.value)))
        return seen

    assert outcome(record, records.field, records.replace) == \
        outcome(dataclasses.dataclass, dataclasses.field, dataclasses.replace)
    assert outcome(record, records.field, dataclasses.replace) == \
        outcome(dataclasses.dataclass, dataclasses.field, dataclasses.replace)

    apply = dataclasses.dataclass(**options)
    ours, theirs = (apply(type("Sub", (base,), {"__annotations__": {"more": "int"}, "more": 1, "__module__": __name__}))
                    for base in (make(record, options)[1], make(dataclasses.dataclass, options)[1]))
    assert repr(ours("a", extra=(1,))) == repr(theirs("a", extra=(1,)))
    assert [f.name for f in dataclasses.fields(ours)] == [f.name for f in dataclasses.fields(theirs)]


def test_a_class_is_refused_where_the_standard_library_refuses_it() -> None:
    """Mutable defaults, a field() without an annotation, both a default and a factory, and frozen and mutable
    classes inheriting from one another: the same error, raised when the class is made."""
    def refusal(decorator: Callable[..., object], field: Callable[..., object], case: str) -> tuple[type, str]:
        try:
            if case == "mutable default":
                decorator(type("Bad", (), {"__annotations__": {"items": "list[int]"}, "items": [],
                                           "__module__": __name__}))
            elif case == "no annotation":
                decorator(type("Bad", (), {"size": field(default=0), "__module__": __name__}))
            elif case == "default and factory":
                field(default=0, default_factory=int)
            else:
                frozen = case == "frozen from mutable"
                base = decorator(frozen=not frozen)(type("Base", (), {"__annotations__": {"a": "int"},
                                                                      "__module__": __name__}))
                decorator(frozen=frozen)(type("Sub", (base,), {"__module__": __name__}))
        except (TypeError, ValueError) as error:
            return type(error), str(error)
        raise AssertionError(f"{case}: accepted")

    for case in ("mutable default", "no annotation", "default and factory", "frozen from mutable",
                 "mutable from frozen"):
        assert refusal(record, records.field, case) == refusal(dataclasses.dataclass, dataclasses.field, case), case


def test_init_compiled_at_the_first_object_works_through_a_subclass() -> None:
    """A shape's `__init__` is compiled when its class makes the first object, which may come through a
    subclass's own `__init__`; the refusals of bad arguments read the same before and after."""
    @record
    class Shape:
        first: str
        second: bytes
        third: float
        fourth: complex
        fifth: tuple[int, ...] = ()

    class Named(Shape):
        def __init__(self, name: str) -> None:
            super().__init__(name, b"", 0.0, 0j)

    messages = []
    for _ in range(2):
        with pytest.raises(TypeError) as refused:
            Shape("a")  # type: ignore[call-arg]
        messages.append(str(refused.value))
        assert vars(Named("n")) == vars(Shape("n", b"", 0.0, 0j)) == {"first": "n", "second": b"", "third": 0.0,
                                                                    "fourth": 0j, "fifth": ()}
    assert messages[0] == messages[1]
    assert messages[0].endswith("Shape.__init__() missing 3 required positional arguments: 'second', 'third', and "
                                "'fourth'")


def test_a_class_making_many_objects_gets_its_compiled_init(init_path: None) -> None:
    """The generic loop serves a class's first objects only: then the shape's template is compiled."""
    @record
    class Point:
        x: int
        y: int = 0

    for number in range(records._GENERIC_OBJECTS):
        assert vars(Point(number, y=1)) == {"x": number, "y": 1}
        assert Point.__init__.__code__.co_filename != "<records>"
    assert vars(Point(7)) == {"x": 7, "y": 0}
    assert Point.__init__.__code__.co_filename == "<records>"
