"""What ``Stent.dispatch`` and ``Stent.dispatch_many`` share: checking their options, and building executions.

Everything a dispatch is given is checked, and every argument encoded, before anything is written: a bad option
or an unserializable argument (of any item of a batch) raises and stores nothing.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import attrs

from stent.engine.codec import Codec
from stent.engine.durable import DurableFunction, lookup_function, registered_functions
from stent.engine.tasks import new_call_task
from stent.errors import ConfigurationError, UnregisteredFunctionError
from stent.model import NewExecution
from stent.retry import RetryPolicy
from stent.worker.options import seconds_of


@attrs.frozen
class DispatchOptions:
    """The options of a dispatch (not arguments of the function), checked."""

    fn: DurableFunction[..., Any]
    queue: str | None = None
    priority: int | None = None
    tags: tuple[str, ...] | None = None
    delay: float | None = None
    max_duration: float | None = None
    retry_policy: RetryPolicy | None = None

    @classmethod
    def check(
        cls,
        fn: DurableFunction[..., Any] | str,
        *,
        queue: str | None,
        priority: int | None,
        tags: Iterable[str] | None,
        delay: float | timedelta | str | None,
        max_duration: float | timedelta | str | None,
        retry_policy: RetryPolicy | None,
    ) -> DispatchOptions:
        if isinstance(fn, str):
            found = lookup_function(fn)
            if found is None:
                raise UnregisteredFunctionError(fn, registered_functions())
            fn = found
        if not isinstance(fn, DurableFunction):
            raise ConfigurationError(
                f"dispatch() takes a function decorated with @Stent.durable, got {getattr(fn, '__qualname__', fn)!r}"
            )
        if queue is not None and (not isinstance(queue, str) or not queue):
            raise ConfigurationError(f"queue must be a non-empty string, got {queue!r}")
        if priority is not None and (isinstance(priority, bool) or not isinstance(priority, int)):
            raise ConfigurationError(f"priority must be an int, got {priority!r}")
        if isinstance(tags, str):
            raise ConfigurationError(f"tags must be a list of strings, got the string {tags!r}")
        if retry_policy is not None and not isinstance(retry_policy, RetryPolicy):
            raise ConfigurationError(f"retry_policy must be a stent.RetryPolicy, got {retry_policy!r}")
        return cls(
            fn=fn,
            queue=queue,
            priority=priority,
            tags=None if tags is None else tuple(tags),
            delay=None if delay is None else seconds_of("delay", delay, allow_zero=True),
            max_duration=fn.max_duration if max_duration is None else seconds_of("max_duration", max_duration),
            retry_policy=retry_policy,
        )

    def execution(
        self,
        codec: Codec,
        args: Sequence[Any],
        kwargs: dict[str, Any],
        now: datetime,
        execution_id: str | None,
        ids: Iterator[str] | None = None,
    ) -> NewExecution:
        """A new execution of the function with these arguments (encoded here: a bad one raises); its task's id,
        and its own when not given, from ``ids`` (:func:`fresh_ids`) or uuid4."""
        root = new_call_task(
            self.fn,
            codec,
            next(ids) if ids is not None else uuid.uuid4().hex,
            args,
            kwargs,
            queue=self.queue,
            priority=self.priority,
            tags=self.tags,
            retry_policy=self.retry_policy,
            scheduled_for=None if self.delay is None else now + timedelta(seconds=self.delay),
        )
        deadline = None if self.max_duration is None else now + timedelta(seconds=self.max_duration)
        if execution_id is None:
            execution_id = next(ids) if ids is not None else uuid.uuid4().hex
        return NewExecution(execution_id=execution_id, root=root, deadline=deadline)


def fresh_ids() -> Iterator[str]:
    """Ids for a batch of new executions and tasks: 128 random bits each, as uuid4's hex, for a fifth of the cost.

    They are drawn from a generator seeded by one uuid4 (so the simulator, which seeds uuid4, stays
    deterministic); ids only need to be unique, which 128 bits from a randomly seeded generator are.
    """
    source = random.Random(uuid.uuid4().int)
    while True:
        yield f"{source.getrandbits(128):032x}"


def check_execution_id(execution_id: str | None) -> None:
    if execution_id is not None and (not isinstance(execution_id, str) or not execution_id):
        raise ConfigurationError(f"execution_id must be a non-empty string, got {execution_id!r}")


def call_of(item: object, index: int) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The arguments an item of ``dispatch_many`` stands for: a tuple or list of positional arguments, or a
    mapping of keyword arguments."""
    if isinstance(item, tuple | list):
        return tuple(item), {}
    if isinstance(item, Mapping):
        if not all(isinstance(k, str) for k in item):
            raise ConfigurationError(f"dispatch_many() item {index} has a non-string keyword: {item!r}")
        return (), dict(item)
    raise ConfigurationError(
        f"dispatch_many() item {index} is {item!r}; give each call's positional arguments as a tuple (write"
        f" ({item!r},) for one argument) or its keyword arguments as a dict"
    )
