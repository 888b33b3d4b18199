"""Storing a call's arguments (and any other payload) with errors that say which value failed and how to fix it.

A call is stored as one payload, ``{"args": [...], "kwargs": {...}}``, through the configured serializer.  When it
cannot be stored, each argument is tried alone to find the culprit, so the error names the function, the
argument (position and parameter name) and its type; nothing else runs, so nothing is written.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from stent.errors import ConfigurationError, SerializationError
from stent.serialization.base import Serializer
from stent.serialization.pickled import PickleSerializer

DEFAULT_LIMIT_OPTION = "Stent(max_payload_bytes=...)"

_PICKLE_FIX_HINT = "Pass an identifier instead and load the object inside the function."
FIX_HINT = (
    "Make the value JSON-serializable (str, int, float, bool, None, lists and dicts of them, or datetime, date,"
    " time, timedelta, UUID, Decimal, bytes, tuple, set, Enum), make it an attrs class or a dataclass, pass an"
    " identifier and load the object inside the function, or opt in to pickle with"
    " serializer=PickleSerializer() (unsafe with untrusted storage)."
)


def encode_arguments(
    serializer: Serializer,
    func_name: str,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    *,
    signature: inspect.Signature | None = None,
    max_bytes: int | None = None,
    limit_option: str = DEFAULT_LIMIT_OPTION,
) -> str:
    """Return the stored form of a call to ``func_name`` with ``args`` and ``kwargs``.

    Raises SerializationError naming the argument that cannot be stored (its position, and its parameter name
    when ``signature`` is given), or saying the size when the payload is over ``max_bytes`` (``limit_option``
    names the setting that raises the limit).
    """
    payload = {"args": list(args), "kwargs": dict(kwargs)}
    try:
        text = serializer.dumps(payload)
    except Exception as exc:
        raise _argument_error(serializer, func_name, args, kwargs, signature, exc) from exc
    _check_size(text, f"the arguments of {func_name}", max_bytes, limit_option)
    return text


def encode_value(
    serializer: Serializer,
    value: Any,
    *,
    what: str,
    max_bytes: int | None = None,
    limit_option: str = DEFAULT_LIMIT_OPTION,
) -> str:
    """Return ``value`` serialized; ``what`` names it in errors (e.g. ``"the result of charge_card"``).

    Raises SerializationError saying what cannot be stored and how to fix it, or that the payload is over
    ``max_bytes``.
    """
    try:
        text = serializer.dumps(value)
    except Exception as exc:
        raise SerializationError(
            f"cannot store {what}: {_describe_failure(value, exc, 'the value', 'value')}. {_fix_hint(serializer)}"
        ) from exc
    _check_size(text, what, max_bytes, limit_option)
    return text


def decode_arguments(
    serializer: Serializer,
    text: str,
    signature: inspect.Signature | Callable[..., Any] | None = None,
    *,
    type_hints: Mapping[str, Any] | None = None,
    func_name: str = "the function",
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Return ``(args, kwargs)`` from a payload written by :func:`encode_arguments`.

    Each argument is restored to its parameter's annotation: from ``type_hints`` (parameter name to type, e.g.
    ``typing.get_type_hints(func)``) when given, else from ``signature`` (a Signature, or the function itself,
    whose string annotations are then resolved).  Annotations still written as strings are left alone;
    ``*args`` and ``**kwargs`` annotations apply to each extra value.  Raises SerializationError when the payload
    is unreadable or a value does not fit its annotation.
    """
    payload = serializer.loads(text)
    if (
        not isinstance(payload, dict)
        or not isinstance(payload.get("args"), (list, tuple))
        or not isinstance(payload.get("kwargs"), dict)
        or not all(isinstance(k, str) for k in payload["kwargs"])
    ):
        raise SerializationError(f"stored arguments of {func_name} are not an args/kwargs payload: {text[:80]!r}")
    args: list[Any] = list(payload["args"])
    kwargs: dict[str, Any] = dict(payload["kwargs"])
    restore = getattr(serializer, "restore", None)
    if not callable(restore):
        return tuple(args), kwargs  # the serializer keeps types itself (pickle) or cannot restore them
    sig, hints = _resolve(signature, type_hints)
    if sig is None:
        return tuple(args), kwargs
    for index, (name, hint) in enumerate(_positional_hints(sig, hints, len(args))):
        args[index] = _restore_one(restore, args[index], hint, func_name, f"argument {index} ({name!r})")
    for name, value in kwargs.items():
        hint = _keyword_hint(sig, hints, name)
        kwargs[name] = _restore_one(restore, value, hint, func_name, f"keyword argument {name!r}")
    return tuple(args), kwargs


# -- helpers -------------------------------------------------------------------------------------------------


def _check_size(text: str, what: str, max_bytes: int | None, limit_option: str) -> None:
    if max_bytes is None:
        return
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
        raise ConfigurationError(f"max_bytes must be a positive int or None, got {max_bytes!r}")
    size = len(text.encode("utf-8"))
    if size > max_bytes:
        raise SerializationError(
            f"payload too large: {what} serialized to {size:,} bytes, over the limit of {max_bytes:,} bytes. Pass"
            f" large data by reference (a file path, URL or key) instead, or raise the limit with {limit_option}."
        )


