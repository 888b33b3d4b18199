"""The values that cross the ports: executions, tasks, claims, fences.

All of them are frozen attrs classes.  Payloads (arguments, results, errors) are already-serialized text when
they reach storage: a storage adapter never interprets them.  Times are aware UTC datetimes handed in by the
caller's clock; storage never reads the wall clock.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from datetime import datetime

import attrs


class ExecutionState(str, enum.Enum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL_EXECUTION


_TERMINAL_EXECUTION = frozenset(
    {ExecutionState.COMPLETED, ExecutionState.FAILED, ExecutionState.TIMED_OUT, ExecutionState.CANCELLED}
)


class TaskState(str, enum.Enum):
    """Where a task stands.

    ``running`` holds a lease.  ``waiting`` also holds a lease but the task is awaiting steps in memory and uses
    no concurrency slot (it does not count toward ``max_concurrent``).  ``suspended`` holds no lease: the task was
    dropped from memory and becomes ``pending`` again when one of the steps it waits on finishes or its wake time
    comes.
    """

    PENDING = "pending"
    RUNNING = "running"
    WAITING = "waiting"
    SUSPENDED = "suspended"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL_TASK

    @property
    def leased(self) -> bool:
        return self in (TaskState.RUNNING, TaskState.WAITING)


_TERMINAL_TASK = frozenset({TaskState.COMPLETED, TaskState.FAILED, TaskState.CANCELLED})


class TaskKind(str, enum.Enum):
    """What a task row stands for in its parent's journal.

    Only ``call`` tasks are ever claimed.  A ``sleep`` step is recorded finished, its result the wake time.  A
    ``signal`` step's ``function`` is ``SIGNAL_PREFIX + name``; it completes with the payload of the signal it
    consumed, or fails when its timeout passes first.
    """

    CALL = "call"  # a durable function invocation (the root task is one too)
    SLEEP = "sleep"
    SIGNAL = "signal"


SIGNAL_PREFIX = "stent.signal:"
SLEEP_FUNCTION = "stent.sleep"


def _tuple_of_str(value: Sequence[str] | None) -> tuple[str, ...]:
    return tuple(value or ())


@attrs.frozen
class NewTask:
    """What a caller asks storage to create: a root task or a journaled step."""

    task_id: str
    function: str
    args: str
    queue: str = "default"
    tags: tuple[str, ...] = attrs.field(default=(), converter=_tuple_of_str)
    priority: int = 0
    kind: TaskKind = TaskKind.CALL
    scheduled_for: datetime | None = None
    max_attempts: int = 1
    max_concurrent: int | None = None
    options: str = "{}"  # serialized per-task options (retry policy and the like), opaque to storage
    # For SLEEP and SIGNAL steps that are recorded already finished.
    state: TaskState = TaskState.PENDING
    result: str | None = None


@attrs.frozen
class NewExecution:
    execution_id: str
    root: NewTask
    deadline: datetime | None = None


@attrs.frozen
class StepKey:
    """A step's identity: storage creates at most one task per key."""

    parent_task_id: str
    parent_attempt: int
    step: int


@attrs.frozen
class Fence:
    """Proof of ownership that every worker write carries: the task and the token its claim received."""

    task_id: str
    token: int


@attrs.frozen
class TaskRecord:
    task_id: str
    execution_id: str
    function: str
    kind: TaskKind
    state: TaskState
    queue: str
    tags: tuple[str, ...]
    priority: int
    args: str
    attempt: int
    max_attempts: int
    max_concurrent: int | None
    options: str
    scheduled_for: datetime
    created_at: datetime
    updated_at: datetime
    parent_task_id: str | None = None
    parent_attempt: int | None = None
    step: int | None = None
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    fencing_token: int = 0
    result: str | None = None
    error: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    #: For a suspended task: when its timer fires (it becomes claimable then), or None for no timer.
    wake_at: datetime | None = None

    @property
    def fence(self) -> Fence:
        return Fence(self.task_id, self.fencing_token)


def task_record_for(
    new: NewTask,
    execution_id: str,
    now: datetime,
    *,
    parent_task_id: str | None = None,
    key: StepKey | None = None,
) -> TaskRecord:
    """The record storage creates for a root task or a step: every adapter stores exactly these fields."""
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
        parent_task_id=parent_task_id,
        parent_attempt=key.parent_attempt if key else None,
        step=key.step if key else None,
        result=new.result,
        finished_at=now if new.state.terminal else None,
    )


@attrs.frozen
class ExecutionRecord:
    execution_id: str
    root_task_id: str
    function: str
    queue: str
    state: ExecutionState
    created_at: datetime
    updated_at: datetime
    deadline: datetime | None = None
    result: str | None = None
    error: str | None = None
    finished_at: datetime | None = None
    #: JSON object of counter name to integer, incremented atomically with task completions.
    counters: str = "{}"
    #: JSON object of user state keys to their serialized values (text), set with task completions.
    custom_state: str = "{}"


def execution_record_for(new: NewExecution, now: datetime) -> ExecutionRecord:
    """The record storage creates for a new execution (pending, its root task not yet claimed)."""
    return ExecutionRecord(
        execution_id=new.execution_id,
        root_task_id=new.root.task_id,
        function=new.root.function,
        queue=new.root.queue,
        state=ExecutionState.PENDING,
        created_at=now,
        updated_at=now,
        deadline=new.deadline,
    )


