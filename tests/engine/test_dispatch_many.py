"""Batch dispatch: Stent.dispatch_many starts many executions, a thousand per storage transaction."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from stent import ConfigurationError, ExecutionState, SerializationError, Stent, UnregisteredFunctionError
from stent._batching import pipelined
from stent.memory import MemoryStorage
from stent.testing.harness import WorkflowHarness


@Stent.durable
async def greet(name: str, punctuation: str = "!") -> str:
    return f"hello {name}{punctuation}"


async def test_each_item_becomes_an_execution_in_order(harness: WorkflowHarness) -> None:
    """Ids come back in item order; tuples are positional arguments, dicts keyword arguments."""
    await harness.start_worker()
    ids = await harness.executor.dispatch_many(greet, [("ann",), ["bob", "?"], {"name": "cy", "punctuation": "."}])
    assert len(set(ids)) == 3
    assert [await harness.finish(i) for i in ids] == ["hello ann!", "hello bob?", "hello cy."]


async def test_options_apply_to_every_execution(harness: WorkflowHarness) -> None:
    """queue, tags, priority and delay given once hold for each execution of the batch."""
    ids = await harness.executor.dispatch_many(greet, [("a",), ("b",)], queue="greetings", delay=60)
    page = await harness.executor.list_executions(queue="greetings")
    assert sorted(e.execution_id for e in page.executions) == sorted(ids)
    assert await harness.executor.queue_depth("greetings") == 2
    await harness.start_worker(queues=["greetings"])
    await harness.advance(30)
    assert {(await harness.executor.state_of(i)).state for i in ids} == {ExecutionState.PENDING}
    assert [await harness.finish(i) for i in ids] == ["hello a!", "hello b!"]


async def test_an_empty_batch_dispatches_nothing(harness: WorkflowHarness) -> None:
    """No calls, no executions."""
    assert await harness.executor.dispatch_many(greet, []) == []
    assert (await harness.executor.list_executions()).total == 0


async def test_a_bad_item_stores_nothing(harness: WorkflowHarness) -> None:
    """An item that is not a tuple or dict, or an argument that cannot be stored, fails the batch before any
    execution is written, naming what was wrong."""
    with pytest.raises(
        ConfigurationError, match=r"item 1 is 'bob'; give each call's positional arguments as a tuple"
    ):
        await harness.executor.dispatch_many(greet, [("ann",), "bob"])
    with pytest.raises(SerializationError):
        await harness.executor.dispatch_many(greet, [("ann",), (object(),)])
    with pytest.raises(ConfigurationError, match="iterable of calls"):
        await harness.executor.dispatch_many(greet, "ann")  # type: ignore[arg-type]
    with pytest.raises(UnregisteredFunctionError):
        await harness.executor.dispatch_many("no.such.function", [()])
    with pytest.raises(ConfigurationError, match="queue must be a non-empty string"):
        await harness.executor.dispatch_many(greet, [("ann",)], queue="")
    assert (await harness.executor.list_executions()).total == 0


async def test_a_large_batch_is_split_across_transactions(harness: WorkflowHarness) -> None:
    """More calls than one transaction takes are still all dispatched, once each, in order."""
    ids = await harness.executor.dispatch_many(greet, [(f"n{i}",) for i in range(2500)])
    more = await harness.executor.dispatch_many(greet, [(f"m{i}",) for i in range(10)])
    assert len(ids) == len(set(ids)) == 2500 and not set(ids) & set(more)
    assert all(re.fullmatch("[0-9a-f]{32}", i) for i in ids + more), "ids are 128 random bits in hex, as uuid4's"
    assert (await harness.executor.list_executions(limit=1)).total == 2510
    await harness.start_worker(max_concurrency=50)
    assert await harness.finish(ids[-1]) == "hello n2499!"


@Stent.durable(idempotent=True)
async def charge(order: str) -> str:
    return f"charged {order}"


async def test_a_batch_shares_its_options_but_never_its_ids_arguments_or_idempotency_keys(
    harness: WorkflowHarness,
) -> None:
    """Every task of a batch gets the batch's queue, tags, priority and options, and its own ids and arguments;
    an idempotent function's tasks each get the key of their own arguments."""
    greet_ids = await harness.executor.dispatch_many(
        greet, [(f"n{i}",) for i in range(3)], queue="q", tags=["t"], priority=7
    )
    charge_ids = await harness.executor.dispatch_many(charge, [("o1",), ("o2",)])

    async def roots(ids: list[str]) -> list[Any]:
        executions = [await harness.storage.get_execution(i) for i in ids]
        return await harness.storage.get_tasks([e.root_task_id for e in executions if e is not None])

    greets = await roots(greet_ids)
    assert {(t.queue, t.tags, t.priority, t.options) for t in greets} == {("q", ("t",), 7, greets[0].options)}
    assert len({t.task_id for t in greets}) == len({t.execution_id for t in greets}) == 3
    assert len({t.args for t in greets}) == 3
    assert len({t.options for t in await roots(charge_ids)}) == 2, (
        "each idempotent call is keyed by its own arguments"
    )
    await harness.start_worker()
    assert [await harness.finish(i) for i in charge_ids] == ["charged o1", "charged o2"]


class FailingAt(MemoryStorage):
    """Memory storage whose create_executions fails at its n-th call, recording the calls under way."""

    def __init__(self, failing_call: int) -> None:
        super().__init__()
        self.failing_call = failing_call
        self.calls = 0
        self.under_way = 0
        self.most_under_way = 0

    async def create_executions(self, news: Any, now: Any) -> Any:
        self.calls += 1
        number = self.calls
        self.under_way += 1
        self.most_under_way = max(self.most_under_way, self.under_way)
        try:
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            if number == self.failing_call:
                raise OSError("the disk is full")
            return await super().create_executions(news, now)
        finally:
            self.under_way -= 1


async def test_two_transactions_are_under_way_and_a_failure_stops_the_rest() -> None:
    """Thousands are written two at a time; when one fails, the call raises its error after the one under way
    with it ends, no later thousand is written, and the thousands that committed stay."""
    storage = FailingAt(failing_call=2)
    executor = Stent(storage)
    with pytest.raises(OSError, match="the disk is full"):
        await executor.dispatch_many(greet, [(f"n{i}",) for i in range(5500)])
    assert storage.most_under_way == 2
    assert storage.calls == 3, "the thousand after the failed one, already under way, ends; none starts after"
    assert (await executor.list_executions(limit=1)).total == 2000  # the first and third thousands committed


async def test_pipelined_returns_results_in_order() -> None:
    async def slow(n: int, turns: int) -> int:
        for _ in range(turns):
            await asyncio.sleep(0)
        return n

    calls = [lambda n=n: slow(n, 5 - n) for n in range(5)]
    assert await pipelined(calls, depth=3) == [0, 1, 2, 3, 4]
