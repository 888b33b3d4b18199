"""Serialization: the JSON and pickle serializers, stored calls, and stored exceptions."""

from __future__ import annotations

import asyncio
import collections.abc as cabc
import dataclasses
import datetime as dt
import enum
import inspect
import json
import math
import threading
import typing
import uuid
import zoneinfo
from decimal import Decimal
from typing import Any, NamedTuple, Optional

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stent.errors import ConfigurationError, RemoteError, SerializationError
from stent.serialization import (
    REMOTE_TRACEBACK_ATTRIBUTE,
    JsonSerializer,
    PickleSerializer,
    Serializer,
    UnencodableValueError,
    decode_arguments,
    decode_exception,
    encode_arguments,
    encode_exception,
    encode_value,
)
from stent.serialization.json_encode import encode_tree

# -- types used by the tests (module level, so their class paths import) --------------------------------------


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Mode(enum.StrEnum):
    FAST = "fast"


class Perm(enum.Flag):
    R = 1
    W = 2


@attrs.frozen
class Item:
    sku: str
    quantity: int = 1


@attrs.define
class Order:
    order_id: uuid.UUID
    placed: dt.datetime
    items: list[Item]
    total: Decimal
    _note: str = attrs.field(default="", alias="note")
    tags: frozenset[str] = frozenset()


@dataclasses.dataclass
class Address:
    street: str
    city: str


@dataclasses.dataclass
class Customer:
    name: str
    address: Address
    since: dt.date
    computed: int = dataclasses.field(init=False, default=0)


class Point(NamedTuple):
    x: int
    y: int


@attrs.frozen
class Event:
    when: dt.datetime
    color: Color
    level: Level


class OrderFailed(Exception):
    """An exception whose __init__ takes the message it passes up."""


class HttpError(Exception):
    """An exception whose __init__ takes other parameters than the message it passes up."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body


class LockedResource(Exception):
    """An exception that needs an argument it never stores where a serializer can reach it."""

    def __init__(self, name: str, lock: Any) -> None:
        super().__init__(f"{name} is locked")
        self.lock = lock


_T = typing.TypeVar("_T")


class _NotRuntimeProtocol(typing.Protocol):
    def method(self) -> int: ...


def _display_name(module: str, qualname: str) -> str:
    return qualname if module == "builtins" else f"{module}.{qualname}"


def _json() -> JsonSerializer:
    return JsonSerializer()


def _roundtrip(value: Any, hint: Any = None) -> Any:
    serializer = _json()
    return serializer.loads(serializer.dumps(value), hint)


# -- JSON: round trips without annotations --------------------------------------------------------------------

ROUND_TRIP_VALUES = [
    pytest.param(None, id="none"),
    pytest.param(True, id="bool"),
    pytest.param(10**40, id="big-int"),
    pytest.param(-0.0, id="negative-zero"),
    pytest.param("héllo \U0001f600 \ud800", id="unicode-and-lone-surrogate"),
    pytest.param(dt.datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=dt.UTC), id="datetime-utc"),
    pytest.param(
        dt.datetime(2030, 1, 2, 3, 4, tzinfo=dt.timezone(dt.timedelta(hours=-5, minutes=-30))), id="dt-off"
    ),
    pytest.param(dt.datetime(2030, 1, 2, 3, 4, 5, 6), id="datetime-naive"),
    pytest.param(dt.date(2030, 12, 31), id="date"),
    pytest.param(dt.time(23, 59, 58, 123), id="time-naive"),
    pytest.param(dt.time(1, 2, tzinfo=dt.timezone(dt.timedelta(hours=2))), id="time-aware"),
    pytest.param(dt.timedelta(days=-3, seconds=5, microseconds=7), id="timedelta"),
    pytest.param(uuid.UUID("12345678-1234-5678-1234-567812345678"), id="uuid"),
    pytest.param(Decimal("1.10"), id="decimal-keeps-exponent"),
    pytest.param(Decimal("-1E+400"), id="decimal-huge"),
    pytest.param(b"\x00\xffbytes", id="bytes"),
    pytest.param(bytearray(b"abc"), id="bytearray"),
    pytest.param((1, ("a", (None,))), id="nested-tuple"),
    pytest.param((), id="empty-tuple"),
    pytest.param({1, "two", (3, 4)}, id="set"),
    pytest.param(frozenset({1, 2}), id="frozenset"),
    pytest.param(set(), id="empty-set"),
    pytest.param(Color.GREEN, id="enum"),
    pytest.param(Level.HIGH, id="int-enum"),
    pytest.param(Mode.FAST, id="str-enum"),
    pytest.param(Perm.R | Perm.W, id="flag"),
    pytest.param(Point(1, 2), id="namedtuple"),
    pytest.param(Item("sku-1", 3), id="attrs"),
    pytest.param(Address("1 Main St", "Springfield"), id="dataclass"),
    pytest.param({1: "int key", (1, 2): "tuple key", None: "none key", Color.RED: "enum key"}, id="non-str-keys"),
    pytest.param({frozenset({1}): [Item("a")], True: 1.5}, id="frozenset-and-bool-keys"),
    pytest.param({"outer": [{"inner": ({"x": {1, 2}},)}]}, id="nested-containers"),
    pytest.param([[], {}, "", 0], id="empties"),
]


@pytest.mark.parametrize("value", ROUND_TRIP_VALUES)
def test_value_round_trips_as_its_own_type(value: Any) -> None:
    """Every supported value comes back equal and of the same type, with no annotation."""
    result = _roundtrip(value)
    assert result == value
    assert type(result) is type(value)


def test_nested_attrs_and_dataclass_values_round_trip_with_their_fields() -> None:
    """Objects holding objects, datetimes, Decimals and private attrs fields come back whole."""
    order = Order(
        order_id=uuid.uuid4(),
        placed=dt.datetime(2030, 5, 1, tzinfo=dt.UTC),
        items=[Item("a", 2), Item("b")],
        total=Decimal("9.99"),
        note="leave at door",
        tags=frozenset({"gift"}),
    )
    customer = Customer("Ann", Address("1 Main St", "Springfield"), dt.date(2020, 1, 1))
    result = _roundtrip({"order": order, "customer": customer})
    assert result == {"order": order, "customer": customer}
    assert isinstance(result["order"].items[0], Item)
    assert result["customer"].computed == 0


def test_zoneinfo_datetime_keeps_its_zone() -> None:
    """An aware datetime in a named zone comes back in that zone, so DST arithmetic stays right."""
    zone = zoneinfo.ZoneInfo("Europe/Paris")
    value = dt.datetime(2030, 10, 27, 2, 30, fold=1, tzinfo=zone)
    result = _roundtrip(value)
    assert result.tzinfo == zone
    assert result.fold == 1
    assert result.utcoffset() == value.utcoffset()


def test_non_finite_floats_round_trip_and_output_stays_strict_json() -> None:
    """NaN and infinities come back, and the text never holds JSON's forbidden NaN/Infinity literals."""
    text = _json().dumps([math.nan, math.inf, -math.inf])

    def refuse(name: str) -> None:
        raise AssertionError(f"non-standard JSON constant {name}")

    json.loads(text, parse_constant=refuse)
    nan, inf, minus_inf = _json().loads(text)
    assert math.isnan(nan) and inf == math.inf and minus_inf == -math.inf


