"""What a type checker knows about stent's public API: claims that mypy (strict) checks, and nothing runs.

Not a pytest module: ``test_typing.py`` runs mypy over it with the packages.  Each ``assert_type`` and each
annotated assignment fails the typing test when the API stops promising it.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any, assert_type

import stent
from stent import DurableFunction, ExecutionStatus, Result, RetryPolicy, Stent


@Stent.durable
async def greet(name: str, times: int = 1) -> str:
    return name * times


@Stent.durable(queue="mail", retry_policy=RetryPolicy(max_attempts=3))
async def count(text: str) -> int:
    return len(text)


@Stent.durable()
async def nothing() -> None:
    return None


@stent.durable
async def square(number: int) -> int:
    return number * number


# Both forms of the decorator (on Stent and in the package) keep the parameters and the result.
keeps_greet: Callable[[str, int], Coroutine[Any, Any, str]] = greet
keeps_count: Callable[[str], Coroutine[Any, Any, int]] = count
keeps_nothing: Callable[[], Coroutine[Any, Any, None]] = nothing
keeps_square: Callable[[int], Coroutine[Any, Any, int]] = square
is_durable: DurableFunction[[str], int] = count


async def awaiting_a_durable_function_gives_its_result() -> None:
    assert_type(await greet("ada"), str)
    assert_type(await greet("ada", times=2), str)
    assert_type(await count("ada"), int)
    assert_type(await nothing(), None)
    assert_type(await square(3), int)


async def map_and_starmap_give_a_list_of_the_result() -> None:
    assert_type(await greet.map(["ada", "grace"]), list[str])
    assert_type(await count.map(["ada"]), list[int])
    assert_type(await greet.starmap([("ada", 2), ("grace", 1)]), list[str])


async def the_executor_is_typed(executor: Stent) -> None:
    execution_id = await executor.dispatch(greet, "ada", queue="mail", delay="1m")
    assert_type(execution_id, str)
    assert_type(await executor.result_of(execution_id), Result[Any] | None)
    status = await executor.state_of(execution_id)
    assert_type(status, ExecutionStatus)
    assert_type(status.created_at, datetime)
    assert_type(status.finished_at, datetime | None)
    assert_type(await executor.cancel(execution_id), bool)
    assert_type(await Stent.bootstrap("sqlite:///typing.db"), Stent)
