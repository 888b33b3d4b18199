"""The default serializer: compact JSON with tagged values for the types JSON has no word for.

A value JSON can say directly (str, int, finite float, bool, None, list, dict with str keys) is written as
itself.  Anything else is written as a tagged object, ``{"__stent__": TAG, "v": ...}``, so it comes back as its
own type without any annotation:

=============  ============================================================================
tag            stands for
=============  ============================================================================
datetime       ``v`` ISO text (offset kept); ``tz`` a ZoneInfo key, ``fold`` when 1
date, time     ``v`` ISO text
timedelta      ``v`` ``[days, seconds, microseconds]`` (exact)
uuid, decimal  ``v`` their text form
bytes          ``v`` base64 (also ``bytearray``)
float          ``v`` ``"nan"``, ``"inf"`` or ``"-inf"`` (the output stays strict JSON)
tuple, set,    ``v`` the elements
frozenset
namedtuple     ``cls`` its class path, ``v`` the elements
enum           ``cls`` its class path, ``v`` the member's value
dict           ``v`` ``[[key, value], ...]``: a dict with a non-str key, or with a ``"__stent__"`` key
object         ``cls`` the class path of an attrs class or dataclass, ``v`` its fields by name
=============  ============================================================================

The ``dict`` form is also the escape: a user's dict that happens to hold a ``"__stent__"`` key is always written
as pairs, so a plain JSON object with that key is never anything but a tag.  Class paths are ``module:qualname``;
a class that cannot be imported when the value is read (or no longer accepts the stored fields) comes back in
its plain form: the value of an enum, a tuple for a namedtuple, a dict of fields for an object.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime as dt
import enum
import json
import math
import uuid
import zoneinfo
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import attrs
import cattrs

from stent.errors import SerializationError
from stent.serialization.base import import_qualified, qualified_name
from stent.serialization.typed import make_converter, restore

TAG = "__stent__"

SUPPORTED_TYPES_TEXT = (
    "str, int, float, bool, None, list, dict, tuple, set, frozenset, datetime, date, time, timedelta, UUID,"
    " Decimal, bytes, Enum, namedtuples, attrs classes and dataclasses"
)


class UnencodableValueError(SerializationError):
    """A value (possibly deep inside a container) has a type the JSON serializer cannot store.

    ``value_type`` is that type and ``path`` says where it sits, as a list of ``[index]``, ``.field`` and
    ``[key]`` steps from the top value.
    """

    def __init__(self, value_type: type, reason: str = "") -> None:
        super().__init__(reason)
        self.value_type = value_type
        self.reason = reason
        self.path: list[str] = []

    @property
    def location(self) -> str:
        """The path as one string, starting at ``$`` (the value itself)."""
        return "$" + "".join(self.path)

    def __str__(self) -> str:
        what = self.reason or f"a value of type {_type_name(self.value_type)} is not JSON-serializable"
        return (
            f"{what} (at {self.location}). Supported: {SUPPORTED_TYPES_TEXT}; use one of them, or use the"
            " PickleSerializer"
        )


class JsonSerializer:
    """Compact, deterministic JSON (the default serializer); see the module docstring for the encoding.

    ``loads(text, type_hint)`` restores values to an annotated type with cattrs (``list[Item]`` gives ``Item``
    instances, ``Optional[...]``, unions, enums, nested attrs classes and dataclasses, dicts with typed keys).
    Pass ``converter`` to register cattrs hooks for types of your own.
    """

    def __init__(self, *, converter: cattrs.Converter | None = None) -> None:
        self.converter = converter if converter is not None else make_converter()

    def dumps(self, value: Any) -> str:
        """Return ``value`` as JSON text; raise :class:`UnencodableValueError` naming what cannot be stored."""
        try:
            tree = _encode(value, set())
        except RecursionError:
            raise SerializationError("the value is nested too deeply to serialize") from None
        # ensure_ascii: every str, even one holding lone surrogates, becomes text any database stores.
        return json.dumps(tree, separators=(",", ":"), ensure_ascii=True, allow_nan=False)

    def loads(self, text: str, type_hint: Any = None) -> Any:
        """Return the value ``text`` holds, restored to ``type_hint`` when one is given."""
        if not isinstance(text, str):
            raise SerializationError(f"stored payload must be text, got {type(text).__name__}")
        try:
            tree = json.loads(text)
        except RecursionError:
            raise SerializationError("stored payload is nested too deeply to read") from None
        except ValueError as exc:
            raise SerializationError(f"stored payload is not valid JSON ({exc}): {text[:80]!r}") from None
        try:
            value = _decode(tree)
        except RecursionError:
            raise SerializationError("stored payload is nested too deeply to read") from None
        if type_hint is None:
            return value
        return self.restore(value, type_hint)

    def restore(self, value: Any, type_hint: Any) -> Any:
        """Return a loaded ``value`` converted to ``type_hint``; values already of the right type pass through."""
        return restore(self.converter, value, type_hint)


# -- encoding ------------------------------------------------------------------------------------------------


def _type_name(cls: type) -> str:
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def _tagged(tag: str, v: Any, **extra: Any) -> dict[str, Any]:
    return {TAG: tag, **extra, "v": v}


def _encode_items(items: Any, active: set[int]) -> list[Any]:
    out = []
    for index, item in enumerate(items):
        try:
            out.append(_encode(item, active))
        except UnencodableValueError as exc:
            exc.path.insert(0, f"[{index}]")
            raise
    return out


def _encode_container(value: Any, active: set[int], encode: Callable[[Any, set[int]], Any]) -> Any:
    # Containers on the current path are tracked by id: a cycle is reported instead of recursing forever.
    key = id(value)
    if key in active:
        raise UnencodableValueError(type(value), f"a {type(value).__name__} contains itself (circular reference)")
    active.add(key)
    try:
        return encode(value, active)
    finally:
        active.discard(key)


def _encode_list(value: Any, active: set[int]) -> Any:
    return _encode_items(value, active)


def _encode_dict(value: dict[Any, Any], active: set[int]) -> Any:
    if TAG not in value and all(type(k) is str for k in value):
        out = {}
        for k, item in value.items():
            try:
                out[k] = _encode(item, active)
            except UnencodableValueError as exc:
                exc.path.insert(0, f"[{k!r}]")
                raise
        return out
    pairs = []
    for k, item in value.items():
        try:
            pairs.append([_encode(k, active), _encode(item, active)])
        except UnencodableValueError as exc:
            exc.path.insert(0, f"[{k!r}]")
            raise
    return _tagged("dict", pairs)


def _object_fields(value: Any) -> list[str] | None:
    cls = type(value)
    if attrs.has(cls):
        return [a.name for a in attrs.fields(cls)]
    if dataclasses.is_dataclass(cls):
        return [f.name for f in dataclasses.fields(cls)]
    return None


def _encode_object(value: Any, active: set[int]) -> Any:
    out = {}
    for name in _object_fields(value) or ():
        try:
            out[name] = _encode(getattr(value, name), active)
        except UnencodableValueError as exc:
            exc.path.insert(0, f".{name}")
            raise
    return _tagged("object", out, cls=qualified_name(type(value)))


def _encode_datetime(value: dt.datetime) -> Any:
    extra: dict[str, Any] = {}
    if isinstance(value.tzinfo, zoneinfo.ZoneInfo):
        # The offset alone would lose the zone's rules, so arithmetic after loading would go wrong across DST.
        extra["tz"] = value.tzinfo.key
    if value.fold:
        extra["fold"] = 1
    return _tagged("datetime", value.isoformat(), **extra)


def _encode(value: Any, active: set[int]) -> Any:
    cls = type(value)
    if value is None or cls is str or cls is int or cls is bool:
        return value
    if cls is float:
        return value if math.isfinite(value) else _tagged("float", repr(value))
    if cls is list:
        return _encode_container(value, active, _encode_list)
    if cls is dict:
        return _encode_container(value, active, _encode_dict)
    if isinstance(value, enum.Enum):
        return _tagged("enum", _encode(value.value, active), cls=qualified_name(cls))
    if cls is tuple:
        return _tagged("tuple", _encode_container(value, active, _encode_list))
    if isinstance(value, tuple) and hasattr(cls, "_fields"):
        return _tagged("namedtuple", _encode_container(value, active, _encode_list), cls=qualified_name(cls))
    if isinstance(value, (set, frozenset)):
        tag = "frozenset" if isinstance(value, frozenset) else "set"
        return _tagged(tag, _encode_container(value, active, _encode_list))
    if isinstance(value, dt.datetime):
        return _encode_datetime(value)
    if isinstance(value, dt.date):
        return _tagged("date", value.isoformat())
    if isinstance(value, dt.time):
        return _tagged("time", value.isoformat())
    if isinstance(value, dt.timedelta):
        return _tagged("timedelta", [value.days, value.seconds, value.microseconds])
    if isinstance(value, uuid.UUID):
        return _tagged("uuid", str(value))
    if isinstance(value, Decimal):
        return _tagged("decimal", str(value))
    if isinstance(value, (bytes, bytearray, memoryview)):
        tag = "bytearray" if isinstance(value, bytearray) else "bytes"
        return _tagged(tag, base64.b64encode(value).decode("ascii"))
    if _object_fields(value) is not None:
        return _encode_container(value, active, _encode_object)
    # Subclasses of the JSON types (IntFlag aside, handled as enums above) are stored as their base type.
    if isinstance(value, (str, int)):
        return str.__str__(value) if isinstance(value, str) else int(value)
    if isinstance(value, float):
        return _encode(float(value), active)
    if isinstance(value, dict):
        return _encode_container(value, active, _encode_dict)
    if isinstance(value, list):
        return _encode_container(value, active, _encode_list)
    raise UnencodableValueError(cls)


# -- decoding ------------------------------------------------------------------------------------------------


def _decode(tree: Any) -> Any:
    if isinstance(tree, list):
        return [_decode(item) for item in tree]
    if isinstance(tree, dict):
        if TAG in tree:
            return _decode_tagged(tree)
        return {k: _decode(v) for k, v in tree.items()}
    return tree


def _decode_tagged(tree: dict[str, Any]) -> Any:
    tag = tree[TAG]
    decoder = _DECODERS.get(tag) if isinstance(tag, str) else None
    if decoder is None:
        raise SerializationError(
            f"stored payload holds an unknown tagged value {tag!r}; was it written by a newer stent?"
        )
    try:
        return decoder(tree)
    except SerializationError:
        raise
    except (KeyError, ValueError, TypeError, ArithmeticError, AttributeError) as exc:
        raise SerializationError(
            f"stored payload holds a malformed {tag!r} value ({type(exc).__name__}: {exc}): {str(tree)[:80]}"
        ) from None


def _hashable(value: Any, what: str) -> Any:
    try:
        hash(value)
    except TypeError:
        raise SerializationError(
            f"cannot rebuild a {what}: a stored element came back as an unhashable {type(value).__name__}"
            " (is the class it was stored as importable here?)"
        ) from None
    return value


def _decode_dict(tree: dict[str, Any]) -> dict[Any, Any]:
    out = {}
    for key, value in tree["v"]:
        out[_hashable(_decode(key), "dict key")] = _decode(value)
    return out


def _decode_set(tree: dict[str, Any]) -> set[Any]:
    return {_hashable(item, "set") for item in _decode(tree["v"])}


def _decode_datetime(tree: dict[str, Any]) -> dt.datetime:
    value = dt.datetime.fromisoformat(tree["v"])
    if "tz" in tree:
        try:
            zone = zoneinfo.ZoneInfo(tree["tz"])
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            pass  # no tz database here: the stored fixed offset still names the same instant.
        else:
            value = value.replace(tzinfo=zone, fold=int(tree.get("fold", 0)))
    elif tree.get("fold"):
        value = value.replace(fold=1)
    return value


def _decode_enum(tree: dict[str, Any]) -> Any:
    raw = _decode(tree["v"])
    cls = import_qualified(tree["cls"])
    if isinstance(cls, type) and issubclass(cls, enum.Enum):
        with contextlib.suppress(ValueError):
            return cls(raw)
    return raw


def _decode_namedtuple(tree: dict[str, Any]) -> tuple[Any, ...]:
    items = tuple(_decode(tree["v"]))
    cls = import_qualified(tree["cls"])
    if isinstance(cls, type) and issubclass(cls, tuple):
        with contextlib.suppress(Exception):
            return cls(*items)  # type: ignore[no-any-return]
    return items


def _decode_object(tree: dict[str, Any]) -> Any:
    fields = {name: _decode(value) for name, value in tree["v"].items()}
    cls = import_qualified(tree["cls"])
    if not isinstance(cls, type):
        return fields
    # Build through __init__ as the class's own code would: attrs passes private fields by alias, and fields
    # with init=False are left for the class to compute.
    if attrs.has(cls):
        init = {a.alias: fields[a.name] for a in attrs.fields(cls) if a.init and a.name in fields}
    elif dataclasses.is_dataclass(cls):
        init = {f.name: fields[f.name] for f in dataclasses.fields(cls) if f.init and f.name in fields}
    else:
        return fields
    try:
        return cls(**init)
    except Exception:
        return fields


_DECODERS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "dict": _decode_dict,
    "tuple": lambda t: tuple(_decode(t["v"])),
    "set": _decode_set,
    "frozenset": lambda t: frozenset(_decode_set(t)),
    "datetime": _decode_datetime,
    "date": lambda t: dt.date.fromisoformat(t["v"]),
    "time": lambda t: dt.time.fromisoformat(t["v"]),
    "timedelta": lambda t: dt.timedelta(days=t["v"][0], seconds=t["v"][1], microseconds=t["v"][2]),
    "uuid": lambda t: uuid.UUID(t["v"]),
    "decimal": lambda t: Decimal(t["v"]),
    "bytes": lambda t: base64.b64decode(t["v"], validate=True),
    "bytearray": lambda t: bytearray(base64.b64decode(t["v"], validate=True)),
    "float": lambda t: float(t["v"]),
    "enum": _decode_enum,
    "namedtuple": _decode_namedtuple,
    "object": _decode_object,
}
