"""The scale workloads of issue 9: a worker's memory with many suspended executions, and a claim's cost with a
deep backlog.

The memory is that of a real ``stent worker`` process (``stent worker benchmarks/workflows.py``, fifty at once),
read from outside as its resident set size (``VmRSS`` in ``/proc/<pid>/status``, so Linux only): everything the
process holds, the interpreter's own allocator included, not just Python objects.  It is read once the worker
has suspended a warm-up batch (so imports, prepared statements and first-use caches are in the baseline), and
again once it has suspended the measured ones.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import statistics
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from benchmarks.environment import MAX_CONCURRENCY, POLL_ONLY_INTERVAL, Environment, rss_bytes
from benchmarks.report import Figure
from benchmarks.sizes import FULL
from benchmarks.workflows import await_signal, noop
from benchmarks.workloads import dispatch_all
from stent import Stent
from stent.model import ClaimRequest, ExecutionState

WORKFLOWS = Path(__file__).with_name("workflows.py")
MB = 1024 * 1024


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class WorkerProcess:
    """``stent worker`` on the environment's storage, with a health port to ask how many tasks it runs."""

    def __init__(self, env: Environment) -> None:
        self.env = env
        self.port = _free_port()
        self.log = env.workdir / "worker.log"
        self.process: asyncio.subprocess.Process | None = None

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "stent.cli.main", "worker", str(WORKFLOWS), "--storage", self.env.storage_url]
        cmd += [
            "--max-concurrency",
            str(MAX_CONCURRENCY),
            "--health-port",
            str(self.port),
            "--health-host",
            "127.0.0.1",
        ]
        if self.env.notifier_url is not None:
            cmd += ["--notifier", self.env.notifier_url]
        else:
            cmd += ["--poll-interval", str(POLL_ONLY_INTERVAL), "--poll-interval-max", str(POLL_ONLY_INTERVAL)]
        return cmd

    async def start(self, timeout: float = 60.0) -> None:
        with self.log.open("wb") as log:
            self.process = await asyncio.create_subprocess_exec(
                *self.command(), stdout=asyncio.subprocess.PIPE, stderr=log
            )
        assert self.process.stdout is not None
        try:
            async with asyncio.timeout(timeout):
                while b" ready" not in (line := await self.process.stdout.readline()):
                    if not line:
                        raise RuntimeError(
                            f"stent worker exited before it was ready: {self.log.read_text()[-2000:]}"
                        )
        except TimeoutError:
            raise RuntimeError(f"stent worker was not ready within {timeout:g}s: {self.log.read_text()[-2000:]}")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def running_tasks(self) -> int:
        def get() -> dict[str, Any]:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=10) as response:
                return dict(json.load(response))

        health = await asyncio.to_thread(get)
        return sum(int(w["running_tasks"]) for w in health["workers"])

    async def stop(self, timeout: float = 30.0) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


async def _all_suspended(client: Stent, worker: WorkerProcess, timeout: float) -> None:
    """Wait until nothing is pending and the worker runs nothing, twice in a row (a claim may be in flight)."""
    deadline = time.monotonic() + timeout
    calm = 0
    while calm < 2:
        depth, running = await client.queue_depth(), await worker.running_tasks()
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"benchmark: the worker did not suspend every execution within {timeout:g}s ({depth} tasks still"
                f" pending, {running} running); the end of its log:\n{worker.log.read_text()[-3000:]}"
            )
        calm = calm + 1 if depth == 0 and running == 0 else 0
        await asyncio.sleep(0.2)


async def suspended_memory(env: Environment, n: int, warmup: int = 100) -> list[Figure]:
    """What ``n`` executions suspended on a signal add to a ``stent worker`` process's memory (RSS, MB)."""
    client = await env.executor()
    worker = WorkerProcess(env)
    await worker.start()
    try:
        await dispatch_all(client, await_signal, warmup)
        await _all_suspended(client, worker, 120)
        before = rss_bytes(worker.pid)
        await dispatch_all(client, await_signal, n, start=warmup)
        await _all_suspended(client, worker, max(120.0, n / 20))
        after = rss_bytes(worker.pid)
        waiting = (await client.list_executions(state=ExecutionState.RUNNING, limit=1)).total
    finally:
        await worker.stop()
    details = {
        "n": n,
        "warmup": warmup,
        "rss_before": before,
        "rss_after": after,
        "unfinished_executions": waiting,
    }
    return [
        Figure(
            f"memory of {FULL.suspended} suspended",
            f"memory of {n} suspended executions (worker RSS)",
            (after - before) / MB,
            "MB",
            "lower",
            n == FULL.suspended,
            details,
        )
    ]


async def claim_scaling(env: Environment, pending: tuple[int, int], rounds: int) -> list[Figure]:
    """A claim of up to fifty tasks (``storage.claim_tasks``) with ``pending[0]`` and then ``pending[1]`` tasks
    pending: the median time of ``rounds`` claims at each, and how much slower the larger backlog makes it.

    The database's planner statistics are refreshed after the small backlog is in (as autovacuum would), so the
    large backlog is claimed first with statistics of the small one, as right after a burst of work, and then
    again after a refresh.  The slowdown is the worse of the two against the small backlog.
    """
    small, large = pending
    client = await env.executor()
    storage = client.backend
    limit = min(MAX_CONCURRENCY, small // (rounds + 1))
    request = ClaimRequest(
        worker_id="bench-claimer", functions=frozenset({noop.name}), limit=limit, lease_seconds=300
    )

    async def claims() -> list[float]:
        times = []
        for _ in range(rounds):
            started = time.perf_counter()
            claimed = await storage.claim_tasks(request, client.clock.now())
            times.append((time.perf_counter() - started) * 1000)
            if len(claimed) != limit:
                raise AssertionError(f"a claim of {limit} got {len(claimed)} tasks")
        return times

    await dispatch_all(client, noop, small)
    await env.refresh_statistics()
    await storage.claim_tasks(ClaimRequest("bench-claimer", frozenset({noop.name}), 1, 300), client.clock.now())
    small_ms = await claims()
    left = small - 1 - rounds * limit
    await dispatch_all(client, noop, large - left, start=small)
    stale_ms = await claims()
    await env.refresh_statistics()
    fresh_ms = await claims()
    fast, stale, fresh = (statistics.median(times) for times in (small_ms, stale_ms, fresh_ms))
    details = {"limit": limit, "rounds": rounds, "small_ms": small_ms, "stale_ms": stale_ms, "fresh_ms": fresh_ms}
    full = pending == FULL.claim_pending
    key_small, key_large = FULL.claim_pending
    return [
        Figure(
            f"claim with {key_small} pending", f"claim of {limit} with {small} pending", fast, "ms", "lower", full
        ),
        Figure(
            f"claim with {key_large} pending, stale statistics",
            f"claim of {limit} with {large} pending, statistics of {small}",
            stale,
            "ms",
            "lower",
            full,
        ),
        Figure(
            f"claim with {key_large} pending",
            f"claim of {limit} with {large} pending, statistics refreshed",
            fresh,
            "ms",
            "lower",
            full,
        ),
        Figure(
            f"claim slowdown {key_large}/{key_small}",
            f"claim slowdown {large}/{small} pending (worse of the two)",
            max(stale, fresh) / fast,
            "x",
            "lower",
            full,
            details,
        ),
    ]
