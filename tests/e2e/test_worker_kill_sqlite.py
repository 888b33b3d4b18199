"""Process-level faults on SQLite: ``stent worker`` processes SIGKILLed at random moments of a mixed workload.

Three workers share one SQLite file.  While chains, fan-outs, durable sleeps, retries and signal waits run, the
test kills a random worker at random moments and starts a replacement.  Then it checks, from storage and from the
markers every run of user code leaves (see kill_workload.py):

* every execution finished, with the right result;
* no completed step ran again: no run of a task's code started after storage recorded it completed;
* no task ran twice concurrently: each run of a key ended (or its process died) before the next one started;
* recovery is bounded: the tasks a killed worker held were taken over within the lease plus a poll interval
  (plus a margin for process scheduling on a loaded machine).

The seed is printed; ``STENT_KILL_SEED=N`` replays a schedule.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import attrs
import pytest

from stent import ExecutionState, Stent
from stent.model import TaskKind

HERE = Path(__file__).parent
WORKLOAD = HERE / "kill_workload.py"
sys.path.insert(0, str(HERE))
import kill_workload as load

pytestmark = pytest.mark.timeout(180)

LEASE = 2.0
HEARTBEAT = 0.5
POLL_MAX = 0.2
#: Process start-up, scheduling and SQLite lock waits on a busy two-core machine, on top of lease + poll.
MARGIN = 2.0
WORKERS = 3
KILLS = 4


@attrs.define
class Fleet:
    """The worker processes, with when and which ones were killed."""

    db: Path
    workdir: Path
    processes: dict[str, subprocess.Popen[bytes]] = attrs.Factory(dict)
    killed_at: dict[int, float] = attrs.Factory(dict)  # pid -> time.time() of the SIGKILL
    started: int = 0

    def start(self) -> str:
        self.started += 1
        name = f"kw{self.started}"
        log = open(self.workdir / f"{name}.log", "wb")  # noqa: SIM115 (kept open for the process's life)
        command = [
            sys.executable, "-m", "stent.cli.main", "--storage", f"sqlite:///{self.db}", "worker", str(WORKLOAD),
            "--worker-id", name, "--max-concurrency", "12", "--lease-duration", f"{LEASE}s",
            "--heartbeat-interval", f"{HEARTBEAT}s", "--poll-interval", "0.05", "--poll-interval-max", f"{POLL_MAX}s",
        ]  # fmt: skip
        env = {**os.environ, "STENT_KILL_DIR": str(self.workdir)}
        self.processes[name] = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        return name

    async def ready(self, name: str) -> None:
        """Wait (bounded) until the worker printed its ready line."""
        deadline = time.monotonic() + 30
        log = self.workdir / f"{name}.log"
        while b" ready (" not in log.read_bytes():
            if time.monotonic() > deadline or self.processes[name].poll() is not None:
                raise AssertionError(f"worker {name} did not get ready: {log.read_text(errors='replace')}")
            await asyncio.sleep(0.05)

    def kill(self, name: str) -> None:
        process = self.processes.pop(name)
        process.send_signal(signal.SIGKILL)
        self.killed_at[process.pid] = time.time()
        process.wait(10)

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()


@attrs.frozen
class RunOfKey:
    pid: int
    start: float
    end: float | None  # end or stop marker; None when the process died in it


def read_runs(workdir: Path, killed_at: dict[int, float]) -> dict[str, list[RunOfKey]]:
    """Every run of every key, from the markers, in start order."""
    open_runs: dict[tuple[str, int], float] = {}
    runs: dict[str, list[RunOfKey]] = defaultdict(list)
    path = workdir / "markers"
    for line in path.read_text().splitlines():
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


async def held_by(backend: object, eids: list[str], worker: str) -> set[str]:
    """Tasks of these executions leased by ``worker`` right now."""
    held: set[str] = set()
    for eid in eids:
        for task in await backend.list_execution_tasks(eid):  # type: ignore[attr-defined]
            if task.lease_owner == worker and task.state.leased:
                held.add(task.task_id)
    return held


async def taken_over(backend: object, task_ids: set[str], worker: str, since: float) -> float:
    """Seconds from ``since`` until none of ``task_ids`` is leased by the dead ``worker`` any more."""
    deadline = time.monotonic() + 60
    while True:
        tasks = await backend.get_tasks(sorted(task_ids))  # type: ignore[attr-defined]
        if all(not (t.lease_owner == worker and t.state.leased) for t in tasks):
            return time.monotonic() - since
        if time.monotonic() > deadline:
            raise AssertionError(f"tasks of killed worker {worker} were never taken over")
        await asyncio.sleep(0.05)


async def test_sigkilled_workers_lose_nothing_and_never_double_run(tmp_path: Path) -> None:
    """Random SIGKILLs of `stent worker` processes during a mixed workload on SQLite."""
    seed = int(os.environ.get("STENT_KILL_SEED", random.randrange(1_000_000)))
    print(f"kill schedule seed: {seed} (replay with STENT_KILL_SEED={seed})")
    rng = random.Random(seed)
    db = tmp_path / "kill.db"
    backend = Stent.backends.SQLiteBackend(str(db))
    await backend.init_db()
    executor = Stent(backend=backend)
    plan: dict[str, tuple[str, int]] = {}
    for n in range(6):
        plan[f"chain{n}"] = ("chain", 12 + n % 4)
        plan[f"fan{n}"] = ("fan", 3 + n % 3)
    for n in range(4):
        plan[f"nap{n}"] = ("napper", 0)
        plan[f"appr{n}"] = ("approval", 7 + n)
    functions = {"chain": load.chain, "fan": load.fan, "napper": load.napper, "approval": load.approval}
    for tag, (function, size) in plan.items():
        args = (tag,) if function in ("napper", "approval") else (tag, size)
        await executor.dispatch(functions[function], *args, execution_id=tag)
    eids = list(plan)

    fleet = Fleet(db, tmp_path)
    recoveries: list[float] = []
    try:
        names = [fleet.start() for _ in range(WORKERS)]
        for name in names:
            await fleet.ready(name)
        for kill_no in range(KILLS):
            await asyncio.sleep(rng.uniform(0.2, 1.2))  # a random moment of the run
            if kill_no == 1:
                for n in range(4):  # the approvals' signals arrive mid-run
                    await executor.send_signal(f"appr{n}", "go", plan[f"appr{n}"][1])
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
        results = {eid: await executor.wait_for(eid, expiry=90) for eid in eids}
    finally:
        fleet.stop_all()
        logs = {p.name: p.read_text(errors="replace")[-2000:] for p in tmp_path.glob("kw*.log")}

    # Every execution finished, with the right result.
    for tag, (function, size) in plan.items():
        assert results[tag] == load.expected(function, tag, size), (tag, results[tag], logs)
        assert (await executor.state_of(tag)).state is ExecutionState.COMPLETED

    runs = read_runs(tmp_path, fleet.killed_at)
    # No task ran twice concurrently: each run ended, or its process died, before the next run began.
    for key, key_runs in runs.items():
        for before, after in itertools.pairwise(key_runs):
            assert before.end is not None, f"{key}: a run in pid {before.pid} never ended, yet another began"
            assert before.end <= after.start + 0.001, f"{key} ran concurrently: {before} and {after}"

    # No completed step ran again: nothing started after storage recorded the task completed.
    for eid in eids:
        for task in await backend.list_execution_tasks(eid):
            if task.kind is not TaskKind.CALL or task.state.value != "completed":
                continue
            key = f"root:{eid}" if task.parent_task_id is None else _key_of(task.args)
            finished = task.finished_at.timestamp() if task.finished_at else None
            late = [r for r in runs.get(key, []) if finished is not None and r.start > finished]
            assert not late, f"{key} ran again after it completed at {task.finished_at}: {late}"

    # Recovery: a killed worker's tasks were taken over within the lease plus a poll interval (and a margin).
    assert len(fleet.killed_at) == KILLS
    bound = LEASE + POLL_MAX + MARGIN
    print(f"recovery times: {[round(r, 2) for r in recoveries]} (bound {bound}s)")
    assert all(r <= bound for r in recoveries), recoveries
    await executor.close()


def _key_of(args_text: str) -> str:
    """The key an activity was called with: the first string argument in its stored call."""
    import json

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
