"""Turning tagged JSON trees back into values; :mod:`stent.serialization.tagged_json` describes the format."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime as dt
import enum
import uuid
import zoneinfo
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import attrs

from stent.errors import SerializationError
from stent.serialization.base import import_qualified
from stent.serialization.json_encode import TAG


def decode_tree(tree: Any) -> Any:
    """Return the value a JSON tree written by :func:`~stent.serialization.json_encode.encode_tree` holds.

    Raises SerializationError for unknown or malformed tags.
    """
    return _decode(tree)


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
            return cls(*items)
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
