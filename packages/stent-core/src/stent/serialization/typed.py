"""Restoring loaded values to annotated types, with cattrs.

The JSON serializer already brings most values back as their own types (its tags say what they were).  A type
hint finishes the job for what the encoding could not say: an attrs class or dataclass whose module could not be
imported when it was read (it comes back as a dict of fields), keys and elements whose declared type is narrower
than what JSON keeps, and values written by something other than stent.  So every hook here first lets a value
that already has the right type pass through untouched, and only then converts from the plain form.

Conversions are strict where silence would corrupt data: a stored ``"false"`` is not turned into ``True`` for a
``bool`` field, nor ``1.7`` into ``1`` for an ``int``, nor ``5`` into ``"5"`` for a ``str``.  Numbers written as
text (as JSON object keys always are) do convert to ``int`` and ``float``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import types
import typing
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn

from stent.errors import SerializationError

_NoneType = type(None)


def restore(converter: cattrs.Converter, value: Any, type_hint: Any) -> Any:
    """Return ``value`` converted to ``type_hint`` by ``converter``; raise SerializationError when it does not fit.

    A missing hint (None), ``Any``, ``object``, a type variable, or an annotation still written as a string
    leaves the value as it is.
    """
    if (
        type_hint is None
        or type_hint is Any
        or type_hint is object
        or isinstance(type_hint, (str, typing.ForwardRef, typing.TypeVar))
    ):
        return value
    try:
        return converter.structure(value, type_hint)
    except Exception as exc:
        raise SerializationError(
            f"stored value of type {type(value).__name__} does not fit the annotation {_hint_name(type_hint)}:"
            f" {_describe(exc)}. Did the annotation change since the value was stored?"
        ) from exc


def _describe(exc: Exception) -> str:
    if isinstance(exc, cattrs.BaseValidationError):
        return "; ".join(cattrs.transform_error(exc))  # one "problem @ $.path" per failure
    return f"{type(exc).__name__}: {exc}"


def make_converter() -> cattrs.Converter:
    """Return the cattrs converter the JSON serializer restores annotated types with."""
    converter = cattrs.Converter(structure_fallback_factory=_fallback_factory)
    for cls, hook in _SCALAR_HOOKS.items():
        converter.register_structure_hook(cls, hook)
    # Predicate hooks registered later are consulted first, so these take precedence over cattrs' own.
    converter.register_structure_hook_factory(_is_abstract_collection, _abstract_collection_factory)
    converter.register_structure_hook_factory(_is_object_type, _object_factory)
    converter.register_structure_hook_factory(_is_union, _union_factory)
    return converter


def _hint_name(hint: Any) -> str:
    if isinstance(hint, type) and not typing.get_args(hint):
        return hint.__qualname__ if hint.__module__ == "builtins" else f"{hint.__module__}.{hint.__qualname__}"
    return repr(hint)


def _mismatch(value: Any, cls: type) -> TypeError:
    return TypeError(f"expected {cls.__name__}, got {type(value).__name__} {value!r:.60}")


def _exact_or_subclass(value: Any, cls: type, plain: type, convert: Callable[[Any], Any] | None = None) -> Any:
    # Subclasses of the primitive types (IntEnum, StrEnum...) are built by calling them, as cattrs does.
    if isinstance(value, cls):
        return value
    if cls is not plain:
        return cls(value)
    if convert is not None:
        return convert(value)
    raise _mismatch(value, cls)


def _to_int(value: Any) -> int:
    # Text is accepted because JSON object keys are always text; "1.7" and "abc" still fail.
    if isinstance(value, str):
        return int(value)
    raise _mismatch(value, int)


def _to_float(value: Any) -> float:
    if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        return float(value)
    raise _mismatch(value, float)


def _parse(
    cls: type, parse: Callable[[Any], Any], accepts: tuple[type, ...] = (str,)
) -> Callable[[Any, Any], Any]:
    def hook(value: Any, hint: Any) -> Any:
        if isinstance(value, hint):
            return value
        if isinstance(value, accepts) and not isinstance(value, bool):
            return parse(value)
        raise _mismatch(value, cls)

    return hook


def _to_decimal(value: Any) -> Decimal:
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)


def _to_bytes(value: Any) -> bytes:
    return bytes(value)


_SCALAR_HOOKS: dict[type, Callable[[Any, Any], Any]] = {
    int: lambda v, t: _exact_or_subclass(v, t, int, _to_int),
    str: lambda v, t: _exact_or_subclass(v, t, str),
    float: lambda v, t: _exact_or_subclass(v, t, float, _to_float),
    bool: lambda v, t: _exact_or_subclass(v, t, bool),
    bytes: _parse(bytes, _to_bytes, (bytearray, memoryview)),
    bytearray: _parse(bytearray, bytearray, (bytes, memoryview)),
    dt.datetime: _parse(dt.datetime, dt.datetime.fromisoformat),
    dt.date: _parse(dt.date, dt.date.fromisoformat),
    dt.time: _parse(dt.time, dt.time.fromisoformat),
    dt.timedelta: _parse(dt.timedelta, lambda v: dt.timedelta(seconds=v), (int, float)),
    uuid.UUID: _parse(uuid.UUID, uuid.UUID),
    Decimal: _parse(Decimal, _to_decimal, (str, int, float)),
    _NoneType: lambda v, t: _structure_none(v),
}


def _structure_none(value: Any) -> None:
    if value is not None:
        raise _mismatch(value, _NoneType)


def _fallback_factory(hint: Any) -> Callable[[Any, Any], Any]:
    """Hook for an annotation cattrs knows nothing about.

    An instance of a plain class passes (the tags already rebuilt it) and anything else is refused.  Annotations
    that cannot be checked at run time (type variables, non-runtime protocols, special forms) let the value
    through as loaded: a hint only helps, and must never make a good value unreadable.
    """

    def hook(value: Any, _: Any) -> Any:
        if not isinstance(hint, type):
            return value
        try:
            fits = isinstance(value, hint)
        except TypeError:
            return value
        if fits:
            return value
        raise TypeError(f"no way to restore a {type(value).__name__} to {_hint_name(hint)}")

    return hook


_CONCRETE_COLLECTIONS = (list, tuple, set, frozenset, dict)


def _is_abstract_collection(hint: Any) -> bool:
    cls = _origin(hint)
    return isinstance(cls, type) and cls.__module__ == "collections.abc"


def _abstract_collection_factory(hint: Any, converter: cattrs.Converter) -> Callable[[Any, Any], Any]:
    # Sequence[int], Mapping[str, X], Iterable[X]...: keep the stored container's own type (cattrs would turn a
    # list annotated Sequence into a tuple) and restore its elements with the annotation's arguments.
    cls, args = _origin(hint), typing.get_args(hint)

    def hook(value: Any, _: Any) -> Any:
        concrete = type(value)
        if concrete not in _CONCRETE_COLLECTIONS or not isinstance(value, cls):
            return _fallback_factory(cls)(value, cls)
        if not args:
            return value
        if concrete is tuple and len(args) != 1:
            return value  # Mapping-like arguments say nothing about a tuple's elements
        target: Any = tuple.__class_getitem__((args[0], ...)) if concrete is tuple else concrete[args]
        return converter.structure(value, target)

    return hook


def _origin(hint: Any) -> Any:
    return typing.get_origin(hint) or hint


def _is_object_type(hint: Any) -> bool:
    cls = _origin(hint)
    return isinstance(cls, type) and (attrs.has(cls) or dataclasses.is_dataclass(cls))


def _object_factory(hint: Any, converter: cattrs.Converter) -> Callable[[Any, Any], Any]:
    cls = _origin(hint)
    from_dict = make_dict_structure_fn(hint, converter)

    def hook(value: Any, _: Any) -> Any:
        if isinstance(value, cls):
            return value
        return from_dict(value, hint)

    return hook


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


def _union_factory(hint: Any, converter: cattrs.Converter) -> Callable[[Any, Any], Any]:
    members = typing.get_args(hint)
    classes = [(m, _origin(m)) for m in members if isinstance(_origin(m), type)]
    real = [m for m in members if m is not _NoneType]

    def hook(value: Any, _: Any) -> Any:
        if value is None and _NoneType in members:
            return None
        # The value's own type decides first (it is what was stored), then a base class, then trial in order.
        for member, cls in classes:
            if type(value) is cls:
                return converter.structure(value, member)
        for member, cls in classes:
            if isinstance(value, cls):
                return converter.structure(value, member)
        if len(real) == 1:
            return converter.structure(value, real[0])
        problems = []
        for member in real:
            try:
                return converter.structure(value, member)
            except Exception as exc:
                problems.append(f"as {_hint_name(member)}, {_describe(exc)}")
        raise TypeError(f"a {type(value).__name__} fits none of the union's types ({'; '.join(problems)})")

    return hook
