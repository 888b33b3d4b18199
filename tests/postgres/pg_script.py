"""Random scripts of Storage port calls, for differential tests against the reference MemoryStorage.

A :class:`Script` chooses each next call from the reference storage's current state (which tasks are leased,
which executions exist...), so most calls are meaningful, and some are deliberately wrong (stale tokens, missing
ids, finished executions) so that errors are compared too.  Every call is made on both storages with the same
arguments and the same ``now``; results and exceptions must be equal, and so must everything stored.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs

from stent.memory import MemoryStorage
from stent.model import (
    SIGNAL_PREFIX,
    SLEEP_FUNCTION,
    ClaimRequest,
    Completion,
    ContextUpdate,
    Fence,
    NewExecution,
    NewTask,
    StepKey,
    TaskFailure,
    TaskKind,
    TaskRecord,
    TaskState,
    WorkerInfo,
)
from stent.ports import Storage

FUNCTIONS = ("f", "g", "lim")
QUEUES = ("q1", "q2")
TAGS = ("a", "b")
SIGNALS = ("s1", "s2")
WORKERS = ("w1", "w2", "w3")

Call = tuple[str, Callable[[Storage], Awaitable[Any]]]


@attrs.define
class Script:
    """Chooses calls; ``reference`` is the memory storage whose state guides the choice."""

    reference: MemoryStorage
    rng: random.Random
    now: datetime = datetime(2030, 1, 1, tzinfo=UTC)
    _ids: int = 0

    def fresh(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}{self._ids}"

    # -- what the reference holds ----------------------------------------------------------------------------

    def tasks(self) -> list[TaskRecord]:
        return list(self.reference._tasks.values())

    def leased(self) -> list[TaskRecord]:
        return [t for t in self.tasks() if t.state.leased]

    def executions(self) -> list[str]:
        return list(self.reference._executions)

    def pick(self, items: list[Any]) -> Any:
        return self.rng.choice(items) if items else None

    def fence_of(self, task: TaskRecord | None) -> Fence:
        """Usually the task's current fence; sometimes a stale token or a task that is not leased."""
        roll = self.rng.random()
        if task is None or roll < 0.08:
            any_task = self.pick(self.tasks())
            return Fence(any_task.task_id, any_task.fencing_token) if any_task else Fence("missing", 1)
        if roll < 0.15:
            return Fence(task.task_id, task.fencing_token + self.rng.choice((-1, 1)))
        return task.fence

    def later(self, low: float, high: float) -> datetime:
        return self.now + timedelta(seconds=round(self.rng.uniform(low, high), 6))

    # -- builders ----------------------------------------------------------------------------------------------

    def new_task(self, function: str | None = None) -> NewTask:
        function = function or self.rng.choice(FUNCTIONS)
        rng = self.rng
        return NewTask(
            task_id=self.fresh("t"),
            function=function,
            args=f"[{rng.randint(0, 9)}]",
            queue=rng.choice(QUEUES),
            tags=tuple(t for t in TAGS if rng.random() < 0.3),
            priority=rng.choice((-1, 0, 0, 1, 2)),
            scheduled_for=self.later(-3, 5) if rng.random() < 0.3 else None,
            max_attempts=rng.randint(1, 3),
            max_concurrent=2 if function == "lim" else None,
        )

    def new_step(self) -> NewTask:
        roll = self.rng.random()
        if roll < 0.15:
            result = f'"{self.later(0, 100).isoformat()}"'
            return NewTask(
                task_id=self.fresh("t"),
                function=SLEEP_FUNCTION,
                args="[]",
                kind=TaskKind.SLEEP,
                state=TaskState.COMPLETED,
                result=result,
            )
        if roll < 0.35:
            name = self.rng.choice(SIGNALS)
            return NewTask(task_id=self.fresh("t"), function=SIGNAL_PREFIX + name, args="[]", kind=TaskKind.SIGNAL)
        return self.new_task()

    # -- the calls ---------------------------------------------------------------------------------------------

    def next_call(self) -> Call:
        rng, now = self.rng, self.now
        kinds = [
            ("create", 12),
            ("claim", 14),
            ("steps", 10),
            ("complete", 8),
            ("complete_many", 5),
            ("create_many", 3),
            ("fail", 6),
            ("release", 2),
            ("suspend", 4),
            ("cancel_task", 2),
            ("expire", 2),
            ("renew", 3),
            ("signal", 4),
            ("cancel_execution", 2),
            ("time_out", 2),
            ("dead_letters", 3),
            ("cache", 3),
            ("leader", 2),
            ("cleanup", 2),
            ("workers", 2),
            ("reads", 4),
            ("advance", 8),
        ]
        kind = rng.choices([k for k, _ in kinds], [w for _, w in kinds])[0]
        return getattr(self, f"_{kind}")(rng, now)

    def _create(self, rng: random.Random, now: datetime) -> Call:
        existing = self.executions()
        execution_id = rng.choice(existing) if existing and rng.random() < 0.1 else self.fresh("e")
        new = NewExecution(execution_id, self.new_task(), self.later(5, 60) if rng.random() < 0.2 else None)
        return "create_execution", lambda s: s.create_execution(new, now)

    def _claim(self, rng: random.Random, now: datetime) -> Call:
        request = ClaimRequest(
            worker_id=rng.choice(WORKERS),
            functions=frozenset(f for f in FUNCTIONS if rng.random() < 0.8),
            limit=rng.randint(0, 5),
            lease_seconds=rng.choice((0, 5, 10, 30)),
            queues=None if rng.random() < 0.5 else frozenset(q for q in QUEUES if rng.random() < 0.6),
            tags=None if rng.random() < 0.5 else frozenset(t for t in TAGS if rng.random() < 0.5),
            time_out_limit=rng.choice((0, 0, 1, 3)),
        )
        return "claim_tasks", lambda s: s.claim_tasks(request, now)

    def _steps(self, rng: random.Random, now: datetime) -> Call:
        parent = self.pick(self.leased())
        fence = self.fence_of(parent)
        attempt = parent.attempt if parent else 1
        known = [
            t.step
            for t in self.tasks()
            if parent and t.parent_task_id == parent.task_id and t.parent_attempt == attempt
        ]
        # Mostly new step numbers; sometimes ones that exist (a replay finds them instead of creating them).
        first = rng.choice(known) if known and rng.random() < 0.2 else max(known, default=-1) + 1
        steps = [(StepKey(fence.task_id, attempt, first + i), self.new_step()) for i in range(rng.randint(0, 4))]
        if steps and rng.random() < 0.1:
            steps.append(steps[0])  # the same key twice in one call
        allow = rng.random() < 0.2
        return "get_or_create_steps", lambda s: s.get_or_create_steps(fence, steps, now, allow_stopping=allow)

    def _complete(self, rng: random.Random, now: datetime) -> Call:
        fence = self.fence_of(self.pick(self.leased()))
        update = None
        if rng.random() < 0.4:
            update = ContextUpdate(
                increments=(("n", rng.randint(1, 3)), ("m", 1))[: rng.randint(0, 2)],
                state=(("k", f'"{rng.randint(0, 9)}"'),) if rng.random() < 0.5 else (),
            )
        result = f"{rng.randint(0, 99)}"
        return "complete_task", lambda s: s.complete_task(fence, result, now, update)

    def _complete_many(self, rng: random.Random, now: datetime) -> Call:
        """Several completions at once: parents with their children, repeats, stale fences, some updates."""
        leased = self.leased()
        chosen = [t for t in leased if rng.random() < 0.6] or ([self.pick(leased)] if leased else [None])
        completions = []
        for task in chosen:
            update = ContextUpdate(increments=(("n", 1),)) if rng.random() < 0.2 else None
            completions.append(Completion(self.fence_of(task), f"{rng.randint(0, 99)}", update))
        if rng.random() < 0.1:
            completions.append(completions[0])  # the same completion twice
        rng.shuffle(completions)

        async def call(s: Storage) -> list[Any]:
            done = await s.complete_tasks(completions, now)
            return [(type(r).__name__, str(r)) if isinstance(r, Exception) else r for r in done]

        return "complete_tasks", call

    def _create_many(self, rng: random.Random, now: datetime) -> Call:
        existing = self.executions()
        news = []
        for _ in range(rng.randint(0, 4)):
            execution_id = rng.choice(existing) if existing and rng.random() < 0.15 else self.fresh("e")
            news.append(
                NewExecution(execution_id, self.new_task(), self.later(5, 60) if rng.random() < 0.2 else None)
            )
        if news and rng.random() < 0.15:
            news.append(NewExecution(news[0].execution_id, self.new_task()))  # the same id twice in one batch
        return "create_executions", lambda s: s.create_executions(news, now)

    def _fail(self, rng: random.Random, now: datetime) -> Call:
        fence = self.fence_of(self.pick(self.leased()))
        failure = TaskFailure(
            error=f"E{rng.randint(0, 9)}",
            reason=rng.choice(("error", "timeout")),
            retry_at=self.later(0, 10) if rng.random() < 0.5 else None,
            dead_letter=rng.random() < 0.7,
        )
        return "fail_task", lambda s: s.fail_task(fence, failure, now)

    def _release(self, rng: random.Random, now: datetime) -> Call:
        fence = self.fence_of(self.pick(self.leased()))
        return "release_task", lambda s: s.release_task(fence, now)

    def _suspend(self, rng: random.Random, now: datetime) -> Call:
        task = self.pick(self.leased())
        fence = self.fence_of(task)
        children = [t.task_id for t in self.tasks() if task and t.parent_task_id == task.task_id]
        waiting_on = [c for c in children if rng.random() < 0.5] + (["ghost"] if rng.random() < 0.1 else [])
        wake_at = self.later(-2, 20) if rng.random() < 0.5 else None
        return "suspend_task", lambda s: s.suspend_task(fence, waiting_on=waiting_on, wake_at=wake_at, now=now)

    def _cancel_task(self, rng: random.Random, now: datetime) -> Call:
        fence = self.fence_of(self.pick(self.leased()))
        error = rng.choice((None, "cancelled"))
        return "cancel_task", lambda s: s.cancel_task(fence, error, now)

    def _expire(self, rng: random.Random, now: datetime) -> Call:
        parent = self.pick(self.leased())
        fence = self.fence_of(parent)
        children = [t.task_id for t in self.tasks() if parent and t.parent_task_id == parent.task_id]
        target = self.pick(children) if rng.random() < 0.9 else self.pick([t.task_id for t in self.tasks()])
        task_id = target or "missing"
        return "expire_step", lambda s: s.expire_step(fence, task_id, "SignalTimeout", now)

    def _renew(self, rng: random.Random, now: datetime) -> Call:
        fences = [self.fence_of(t) for t in self.leased() if rng.random() < 0.6] + [Fence("missing", 3)]
        lease = rng.choice((5, 30))
        return "renew_leases", lambda s: s.renew_leases("w1", fences, lease, now)

    def _signal(self, rng: random.Random, now: datetime) -> Call:
        execution_id = self.pick(self.executions()) if rng.random() < 0.95 else "missing"
        name, payload = rng.choice(SIGNALS), f'"p{rng.randint(0, 9)}"'
        if rng.random() < 0.2:
            return "list_signals", lambda s: s.list_signals(execution_id or "missing")
        return "send_signal", lambda s: s.send_signal(execution_id or "missing", name, payload, now)

    def _cancel_execution(self, rng: random.Random, now: datetime) -> Call:
        execution_id = self.pick(self.executions()) or "missing"
        return "cancel_execution", lambda s: s.cancel_execution(execution_id, now)

    def _time_out(self, rng: random.Random, now: datetime) -> Call:
        limit = rng.randint(1, 3)
        return "time_out_executions", lambda s: s.time_out_executions(now, limit)

    def _dead_letters(self, rng: random.Random, now: datetime) -> Call:
        dead = list(self.reference._dead_letters) + ["missing"]
        task_id = rng.choice(dead)
        roll = rng.random()
        if roll < 0.5:
            queue = rng.choice((None, "q2"))
            return "replay_dead_letter", lambda s: s.replay_dead_letter(task_id, queue, now)
        if roll < 0.65:
            return "discard_dead_letter", lambda s: s.discard_dead_letter(task_id)
        if roll < 0.8:
            return "get_dead_letter", lambda s: s.get_dead_letter(task_id)
        limit, offset = rng.randint(0, 4), rng.randint(0, 2)
        return "list_dead_letters", lambda s: s.list_dead_letters(limit=limit, offset=offset)

    def _cache(self, rng: random.Random, now: datetime) -> Call:
        key = rng.choice(("k1", "k2", "k3"))
        if rng.random() < 0.5:
            return "cache_get", lambda s: s.cache_get(key, now)
        value, expires = f"v{rng.randint(0, 9)}", self.later(-1, 10) if rng.random() < 0.6 else None
        return "cache_put", lambda s: s.cache_put(key, value, expires, now)

    def _leader(self, rng: random.Random, now: datetime) -> Call:
        owner = rng.choice(WORKERS)
        if rng.random() < 0.3:
            return "release_leader", lambda s: s.release_leader("cleanup", owner)
        ttl = rng.choice((1, 5, 10))
        return "acquire_leader", lambda s: s.acquire_leader("cleanup", owner, ttl, now)

    def _cleanup(self, rng: random.Random, now: datetime) -> Call:
        cutoff, limit = self.later(-20, 0), rng.randint(1, 3)
        if rng.random() < 0.6:
            return "delete_executions_before", lambda s: s.delete_executions_before(cutoff, limit)
        return "delete_dead_letters_before", lambda s: s.delete_dead_letters_before(cutoff, limit)

    def _workers(self, rng: random.Random, now: datetime) -> Call:
        worker_id = rng.choice(WORKERS)
        roll = rng.random()
        if roll < 0.6:
            info = WorkerInfo(
                worker_id=worker_id,
                hostname="host",
                pid=rng.randint(1, 99999),
                queues=None if rng.random() < 0.5 else ("q1", "q2"),
                tags=None if rng.random() < 0.5 else ("a",),
                max_concurrency=rng.randint(1, 10),
                running=rng.randint(0, 3),
                state=rng.choice(("ready", "draining")),
                started_at=self.later(-100, -50),
                last_seen=self.later(-30, 0),
            )
            return "record_worker", lambda s: s.record_worker(info)
        if roll < 0.8:
            return "remove_worker", lambda s: s.remove_worker(worker_id)
        cutoff = self.later(-20, 0)
        return "delete_workers_before", lambda s: s.delete_workers_before(cutoff)

    def _reads(self, rng: random.Random, now: datetime) -> Call:
        from stent.model import ExecutionState

        roll = rng.random()
        if roll < 0.5:
            state = rng.choice((None, *ExecutionState))
            queue, function = rng.choice((None, *QUEUES)), rng.choice((None, *FUNCTIONS))
            limit, offset = rng.randint(0, 5), rng.randint(0, 3)
            return "list_executions", lambda s: s.list_executions(
                state=state, queue=queue, function=function, limit=limit, offset=offset
            )
        if roll < 0.75:
            queue = rng.choice((None, *QUEUES))
            return "queue_depth", lambda s: s.queue_depth(queue, now)
        return "queue_overview", lambda s: s.queue_overview(now)

    def _advance(self, rng: random.Random, now: datetime) -> Call:
        self.now = self.later(0, 8)
        return "advance", lambda s: _nothing()


async def _nothing() -> None:
    return None


async def snapshot(storage: Storage) -> dict[str, Any]:
    """Everything a storage holds that the port can read (the cache and leader lock are compared by calls)."""
    page = await storage.list_executions(limit=100_000)
    executions = {e.execution_id: e for e in page.executions}
    tasks = {e: await storage.list_execution_tasks(e) for e in executions}
    signals = {e: await storage.list_signals(e) for e in executions}
    return {
        "executions": executions,
        "total": page.total,
        "tasks": tasks,
        "signals": signals,
        "dead_letters": await storage.list_dead_letters(limit=100_000),
        "workers": await storage.list_workers(),
    }