def test_output_is_compact_and_keeps_insertion_order() -> None:
    """Output has no spaces and keeps dict order, so equal values give equal text."""
    value = {"b": [1, 2], "a": {"z": None, "y": True}}
    assert _json().dumps(value) == '{"b":[1,2],"a":{"z":null,"y":true}}'
    assert _json().dumps(value) == _json().dumps(dict(value))


def test_user_dict_with_the_tag_key_is_escaped() -> None:
    """A user's dict that looks like a tagged value comes back as that dict, not as a datetime."""
    lookalike = {"__stent__": "datetime", "v": "2030-01-01T00:00:00"}
    result = _roundtrip({"data": lookalike, "list": [lookalike]})
    assert result == {"data": lookalike, "list": [lookalike]}
    assert isinstance(result["data"], dict)


def test_object_whose_class_cannot_be_imported_comes_back_as_a_dict() -> None:
    """An attrs instance of a class defined in a function loads as a plain dict of its fields."""

    @attrs.frozen
    class Local:
        name: str
        when: dt.date

    assert _roundtrip(Local("x", dt.date(2030, 1, 1))) == {"name": "x", "when": dt.date(2030, 1, 1)}


def test_object_whose_class_no_longer_accepts_its_fields_comes_back_as_a_dict() -> None:
    """A stored object whose class now needs other fields loads as a dict instead of failing."""
    text = '{"__stent__":"object","cls":"test_serialization:Item","v":{"unknown":1}}'
    assert _json().loads(text) == {"unknown": 1}


def test_enum_whose_class_cannot_be_imported_comes_back_as_its_value() -> None:
    """An enum member of an unimportable class loads as the member's value."""
    text = '{"__stent__":"enum","cls":"no_such_module_xyz:Color","v":"red"}'
    assert _json().loads(text) == "red"


