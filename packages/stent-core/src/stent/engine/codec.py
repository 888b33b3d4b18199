"""How the engine turns calls, results and errors into stored text and back, for one serializer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from stent.serialization import (
    JsonSerializer,
    Serializer,
    decode_arguments,
    decode_exception,
    encode_arguments,
    encode_exception,
    encode_value,
)

if TYPE_CHECKING:
    from stent.engine.durable import DurableFunction


class Codec:
    def __init__(self, serializer: Serializer | None = None, *, max_payload_bytes: int | None = None) -> None:
        self.serializer: Serializer = serializer or JsonSerializer()
        self.max_payload_bytes = max_payload_bytes

    def encode_call(self, fn: DurableFunction[Any, Any], args: Sequence[Any], kwargs: dict[str, Any]) -> str:
        return encode_arguments(
            self.serializer, fn.name, args, kwargs, signature=fn.signature, max_bytes=self.max_payload_bytes
        )

    def decode_call(self, fn: DurableFunction[Any, Any], text: str) -> tuple[tuple[Any, ...], dict[str, Any]]:
        args, kwargs = decode_arguments(
            self.serializer, text, fn.signature, type_hints=fn.type_hints, func_name=fn.name
        )
        return tuple(args), dict(kwargs)

    def encode_result(self, fn: DurableFunction[Any, Any], value: Any) -> str:
        return encode_value(
            self.serializer, value, what=f"the result of {fn.name}", max_bytes=self.max_payload_bytes
        )

    def decode_result(self, fn: DurableFunction[Any, Any] | None, text: str | None) -> Any:
        if text is None:
            return None
        hint = fn.type_hints.get("return") if fn is not None else None
        return self.serializer.loads(text, hint)

    def encode_error(self, exc: BaseException) -> str:
        return encode_exception(exc, self.serializer)

    def decode_error(self, text: str | None) -> BaseException:
        return decode_exception(text or "", self.serializer)
