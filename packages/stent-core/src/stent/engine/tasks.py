"""Building the stored form of a call (a :class:`~stent.model.NewTask`) and reading its options back."""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs

from stent import tracing
from stent.engine.codec import Codec
from stent.errors import ConfigurationError
from stent.model import NewTask
from stent.retry import NO_RETRY, RetryPolicy

if TYPE_CHECKING:
    from stent.engine.durable import DurableFunction


@attrs.frozen
class TaskOptions:
    """Per-task options kept with the task, so the worker that runs it needs nothing but the stored row."""

    retry: RetryPolicy = NO_RETRY
    timeout: float | None = None
    cache_key: str | None = None
    cache_ttl: float | None = None
    signal_deadline: str | None = None  # ISO time a signal wait gives up
    trace: dict[str, str] | None = None  # W3C trace context of the code that created the task (stent.tracing)

    def dumps(self) -> str:
        if self.cache_key is None and self.signal_deadline is None and self.trace is None:
            # The common case, the same for every call of a function: encoded once (a batch dispatch of
            # thousands would otherwise encode the same text thousands of times).
            try:
                return _common_options_text(self.retry, self.timeout, self.cache_ttl)
            except TypeError:  # a policy holding something unhashable (a predicate object, say)
                pass
        return self._encode()

    def _encode(self) -> str:
        data: dict[str, Any] = {}
        if self.retry != NO_RETRY:
            data["retry"] = self.retry.to_dict()
        for name in ("timeout", "cache_key", "cache_ttl", "signal_deadline", "trace"):
            value = getattr(self, name)
            if value is not None:
                data[name] = value
        return json.dumps(data, separators=(",", ":"), sort_keys=True)

    @classmethod
    def loads(cls, text: str) -> TaskOptions:
        if "cache_key" in text or "signal_deadline" in text or "trace" in text:
            return _decode_options(text)  # one task's own: not worth keeping
        return _common_options(text)  # the same text for every call of a function: decoded once


def _decode_options(text: str) -> TaskOptions:
    data = json.loads(text or "{}")
    retry = data.pop("retry", None)
    return TaskOptions(retry=RetryPolicy.from_dict(retry) if retry else NO_RETRY, **data)


_common_options = functools.lru_cache(maxsize=256)(_decode_options)


@functools.lru_cache(maxsize=256)
def _common_options_text(retry: RetryPolicy, timeout: float | None, cache_ttl: float | None) -> str:
    return TaskOptions(retry=retry, timeout=timeout, cache_ttl=cache_ttl)._encode()


def idempotency_key(fn: DurableFunction[Any, Any], args_text: str, args: Sequence[Any], kwargs: dict[str, Any]) -> str:
    """The key a function's result is stored under across executions."""
    if fn.idempotency_key_func is not None:
        custom = fn.idempotency_key_func(*args, **kwargs)
        if not isinstance(custom, str) or not custom:
            raise ConfigurationError(
                f"idempotency_key_func of {fn.name} must return a non-empty string, got {custom!r}"
            )
        body = custom
    else:
        body = hashlib.sha256(args_text.encode()).hexdigest()
    return f"{fn.name}@{fn.version if fn.version is not None else ''}:{body}"


def new_call_task(
    fn: DurableFunction[Any, Any],
    codec: Codec,
    task_id: str,
    args: Sequence[Any],
    kwargs: dict[str, Any],
    *,
    queue: str | None = None,
    priority: int | None = None,
    tags: Iterable[str] | None = None,
    retry_policy: RetryPolicy | None = None,
    scheduled_for: datetime | None = None,
) -> NewTask:
    """The task for one call of ``fn``; encoding the arguments first, so a bad one fails before any write."""
    args_text = codec.encode_call(fn, args, kwargs)
    policy = retry_policy or fn.retry_policy or NO_RETRY
    options = TaskOptions(
        retry=policy,
        timeout=fn.timeout,
        cache_key=idempotency_key(fn, args_text, args, kwargs) if fn.idempotent else None,
        cache_ttl=fn.cache_ttl,
        trace=tracing.capture(fn.name),
    )
    return NewTask(
        task_id=task_id,
        function=fn.name,
        args=args_text,
        queue=queue or fn.queue,
        tags=tuple(tags) if tags is not None else fn.tags,
        priority=fn.priority if priority is None else priority,
        max_attempts=policy.max_attempts,
        max_concurrent=fn.max_concurrent,
        options=options.dumps(),
        scheduled_for=scheduled_for,
    )