def test_dict_key_that_comes_back_unhashable_fails_clearly() -> None:
    """A key stored as an object that loads as a dict raises SerializationError, not TypeError from dict."""
    text = '{"__stent__":"dict","v":[[{"__stent__":"object","cls":"nowhere_xyz:K","v":{"a":1}},1]]}'
    with pytest.raises(SerializationError, match="unhashable"):
        _json().loads(text)


# -- JSON: restoring annotated types --------------------------------------------------------------------------


def test_annotation_restores_list_of_attrs_instances() -> None:
    """loads(text, list[Item]) gives Item instances."""
    text = _json().dumps([Item("a", 2), Item("b")])
    result = _json().loads(text, list[Item])
    assert result == [Item("a", 2), Item("b")]
    assert all(type(i) is Item for i in result)


def test_annotation_restores_plain_json_written_elsewhere() -> None:
    """Plain JSON with ISO text and dicts becomes the annotated attrs class, enums and datetimes."""
    text = '{"when":"2030-01-02T03:04:05+00:00","color":"red","level":2}'
    assert _json().loads(text, Event) == Event(
        dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.UTC), Color.RED, Level.HIGH
    )


def test_annotation_restores_dict_of_dataclasses() -> None:
    """loads(text, dict[str, Address]) gives Address instances from plain dicts."""
    text = '{"home":{"street":"1 Main St","city":"Springfield"}}'
    assert _json().loads(text, dict[str, Address]) == {"home": Address("1 Main St", "Springfield")}


def test_annotation_restores_unimportable_class_from_its_stored_fields() -> None:
    """A class the loader could not import is still rebuilt when the annotation names it."""

    @attrs.frozen
    class Local:
        name: str
        when: dt.date

    text = _json().dumps([Local("x", dt.date(2030, 1, 1))])
    assert _json().loads(text, list[Local]) == [Local("x", dt.date(2030, 1, 1))]


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        pytest.param(None, Optional[Item], id="optional-none"),  # noqa: UP045 - Optional is what users write
        pytest.param(Item("a"), Optional[Item], id="optional-value"),  # noqa: UP045
        pytest.param(Item("a"), Item | None, id="pipe-optional"),
        pytest.param(5, int | str, id="union-int"),
        pytest.param("5", int | str, id="union-str-stays-str"),
        pytest.param(True, int | bool, id="union-bool-stays-bool"),
        pytest.param(Address("s", "c"), Item | Address, id="union-of-objects"),
        pytest.param((1, "a"), tuple[int, str], id="tuple"),
        pytest.param({1, 2}, set[int], id="set"),
        pytest.param({3: Item("a")}, dict[int, Item], id="int-keys"),
        pytest.param(Color.RED, Color, id="enum"),
        pytest.param(dt.timedelta(seconds=5), dt.timedelta, id="timedelta"),
        pytest.param(Decimal("2.50"), Decimal, id="decimal"),
        pytest.param([b"x"], list[bytes], id="bytes"),
        pytest.param({"k": [1, 2]}, Any, id="any"),
        pytest.param([1, 2], cabc.Sequence[int], id="abstract-sequence-keeps-list"),
        pytest.param((1, 2), cabc.Sequence[int], id="abstract-sequence-keeps-tuple"),
        pytest.param({"a": Item("x")}, cabc.Mapping[str, Item], id="abstract-mapping"),
        pytest.param({1, 2}, cabc.Set[int], id="abstract-set"),
        pytest.param([Item("a")], list[_T], id="type-variable"),  # type: ignore[valid-type]
        pytest.param(Item("a"), Optional[_T], id="optional-type-variable"),  # noqa: UP045
        pytest.param({"a": 1}, _NotRuntimeProtocol, id="protocol-cannot-be-checked"),
    ],
)
def test_annotation_keeps_values_that_already_have_the_type(value: Any, hint: Any) -> None:
    """Restoring to an annotation the value already fits gives back an equal value of the same type."""
    result = _roundtrip(value, hint)
    assert result == value
    assert type(result) is type(value)


