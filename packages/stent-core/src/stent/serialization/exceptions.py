"""Storing an exception raised in a task, and raising it again where the result is awaited.

An exception is stored as a record: its class (module and qualified name), its ``args`` (each stored as a value
when the serializer can hold it, else as its repr), its instance attributes (the ``__dict__``), ``str(exc)``,
and the formatted traceback.  Exception groups store their sub-exceptions as records too.

Reading one rebuilds the original type when its class can be imported, is an :class:`Exception` (a stored
``KeyboardInterrupt`` or ``CancelledError`` must never be raised into the code awaiting the task), and the
rebuilt exception says the same thing (``str``) as the stored one.  Two ways are tried, in order:

1. call the class with the stored args, as pickle would, then restore its attributes;
2. create it without calling ``__init__`` (``cls.__new__(cls, *args)``, which sets ``args``) and restore its
   attributes, for the common class whose ``__init__`` takes other parameters than the message it passes up,
   provided every attribute was stored.

Otherwise the result is :class:`~stent.errors.RemoteError` with the type's name, the message and the traceback.
Either way the remote traceback is attached as ``__stent_remote_traceback__`` and as a note, so it shows when the
exception is printed.  Reading never raises: an unreadable record becomes a RemoteError that says so.
"""

from __future__ import annotations

import contextlib
import traceback
from typing import Any

from stent.errors import RemoteError
from stent.serialization.base import Serializer, display_name, import_qualified

RECORD_FORMAT = 1
REMOTE_TRACEBACK_ATTRIBUTE = "__stent_remote_traceback__"
UNDECODABLE_TYPE_NAME = "<undecodable error>"

# Attributes not carried across: notes are already part of the traceback text, which becomes a note again.
_NOT_STATE = frozenset({"__notes__", REMOTE_TRACEBACK_ATTRIBUTE})


def encode_exception(exc: BaseException, serializer: Serializer) -> str:
    """Return the stored form of ``exc``: type, args, attributes, message and traceback.

    Never fails because of the exception's contents (an arg or attribute the serializer cannot hold is stored as
    its repr or left out); it raises only if the serializer cannot store a record of plain strings.
    """
    try:
        return serializer.dumps(_record(exc, serializer, with_traceback=True))
    except Exception:
        return serializer.dumps(_minimal_record(exc))


def decode_exception(text: str, serializer: Serializer) -> BaseException:
    """Return the exception stored in ``text`` (see the module docstring); never raises."""
    if not text:
        return RemoteError(UNDECODABLE_TYPE_NAME, "no error was stored for this failure")
    try:
        record = serializer.loads(text)
        if not isinstance(record, dict):
            raise TypeError(f"expected an error record, got {type(record).__name__}")
        module, qualname = record["module"], record["qualname"]
        if not isinstance(module, str) or not isinstance(qualname, str):
            raise TypeError("the error record's type name is not text")
    except Exception as exc:
        return RemoteError(
            UNDECODABLE_TYPE_NAME,
            f"the stored error could not be decoded ({type(exc).__name__}: {exc}); stored text: {str(text)[:200]!r}",
        )
    try:
        result = _rebuild(record)
    except Exception as exc:  # user code (constructors, __str__) ran: never let it escape
        result = RemoteError(display_name(module, qualname), _text(record, "message"), _text(record, "traceback"))
        result.__cause__ = exc
    _attach_traceback(result, _text(record, "traceback"))
    return result


# -- encoding ------------------------------------------------------------------------------------------------


