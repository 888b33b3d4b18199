"""The serializer port and the helpers every serializer shares: naming classes and finding them again."""

from __future__ import annotations

import importlib
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Serializer(Protocol):
    """Turns values into text for storage and back.

    ``dumps`` raises :class:`~stent.errors.SerializationError` for a value it cannot store; ``loads`` raises it
    for text it cannot read.  ``loads`` restores values to ``type_hint`` when one is given and the format needs
    it.  A serializer may also define ``restore(value, type_hint)``, converting an already-loaded value to an
    annotated type; :func:`~stent.serialization.decode_arguments` uses it when present.
    """

    def dumps(self, value: Any) -> str: ...

    def loads(self, text: str, type_hint: Any = None) -> Any: ...


def qualified_name(cls: type) -> str:
    """Return ``"module:qualname"`` for a class: the address :func:`import_qualified` resolves."""
    return f"{cls.__module__}:{cls.__qualname__}"


def display_name(module: str, qualname: str) -> str:
    """Return the name people read: ``ValueError`` for builtins, ``package.module.Class`` otherwise."""
    return qualname if module == "builtins" else f"{module}.{qualname}"


def import_qualified(path: str) -> Any | None:
    """Return the object at ``"module:qualname"``, or None when it cannot be found.

    Never raises: a stored row names the path, and a module that fails to import (or runs into anything while
    importing) just means the value comes back in its plain form.
    """
    module_name, sep, qualname = path.partition(":")
    if not sep or not module_name or not qualname or "<locals>" in qualname:
        return None
    try:
        obj: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except Exception:
        return None
    return obj
