"""In-memory Storage: the reference implementation of the Storage port.

Every other adapter is measured against this one by the conformance suite, and the simulator runs fleets on
it.  Each method runs without awaiting in between its reads and writes, so on one event loop every method is
atomic, exactly as a transaction is in a database.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

import attrs

from stent.errors import LeaseLost, TaskNotFound
from stent.model import (
    ClaimRequest,
    ExecutionPage,
    ExecutionRecord,
    ExecutionState,
    Fence,
    NewExecution,
    NewTask,
    StepKey,
    TaskFailure,
    TaskRecord,
    TaskState,
)


def new_id() -> str:
    return uuid.uuid4().hex


class MemoryStorage:
    """Storage kept in dictionaries of one process; gone when the process ends."""

    capabilities: frozenset[str] = frozenset()

    def __init__(self) -> None:
        self._executions: dict[str, ExecutionRecord] = {}
        self._tasks: dict[str, TaskRecord] = {}
        self._steps: dict[StepKey, str] = {}
        self._by_execution: dict[str, list[str]] = {}
        self._dead_letters: dict[str, TaskRecord] = {}
        self._token_seq = 0
        self.closed = False

    async def init_db(self) -> None:
        return None

    async def close(self) -> None:
        self.closed = True

    # -- helpers ---------------------------------------------------------------------------------------------

    def _task_from_new(
        self,
        new: NewTask,
        execution_id: str,
        now: datetime,
        *,
        parent: TaskRecord | None = None,
        key: StepKey | None = None,
    ) -> TaskRecord:
        finished = new.state.terminal
        return TaskRecord(
            task_id=new.task_id,
            execution_id=execution_id,
            function=new.function,
            kind=new.kind,
            state=new.state,
            queue=new.queue,
            tags=new.tags,
            priority=new.priority,
            args=new.args,
            attempt=1,
            max_attempts=new.max_attempts,
            max_concurrent=new.max_concurrent,
            options=new.options,
            scheduled_for=new.scheduled_for or now,
            created_at=now,
            updated_at=now,
            parent_task_id=parent.task_id if parent else None,
            parent_attempt=key.parent_attempt if key else None,
            step=key.step if key else None,
            result=new.result,
            finished_at=now if finished else None,
        )

    def _insert(self, task: TaskRecord) -> None:
        self._tasks[task.task_id] = task
        self._by_execution.setdefault(task.execution_id, []).append(task.task_id)

    def _fenced(self, fence: Fence) -> TaskRecord:
        task = self._tasks.get(fence.task_id)
        if task is None:
            raise TaskNotFound(fence.task_id)
        if task.fencing_token != fence.token:
            raise LeaseLost(fence.task_id, f"token {fence.token} is stale; current is {task.fencing_token}")
        if not task.state.leased:
            raise LeaseLost(fence.task_id, f"task is {task.state.value}")
        return task

    def _set(self, task: TaskRecord, **changes: object) -> TaskRecord:
        updated = attrs.evolve(task, **changes)  # type: ignore[misc]
        self._tasks[task.task_id] = updated
        return updated

    def _finish_execution(self, execution_id: str, state: ExecutionState, now: datetime, **fields: object) -> None:
        execution = self._executions[execution_id]
        if execution.state.terminal:
            return
        self._executions[execution_id] = attrs.evolve(  # type: ignore[misc]
            execution, state=state, updated_at=now, finished_at=now, **fields
        )

    def _after_finish(self, task: TaskRecord, now: datetime) -> None:
        """Wake the parent waiting on a finished task, or finish the execution of a finished root."""
        if task.parent_task_id is None:
            if task.state is TaskState.COMPLETED:
                self._finish_execution(task.execution_id, ExecutionState.COMPLETED, now, result=task.result)
            elif task.state is TaskState.FAILED:
                self._finish_execution(task.execution_id, ExecutionState.FAILED, now, error=task.error)
            return
        parent = self._tasks.get(task.parent_task_id)
        if parent is None or parent.attempt != task.parent_attempt:
            return
        if parent.state is TaskState.WAITING:
            self._set(parent, state=TaskState.RUNNING, updated_at=now)
        elif parent.state is TaskState.SUSPENDED:
            self._set(parent, state=TaskState.PENDING, scheduled_for=now, updated_at=now)

    # -- creating work ---------------------------------------------------------------------------------------

    async def create_execution(self, new: NewExecution, now: datetime) -> tuple[ExecutionRecord, bool]:
        existing = self._executions.get(new.execution_id)
        if existing is not None:
            return existing, False
        root = self._task_from_new(new.root, new.execution_id, now)
        execution = ExecutionRecord(
            execution_id=new.execution_id,
            root_task_id=root.task_id,
            function=root.function,
            queue=root.queue,
            state=ExecutionState.PENDING,
            created_at=now,
            updated_at=now,
            deadline=new.deadline,
        )
        self._executions[new.execution_id] = execution
        self._insert(root)
        return execution, True

    async def get_or_create_steps(
        self, parent: Fence, steps: Sequence[tuple[StepKey, NewTask]], now: datetime
    ) -> list[TaskRecord]:
        owner = self._fenced(parent)
        out: list[TaskRecord] = []
        for key, new in steps:
            existing_id = self._steps.get(key)
            if existing_id is not None:
                out.append(self._tasks[existing_id])
                continue
            task = self._task_from_new(new, owner.execution_id, now, parent=owner, key=key)
            self._insert(task)
            self._steps[key] = task.task_id
            out.append(task)
        if any(not t.state.terminal for t in out) and owner.state is TaskState.RUNNING:
            self._set(owner, state=TaskState.WAITING, updated_at=now)
        return out

    # -- claiming and leases ---------------------------------------------------------------------------------

    def _claimable(self, task: TaskRecord, request: ClaimRequest, now: datetime) -> bool:
        if task.state is TaskState.PENDING:
            if task.scheduled_for > now:
                return False
        elif task.state.leased:
            if task.lease_expires_at is None or task.lease_expires_at > now:
                return False
        else:
            return False
        if task.function not in request.functions:
            return False
        if request.queues is not None and task.queue not in request.queues:
            return False
        if request.tags is not None and task.tags and not request.tags.intersection(task.tags):
            return False
        return True

    async def claim_tasks(self, request: ClaimRequest, now: datetime) -> list[TaskRecord]:
        if request.limit <= 0:
            return []
        candidates = [t for t in self._tasks.values() if self._claimable(t, request, now)]
        candidates.sort(key=lambda t: (-t.priority, t.scheduled_for, t.created_at, t.task_id))
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
    ) -> set[str]:
        held: set[str] = set()
        lease_until = now + timedelta(seconds=lease_seconds)
        for fence in fences:
            task = self._tasks.get(fence.task_id)
            if task is None or task.fencing_token != fence.token or not task.state.leased:
                continue
            self._set(task, lease_expires_at=lease_until, updated_at=now)
            held.add(fence.task_id)
        return held

    # -- finishing -------------------------------------------------------------------------------------------

    async def complete_task(self, fence: Fence, result: str, now: datetime) -> TaskRecord:
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
        self._after_finish(task, now)
        return task

    async def fail_task(self, fence: Fence, failure: TaskFailure, now: datetime) -> TaskRecord:
        task = self._fenced(fence)
        if failure.retry_at is not None:
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
            self._dead_letters[task.task_id] = task
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
            if t.state is TaskState.PENDING and (queue is None or t.queue == queue)
        )
