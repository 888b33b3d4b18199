"""Shared pieces of the process-level fault tests: a fleet of ``stent worker`` processes, the mixed workload
they run (kill_workload.py), and the checks every fault test makes afterwards.

The checks, from storage and from the markers every run of user code leaves (see kill_workload.py):

* every execution finished, with the right result;
* no completed step ran again: no run of a task's code started after storage recorded it completed;
* no task ran twice concurrently: each run of a key ended (or its process died) before the next one started.

``run_kill_scenario`` is the SIGKILL test itself, on any storage URL: random kills of workers holding work,
each replaced at once, and the time until a killed worker's tasks were taken over measured against the lease
plus a poll interval (plus a margin for process scheduling on a loaded two-core machine).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import attrs

from stent import ExecutionState, Stent
from stent.model import TaskKind

HERE = Path(__file__).parent
WORKLOAD = HERE / "kill_workload.py"
sys.path.insert(0, str(HERE))
import kill_workload as load

LEASE = 2.0
HEARTBEAT = 0.5
POLL_MAX = 0.2
#: Process start-up, scheduling and storage lock waits on a busy two-core machine, on top of lease + poll.
MARGIN = 2.0

Plan = dict[str, tuple[str, int]]  # execution id -> (workflow, size)


def seeded(env: str) -> random.Random:
    """A random source whose seed is printed, and replayed from the environment variable ``env``."""
    seed = int(os.environ.get(env, random.randrange(1_000_000)))
    print(f"fault schedule seed: {seed} (replay with {env}={seed})")
    return random.Random(seed)


# -- the fleet ----------------------------------------------------------------------------------------------


@attrs.define
class Fleet:
    """``stent worker`` processes on one storage (and notifier), with when and which ones were killed."""

    storage_url: str
    workdir: Path
    notifier_url: str | None = None
    lease: float = LEASE
    heartbeat: float = HEARTBEAT
    poll_max: float = POLL_MAX
    processes: dict[str, subprocess.Popen[bytes]] = attrs.Factory(dict)
    killed_at: dict[int, float] = attrs.Factory(dict)  # pid -> time.time() of the SIGKILL
    started: int = 0

    def start(self, *options: str, poll: Sequence[str] | None = None, log_level: str = "WARNING") -> str:
        """Start one more worker (``options`` are extra ``stent worker`` flags); its name."""
        self.started += 1
        name = f"kw{self.started}"
        log = open(self.workdir / f"{name}.log", "wb")  # noqa: SIM115 (kept open for the process's life)
        polling = poll or ("--poll-interval", "0.05", "--poll-interval-max", f"{self.poll_max}s")
        command = [
            sys.executable, "-m", "stent.cli.main", "--log-level", log_level, "--storage", self.storage_url,
            "worker", str(WORKLOAD), "--worker-id", name, "--max-concurrency", "12",
            "--lease-duration", f"{self.lease}s", "--heartbeat-interval", f"{self.heartbeat}s", *polling,
        ]  # fmt: skip
        if self.notifier_url:
            command += ["--notifier", self.notifier_url]
        env = {**os.environ, "STENT_KILL_DIR": str(self.workdir)}
        self.processes[name] = subprocess.Popen(
            [*command, *options], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        return name

    def log(self, name: str) -> str:
        return (self.workdir / f"{name}.log").read_text(errors="replace")

    async def until_logged(self, name: str, found: Callable[[str], bool], what: str, timeout: float = 30) -> float:
        """Wait (bounded) until ``found`` holds for the worker's log; the time.time() it was seen."""
        deadline = time.monotonic() + timeout
        while not found(self.log(name)):
            if time.monotonic() > deadline or self.processes[name].poll() is not None:
                raise AssertionError(f"worker {name}: {what} not seen within {timeout}s: {self.log(name)[-3000:]}")
            await asyncio.sleep(0.05)  # polling a condition of another process, bounded above
        return time.time()

    async def ready(self, *names: str) -> None:
        for name in names:
            await self.until_logged(name, lambda text: " ready (" in text, "its ready line")

    def kill(self, name: str) -> None:
        process = self.processes.pop(name)
        process.send_signal(signal.SIGKILL)
        self.killed_at[process.pid] = time.time()
        process.wait(10)

    def dead(self) -> dict[str, int]:
        """The workers that exited by themselves (not killed by the test), with their exit codes."""
        return {name: p.returncode for name, p in self.processes.items() if p.poll() is not None}

    def stop_all(self) -> dict[str, int]:
        """SIGTERM (drain) every worker and wait; each one's exit code."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        return {name: p.returncode for name, p in self.processes.items()}

    def tails(self) -> dict[str, str]:
        return {p.stem: p.read_text(errors="replace")[-2000:] for p in self.workdir.glob("kw*.log")}


# -- the workload -------------------------------------------------------------------------------------------

FUNCTIONS = {"chain": load.chain, "fan": load.fan, "napper": load.napper, "approval": load.approval}


def mixed_plan(chains: int = 6, fans: int = 6, nappers: int = 4, approvals: int = 4) -> Plan:
    """Chains, fan-outs, durable sleeps with a retried step, and signal waits."""
    plan: Plan = {}
    for n in range(chains):
        plan[f"chain{n}"] = ("chain", 12 + n % 4)
    for n in range(fans):
        plan[f"fan{n}"] = ("fan", 3 + n % 3)
    for n in range(nappers):
        plan[f"nap{n}"] = ("napper", 0)
    for n in range(approvals):
        plan[f"appr{n}"] = ("approval", 7 + n)
    return plan


async def dispatch_plan(executor: Stent, plan: Plan) -> None:
    for tag, (function, size) in plan.items():
        args = (tag,) if function in ("napper", "approval") else (tag, size)
        await executor.dispatch(FUNCTIONS[function], *args, execution_id=tag)


async def send_approvals(executor: Stent, plan: Plan) -> None:
    for tag, (function, size) in plan.items():
        if function == "approval":
            await executor.send_signal(tag, "go", size)


async def wait_all(executor: Stent, plan: Plan, expiry: float = 90) -> dict[str, Any]:
    return {eid: await executor.wait_for(eid, expiry=expiry) for eid in plan}


# -- the checks ---------------------------------------------------------------------------------------------


@attrs.frozen
class RunOfKey:
    pid: int
    start: float
    end: float | None  # end or stop marker; None when the process died in it


def read_runs(workdir: Path, killed_at: dict[int, float]) -> dict[str, list[RunOfKey]]:
    """Every run of every key, from the markers, in start order."""
    open_runs: dict[tuple[str, int], float] = {}
    runs: dict[str, list[RunOfKey]] = defaultdict(list)
    for line in (workdir / "markers").read_text().splitlines():
        kind, key, pid_text, when_text = line.split()
        pid, when = int(pid_text), float(when_text)
        if kind == "start":
            if (key, pid) in open_runs:  # the same process ran it again (a retry) after a run it never closed
                runs[key].append(RunOfKey(pid, open_runs[(key, pid)], None))
            open_runs[(key, pid)] = when
        else:
            runs[key].append(RunOfKey(pid, open_runs.pop((key, pid)), when))
    for (key, pid), started in open_runs.items():
        runs[key].append(RunOfKey(pid, started, killed_at.get(pid)))
    for key_runs in runs.values():
        key_runs.sort(key=lambda r: r.start)
    return runs


async def check_outcome(
    executor: Stent, plan: Plan, results: dict[str, Any], workdir: Path, killed_at: dict[int, float]
) -> None:
    """Every execution finished with the right result; no task ran twice at once; no completed step ran again."""
    logs = {p.stem: p.read_text(errors="replace")[-2000:] for p in workdir.glob("kw*.log")}
    for tag, (function, size) in plan.items():
        assert results[tag] == load.expected(function, tag, size), (tag, results[tag], logs)
        assert (await executor.state_of(tag)).state is ExecutionState.COMPLETED

    runs = read_runs(workdir, killed_at)
    for key, key_runs in runs.items():
        for before, after in itertools.pairwise(key_runs):
            assert before.end is not None, f"{key}: a run in pid {before.pid} never ended, yet another began"
            assert before.end <= after.start + 0.001, f"{key} ran concurrently: {before} and {after}"

    for eid in plan:
        for task in await executor.backend.list_execution_tasks(eid):
            if task.kind is not TaskKind.CALL or task.state.value != "completed":
                continue
            key = f"root:{eid}" if task.parent_task_id is None else key_of(task.args)
            finished = task.finished_at.timestamp() if task.finished_at else None
            late = [r for r in runs.get(key, []) if finished is not None and r.start > finished]
            assert not late, f"{key} ran again after it completed at {task.finished_at}: {late}"


def key_of(args_text: str) -> str:
    """The key an activity was called with: the first string argument in its stored call."""

    def first_string(value: object) -> str | None:
        if isinstance(value, str) and ":" in value:
            return value
        if isinstance(value, dict):
            value = list(value.values())
        if isinstance(value, list):
            for item in value:
                found = first_string(item)
                if found:
                    return found
        return None

    found = first_string(json.loads(args_text))
    assert found is not None, args_text
    return found


async def finished_since(backend: Any, eids: Sequence[str], since: float, timeout: float = 60) -> float:
    """Seconds from ``since`` (a time.time()) until storage records a task of these executions finished after it.

    Storage errors while a server comes back are retried until the deadline.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            for eid in eids:
                for task in await backend.list_execution_tasks(eid):
                    if task.finished_at is not None and task.finished_at.timestamp() > since:
                        return time.time() - since
        except Exception as exc:  # the storage is coming back: keep looking until the deadline
            if time.monotonic() > deadline:
                raise AssertionError(f"storage never answered again: {exc}") from exc
        if time.monotonic() > deadline:
            raise AssertionError("no task finished after the fault: progress never resumed")
        await asyncio.sleep(0.05)