def _safe_str(value: Any) -> str:
    try:
        return str(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"


def _safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception:
        return f"<unrepresentable {type(value).__name__}>"


def _format_traceback(exc: BaseException) -> str:
    try:
        return "".join(traceback.format_exception(exc))
    except Exception:
        return f"{type(exc).__name__}: {_safe_str(exc)} (the traceback could not be formatted)\n"


def _storable(value: Any, serializer: Serializer) -> bool:
    try:
        serializer.dumps(value)
    except Exception:
        return False
    return True


def _stored_args(values: Any, serializer: Serializer) -> list[dict[str, Any]]:
    return [{"value": value} if _storable(value, serializer) else {"repr": _safe_repr(value)} for value in values]


def _record(exc: BaseException, serializer: Serializer, *, with_traceback: bool) -> dict[str, Any]:
    cls = type(exc)
    record: dict[str, Any] = {
        "format": RECORD_FORMAT,
        "module": cls.__module__,
        "qualname": cls.__qualname__,
        "message": _safe_str(exc),
        # A group's traceback text already shows its members', so only the outermost record keeps one.
        "traceback": _format_traceback(exc) if with_traceback else "",
    }
    if isinstance(exc, BaseExceptionGroup):
        record["args"] = _stored_args([exc.message], serializer)
        record["exceptions"] = [_record(e, serializer, with_traceback=False) for e in exc.exceptions]
    else:
        record["args"] = _stored_args(exc.args, serializer)
    if isinstance(exc, OSError) and exc.filename is not None:
        # OSError keeps the file names out of args; its constructor takes them as the third and fifth.
        init_args = (exc.errno, exc.strerror, exc.filename, None, exc.filename2)
        record["init_args"] = _stored_args(init_args, serializer)
    state: dict[str, Any] = {}
    complete = True
    for name, value in getattr(exc, "__dict__", {}).items():
        if name in _NOT_STATE:
            continue
        if isinstance(name, str) and _storable(value, serializer):
            state[name] = value
        else:
            complete = False
    record["state"] = state
    record["state_complete"] = complete
    return record


def _minimal_record(exc: BaseException) -> dict[str, Any]:
    cls = type(exc)
    return {
        "format": RECORD_FORMAT,
        "module": str(cls.__module__),
        "qualname": str(cls.__qualname__),
        "message": _safe_str(exc),
        "traceback": _format_traceback(exc),
        "args": [{"repr": _safe_repr(a)} for a in getattr(exc, "args", ())],
        "state": {},
        "state_complete": False,
    }


# -- decoding ------------------------------------------------------------------------------------------------


def _text(record: dict[str, Any], key: str) -> str:
    value = record.get(key, "")
    return value if isinstance(value, str) else _safe_str(value)


def _loaded_args(stored: Any) -> list[Any] | None:
    """The args' values, or None when any of them survived only as a repr (or the list is malformed)."""
    if not isinstance(stored, list):
        return None
    values = []
    for item in stored:
        if not isinstance(item, dict) or "value" not in item:
            return None
        values.append(item["value"])
    return values


def _rebuild(record: dict[str, Any]) -> BaseException:
    module, qualname = record["module"], record["qualname"]
    message = _text(record, "message")
    remote = RemoteError(display_name(module, qualname), message, _text(record, "traceback"))
    cls = import_qualified(f"{module}:{qualname}")
    if not (isinstance(cls, type) and issubclass(cls, Exception)):
        return remote
    args = _loaded_args(record.get("args"))
    if args is None:
        return remote
    if "exceptions" in record:
        members = record["exceptions"]
        if not isinstance(members, list) or not args:
            return remote
        nested = [
            _rebuild(m) if _is_record(m) else RemoteError(UNDECODABLE_TYPE_NAME, _safe_repr(m)) for m in members
        ]
        args = [args[0], nested]
    init_args = _loaded_args(record["init_args"]) if "init_args" in record else args
    state = record.get("state")
    state = state if isinstance(state, dict) else {}
    attempts: list[tuple[Any, list[Any]]] = [(cls, init_args or args)]
    if record.get("state_complete") is True:
        attempts.append((lambda *a: cls.__new__(cls, *a), args))
    for make, make_args in attempts:
        exc = _attempt(make, make_args, cls, state)
        if exc is not None and _safe_str(exc) == message:
            return exc
    return remote


def _attempt(make: Any, args: list[Any], cls: type[BaseException], state: dict[str, Any]) -> BaseException | None:
    """Build one candidate and restore its attributes; None when the class refuses."""
    try:
        exc = make(*args)
        if not isinstance(exc, cls):
            return None
        exc.__dict__.update(state)
    except Exception:
        return None
    return exc


def _is_record(value: Any) -> bool:
    return (
        isinstance(value, dict) and isinstance(value.get("module"), str) and isinstance(value.get("qualname"), str)
    )


def _attach_traceback(exc: BaseException, remote_traceback: str) -> None:
    # An exception class that refuses attributes still reaches the caller, only without the extra text.
    with contextlib.suppress(Exception):
        setattr(exc, REMOTE_TRACEBACK_ATTRIBUTE, remote_traceback)
        if remote_traceback:
            exc.add_note(f"Remote traceback (from the worker that ran the task):\n{remote_traceback.rstrip()}")
