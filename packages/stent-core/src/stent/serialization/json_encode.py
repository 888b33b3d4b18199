"""Turning values into tagged JSON trees; :mod:`stent.serialization.tagged_json` describes the format."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import enum
import math
import uuid
import zoneinfo
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import attrs

from stent.errors import SerializationError
from stent.serialization.base import qualified_name

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


def encode_tree(value: Any) -> Any:
    """Return ``value`` as a tree of JSON types; raise UnencodableValueError for what JSON cannot hold."""
    return _encode(value, set())


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