@pytest.mark.parametrize(
    ("text", "hint", "expected"),
    [
        pytest.param('"red"', Color, Color.RED, id="enum-from-value"),
        pytest.param("1", Level, Level.LOW, id="int-enum-from-value"),
        pytest.param('"1"', int, 1, id="int-from-key-text"),
        pytest.param("3", float, 3.0, id="float-from-int"),
        pytest.param('"2030-01-01"', dt.date, dt.date(2030, 1, 1), id="date-from-iso"),
        pytest.param('"12:30:00"', dt.time, dt.time(12, 30), id="time-from-iso"),
        pytest.param("90", dt.timedelta, dt.timedelta(seconds=90), id="timedelta-from-seconds"),
        pytest.param(
            '"12345678-1234-5678-1234-567812345678"',
            uuid.UUID,
            uuid.UUID(int=0x12345678123456781234567812345678),
            id="uuid",
        ),
        pytest.param('"1.10"', Decimal, Decimal("1.10"), id="decimal-from-text"),
        pytest.param('{"1":"a"}', dict[int, str], {1: "a"}, id="dict-int-keys-from-json"),
        pytest.param('{"1":"a"}', cabc.Mapping[int, str], {1: "a"}, id="abstract-mapping-int-keys"),
        pytest.param('[{"sku":"a"}]', cabc.Sequence[Item], [Item("a")], id="abstract-sequence-of-objects"),
        pytest.param("[1,2]", tuple[int, ...], (1, 2), id="tuple-from-list"),
        pytest.param("[1,2]", frozenset[int], frozenset({1, 2}), id="frozenset-from-list"),
        pytest.param("null", type(None), None, id="none-type"),
    ],
)
def test_annotation_converts_plain_forms(text: str, hint: Any, expected: Any) -> None:
    """Plain JSON forms convert to the annotated type."""
    result = _json().loads(text, hint)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        pytest.param('"false"', bool, id="text-is-not-bool"),
        pytest.param("1.7", int, id="float-is-not-int"),
        pytest.param("5", str, id="int-is-not-str"),
        pytest.param('"abc"', int, id="text-is-not-int"),
        pytest.param('{"sku":5}', Item, id="field-wrong-type"),
        pytest.param('[{"quantity":1}]', list[Item], id="missing-field"),
        pytest.param('"purple"', Color, id="unknown-enum-value"),
        pytest.param('"x"', Item | Address, id="fits-no-union-member"),
        pytest.param('"x"', threading.Thread, id="unsupported-class"),
    ],
)
def test_value_that_does_not_fit_its_annotation_raises_serialization_error(text: str, hint: Any) -> None:
    """A stored value that does not fit the annotation raises SerializationError naming the annotation."""
    with pytest.raises(SerializationError, match="does not fit the annotation"):
        _json().loads(text, hint)


def test_string_annotation_leaves_the_value_as_loaded() -> None:
    """An annotation still written as a string (unresolved) does not stop the value from loading."""
    assert _json().loads(_json().dumps(Item("a")), "Item") == Item("a")


# -- JSON: what cannot be stored, and unreadable text ---------------------------------------------------------


def test_unserializable_value_error_says_its_type_and_where_it_is() -> None:
    """The error names the type and the path to the value inside its containers."""
    with pytest.raises(UnencodableValueError) as caught:
        _json().dumps(
            {"a": [1, Order(uuid.uuid4(), dt.datetime(2030, 1, 1), [], Decimal(0), note=threading.Lock())]}  # type: ignore[arg-type]
        )
    assert caught.value.value_type is type(threading.Lock())
    assert caught.value.location == "$['a'][1]._note"
    assert "Supported:" in str(caught.value) and "PickleSerializer" in str(caught.value)
    assert isinstance(caught.value, SerializationError)


def test_circular_reference_is_reported_instead_of_recursing() -> None:
    """A list that contains itself raises SerializationError saying so."""
    value: list[Any] = [1]
    value.append({"again": value})
    with pytest.raises(SerializationError, match="circular reference"):
        _json().dumps(value)


def test_shared_references_are_not_mistaken_for_cycles() -> None:
    """The same list twice in one value is stored twice, not reported as circular."""
    shared = [1, 2]
    assert _roundtrip([shared, shared]) == [[1, 2], [1, 2]]


def test_too_deeply_nested_value_raises_serialization_error() -> None:
    """Nesting past the recursion limit raises SerializationError, not RecursionError."""
    value: list[Any] = []
    for _ in range(5000):
        value = [value]
    with pytest.raises(SerializationError, match="nested too deeply"):
        _json().dumps(value)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("{not json", id="not-json"),
        pytest.param('{"__stent__":"martian","v":1}', id="unknown-tag"),
        pytest.param('{"__stent__":"datetime","v":"yesterday"}', id="malformed-datetime"),
        pytest.param('{"__stent__":"decimal","v":"one"}', id="malformed-decimal"),
        pytest.param('{"__stent__":"timedelta"}', id="missing-v"),
        pytest.param('{"__stent__":"bytes","v":"***"}', id="bad-base64"),
        pytest.param('{"__stent__":1,"v":1}', id="tag-not-text"),
        pytest.param("[" * 100_000 + "]" * 100_000, id="too-deep"),
    ],
)
def test_unreadable_text_raises_serialization_error(text: str) -> None:
    """Text that is not a payload this serializer wrote raises SerializationError."""
    with pytest.raises(SerializationError):
        _json().loads(text)


