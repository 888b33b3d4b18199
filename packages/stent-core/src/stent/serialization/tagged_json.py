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

import json
from typing import Any

import cattrs

from stent.errors import SerializationError
from stent.serialization.json_decode import decode_tree
from stent.serialization.json_encode import TAG, UnencodableValueError, encode_tree
from stent.serialization.typed import make_converter, restore

__all__ = ["TAG", "JsonSerializer", "UnencodableValueError"]


class JsonSerializer:
    """Compact, deterministic JSON (the default serializer); see the module docstring for the encoding.

    ``loads(text, type_hint)`` restores values to an annotated type with cattrs (``list[Item]`` gives ``Item``
    instances, ``Optional[...]``, unions, enums, nested attrs classes and dataclasses, dicts with typed keys).
    ``converter`` (default :func:`~stent.serialization.typed.make_converter`) is the cattrs converter used for
    that; register hooks on ``serializer.converter`` to change how an annotated type is restored.
    """

    def __init__(self, *, converter: cattrs.Converter | None = None) -> None:
        self.converter = converter if converter is not None else make_converter()

    def dumps(self, value: Any) -> str:
        """Return ``value`` as JSON text; raise :class:`UnencodableValueError` naming what cannot be stored."""
        if _plain(value):  # already JSON as it is (a call with str/int/bool/None arguments, say): no tree to build
            return json.dumps(value, separators=(",", ":"), ensure_ascii=True)
        try:
            tree = encode_tree(value)
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
            value = decode_tree(tree)
        except RecursionError:
            raise SerializationError("stored payload is nested too deeply to read") from None
        if type_hint is None:
            return value
        return self.restore(value, type_hint)

    def restore(self, value: Any, type_hint: Any) -> Any:
        """Return a loaded ``value`` converted to ``type_hint``; values already of the right type pass through."""
        return restore(self.converter, value, type_hint)


_PLAIN_SCALARS = frozenset({str, int, bool, type(None)})


def _plain(value: Any) -> bool:
    """Whether ``value`` is a dict (or list) holding only scalars JSON stores as they are, one level down at most:
    what the tagged encoding would leave unchanged.  Exact types only (an IntEnum or a str subclass is tagged)."""
    if type(value) is dict:
        if TAG in value or any(type(k) is not str for k in value):
            return False
        parts: Any = value.values()
    elif type(value) is list:
        parts = value
    else:
        return False
    for part in parts:
        kind = type(part)
        if kind in _PLAIN_SCALARS:
            continue
        if kind is list:
            items: Any = part
        elif kind is dict:
            if TAG in part or any(type(k) is not str for k in part):
                return False
            items = part.values()
        else:
            return False
        if any(type(item) not in _PLAIN_SCALARS for item in items):
            return False
    return True
