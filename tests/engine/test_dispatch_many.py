"""Batch dispatch: Stent.dispatch_many starts many executions in one storage transaction."""

from __future__ import annotations

import pytest

from stent import ConfigurationError, ExecutionState, SerializationError, Stent, UnregisteredFunctionError
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
    with pytest.raises(ConfigurationError, match=r"item 1 is 'bob'; give each call's positional arguments as a tuple"):
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
    assert len(ids) == len(set(ids)) == 2500
    assert (await harness.executor.list_executions(limit=1)).total == 2500
    await harness.start_worker(max_concurrency=50)
    assert await harness.finish(ids[-1]) == "hello n2499!"