def test_non_text_payload_raises_serialization_error() -> None:
    """loads refuses bytes with SerializationError."""
    with pytest.raises(SerializationError, match="must be text"):
        _json().loads(b"[]")  # type: ignore[arg-type]


def test_serializers_satisfy_the_protocol() -> None:
    """Both serializers are Serializer instances."""
    assert isinstance(JsonSerializer(), Serializer)
    assert isinstance(PickleSerializer(), Serializer)


# -- pickle ---------------------------------------------------------------------------------------------------


class PlainObject:
    def __init__(self, value: Any) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PlainObject) and other.value == self.value


def test_pickle_round_trips_objects_json_cannot_hold() -> None:
    """PickleSerializer stores a plain class instance and returns an equal one, as base64 text."""
    serializer = PickleSerializer()
    text = serializer.dumps({"obj": PlainObject([1, Item("a")])})
    assert text.isascii()
    assert serializer.loads(text, type_hint=int) == {"obj": PlainObject([1, Item("a")])}


def test_pickle_errors_are_serialization_errors() -> None:
    """Unpicklable values and unreadable text raise SerializationError."""
    with pytest.raises(SerializationError, match="cannot be pickled"):
        PickleSerializer().dumps(threading.Lock())
    with pytest.raises(SerializationError, match="not base64"):
        PickleSerializer().loads("%%%")
    with pytest.raises(SerializationError, match="could not be unpickled"):
        PickleSerializer().loads("AAAA")


def test_pickle_docstring_warns_that_it_is_unsafe() -> None:
    """The PickleSerializer docstring says it is unsafe with untrusted storage."""
    assert "UNSAFE WITH UNTRUSTED STORAGE" in (PickleSerializer.__doc__ or "")


# -- stored calls ---------------------------------------------------------------------------------------------


def place_order(order: Order, when: dt.datetime, *extras: Item, rush: bool = False, **notes: Decimal) -> None:
    """A durable function's signature, for the argument tests."""


def test_arguments_round_trip_with_their_types() -> None:
    """encode_arguments then decode_arguments gives back equal args and kwargs."""
    order = Order(uuid.uuid4(), dt.datetime(2030, 1, 1, tzinfo=dt.UTC), [Item("a")], Decimal("1.5"))
    args = (order, dt.datetime(2030, 2, 1), Item("x"), Item("y"))
    kwargs = {"rush": True, "tip": Decimal("0.10")}
    text = encode_arguments(_json(), "place_order", args, kwargs, signature=inspect.signature(place_order))
    assert decode_arguments(_json(), text, place_order) == (args, kwargs)


def _plain_payload() -> str:
    # A payload whose objects carry no class information, as if written by another tool.
    return json.dumps(
        {
            "args": [
                {
                    "order_id": "12345678-1234-5678-1234-567812345678",
                    "placed": "2030-01-01T00:00:00+00:00",
                    "items": [{"sku": "a", "quantity": 2}],
                    "total": "1.5",
                },
                "2030-02-01T00:00:00",
                {"sku": "extra"},
            ],
            "kwargs": {"tip": "0.25"},
        }
    )


