"""One simulated process's connection to the shared in-memory storage: latency, outages, crashes, checks, trace.

Every process (each worker incarnation, and the client) gets its own :class:`SimStorage` in front of the one
:class:`~stent.memory.MemoryStorage`.  A call:

1. is refused if the process has crashed (a dead process writes nothing, not even from its ``finally`` blocks);
2. waits a random network delay, during which other processes' calls may land first;
3. may fail *before* the operation runs (nothing written) or *after* it committed (written, reply lost), with
   :class:`~stent.errors.StorageUnavailable` either way, so the caller cannot tell which (``storage`` faults);
4. runs on the shared storage atomically (memory operations never await), with the invariant checker noting
   what the call was fenced on before and checking every row it changed after;
5. is written to the trace, and waits another random delay on the way back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from stent.errors import StorageUnavailable
from stent.memory import MemoryStorage
from stent.model import ExecutionRecord, LeaseReport, SignalRecord, TaskRecord
from stent.testing.sim.invariants import READS, short

if TYPE_CHECKING:
    from stent.testing.sim.fleet import Simulation

# Housekeeping calls that are traced only when they did something.
_QUIET_UNLESS_EFFECTIVE = frozenset(
    {"record_worker", "acquire_leader", "time_out_executions", "delete_executions_before",
     "delete_dead_letters_before", "delete_workers_before", "remove_worker", "cache_put"}
)  # fmt: skip


class SimStorage:
    """The Storage port for one simulated process; see the module docstring."""

    def __init__(self, inner: MemoryStorage, node: str, sim: Simulation, *, faulty: bool) -> None:
        self._inner = inner
        self._node = node
        self._sim = sim
        self._faulty = faulty
        self.capabilities = inner.capabilities

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._inner, name)
        if name.startswith("_") or not asyncio.iscoroutinefunction(target):
            return target

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await self._call(name, args, kwargs)

        call.__name__ = name
        return call

    async def _call(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        sim = self._sim
        node = self._node
        faults = sim.faults
        self._refuse_if_dead(method)
        delay = faults.latency()
        if delay:
            await sim.pause_for(delay)
            self._refuse_if_dead(method)
        fault = faults.storage_fault() if self._faulty and method not in ("init_db", "close") else None
        if fault == "before":
            sim.record(f"FAULT storage error before {method} (nothing written)")
            raise StorageUnavailable(f"simulated storage outage: {method} did not run")
        checker = sim.checker
        pre = checker.before(method, args, kwargs)
        try:
            result = await getattr(self._inner, method)(*args, **kwargs)
        except Exception as exc:
            checker.after(node, method, args, kwargs, None, pre, ok=False)
            sim.record_call(
                method, f"{_describe_call(method, args)} ! {type(exc).__name__}", traced=method not in READS
            )
            raise
        checker.after(node, method, args, kwargs, result, pre)
        summary = _describe(method, args, result)
        traced = method not in READS and (method not in _QUIET_UNLESS_EFFECTIVE or _effective(result))
        if method == "renew_leases" and isinstance(result, LeaseReport):
            traced = len(result.renewed) < len(args[1]) if len(args) > 1 else True
        if method == "claim_tasks" and not result:
            traced = False
        sim.record_call(method, summary, traced=traced)
        if fault == "after":
            sim.record(f"FAULT storage error after {method} (it committed; the reply is lost)")
            raise StorageUnavailable(f"simulated storage outage: the reply to {method} was lost")
        delay = faults.latency()
        if delay:
            await sim.pause_for(delay)
        return result

    def _refuse_if_dead(self, method: str) -> None:
        if self._node in self._sim.dead:
            raise StorageUnavailable(f"simulated: {self._node} has crashed, its {method} never reaches storage")


def _effective(result: Any) -> bool:
    if isinstance(result, bool):
        return result
    if isinstance(result, int | list | tuple):
        return bool(result)
    return False


def _task(record: TaskRecord) -> str:
    name = record.function.rpartition(":")[2]
    return f"{short(record.task_id)} {name}#{record.attempt} {record.state.value}"


def _describe_call(method: str, args: Sequence[Any]) -> str:
    first = args[0] if args else None
    task_id = getattr(first, "task_id", None)
    if task_id is not None:
        return f"{method} {short(task_id)}"
    if isinstance(first, str) and method not in ("record_worker",):
        return f"{method} {short(first)}"
    return method


def _describe(method: str, args: Sequence[Any], result: Any) -> str:
    head = _describe_call(method, args)
    if isinstance(result, TaskRecord):
        if head.endswith(short(result.task_id)):
            return f"{head} -> {result.state.value}" + (
                f" (attempt {result.attempt})" if result.attempt > 1 else ""
            )
        return f"{head} -> {_task(result)}"
    if method == "complete_tasks" and isinstance(result, list):
        return f"{method} -> " + ", ".join(
            f"{short(r.task_id)} {r.state.value}" if isinstance(r, TaskRecord) else f"! {type(r).__name__}"
            for r in result
        )
    if isinstance(result, list) and result and isinstance(result[0], TaskRecord):
        return f"{head} -> " + ", ".join(_task(r) for r in result)
    if isinstance(result, tuple) and result and isinstance(result[0], ExecutionRecord):
        return f"{head} -> {short(result[0].execution_id)} {result[0].state.value} created={result[1]}"
    if isinstance(result, SignalRecord):
        return f"{head} {result.name} -> " + (
            f"consumed by {short(result.consumed_by)}" if result.consumed_by else "kept"
        )
    if isinstance(result, ExecutionRecord):
        return f"{head} -> {result.state.value}"
    if isinstance(result, LeaseReport):
        lost = sorted(f.task_id for f in (args[1] if len(args) > 1 else ()) if f.task_id not in result.renewed)
        return f"{head} lost " + ", ".join(short(t) for t in lost)
    if result is None or isinstance(result, str):
        return head
    if isinstance(result, list):
        return f"{head} -> {len(result)}"
    return f"{head} -> {result!r}"
