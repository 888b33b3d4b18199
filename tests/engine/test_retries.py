"""Retries, retry_for, backoff from the injected random source, and dead letters."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from stent import ConfigurationError, ExecutionState, RetryPolicy, Stent
from stent.errors import TaskNotFound
from stent.testing.harness import WorkflowHarness as Harness

RUNS: Counter[str] = Counter()
RUN_TIMES: dict[str, list[float]] = {}
BROKEN = {"flag": True}


class Flaky(Exception):
    pass


@Stent.durable(retry_policy=RetryPolicy(max_attempts=3, initial_delay=10, backoff_factor=3))
async def flaky(key: str) -> str:
    RUNS[key] += 1
    from stent import current_task

    ctx = current_task()
    assert ctx is not None
    RUN_TIMES.setdefault(key, []).append(ctx.host.now().timestamp())
    if RUNS[key] < 3:
        raise Flaky(f"attempt {RUNS[key]}")
    return f"ok after {RUNS[key]}"


@Stent.durable(retry_policy=RetryPolicy(max_attempts=5, retry_for=(Flaky,)))
async def wrong_kind(key: str) -> None:
    RUNS[key] += 1
    raise KeyError(key)


@Stent.durable(retry_policy=RetryPolicy(max_attempts=2, initial_delay=1))
async def always_fails(key: str) -> None:
    RUNS[key] += 1
    raise Flaky("child is broken")


@Stent.durable(retry_policy=RetryPolicy(max_attempts=3, initial_delay=1))
async def parent_of_broken(key: str) -> None:
    RUNS[f"parent:{key}"] += 1
    await always_fails(key)


@Stent.durable
async def fixable(key: str) -> str:
    RUNS[key] += 1
    if BROKEN["flag"]:
        raise Flaky("not yet")
    return "fixed"


@Stent.durable
async def waits_on_fixable(key: str) -> str:
    return "parent saw " + await fixable(key)


@pytest.fixture(autouse=True)
def _reset() -> None:
    RUNS.clear()
    RUN_TIMES.clear()
    BROKEN["flag"] = True


async def test_failing_task_is_retried_with_backoff_until_it_succeeds(harness: Harness) -> None:
    """A task failing twice succeeds on its third attempt, each retry waiting the policy's growing delay."""
    await harness.start_worker()
    eid = await harness.executor.dispatch(flaky, "a")
    assert await harness.finish(eid) == "ok after 3"
    times = RUN_TIMES["a"]
    assert [round(b - a) for a, b in itertools.pairwise(times)] == [10, 30]


async def test_exception_outside_retry_for_is_not_retried(harness: Harness) -> None:
    """An error the policy's retry_for does not name fails the task at once and dead-letters it."""
    await harness.start_worker()
    eid = await harness.executor.dispatch(wrong_kind, "b")
    with pytest.raises(KeyError):
        await harness.finish(eid)
    assert RUNS["b"] == 1
    [dead] = await harness.executor.list_dead_letters()
    assert dead.function == wrong_kind.name and "KeyError" in dead.reason


async def test_parent_retry_does_not_multiply_a_failed_childs_attempts(harness: Harness) -> None:
    """A child that exhausted its own retries fails its parent without the parent re-running it."""
    await harness.start_worker()
    eid = await harness.executor.dispatch(parent_of_broken, "c")
    with pytest.raises(Flaky, match="child is broken"):
        await harness.finish(eid)
    assert RUNS["c"] == 2
    assert RUNS["parent:c"] == 1
    dead = await harness.executor.list_dead_letters()
    assert [d.function for d in dead] == [always_fails.name]


async def test_replaying_a_dead_letter_resumes_the_parent_that_waited(harness: Harness) -> None:
    """After fixing the cause, replaying a dead-lettered child completes the parent's execution."""
    await harness.start_worker()
    eid = await harness.executor.dispatch(waits_on_fixable, "d")
    with pytest.raises(Flaky):
        await harness.finish(eid)
    [dead] = await harness.executor.list_dead_letters()
    assert (await harness.executor.get_dead_letter(dead.task_id)).execution_id == eid
    BROKEN["flag"] = False
    await harness.executor.replay_dead_letter(dead.task_id)
    assert await harness.finish(eid) == "parent saw fixed"
    assert await harness.state(eid) is ExecutionState.COMPLETED
    assert await harness.executor.list_dead_letters() == []


async def test_discarded_dead_letter_is_gone_and_unknown_ids_raise(harness: Harness) -> None:
    """Discarding removes a dead letter; asking for an unknown one says it does not exist."""
    await harness.start_worker()
    eid = await harness.executor.dispatch(fixable, "e")
    with pytest.raises(Flaky):
        await harness.finish(eid)
    [dead] = await harness.executor.list_dead_letters()
    await harness.executor.discard_dead_letter(dead.task_id)
    assert await harness.executor.list_dead_letters() == []
    with pytest.raises(TaskNotFound):
        await harness.executor.replay_dead_letter(dead.task_id)
    with pytest.raises(TaskNotFound):
        await harness.executor.get_dead_letter("no-such-task")


async def test_retry_policy_given_at_dispatch_overrides_the_decorator(harness: Harness) -> None:
    """dispatch(retry_policy=...) gives this execution's root its own policy."""
    await harness.start_worker()
    eid = await harness.executor.dispatch(fixable, "f", retry_policy=RetryPolicy(max_attempts=4, initial_delay=5))
    with pytest.raises(Flaky):
        await harness.finish(eid)
    assert RUNS["f"] == 4


def test_jitter_comes_from_the_injected_random_source() -> None:
    """Two policies with jitter give the same delays from equally seeded random sources."""
    import random

    policy = RetryPolicy(max_attempts=5, initial_delay=10, jitter=0.5)
    first = [policy.delay(n, random.Random(3)) for n in range(1, 5)]
    second = [policy.delay(n, random.Random(3)) for n in range(1, 5)]
    assert first == second
    assert all(5 <= d <= 15 * 2**3 for d in first)
    assert first[0] != 10  # jitter moved it


@pytest.mark.parametrize(
    "options, message",
    [
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_attempts": "3"}, "max_attempts"),
        ({"initial_delay": -1}, "initial_delay"),
        ({"backoff_factor": 0.5}, "backoff_factor"),
        ({"jitter": 2}, "jitter"),
        ({"retry_for": ()}, "retry_for"),
        ({"retry_for": (int,)}, "exception classes"),
        ({"max_delay": "soon"}, "max_delay"),
    ],
)
def test_bad_retry_policy_values_are_refused(options: dict[str, object], message: str) -> None:
    """Each wrong RetryPolicy value raises a ConfigurationError naming the option."""
    with pytest.raises(ConfigurationError, match=message):
        RetryPolicy(**options)  # type: ignore[arg-type]
