"""The workloads of issue 9 that run a worker in this process: drain, dispatch, latency, sequential workflow,
fan-out, storage calls per child and an idle worker's queries.

Each is an ``async`` function of an :class:`~benchmarks.environment.Environment` and sizes, returning
:class:`~benchmarks.report.Figure` values.  Each times exactly the span the issue names, with
``time.perf_counter``, around the awaited calls; setting up (dispatching the executions a drain starts from,
warming the connections) is outside it.  The client and the worker are two executors that share only the
database and the notifier's server (see :mod:`benchmarks.environment`).
"""

from __future__ import annotations

import asyncio
import math
import random
import statistics
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from benchmarks.counting import StorageCalls
from benchmarks.environment import POLL_ONLY_INTERVAL, Environment, RunningWorker
from benchmarks.report import Figure
from benchmarks.sizes import FULL
from benchmarks.workflows import fan_out, noop, sequence
from stent import Stent
from stent.clocks import FakeClock
from stent.engine.durable import DurableFunction

WARMUP_ROUNDS = 5


class MissingAPI(NotImplementedError):
    """The workload needs an API stent does not have (yet)."""


def dispatch_many_of(client: Stent) -> Any:
    batch = getattr(client, "dispatch_many", None)
    if batch is None:
        raise MissingAPI(
            "Stent.dispatch_many(fn, [(arg, ...), ...]) does not exist yet: the batch dispatch benchmark measures it"
            " once it does"
        )
    return batch


async def dispatch_all(client: Stent, fn: DurableFunction[..., Any], count: int, *, start: int = 0) -> None:
    """Dispatch ``fn(i)`` for ``count`` values of i, as fast as the client can (setup, not measured): in
    batches when stent has batch dispatch, else fifty dispatches at a time."""
    numbers = range(start, start + count)
    try:
        batch = dispatch_many_of(client)
    except MissingAPI:
        for first in range(0, count, 50):
            await asyncio.gather(*(client.dispatch(fn, i) for i in numbers[first : first + 50]))
        return
    for first in range(0, count, 5000):
        await batch(fn, [(i,) for i in numbers[first : first + 5000]])