# -- SIGKILL at random moments --------------------------------------------------------------------------------


async def held_by(backend: Any, eids: Sequence[str], worker: str) -> set[str]:
    """Tasks of these executions leased by ``worker`` right now."""
    held: set[str] = set()
    for eid in eids:
        for task in await backend.list_execution_tasks(eid):
            if task.lease_owner == worker and task.state.leased:
                held.add(task.task_id)
    return held


async def taken_over(backend: Any, task_ids: set[str], worker: str, since: float) -> float:
    """Seconds from ``since`` until none of ``task_ids`` is leased by the dead ``worker`` any more."""
    deadline = time.monotonic() + 60
    while True:
        tasks = await backend.get_tasks(sorted(task_ids))
        if all(not (t.lease_owner == worker and t.state.leased) for t in tasks):
            return time.monotonic() - since
        if time.monotonic() > deadline:
            raise AssertionError(f"tasks of killed worker {worker} were never taken over")
        await asyncio.sleep(0.05)


async def run_kill_scenario(
    executor: Stent, fleet: Fleet, rng: random.Random, *, workers: int = 3, kills: int = 4
) -> list[float]:
    """Kill a random worker holding work at random moments, replace it, and check everything; recovery times."""
    plan = mixed_plan()
    await dispatch_plan(executor, plan)
    backend, eids = executor.backend, list(plan)
    recoveries: list[float] = []
    try:
        names = [fleet.start() for _ in range(workers)]
        await fleet.ready(*names)
        for kill_no in range(kills):
            await asyncio.sleep(rng.uniform(0.2, 1.2))  # a random moment of the run
            if kill_no == 1:
                await send_approvals(executor, plan)  # the approvals' signals arrive mid-run
            # A random worker among those holding work (any worker once nothing is held any more).
            holding = {name: await held_by(backend, eids, name) for name in names}
            victim = rng.choice(sorted(n for n in names if holding[n]) or names)
            held = holding[victim]
            fleet.kill(victim)
            killed = time.monotonic()
            names.remove(victim)
            names.append(fleet.start())  # ready within the lease, so capacity is back before tasks expire
            print(f"kill {kill_no + 1}: {victim} held {len(held)} tasks")
            if held:
                recoveries.append(await taken_over(backend, held, victim, killed))
        results = await wait_all(executor, plan)
    finally:
        fleet.stop_all()
    await check_outcome(executor, plan, results, fleet.workdir, fleet.killed_at)
    assert len(fleet.killed_at) == kills
    bound = fleet.lease + fleet.poll_max + MARGIN
    print(f"recovery times: {[round(r, 2) for r in recoveries]} (bound {bound}s)")
    assert all(r <= bound for r in recoveries), recoveries
    return recoveries


# -- PostgreSQL schemas -------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def fresh_schema(server_url: str) -> AsyncIterator[str]:
    """A storage URL on a schema of its own on ``server_url`` (notifying in its transactions); dropped after."""
    import asyncpg

    schema = f"stent_e2e_{uuid.uuid4().hex[:12]}"
    try:
        yield f"{server_url}?schema={schema}&max_size=4&notify=true"
    finally:
        conn = await asyncpg.connect(server_url)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()
