"""Serialization: how values, calls and exceptions become stored text and come back.

Payloads are stored as text.  :class:`JsonSerializer` is the default (compact JSON that keeps datetimes, UUIDs,
Decimals, bytes, tuples, sets, enums, attrs classes and dataclasses as their own types, and restores annotated
types with cattrs); :class:`PickleSerializer` is there when asked for, and is unsafe with untrusted storage.
The functions store a call's arguments and a task's exception with errors that say what failed and how to fix it.
"""

from __future__ import annotations

from stent.serialization.arguments import (
    DEFAULT_LIMIT_OPTION,
    decode_arguments,
    encode_arguments,
    encode_value,
)
from stent.serialization.base import Serializer, import_qualified, qualified_name
from stent.serialization.exceptions import REMOTE_TRACEBACK_ATTRIBUTE, decode_exception, encode_exception
from stent.serialization.pickled import PickleSerializer
from stent.serialization.tagged_json import JsonSerializer, UnencodableValueError

__all__ = [
    "DEFAULT_LIMIT_OPTION",
    "REMOTE_TRACEBACK_ATTRIBUTE",
    "JsonSerializer",
    "PickleSerializer",
    "Serializer",
    "UnencodableValueError",
    "decode_arguments",
    "decode_exception",
    "encode_arguments",
    "encode_exception",
    "encode_value",
    "import_qualified",
    "qualified_name",
]