def percentile(samples: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (``fraction`` 0.5 for the median, 0.99 for p99)."""
    ordered = sorted(samples)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1))]


async def _worker_and_client(env: Environment) -> tuple[Stent, RunningWorker, StorageCalls]:
    """A client executor, and a running worker whose storage calls are counted, idle once this returns."""
    client = await env.executor()
    worker_executor = await env.executor()
    calls = StorageCalls(worker_executor.backend)
    worker = await env.start_worker(worker_executor)
    await calls.idle(lambda: worker.lifecycle.running_tasks)
    return client, worker, calls


async def _run(client: Stent, fn: DurableFunction[..., Any], *args: Any) -> Any:
    return await client.wait_for(await client.dispatch(fn, *args), expiry=300)


# -- throughput ----------------------------------------------------------------------------------------------


async def drain(env: Environment, n: int) -> list[Figure]:
    """Dispatch ``n`` trivial executions, then start the worker: executions completed per second, from the start
    of the worker to the completion of the last one."""
    client = await env.executor()
    worker_executor = await env.executor()
    await dispatch_all(client, noop, n)
    calls = StorageCalls(worker_executor.backend)
    started = time.perf_counter()
    worker = await env.start_worker(worker_executor)
    await calls.until(lambda: calls.completed_roots >= n, max(60.0, n / 20), f"{n} executions completing")
    seconds = time.perf_counter() - started
    await worker.stop()
    details = {"n": n, "seconds": seconds, "completed": calls.completed_roots, "storage_calls": dict(calls.calls)}
    return [Figure("drain", f"drain {n}", n / seconds, "executions/s", "higher", n == FULL.drain, details)]


async def dispatch(env: Environment, n: int, rounds: int) -> list[Figure]:
    """``await dispatch(fn, i)`` ``n`` times in a row from one client: dispatches per second (median round)."""
    client = await env.executor()
    await client.dispatch(noop, -1)  # connect and prepare, outside the timing
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        for i in range(n):
            await client.dispatch(noop, i)
        times.append(time.perf_counter() - started)
    rate = n / statistics.median(times)
    details = {"n": n, "round_seconds": times}
    return [
        Figure("dispatch", f"dispatch {n} one by one", rate, "executions/s", "higher", n == FULL.dispatch, details)
    ]


async def dispatch_batch(env: Environment, n: int, rounds: int) -> list[Figure]:
    """``await dispatch_many(fn, [(i,) for i in range(n)])``: executions dispatched per second (median round)."""
    client = await env.executor()
    batch = dispatch_many_of(client)
    await batch(noop, [(-1,)])
    times = []
    for _ in range(rounds):
        args = [(i,) for i in range(n)]
        started = time.perf_counter()
        ids = await batch(noop, args)
        times.append(time.perf_counter() - started)
        if len(ids) != n:
            raise AssertionError(f"dispatch_many returned {len(ids)} ids for {n} executions")
    rate = n / statistics.median(times)
    details = {"n": n, "round_seconds": times}
    full = n == FULL.dispatch_many
    return [Figure("dispatch_many", f"dispatch_many of {n}", rate, "executions/s", "higher", full, details)]


# -- latency -------------------------------------------------------------------------------------------------


async def latency(env: Environment, rounds: int, *, random_phase: bool = True) -> list[Figure]:
    """An idle worker; dispatch one trivial execution and wait for its result, ``rounds`` times: p50 and p99.

    Polling only, each dispatch comes at a random moment of the worker's poll period (``random_phase``), as a
    user's would; otherwise every round would start just after a poll and measure the worst case.
    """
    client, worker, calls = await _worker_and_client(env)
    phase = random.Random(9)
    samples = []
    for round_number in range(WARMUP_ROUNDS + rounds):
        await calls.idle(lambda: worker.lifecycle.running_tasks, after_empty_claim=False)
        if env.setup.polling and random_phase:
            await asyncio.sleep(phase.uniform(0, POLL_ONLY_INTERVAL))
        started = time.perf_counter()
        await _run(client, noop, round_number)
        if round_number >= WARMUP_ROUNDS:
            samples.append((time.perf_counter() - started) * 1000)
    details = {
        "rounds": rounds,
        "mean_ms": statistics.fmean(samples),
        "max_ms": max(samples),
        "samples_ms": samples,
    }
    full = rounds == FULL.latency_rounds
    return [
        Figure(
            "latency p50", f"latency p50 ({rounds} rounds)", percentile(samples, 0.5), "ms", "lower", full, details
        ),
        Figure("latency p99", f"latency p99 ({rounds} rounds)", percentile(samples, 0.99), "ms", "lower", full),
    ]


async def _timed_rounds(
    env: Environment, fn: DurableFunction[..., Any], warm_up: int, size: int, rounds: int
) -> list[tuple[float, Any]]:
    """``fn(size)`` dispatched and awaited ``rounds`` times, each once the worker is idle, after one ``fn(warm_up)``:
    each round's seconds and result."""
    client, worker, calls = await _worker_and_client(env)
    await _run(client, fn, warm_up)
    timed = []
    for _ in range(rounds):
        await calls.idle(lambda: worker.lifecycle.running_tasks, after_empty_claim=False)
        started = time.perf_counter()
        result = await _run(client, fn, size)
        timed.append((time.perf_counter() - started, result))
    return timed


async def sequential_workflow(env: Environment, steps: int, rounds: int) -> list[Figure]:
    """One durable function awaiting ``steps`` trivial steps one after another: dispatch to result (median)."""
    timed = await _timed_rounds(env, sequence, 2, steps, rounds)
    times = [seconds * 1000 for seconds, _ in timed]
    details = {"steps": steps, "rounds": rounds, "round_ms": times}
    label = f"sequential {steps} steps"
    return [
        Figure(
            f"sequential {FULL.sequential_steps} steps",
            label,
            statistics.median(times),
            "ms",
            "lower",
            steps == FULL.sequential_steps,
            details,
        )
    ]


async def fan_out_workflow(env: Environment, children: int, rounds: int, full_children: int) -> list[Figure]:
    """One workflow mapping ``children`` trivial children and gathering them: dispatch to result (median)."""
    timed = await _timed_rounds(env, fan_out, 5, children, rounds)
    for _, total in timed:
        if total != children * (children - 1) // 2:
            raise AssertionError(f"the fan-out of {children} returned {total}")
    times = [seconds for seconds, _ in timed]
    details = {"children": children, "rounds": rounds, "round_seconds": times}
    return [
        Figure(
            f"fan-out {full_children}",
            f"fan-out {children}",
            statistics.median(times),
            "s",
            "lower",
            children == full_children,
            details,
        )
    ]


# -- storage calls -------------------------------------------------------------------------------------------


async def calls_per_child(env: Environment, children: int) -> list[Figure]:
    """The worker's storage calls for a fan-out of ``children`` trivial children, per child: every call from the
    dispatch to the worker being idle again, the parent's own calls included."""
    client, worker, calls = await _worker_and_client(env)
    await _run(client, fan_out, 5)  # warm-up
    await calls.idle(lambda: worker.lifecycle.running_tasks)
    before = Counter(calls.calls)
    await _run(client, fan_out, children)
    await calls.idle(lambda: worker.lifecycle.running_tasks)
    spent = calls.calls - before
    details = {"children": children, "calls": sum(spent.values()), "by_method": dict(spent.most_common())}
    full = children == FULL.cost_children
    return [
        Figure(
            "calls per child",
            f"storage calls per child ({children} children)",
            sum(spent.values()) / children,
            "calls",
            "lower",
            full,
            details,
        )
    ]


async def idle_queries(env: Environment, intervals: int) -> list[Figure]:
    """An idle worker, watched for ``intervals`` periods of its ``poll_interval_max`` of virtual time (a fake
    clock, moved by hand, so the count is exact whatever the machine's load): storage calls per period."""
    clock = FakeClock()
    executor = await env.executor(clock=clock)
    calls = StorageCalls(executor.backend)
    await env.start_worker(executor)
    period = float(env.serve_options().get("poll_interval_max", 5.0))
    step = period / 10

    async def watch(periods: int) -> None:
        for _ in range(periods * 10):
            clock.advance(step)
            await calls.settled()

    await watch(10)  # the idle backoff reaches poll_interval_max
    before = Counter(calls.calls)
    await watch(intervals)
    spent = calls.calls - before
    details = {"periods": intervals, "period_seconds": period, "by_method": dict(spent.most_common())}
    return [
        Figure(
            "idle queries per poll_interval_max",
            f"idle worker: queries per {period:g}s poll_interval_max",
            sum(spent.values()) / intervals,
            "queries",
            "lower",
            True,
            details,
        )
    ]
