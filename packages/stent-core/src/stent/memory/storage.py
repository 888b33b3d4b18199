"""In-memory Storage: the reference implementation of the Storage port.

Every other adapter is measured against this one by the conformance suite, and the simulator runs fleets on
it.  Each method runs without awaiting in between its reads and writes, so on one event loop every method is
atomic, exactly as a transaction is in a database.

The task lifecycle lives here; signals, cancellation, dead letters and housekeeping are in
:mod:`stent.memory.operations`, which this class mixes in.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Literal

import attrs

from stent.errors import ExecutionStopping, LeaseLost, TaskNotFound
from stent.memory.operations import MemoryOperations
from stent.memory.state import MemoryState
from stent.model import (
    SIGNAL_PREFIX,
    ClaimRequest,
    Completion,
    ContextUpdate,
    ExecutionPage,
    ExecutionRecord,
    ExecutionState,
    Fence,
    LeaseReport,
    NewExecution,
    NewTask,
    QueueStats,
    StepKey,
    TaskFailure,
    TaskKind,
    TaskRecord,
    TaskState,
    execution_record_for,
    task_record_for,
)


class MemoryStorage(MemoryOperations, MemoryState):
    """Storage kept in dictionaries of one process; gone when the process ends."""

    capabilities: frozenset[str] = frozenset()

    async def init_db(self) -> None:
        return None

    async def close(self) -> None:
        self.closed = True

    # -- helpers ---------------------------------------------------------------------------------------------

    def _fenced(self, fence: Fence) -> TaskRecord:
        task = self._tasks.get(fence.task_id)
        if task is None:
            raise TaskNotFound(fence.task_id)
        if task.fencing_token != fence.token:
            raise LeaseLost(fence.task_id, f"token {fence.token} is stale; current is {task.fencing_token}")
        if not task.state.leased:
            raise LeaseLost(fence.task_id, f"task is {task.state.value}")
        return task

    def _apply_update(self, execution_id: str, update: ContextUpdate | None, now: datetime) -> None:
        if not update:
            return
        execution = self._executions[execution_id]
        counters, custom_state = update.applied_to(execution.counters, execution.custom_state)
        self._executions[execution_id] = attrs.evolve(
            execution, counters=counters, custom_state=custom_state, updated_at=now
        )

    # -- creating work ---------------------------------------------------------------------------------------

    async def create_execution(self, new: NewExecution, now: datetime) -> tuple[ExecutionRecord, bool]:
        return self._create_execution(new, now)

    async def create_executions(
        self, news: Sequence[NewExecution], now: datetime
    ) -> list[tuple[ExecutionRecord, bool]]:
        return [self._create_execution(new, now) for new in news]

    def _create_execution(self, new: NewExecution, now: datetime) -> tuple[ExecutionRecord, bool]:
        existing = self._executions.get(new.execution_id)
        if existing is not None:
            return existing, False
        root = task_record_for(new.root, new.execution_id, now)
        execution = execution_record_for(new, now)
        self._executions[new.execution_id] = execution
        self._insert(root)
        return execution, True

    async def get_or_create_steps(
        self,
        parent: Fence,
        steps: Sequence[tuple[StepKey, NewTask]],
        now: datetime,
        *,
        allow_stopping: bool = False,
    ) -> list[TaskRecord]:
        owner = self._fenced(parent)
        execution = self._executions[owner.execution_id]
        if not allow_stopping and (execution.state.terminal or execution.state is ExecutionState.CANCELLING):
            raise ExecutionStopping(execution.execution_id, execution.state.value)
        out: list[TaskRecord] = []
        for key, new in steps:
            existing_id = self._steps.get(key)
            if existing_id is not None:
                out.append(self._tasks[existing_id])
                continue
            task = task_record_for(new, owner.execution_id, now, parent_task_id=owner.task_id, key=key)
            self._insert(task)
            self._steps[key] = task.task_id
            if task.kind is TaskKind.SIGNAL:
                task = self._match_buffered_signal(task, now)
            out.append(task)
        if any(not t.state.terminal for t in out) and owner.state is TaskState.RUNNING:
            self._set(owner, state=TaskState.WAITING, updated_at=now)
        return out

    def _match_buffered_signal(self, step: TaskRecord, now: datetime) -> TaskRecord:
        name = step.function[len(SIGNAL_PREFIX) :]
        for index, signal in enumerate(self._signals.get(step.execution_id, [])):
            if signal.name == name and signal.consumed_by is None:
                self._signals[step.execution_id][index] = attrs.evolve(signal, consumed_by=step.task_id)
                return self._set(
                    step, state=TaskState.COMPLETED, result=signal.payload, finished_at=now, updated_at=now
                )
        return step

    # -- claiming and leases ---------------------------------------------------------------------------------

    def _claimable(self, task: TaskRecord, request: ClaimRequest, now: datetime) -> bool:
        if standing(task, now)[0] != "ready":
            return False
        if task.function not in request.functions:
            return False
        if request.queues is not None and task.queue not in request.queues:
            return False
        return request.tags is None or not task.tags or bool(request.tags.intersection(task.tags))

    def _ready_at(self, task: TaskRecord) -> datetime:
        if task.state is TaskState.SUSPENDED and task.wake_at is not None:
            return task.wake_at
        return task.scheduled_for

    async def claim_tasks(self, request: ClaimRequest, now: datetime) -> list[TaskRecord]:
        if request.time_out_limit > 0:
            self._time_out(now, request.time_out_limit)
        worker = self._workers.get(request.worker_id)
        if worker is not None:
            self._workers[request.worker_id] = attrs.evolve(worker, last_seen=now)
        if request.limit <= 0:
            return []
        candidates = [t for t in self._tasks.values() if self._claimable(t, request, now)]
        candidates.sort(key=lambda t: (-t.priority, self._ready_at(t), t.created_at, t.task_id))
        running: dict[str, int] = {}
        for t in self._tasks.values():
            if t.state is TaskState.RUNNING and t.max_concurrent is not None:
                running[t.function] = running.get(t.function, 0) + 1
        claimed: list[TaskRecord] = []
        lease_until = now + timedelta(seconds=request.lease_seconds)
        for task in candidates:
            if len(claimed) >= request.limit:
                break
            if task.max_concurrent is not None:
                # A task reclaimed from an expired running lease already counts toward the limit.
                already = 1 if task.state is TaskState.RUNNING else 0
                if running.get(task.function, 0) - already >= task.max_concurrent:
                    continue
                running[task.function] = running.get(task.function, 0) + 1 - already
            self._token_seq += 1
            updated = self._set(
                task,
                state=TaskState.RUNNING,
                lease_owner=request.worker_id,
                lease_expires_at=lease_until,
                fencing_token=self._token_seq,
                started_at=task.started_at or now,
                wake_at=None,
                updated_at=now,
            )
            if task.parent_task_id is None:
                execution = self._executions[task.execution_id]
                if execution.state is ExecutionState.PENDING:
                    self._executions[task.execution_id] = attrs.evolve(
                        execution, state=ExecutionState.RUNNING, updated_at=now
                    )
            claimed.append(updated)
        return claimed

    async def renew_leases(
        self, worker_id: str, fences: Sequence[Fence], lease_seconds: float, now: datetime
    ) -> LeaseReport:
        renewed: set[str] = set()
        stopping: set[str] = set()
        lease_until = now + timedelta(seconds=lease_seconds)
        for fence in fences:
            task = self._tasks.get(fence.task_id)
            if task is None or task.fencing_token != fence.token or not task.state.leased:
                continue
            self._set(task, lease_expires_at=lease_until, updated_at=now)
            renewed.add(fence.task_id)
            if self._stopping(task.execution_id):
                stopping.add(fence.task_id)
        return LeaseReport(frozenset(renewed), frozenset(stopping))

    # -- finishing -------------------------------------------------------------------------------------------

    async def complete_task(
        self, fence: Fence, result: str, now: datetime, update: ContextUpdate | None = None
    ) -> TaskRecord:
        return self._complete(fence, result, now, update)

    async def complete_tasks(
        self, completions: Sequence[Completion], now: datetime
    ) -> list[TaskRecord | LeaseLost | TaskNotFound]:
        done: list[TaskRecord | LeaseLost | TaskNotFound] = []
        for completion in completions:
            try:
                done.append(self._complete(completion.fence, completion.result, now, completion.update))
            except (LeaseLost, TaskNotFound) as exc:
                done.append(exc)
        return done

    def _complete(self, fence: Fence, result: str, now: datetime, update: ContextUpdate | None) -> TaskRecord:
        task = self._fenced(fence)
        task = self._set(
            task,
            state=TaskState.COMPLETED,
            result=result,
            error=None,
            lease_owner=None,
            lease_expires_at=None,
            finished_at=now,
            updated_at=now,
        )
        self._apply_update(task.execution_id, update, now)
        self._after_finish(task, now)
        return task

    async def fail_task(self, fence: Fence, failure: TaskFailure, now: datetime) -> TaskRecord:
        task = self._fenced(fence)
        if failure.retry_at is not None and not self._stopping(task.execution_id):
            return self._set(
                task,
                state=TaskState.PENDING,
                attempt=task.attempt + 1,
                scheduled_for=failure.retry_at,
                error=failure.error,
                lease_owner=None,
                lease_expires_at=None,
                updated_at=now,
            )
        task = self._set(
            task,
            state=TaskState.FAILED,
            error=failure.error,
            lease_owner=None,
            lease_expires_at=None,
            finished_at=now,
            updated_at=now,
        )
        if failure.dead_letter:
            self._add_dead_letter(task, failure.reason, now)
        self._after_finish(task, now)
        return task

    async def release_task(self, fence: Fence, now: datetime) -> None:
        task = self._fenced(fence)
        self._set(
            task,
            state=TaskState.PENDING,
            scheduled_for=now,
            lease_owner=None,
            lease_expires_at=None,
            updated_at=now,
        )

    async def suspend_task(
        self, fence: Fence, *, waiting_on: Sequence[str], wake_at: datetime | None, now: datetime
    ) -> TaskRecord:
        task = self._fenced(fence)
        already = (wake_at is not None and wake_at <= now) or any(
            self._tasks[t].state.terminal for t in waiting_on if t in self._tasks
        )
        common = {"lease_owner": None, "lease_expires_at": None, "updated_at": now}
        if already:
            return self._set(task, state=TaskState.PENDING, scheduled_for=now, wake_at=None, **common)
        return self._set(task, state=TaskState.SUSPENDED, wake_at=wake_at, **common)

    async def cancel_task(self, fence: Fence, error: str | None, now: datetime) -> TaskRecord:
        task = self._fenced(fence)
        task = self._set(
            task,
            state=TaskState.CANCELLED,
            error=error,
            lease_owner=None,
            lease_expires_at=None,
            finished_at=now,
            updated_at=now,
        )
        self._after_finish(task, now)
        return task

    async def expire_step(self, parent: Fence, task_id: str, error: str, now: datetime) -> TaskRecord:
        self._fenced(parent)
        step = self._tasks.get(task_id)
        if step is None or step.parent_task_id != parent.task_id:
            raise TaskNotFound(task_id)
        if step.state.terminal:
            return step
        return self._set(step, state=TaskState.FAILED, error=error, finished_at=now, updated_at=now)

    # -- reads -----------------------------------------------------------------------------------------------

    async def get_execution(self, execution_id: str) -> ExecutionRecord | None:
        return self._executions.get(execution_id)

    async def get_task(self, task_id: str) -> TaskRecord | None:
        return self._tasks.get(task_id)

    async def get_tasks(self, task_ids: Sequence[str]) -> list[TaskRecord]:
        return [self._tasks[i] for i in task_ids if i in self._tasks]

    async def list_execution_tasks(self, execution_id: str) -> list[TaskRecord]:
        return [self._tasks[i] for i in self._by_execution.get(execution_id, [])]

    async def list_executions(
        self,
        *,
        state: ExecutionState | None = None,
        queue: str | None = None,
        function: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> ExecutionPage:
        rows = [
            e
            for e in self._executions.values()
            if (state is None or e.state is state)
            and (queue is None or e.queue == queue)
            and (function is None or e.function == function)
        ]
        rows.sort(key=lambda e: (e.created_at, e.execution_id), reverse=True)
        return ExecutionPage(tuple(rows[offset : offset + limit]), len(rows))

    async def queue_depth(self, queue: str | None, now: datetime) -> int:
        return sum(
            1
            for t in self._tasks.values()
            if (queue is None or t.queue == queue) and standing(t, now)[0] in ("ready", "scheduled")
        )

    async def queue_overview(self, now: datetime) -> list[QueueStats]:
        stats: dict[str, QueueStats] = {}
        for task in self._tasks.values():
            count, ready_at = standing(task, now)
            if count is None:
                continue
            row = stats.get(task.queue) or QueueStats(task.queue)
            oldest = row.oldest_ready_at
            if ready_at is not None and (oldest is None or ready_at < oldest):
                oldest = ready_at
            stats[task.queue] = attrs.evolve(row, oldest_ready_at=oldest, **{count: getattr(row, count) + 1})
        return [stats[queue] for queue in sorted(stats)]


Standing = Literal["ready", "scheduled", "running", "suspended"]


def standing(task: TaskRecord, now: datetime) -> tuple[Standing | None, datetime | None]:
    """Which count of :class:`~stent.model.QueueStats` ``task`` is in at ``now`` (``None``: none, it is finished
    or no call), and, when it is ready, the moment it became ready.  A claim takes exactly the ready tasks."""
    if task.kind is not TaskKind.CALL:
        return None, None
    if task.state is TaskState.PENDING:
        return ("ready", task.scheduled_for) if task.scheduled_for <= now else ("scheduled", None)
    if task.state is TaskState.SUSPENDED:
        due = task.wake_at is not None and task.wake_at <= now
        return ("ready", task.wake_at) if due else ("suspended", None)
    if task.state.leased:
        expired = task.lease_expires_at is not None and task.lease_expires_at <= now
        return ("ready", task.lease_expires_at) if expired else ("running", None)
    return None, None