def _assert_restored(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    order, when, extra = args
    assert isinstance(order, Order) and order.items == [Item("a", 2)] and order.total == Decimal("1.5")
    assert when == dt.datetime(2030, 2, 1)
    assert extra == Item("extra")
    assert kwargs == {"tip": Decimal("0.25")}


def test_decode_arguments_restores_annotations_from_the_function() -> None:
    """Passing the function resolves its (string) annotations and restores each parameter, *args and **kwargs."""
    _assert_restored(*decode_arguments(_json(), _plain_payload(), place_order))


def test_decode_arguments_restores_annotations_from_signature_and_type_hints() -> None:
    """A Signature with resolved type_hints restores the same way as the function."""
    hints = typing.get_type_hints(place_order)
    _assert_restored(
        *decode_arguments(_json(), _plain_payload(), inspect.signature(place_order), type_hints=hints)
    )


def test_decode_arguments_with_unresolved_string_annotations_keeps_loaded_values() -> None:
    """A Signature whose annotations are strings leaves values as loaded, tags still giving their types."""
    text = encode_arguments(
        _json(), "place_order", (Order(uuid.uuid4(), dt.datetime(2030, 1, 1), [], Decimal(1)),), {}
    )
    (order,), _ = decode_arguments(_json(), text, inspect.signature(place_order))
    assert isinstance(order, Order)


def test_decode_arguments_without_signature_returns_values_as_loaded() -> None:
    """With no signature the arguments come back as the serializer loaded them."""
    text = encode_arguments(_json(), "f", (1, (2, 3)), {"k": {1, 2}})
    assert decode_arguments(_json(), text) == ((1, (2, 3)), {"k": {1, 2}})


def test_decode_arguments_names_the_argument_that_does_not_fit() -> None:
    """A stored argument that does not fit its annotation raises SerializationError naming it."""
    text = json.dumps({"args": ["not an order", "2030-01-01"], "kwargs": {}})
    with pytest.raises(SerializationError, match=r"argument 0 \('order'\) of place_order"):
        decode_arguments(_json(), text, place_order, func_name="place_order")


@pytest.mark.parametrize("text", ["[1, 2]", '{"args": 1, "kwargs": {}}', '{"args": []}', "garbage"])
def test_decode_arguments_refuses_a_payload_that_is_not_a_call(text: str) -> None:
    """Text that is not an args/kwargs payload raises SerializationError."""
    with pytest.raises(SerializationError):
        decode_arguments(_json(), text)


def test_unserializable_argument_names_function_parameter_type_and_fix() -> None:
    """The error names the function, the position, the parameter, the type and how to fix it."""
    lock = threading.Lock()
    args = (Order(uuid.uuid4(), dt.datetime(2030, 1, 1), [], Decimal(1)), lock)
    with pytest.raises(SerializationError) as caught:
        encode_arguments(_json(), "place_order", args, {}, signature=inspect.signature(place_order))
    message = str(caught.value)
    assert "place_order" in message
    assert "argument 1 ('when')" in message
    assert "_thread.lock" in message
    assert "attrs class or a dataclass" in message and "PickleSerializer" in message
    assert "argument 0" not in message


def test_unserializable_nested_value_is_located_inside_its_argument() -> None:
    """A bad value inside a container argument is named by its path from the parameter."""
    with pytest.raises(
        SerializationError, match=r"argument 0 \('order'\) holds a value of type object at order\['x'\]\[1\]"
    ):
        encode_arguments(
            _json(), "place_order", ({"x": [1, object()]},), {}, signature=inspect.signature(place_order)
        )


@pytest.mark.parametrize(
    ("args", "kwargs", "expected"),
    [
        pytest.param((1, 2, object()), {}, r"argument 2 \(in \*extras\)", id="var-positional"),
        pytest.param((1, 2), {"tip": object()}, r"keyword argument 'tip'", id="keyword"),
    ],
)
def test_unserializable_extra_arguments_are_named(
    args: tuple[Any, ...], kwargs: dict[str, Any], expected: str
) -> None:
    """Values passed through *args or as keywords are named by their position or keyword."""
    with pytest.raises(SerializationError, match=expected):
        encode_arguments(_json(), "place_order", args, kwargs, signature=inspect.signature(place_order))


def test_unserializable_argument_without_signature_is_named_by_position() -> None:
    """Without a signature the error still gives the argument's position."""
    with pytest.raises(SerializationError, match="cannot store the arguments of f: argument 1 is of type object"):
        encode_arguments(_json(), "f", (1, object()), {})


def test_unserializable_argument_raises_before_anything_is_returned_or_changed() -> None:
    """A failed encode returns nothing and leaves the caller's arguments untouched."""
    kwargs = {"good": [1, 2], "bad": object()}
    before = dict(kwargs)
    with pytest.raises(SerializationError):
        encode_arguments(_json(), "f", (), kwargs)
    assert kwargs == before


def test_pickle_serializer_errors_name_the_argument_without_suggesting_pickle() -> None:
    """With pickle the error names the argument and does not suggest pickle again."""
    with pytest.raises(SerializationError) as caught:
        encode_arguments(PickleSerializer(), "f", (threading.Lock(),), {})
    assert "argument 0 is of type _thread.lock" in str(caught.value)
    assert "PickleSerializer()" not in str(caught.value)


def test_pickle_serializer_arguments_round_trip() -> None:
    """decode_arguments returns pickled values unchanged, signature or not."""
    text = encode_arguments(PickleSerializer(), "f", (PlainObject(1),), {"k": PlainObject(2)})
    assert decode_arguments(PickleSerializer(), text, place_order) == ((PlainObject(1),), {"k": PlainObject(2)})


def test_oversized_arguments_say_size_limit_and_option() -> None:
    """Arguments over max_bytes raise SerializationError with the size, the limit and the option to raise it."""
    with pytest.raises(SerializationError) as caught:
        encode_arguments(_json(), "f", ("x" * 2000,), {}, max_bytes=1000)
    size = len(_json().dumps({"args": ["x" * 2000], "kwargs": {}}))
    message = str(caught.value)
    assert f"{size:,} bytes" in message and "1,000 bytes" in message and "Stent(max_payload_bytes=...)" in message


def test_payload_exactly_at_the_limit_is_accepted() -> None:
    """A payload of exactly max_bytes is stored; the option named in errors can be changed."""
    text = encode_arguments(_json(), "f", ("x",), {})
    assert encode_arguments(_json(), "f", ("x",), {}, max_bytes=len(text)) == text
    with pytest.raises(SerializationError, match="--max-payload"):
        encode_arguments(_json(), "f", ("x",), {}, max_bytes=len(text) - 1, limit_option="--max-payload")


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "10"])
def test_invalid_max_bytes_is_a_configuration_error(bad: Any) -> None:
    """max_bytes that is not a positive int raises ConfigurationError."""
    with pytest.raises(ConfigurationError):
        encode_arguments(_json(), "f", (), {}, max_bytes=bad)