def _describe_failure(value: Any, exc: Exception, label: str, root: str) -> str:
    """Say what in ``value`` (called ``label`` in prose, ``root`` in paths) could not be serialized."""
    value_type = getattr(exc, "value_type", None)
    location = getattr(exc, "location", None)
    reason = getattr(exc, "reason", None)
    if not isinstance(value_type, type):
        # A serializer that does not say where it failed: name the value's type and pass its message on.
        return (
            f"{label} is of type {_type_name(type(value))}, which cannot be serialized"
            f" ({type(exc).__name__}: {exc})"
        )
    where = root + location[1:] if isinstance(location, str) else root
    if reason:
        return f"{label} cannot be serialized: {reason} (at {where})"
    if where == root:
        return f"{label} is of type {_type_name(value_type)}, which cannot be serialized"
    return f"{label} holds a value of type {_type_name(value_type)} at {where}, which cannot be serialized"


def _fix_hint(serializer: Serializer) -> str:
    return _PICKLE_FIX_HINT if isinstance(serializer, PickleSerializer) else FIX_HINT


def _type_name(cls: type) -> str:
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def _positional_names(signature: inspect.Signature | None, count: int) -> list[str | None]:
    names: list[str | None] = [None] * count
    if signature is None:
        return names
    params = list(signature.parameters.values())
    index = 0
    for param in params:
        if index >= count:
            break
        if param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
            names[index] = param.name
            index += 1
        elif param.kind is param.VAR_POSITIONAL:
            for extra in range(index, count):
                names[extra] = f"*{param.name}[{extra - index}]"
            break
    return names


def _argument_error(
    serializer: Serializer,
    func_name: str,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    signature: inspect.Signature | None,
    whole: Exception,
) -> SerializationError:
    names = _positional_names(signature, len(args))
    culprits: list[tuple[str, str, Any]] = []
    for index, value in enumerate(args):
        name = names[index]
        if name is None:
            culprits.append((f"argument {index}", f"args[{index}]", value))
        elif name.startswith("*"):
            culprits.append((f"argument {index} (in {name.partition('[')[0]})", name[1:], value))
        else:
            culprits.append((f"argument {index} ({name!r})", name, value))
    culprits += [(f"keyword argument {name!r}", name, value) for name, value in kwargs.items()]
    for label, root, value in culprits:
        try:
            serializer.dumps(value)
        except Exception as exc:
            return SerializationError(
                f"cannot store the arguments of {func_name}: {_describe_failure(value, exc, label, root)}."
                f" {_fix_hint(serializer)}"
            )
    # Each argument stores alone but the call does not (a serializer limit on the whole): report that.
    return SerializationError(f"cannot store the arguments of {func_name}: {whole}. {_fix_hint(serializer)}")


def _resolve(
    signature: inspect.Signature | Callable[..., Any] | None, type_hints: Mapping[str, Any] | None
) -> tuple[inspect.Signature | None, Mapping[str, Any]]:
    hints: Mapping[str, Any] = type_hints or {}
    if signature is None or isinstance(signature, inspect.Signature):
        return signature, hints
    try:
        sig = inspect.signature(signature)
    except (TypeError, ValueError):
        return None, hints
    if not hints:
        try:
            hints = typing.get_type_hints(signature)
        except Exception:
            hints = {}  # an annotation that cannot be resolved here: fall back to the signature's own
    return sig, hints


def _hint(param: inspect.Parameter, hints: Mapping[str, Any]) -> Any:
    if param.name in hints:
        return hints[param.name]
    if param.annotation is inspect.Parameter.empty:
        return None
    return param.annotation


def _positional_hints(sig: inspect.Signature, hints: Mapping[str, Any], count: int) -> Iterator[tuple[str, Any]]:
    index = 0
    for param in sig.parameters.values():
        if param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
            if index >= count:
                return
            yield param.name, _hint(param, hints)
            index += 1
        elif param.kind is param.VAR_POSITIONAL:
            while index < count:
                yield f"*{param.name}", _hint(param, hints)
                index += 1
            return


def _keyword_hint(sig: inspect.Signature, hints: Mapping[str, Any], name: str) -> Any:
    param = sig.parameters.get(name)
    if param is not None and param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
        return _hint(param, hints)
    for param in sig.parameters.values():
        if param.kind is param.VAR_KEYWORD:
            return _hint(param, hints)
    return None


#: Annotations a value decoded from JSON already satisfies when it has exactly that type.
_AS_STORED = frozenset({int, str, float, bool})


def _restore_one(restore: Callable[[Any, Any], Any], value: Any, hint: Any, func_name: str, label: str) -> Any:
    if hint is None or (type(value) is hint and hint in _AS_STORED):
        return value
    try:
        return restore(value, hint)
    except SerializationError as exc:
        raise SerializationError(f"stored {label} of {func_name} cannot be restored: {exc}") from exc