def shared_part(new: NewExecution) -> tuple[object, ...]:
    """Everything of a new execution but its ids and its root's arguments.  A batch whose executions all have the
    same shared part (a batch dispatch of one function) lets storage send what they share once."""
    root = new.root
    return (
        new.deadline,
        root.function,
        root.queue,
        root.tags,
        root.priority,
        root.kind,
        root.scheduled_for,
        root.max_attempts,
        root.max_concurrent,
        root.options,
        root.state,
        root.result,
    )


@attrs.frozen
class ClaimRequest:
    """Which tasks a worker may take.

    ``queues`` of ``None`` means every queue.  ``tags`` of ``None`` means every task; otherwise tasks sharing a
    tag plus untagged tasks.  Only ``functions`` the worker registers are claimed.
    """

    worker_id: str
    functions: frozenset[str]
    limit: int
    lease_seconds: float
    queues: frozenset[str] | None = None
    tags: frozenset[str] | None = None
    #: Before claiming, end up to this many executions past their deadline (as ``time_out_executions`` does), so
    #: an idle worker's one query per poll also enforces time limits, and no task of a timed-out one is claimed.
    time_out_limit: int = 0


@attrs.frozen
class TaskFailure:
    """How a failed attempt ends: retried at ``retry_at`` (a new attempt) or failed for good.

    ``dead_letter`` records the failure in the dead-letter list when it is final.
    """

    error: str
    reason: str
    retry_at: datetime | None = None
    dead_letter: bool = True


@attrs.frozen
class ContextUpdate:
    """Changes to an execution's counters and custom state, committed together with a task's completion."""

    increments: tuple[tuple[str, int], ...] = ()
    state: tuple[tuple[str, str], ...] = ()  # key -> serialized value

    def __bool__(self) -> bool:
        return bool(self.increments or self.state)

    def applied_to(self, counters: str, custom_state: str) -> tuple[str, str]:
        """An execution's stored counters and custom state (JSON text) after this update, as every storage
        writes them."""
        totals = json.loads(counters)
        for name, amount in self.increments:
            totals[name] = totals.get(name, 0) + amount
        state = json.loads(custom_state)
        for name, value in self.state:
            state[name] = value  # serialized text, opaque to storage
        return json.dumps(totals, separators=(",", ":")), json.dumps(state, separators=(",", ":"))


@attrs.frozen
class Completion:
    """One task's successful end, for :meth:`~stent.ports.Storage.complete_tasks` (many committed together)."""

    fence: Fence
    result: str
    update: ContextUpdate | None = None


@attrs.frozen
class LeaseReport:
    """What a lease renewal found: which leases still hold, and which of those belong to executions that are
    being cancelled or have timed out (their code must be interrupted)."""

    renewed: frozenset[str]
    stopping: frozenset[str] = frozenset()


@attrs.frozen
class SignalRecord:
    signal_id: int
    execution_id: str
    name: str
    payload: str
    created_at: datetime
    consumed_by: str | None = None


@attrs.frozen
class DeadLetter:
    task_id: str
    execution_id: str
    function: str
    queue: str
    reason: str
    error: str
    attempts: int
    created_at: datetime


@attrs.frozen
class WorkerInfo:
    """A worker's heartbeat row, for ``stent workers``."""

    worker_id: str
    hostname: str
    pid: int
    queues: tuple[str, ...] | None
    tags: tuple[str, ...] | None
    max_concurrency: int
    running: int
    state: str
    started_at: datetime
    last_seen: datetime


@attrs.frozen
class ExecutionPage:
    executions: tuple[ExecutionRecord, ...]
    total: int


@attrs.frozen
class QueueStats:
    """One queue's unfinished work at a moment ``now``, from :meth:`~stent.ports.Storage.queue_overview`.

    Only ``call`` tasks count (a pending signal wait is no work for a worker).  Each unfinished call task of the
    queue is in exactly one of the four counts:

    * ``ready``: what a claim could take at ``now``, leaving aside which functions the claimer registers and
      ``max_concurrent``: ``pending`` tasks with ``scheduled_for <= now``, ``suspended`` tasks whose ``wake_at``
      has come (``wake_at <= now``), and ``running`` or ``waiting`` tasks whose lease ran out
      (``lease_expires_at <= now``: their worker stopped renewing, and a claim takes them over);
    * ``scheduled``: ``pending`` tasks with ``scheduled_for > now`` (a delayed dispatch, a retry in its backoff);
    * ``running``: ``running`` or ``waiting`` tasks whose lease still holds;
    * ``suspended``: ``suspended`` tasks with no timer or one still to come.

    ``oldest_ready_at`` is the earliest moment at which a ready task became ready (its ``scheduled_for``,
    ``wake_at`` or ``lease_expires_at``), so ``now - oldest_ready_at`` is how long work has waited for a worker;
    ``None`` when nothing is ready.  ``ready + scheduled`` is what
    :meth:`~stent.ports.Storage.queue_depth` counts for the queue.
    """

    queue: str
    ready: int = 0
    scheduled: int = 0
    running: int = 0
    suspended: int = 0
    oldest_ready_at: datetime | None = None

    @property
    def depth(self) -> int:
        """Tasks ready or scheduled to run: the queue's :meth:`~stent.ports.Storage.queue_depth`."""
        return self.ready + self.scheduled

    def oldest_ready_age(self, now: datetime) -> float:
        """Seconds the longest-waiting ready task has waited for a worker at ``now``; 0.0 when none is ready."""
        if self.oldest_ready_at is None:
            return 0.0
        return max(0.0, (now - self.oldest_ready_at).total_seconds())