def test_encode_value_names_what_could_not_be_stored() -> None:
    """encode_value's errors name the value as the caller described it."""
    assert _json().loads(encode_value(_json(), Item("a"), what="the result of g")) == Item("a")
    with pytest.raises(SerializationError, match="cannot store the result of g: the value is of type object"):
        encode_value(_json(), object(), what="the result of g")
    with pytest.raises(SerializationError, match="payload too large: the result of g"):
        encode_value(_json(), "x" * 100, what="the result of g", max_bytes=10)


# -- exceptions -----------------------------------------------------------------------------------------------


def _raised(exc: BaseException) -> BaseException:
    # Raise it for real, so it carries a traceback like one caught in a task.
    try:
        raise exc
    except BaseException as caught:
        return caught


def _exception_roundtrip(exc: BaseException, serializer: Serializer | None = None) -> BaseException:
    serializer = serializer or _json()
    return decode_exception(encode_exception(_raised(exc), serializer), serializer)


@pytest.mark.parametrize(
    "exc",
    [
        pytest.param(ValueError("bad value", 42), id="value-error"),
        pytest.param(KeyError("missing"), id="key-error"),
        pytest.param(ZeroDivisionError("division by zero"), id="zero-division"),
        pytest.param(FileNotFoundError(2, "No such file or directory", "/tmp/x"), id="oserror-with-filename"),
        pytest.param(OrderFailed("order 7 failed"), id="custom"),
        pytest.param(RuntimeError(), id="no-args"),
    ],
)
def test_exception_comes_back_as_its_own_type(exc: BaseException) -> None:
    """Builtin and importable custom exceptions come back with their type, args and message."""
    result = _exception_roundtrip(exc)
    assert type(result) is type(exc)
    assert result.args == exc.args
    assert str(result) == str(exc)


def test_exception_with_custom_init_is_rebuilt_with_its_attributes() -> None:
    """An exception whose __init__ takes other parameters than its message keeps its type and attributes."""
    result = _exception_roundtrip(HttpError(503, "busy"))
    assert isinstance(result, HttpError)
    assert (result.status, result.body, str(result)) == (503, "busy", "HTTP 503: busy")


def test_rebuilt_exception_carries_the_remote_traceback() -> None:
    """The worker's traceback is attached as an attribute and as a note."""

    def failing_step() -> None:
        raise OrderFailed("boom")

    try:
        failing_step()
    except OrderFailed as exc:
        text = encode_exception(exc, _json())
    result = decode_exception(text, _json())
    remote = getattr(result, REMOTE_TRACEBACK_ATTRIBUTE)
    assert "Traceback (most recent call last)" in remote and "failing_step" in remote
    assert any("failing_step" in note for note in result.__notes__)


def test_chained_exception_traceback_shows_the_cause() -> None:
    """The stored traceback includes the exception's cause."""
    try:
        try:
            raise KeyError("inner")
        except KeyError as inner:
            raise ValueError("outer") from inner
    except ValueError as exc:
        result = decode_exception(encode_exception(exc, _json()), _json())
    assert "direct cause" in getattr(result, REMOTE_TRACEBACK_ATTRIBUTE)


def test_exception_that_cannot_be_constructed_becomes_remote_error() -> None:
    """An exception needing an argument that was never stored becomes RemoteError with type, message, traceback."""
    result = _exception_roundtrip(LockedResource("db", threading.Lock()))
    assert type(result) is RemoteError
    assert result.type_name == "test_serialization.LockedResource"
    assert result.remote_message == "db is locked"
    assert "LockedResource: db is locked" in result.remote_traceback
    assert str(result) == "test_serialization.LockedResource: db is locked"


def test_exception_of_unimportable_class_becomes_remote_error() -> None:
    """An exception class defined in a function cannot be imported, so it becomes RemoteError."""

    class LocalError(Exception):
        pass

    result = _exception_roundtrip(LocalError("local"))
    assert isinstance(result, RemoteError)
    assert result.type_name.endswith("LocalError") and result.remote_message == "local"


