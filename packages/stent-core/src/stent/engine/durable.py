"""``@Stent.durable``: turning an async function into a durable one.

Calling a :class:`DurableFunction` does one of two things, decided at call time:

* inside a running task, it takes the next step number from that task's counter at once (before anything is
  awaited, so ``asyncio.gather`` numbers steps deterministically) and returns a coroutine that journals the step
  and waits for its result;
* anywhere else, it returns a coroutine that dispatches a new execution on the process's current executor
  (see ``Stent.use``) and waits for its result: auto-dispatch.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from datetime import timedelta
from typing import Any, Generic, ParamSpec, TypeVar, overload

from stent.durations import parse_duration
from stent.engine.context import current_task
from stent.errors import ConfigurationError
from stent.retry import RetryPolicy

P = ParamSpec("P")
R = TypeVar("R")

_REGISTRY: dict[str, DurableFunction[Any, Any]] = {}


def registered_functions() -> dict[str, DurableFunction[Any, Any]]:
    """Every durable function defined in this process, by name."""
    return dict(_REGISTRY)


def lookup_function(name: str) -> DurableFunction[Any, Any] | None:
    return _REGISTRY.get(name)


def _check_name(value: object, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{what} must be a non-empty string, got {value!r}")
    return value


class DurableFunction(Generic[P, R]):
    """An async function whose calls are journaled steps of a durable execution."""

    def __init__(
        self,
        func: Callable[P, Awaitable[R]],
        *,
        name: str | None = None,
        queue: str = "default",
        tags: Iterable[str] = (),
        priority: int = 0,
        max_concurrent: int | None = None,
        retry_policy: RetryPolicy | None = None,
        timeout: float | timedelta | str | None = None,
        max_duration: float | timedelta | str | None = None,
        expiry: float | timedelta | str | None = None,
        idempotent: bool = False,
        cached: bool = False,
        idempotency_key_func: Callable[..., str] | None = None,
        version: str | int | None = None,
        cache_ttl: float | timedelta | str | None = None,
    ) -> None:
        if not inspect.iscoroutinefunction(func):
            raise ConfigurationError(
                f"@Stent.durable needs an async function; {getattr(func, '__qualname__', func)!r} is not one."
                " Define it with `async def`."
            )
        self.func = func
        self.name = _check_name(name, "name") if name is not None else f"{func.__module__}:{func.__qualname__}"
        if self.name.startswith("stent."):
            raise ConfigurationError(f"durable function names starting with 'stent.' are reserved: {self.name!r}")
        self.queue = _check_name(queue, "queue")
        if isinstance(tags, str):
            raise ConfigurationError(f"tags must be a list of strings, got the string {tags!r}; write tags=[{tags!r}]")
        self.tags: tuple[str, ...] = tuple(_check_name(t, "each tag") for t in tags)
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise ConfigurationError(f"priority must be an int, got {priority!r}")
        self.priority = priority
        if max_concurrent is not None and (
            isinstance(max_concurrent, bool) or not isinstance(max_concurrent, int) or max_concurrent < 1
        ):
            raise ConfigurationError(f"max_concurrent must be a positive int or None, got {max_concurrent!r}")
        self.max_concurrent = max_concurrent
        if retry_policy is not None and not isinstance(retry_policy, RetryPolicy):
            raise ConfigurationError(f"retry_policy must be a stent.RetryPolicy, got {retry_policy!r}")
        self.retry_policy = retry_policy
        self.timeout = None if timeout is None else parse_duration(timeout, name="timeout")
        if max_duration is not None and expiry is not None:
            raise ConfigurationError("give max_duration or its older name expiry, not both")
        limit = max_duration if max_duration is not None else expiry
        self.max_duration = None if limit is None else parse_duration(limit, name="max_duration")
        for flag_name, flag in (("idempotent", idempotent), ("cached", cached)):
            if not isinstance(flag, bool):
                raise ConfigurationError(f"{flag_name} must be True or False, got {flag!r}")
        if idempotency_key_func is not None and not callable(idempotency_key_func):
            raise ConfigurationError(f"idempotency_key_func must be callable, got {idempotency_key_func!r}")
        if version is not None and (isinstance(version, bool) or not isinstance(version, (str, int))):
            raise ConfigurationError(f"version must be a string or an int, got {version!r}")
        if cache_ttl is not None and not cached:
            raise ConfigurationError("cache_ttl applies only to cached=True functions")
        self.idempotent = idempotent or cached or idempotency_key_func is not None
        self.cached = cached
        self.idempotency_key_func = idempotency_key_func
        self.version = version
        self.cache_ttl = None if cache_ttl is None else parse_duration(cache_ttl, name="cache_ttl")
        self.signature = inspect.signature(func)
        self._hints: dict[str, Any] | None = None
        functools.update_wrapper(self, func)
        existing = _REGISTRY.get(self.name)
        if existing is not None and existing.func is not func and _code_id(existing.func) != _code_id(func):
            raise ConfigurationError(
                f"two durable functions are named {self.name!r}; give one of them name=... in @Stent.durable"
            )
        _REGISTRY[self.name] = self

    @property
    def type_hints(self) -> dict[str, Any]:
        """Annotations resolved to types, used to restore arguments and results to their declared types."""
        if self._hints is None:
            try:
                self._hints = typing.get_type_hints(self.func)
            except Exception:  # unresolvable forward references: fall back to untyped decoding
                self._hints = {}
        return self._hints

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, R]:
        ctx = current_task()
        if ctx is not None:
            step = ctx.next_step()
            return ctx.call_step(self, step, args, kwargs)
        return _auto_dispatch(self, args, kwargs)

    def map(self, items: Iterable[Any]) -> Coroutine[Any, Any, list[R]]:
        """Call the function once per item, in parallel; results in item order, the first failure raised.

        Inside a workflow the calls are steps created in one storage call; outside, each item is a new
        execution on the current executor.
        """
        return self._fan_out([((item,), {}) for item in items])

    def starmap(self, items: Iterable[Sequence[Any]]) -> Coroutine[Any, Any, list[R]]:
        """Like :meth:`map`, with each item unpacked as the positional arguments."""
        return self._fan_out([(tuple(args), {}) for args in items])

    def _fan_out(self, calls: list[tuple[tuple[Any, ...], dict[str, Any]]]) -> Coroutine[Any, Any, list[R]]:
        ctx = current_task()
        if ctx is not None:
            steps = [ctx.call_step(self, ctx.next_step(), args, kwargs) for args, kwargs in calls]
            return _gather_list(steps)
        return _dispatch_many(self, calls)

    def __repr__(self) -> str:
        return f"<durable function {self.name}>"

    def __get__(self, instance: object, owner: type | None = None) -> DurableFunction[P, R]:
        # Durable functions are plain functions; binding to an instance would hide `self` from the journal.
        return self


def _code_id(func: Callable[..., Any]) -> tuple[str, int]:
    code = getattr(func, "__code__", None)
    return (getattr(code, "co_filename", ""), getattr(code, "co_firstlineno", 0))


async def _gather_list(steps: list[Coroutine[Any, Any, R]]) -> list[R]:
    import asyncio

    return list(await asyncio.gather(*steps))


async def _dispatch_many(fn: DurableFunction[Any, R], calls: list[tuple[tuple[Any, ...], dict[str, Any]]]) -> list[R]:
    import asyncio

    from stent.executor import Stent

    executor = Stent.current()
    ids = await executor.dispatch_many(fn, [kwargs if kwargs else args for args, kwargs in calls])
    return list(await asyncio.gather(*(executor.wait_for(i) for i in ids)))


async def _auto_dispatch(fn: DurableFunction[Any, R], args: Sequence[Any], kwargs: dict[str, Any]) -> R:
    from stent.executor import Stent

    executor = Stent.current()
    execution_id = await executor.dispatch(fn, *args, **kwargs)
    return typing.cast(R, await executor.wait_for(execution_id))


class DurableDecorator:
    """``@durable`` or ``@durable(queue=..., ...)``: make an async function a :class:`DurableFunction`.

    An object rather than a function so that ``Stent.durable`` can be this very object (nothing binds to it) and
    type checkers see both forms of the decorator, each keeping the decorated function's signature.
    """

    @overload
    def __call__(self, func: Callable[P, Awaitable[R]], /) -> DurableFunction[P, R]: ...

    @overload
    def __call__(
        self,
        /,
        *,
        name: str | None = None,
        queue: str = "default",
        tags: Iterable[str] = (),
        priority: int = 0,
        max_concurrent: int | None = None,
        retry_policy: RetryPolicy | None = None,
        timeout: float | timedelta | str | None = None,
        max_duration: float | timedelta | str | None = None,
        expiry: float | timedelta | str | None = None,
        idempotent: bool = False,
        cached: bool = False,
        idempotency_key_func: Callable[..., str] | None = None,
        version: str | int | None = None,
        cache_ttl: float | timedelta | str | None = None,
    ) -> Callable[[Callable[P, Awaitable[R]]], DurableFunction[P, R]]: ...

    def __call__(self, func: Any = None, /, **options: Any) -> Any:
        if func is None:
            return lambda f: DurableFunction(f, **options)
        if not callable(func):
            raise ConfigurationError(
                f"@Stent.durable takes options as keywords (queue=..., tags=...), got a positional {func!r}"
            )
        return DurableFunction(func, **options)

    def __repr__(self) -> str:
        return "<decorator stent.durable>"


durable = DurableDecorator()
