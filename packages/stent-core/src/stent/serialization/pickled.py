"""The pickle serializer, for values JSON cannot hold; only used when asked for."""

from __future__ import annotations

import base64
import binascii
import pickle
from typing import Any

from stent.errors import SerializationError


class PickleSerializer:
    """Pickle, stored as base64 text.  Stores almost any Python object, keeping its exact type.

    UNSAFE WITH UNTRUSTED STORAGE: unpickling runs code chosen by whoever wrote the payload, so anyone who can
    write to the database can run code on every worker.  Use it only when the storage is as trusted as the code,
    and prefer the default :class:`~stent.serialization.JsonSerializer` otherwise.  Payloads also tie storage to
    the class layouts of the code that wrote them.
    """

    def __init__(self, *, protocol: int = pickle.HIGHEST_PROTOCOL) -> None:
        self.protocol = protocol

    def dumps(self, value: Any) -> str:
        """Return ``value`` pickled and base64-encoded; raise SerializationError if it cannot be pickled."""
        try:
            data = pickle.dumps(value, protocol=self.protocol)
        except RecursionError:
            raise SerializationError("the value is nested too deeply to pickle") from None
        except Exception as exc:
            raise SerializationError(
                f"a value of type {type(value).__name__} cannot be pickled ({type(exc).__name__}: {exc})"
            ) from exc
        return base64.b64encode(data).decode("ascii")

    def loads(self, text: str, type_hint: Any = None) -> Any:
        """Return the value ``text`` holds; ``type_hint`` is ignored, since pickle keeps every value's type."""
        if not isinstance(text, str):
            raise SerializationError(f"stored payload must be text, got {type(text).__name__}")
        try:
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise SerializationError(f"stored payload is not base64 pickle data ({exc}): {text[:80]!r}") from None
        try:
            return pickle.loads(data)
        except Exception as exc:
            raise SerializationError(
                f"stored payload could not be unpickled ({type(exc).__name__}: {exc})"
            ) from exc