def test_exception_with_unserializable_args_becomes_remote_error() -> None:
    """An exception whose args hold an unserializable value becomes RemoteError showing its repr."""
    result = _exception_roundtrip(ValueError(threading.Lock()))
    assert isinstance(result, RemoteError)
    assert result.type_name == "ValueError" and "lock" in result.remote_message


@pytest.mark.parametrize(
    "exc",
    [
        pytest.param(KeyboardInterrupt(), id="keyboard-interrupt"),
        pytest.param(asyncio.CancelledError(), id="cancel"),
    ],
)
def test_base_exceptions_are_never_rebuilt(exc: BaseException) -> None:
    """A stored BaseException that is not an Exception comes back as RemoteError, never raised as itself."""
    result = _exception_roundtrip(exc)
    assert type(result) is RemoteError
    assert result.type_name == _display_name(type(exc).__module__, type(exc).__qualname__)


def test_exception_group_comes_back_with_its_members() -> None:
    """An ExceptionGroup comes back with its message and rebuilt member exceptions."""
    result = _exception_roundtrip(ExceptionGroup("two failed", [ValueError("a"), HttpError(500, "x")]))
    assert type(result) is ExceptionGroup
    assert result.message == "two failed"
    assert [type(e) for e in result.exceptions] == [ValueError, HttpError]


def test_remote_error_survives_a_second_hop() -> None:
    """A RemoteError stored again (a parent failing with it) comes back with the same type name and message."""
    first = _exception_roundtrip(LockedResource("db", threading.Lock()))
    second = _exception_roundtrip(first)
    assert isinstance(second, RemoteError)
    assert (second.type_name, second.remote_message) == ("test_serialization.LockedResource", "db is locked")


def test_exception_whose_str_fails_is_still_stored() -> None:
    """An exception whose __str__ raises is stored and comes back as something printable."""

    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    result = _exception_roundtrip(Unprintable())
    assert isinstance(result, RemoteError)
    assert "unprintable" in str(result)


def test_exceptions_round_trip_with_pickle_serializer() -> None:
    """The exception record works with the pickle serializer too."""
    result = _exception_roundtrip(HttpError(404, "gone"), PickleSerializer())
    assert isinstance(result, HttpError) and result.status == 404


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("", "no error was stored", id="empty"),
        pytest.param("%%% not json", "could not be decoded", id="garbage"),
        pytest.param("[1, 2]", "could not be decoded", id="not-a-record"),
        pytest.param('{"message": "x"}', "could not be decoded", id="no-type"),
        pytest.param('{"module": 1, "qualname": "X"}', "could not be decoded", id="type-not-text"),
    ],
)
def test_undecodable_error_row_becomes_remote_error(text: str, expected: str) -> None:
    """An unreadable stored error becomes a RemoteError saying so, and decoding never raises."""
    result = decode_exception(text, _json())
    assert isinstance(result, RemoteError)
    assert expected in result.remote_message


@pytest.mark.parametrize(
    "record",
    [
        pytest.param(
            {"module": "os", "qualname": "system", "message": "m", "args": [{"value": "echo hi"}]}, id="not-exc"
        ),
        pytest.param(
            {"module": "builtins", "qualname": "ValueError", "message": "m", "args": "junk"}, id="bad-args"
        ),
        pytest.param({"module": "builtins", "qualname": "ValueError", "message": 5, "args": []}, id="bad-message"),
        pytest.param({"module": "no_such_mod_xyz", "qualname": "E", "message": "m", "args": []}, id="no-module"),
        pytest.param(
            {"module": "builtins", "qualname": "ExceptionGroup", "message": "m", "args": [], "exceptions": 3},
            id="bad-group",
        ),
    ],
)
def test_malformed_error_record_becomes_remote_error_with_its_type_name(record: dict[str, Any]) -> None:
    """A record with bad fields or a type that is not an exception becomes RemoteError, never raising."""
    result = decode_exception(json.dumps(record), _json())
    assert isinstance(result, RemoteError)
    assert result.type_name == _display_name(record["module"], record["qualname"])


_plain_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.text())
_plain_parts = st.one_of(
    _plain_scalars, st.lists(_plain_scalars, max_size=4), st.dictionaries(st.text(), _plain_scalars, max_size=4)
)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.dictionaries(st.text(), _plain_parts, max_size=4),
        st.lists(_plain_parts, max_size=4),
    )
)
def test_plain_values_take_the_short_path_to_the_same_text(value: object) -> None:
    """A payload of plain scalars (the usual call) is written exactly as the full tagged encoding writes it."""
    full = json.dumps(encode_tree(value), separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    assert JsonSerializer().dumps(value) == full
    assert JsonSerializer().loads(full) == value
