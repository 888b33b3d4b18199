"""The ports: what core needs from the outside world, as :class:`typing.Protocol` classes.

Adapters implement these and register a factory through the plugin host (:mod:`stent.plugins`).  Ports are
semantic (claim, complete, renew), never SQL-shaped, so a backend translates each operation into its own terms.

Rules every Storage implementation follows:

* Each method is one atomic operation: either all of its effects land or none do.
* Time-dependent methods take ``now`` from the caller's clock; storage never reads the wall clock.
* A worker write carries a :class:`~stent.model.Fence`; when the task's current token differs, or the task is no
  longer leased, the write raises :class:`~stent.errors.LeaseLost` and changes nothing.
* Driver errors that a retry may cure are raised as :class:`~stent.errors.StorageUnavailable`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable

import attrs

from stent.errors import LeaseLost, TaskNotFound
from stent.model import (
    ClaimRequest,
    Completion,
    ContextUpdate,
    DeadLetter,
    ExecutionPage,
    ExecutionRecord,
    ExecutionState,
    Fence,
    LeaseReport,
    NewExecution,
    NewTask,
    QueueStats,
    SignalRecord,
    StepKey,
    TaskFailure,
    TaskRecord,
    WorkerInfo,
)


@runtime_checkable
class Clock(Protocol):
    """Where core takes time from.  ``now()`` is an aware UTC datetime."""

    def now(self) -> datetime: ...

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> Awaitable[None]:
        """Wait ``seconds`` of this clock's time (an ``async def`` satisfies this too)."""


@runtime_checkable
class Storage(Protocol):
    """Durable state of executions and tasks."""

    #: Optional capabilities this adapter declares (see the conformance suite).
    capabilities: frozenset[str]

    async def init_db(self) -> None:
        """Create or migrate the schema.  Idempotent, and safe when many workers start at once."""

    async def close(self) -> None: ...

    # -- creating work ------------------------------------------------------------------------------------------

    async def create_execution(self, new: NewExecution, now: datetime) -> tuple[ExecutionRecord, bool]:
        """Create an execution and its root task, or return the existing one with that id.

        Returns the record and whether this call created it.
        """

    async def create_executions(
        self, news: Sequence[NewExecution], now: datetime
    ) -> list[tuple[ExecutionRecord, bool]]:
        """:meth:`create_execution` for each of ``news``, all in one transaction; results in the same order.

        An id that appears twice, or already exists, is created once: later ones return it with ``False``.
        """

    async def get_or_create_steps(
        self,
        parent: Fence,
        steps: Sequence[tuple[StepKey, NewTask]],
        now: datetime,
        *,
        allow_stopping: bool = False,
    ) -> list[TaskRecord]:
        """Find or create each step of a running parent, in order, fenced by the parent's token.

        A step that already exists is returned as stored (its ``function`` tells the caller whether the replay
        is deterministic).  A new ``signal`` step consumes the oldest unconsumed signal of its name at once, if
        there is one, and is created completed with its payload.  When any returned step is unfinished, the
        parent becomes ``waiting``.  Raises :class:`~stent.errors.ExecutionStopping` (creating nothing) when the
        execution is being cancelled or has finished, unless ``allow_stopping`` (compensation code that runs after
        the task saw its cancellation).
        """

    # -- claiming and leases ------------------------------------------------------------------------------------

    async def claim_tasks(self, request: ClaimRequest, now: datetime) -> list[TaskRecord]:
        """Claim up to ``request.limit`` runnable tasks for a worker.

        Runnable: ``pending`` with ``scheduled_for <= now``, or leased with ``lease_expires_at <= now``.  Filters
        by queue, tags and registered function; highest priority first, then oldest; never more ``running``
        tasks of a function than its ``max_concurrent``.  Each claimed task gets the worker as owner, a lease
        until ``now + lease_seconds`` and a new fencing token; a crash-recovered task keeps its attempt.

        With ``request.time_out_limit``, first ends up to that many executions whose deadline has passed, as
        :meth:`time_out_executions` does.  A claim is also the worker's sign of life: it sets ``last_seen`` of the
        worker's heartbeat row to ``now``, when the row exists.
        """

    async def renew_leases(
        self, worker_id: str, fences: Sequence[Fence], lease_seconds: float, now: datetime
    ) -> LeaseReport:
        """Extend the leases still held.

        Reports which were renewed, and which of those belong to executions that are cancelling or finished (the
        worker interrupts their code).
        """

    # -- finishing ----------------------------------------------------------------------------------------------

    async def complete_task(
        self, fence: Fence, result: str, now: datetime, update: ContextUpdate | None = None
    ) -> TaskRecord:
        """Record the result and apply ``update`` to the execution's counters and state, atomically.

        Wakes a parent waiting on it; completing a root task completes its execution (or cancels it, when the
        execution is cancelling: a late completion never overwrites a cancellation).
        """

    async def complete_tasks(
        self, completions: Sequence[Completion], now: datetime
    ) -> list[TaskRecord | LeaseLost | TaskNotFound]:
        """:meth:`complete_task` for each of ``completions``, committed together where the storage can (a group
        commit).

        Each is fenced and atomic on its own (when the call raises, some may have landed, as after a lost
        acknowledgement of complete_task): one whose fence does not hold changes nothing and gets, in its place in the
        returned list, the :class:`~stent.errors.LeaseLost` or :class:`~stent.errors.TaskNotFound` that
        :meth:`complete_task` would have raised, while the others land.  Results are in the order given.
        """

    async def fail_task(self, fence: Fence, failure: TaskFailure, now: datetime) -> TaskRecord:
        """End the attempt: schedule a new attempt at ``failure.retry_at``, or fail the task for good.

        A final failure wakes the parent; failing a root task fails its execution.
        """

    async def release_task(self, fence: Fence, now: datetime) -> None:
        """Give the task back unfinished (pending at once, same attempt), as a draining worker does."""

    async def suspend_task(
        self, fence: Fence, *, waiting_on: Sequence[str], wake_at: datetime | None, now: datetime
    ) -> TaskRecord:
        """Release the lease and park the task until a step in ``waiting_on`` finishes or ``wake_at`` passes.

        When one of those has already happened the task is ``pending`` at once, so no wake-up is ever lost.
        """

    async def cancel_task(self, fence: Fence, error: str | None, now: datetime) -> TaskRecord:
        """The task's code stopped because its execution is cancelling or timed out: mark it cancelled.

        Wakes its parent; cancelling the root task of a cancelling execution ends the execution cancelled.
        """

    async def expire_step(self, parent: Fence, task_id: str, error: str, now: datetime) -> TaskRecord:
        """A step's wait timed out (a signal wait): fail it with ``error`` unless it finished first."""

    # -- signals, cancellation, time limits ---------------------------------------------------------------------

    async def send_signal(self, execution_id: str, name: str, payload: str, now: datetime) -> SignalRecord:
        """Store a signal; if a step of that execution waits for that name, it consumes the signal at once.

        Raises :class:`~stent.errors.ExecutionNotFound`, or :class:`~stent.errors.ExecutionFinished` for an
        execution that has ended.
        """

    async def list_signals(self, execution_id: str) -> list[SignalRecord]: ...

    async def cancel_execution(self, execution_id: str, now: datetime) -> tuple[ExecutionRecord, bool]:
        """Start cancelling: unleased tasks are cancelled at once, leased ones learn at their next renewal.

        Returns the execution and whether this call changed it (``False`` for one already finished).
        """

    async def time_out_executions(self, now: datetime, limit: int) -> list[str]:
        """End as ``timed_out`` up to ``limit`` unfinished executions whose deadline has passed; return their ids."""

    # -- dead letters ---------------------------------------------------------------------------------------------

    async def list_dead_letters(self, *, limit: int = 100, offset: int = 0) -> list[DeadLetter]: ...

    async def get_dead_letter(self, task_id: str) -> DeadLetter | None: ...

    async def discard_dead_letter(self, task_id: str) -> bool: ...

    async def replay_dead_letter(self, task_id: str, queue: str | None, now: datetime) -> TaskRecord:
        """Run a dead-lettered task again as a new attempt, reopening the ancestors that failed because of it."""

    # -- idempotency and cache -------------------------------------------------------------------------------------

    async def cache_get(self, key: str, now: datetime) -> str | None:
        """The stored result for ``key``, unless it expired."""

    async def cache_put(self, key: str, value: str, expires_at: datetime | None, now: datetime) -> None: ...

    # -- housekeeping ------------------------------------------------------------------------------------------------

    async def acquire_leader(self, name: str, owner: str, ttl_seconds: float, now: datetime) -> bool:
        """Take or renew the named lock for ``ttl_seconds``; ``False`` while another owner holds it."""

    async def release_leader(self, name: str, owner: str) -> None: ...

    async def delete_executions_before(self, cutoff: datetime, limit: int) -> int:
        """Delete up to ``limit`` finished executions (with their tasks and signals) that ended before ``cutoff``."""

    async def delete_dead_letters_before(self, cutoff: datetime, limit: int) -> int: ...

    async def record_worker(self, info: WorkerInfo) -> None:
        """Insert or update a worker's heartbeat row."""

    async def remove_worker(self, worker_id: str) -> None: ...

    async def list_workers(self) -> list[WorkerInfo]: ...

    async def delete_workers_before(self, cutoff: datetime) -> int:
        """Remove heartbeat rows last seen before ``cutoff``."""

    # -- reads --------------------------------------------------------------------------------------------------

    async def get_execution(self, execution_id: str) -> ExecutionRecord | None: ...

    async def get_task(self, task_id: str) -> TaskRecord | None: ...

    async def get_tasks(self, task_ids: Sequence[str]) -> list[TaskRecord]:
        """The tasks that exist among ``task_ids``, in no particular order."""

    async def list_execution_tasks(self, execution_id: str) -> list[TaskRecord]:
        """Every task of an execution, oldest first."""

    async def list_executions(
        self,
        *,
        state: ExecutionState | None = None,
        queue: str | None = None,
        function: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> ExecutionPage:
        """Executions newest first, with the total count matching the filters."""

    async def queue_depth(self, queue: str | None, now: datetime) -> int:
        """Call tasks ready or scheduled to run at ``now``, in one queue or all.

        That is ``ready + scheduled`` of :class:`~stent.model.QueueStats`: every ``pending`` call task (due or
        not), plus ``suspended`` tasks whose ``wake_at`` has come and leased tasks whose lease ran out, which a
        claim would take as well.
        """

    async def queue_overview(self, now: datetime) -> list[QueueStats]:
        """The counts of :class:`~stent.model.QueueStats` at ``now`` for every queue that has an unfinished call
        task (pending, suspended, running or waiting), sorted by queue name (code-point order); ``[]`` when none.

        One read, so the figures of all queues are of one moment.
        """


@attrs.frozen
class Notification:
    """A hint that something happened; never the only way a waiter learns it."""

    kind: str  # "work" (task ready on ``queue``) or "finished" (task ``task_id`` of ``execution_id`` ended)
    queue: str | None = None
    task_id: str | None = None
    execution_id: str | None = None
    #: Which process (runtime) published it, so that it can pass over its own hints when they come back: it
    #: acted on them when it sent them.  ``None`` for hints a storage sends from inside its transactions.
    origin: str | None = None


NotificationListener = Callable[[Notification], None]


@runtime_checkable
class Notifier(Protocol):
    """Pushes wake-up hints between processes.  Delivery is best effort; stent also polls."""

    async def connect(self) -> None: ...

    async def close(self) -> None: ...

    async def publish(self, notifications: Sequence[Notification]) -> None: ...

    def subscribe(self, listener: NotificationListener) -> Callable[[], None]:
        """Call ``listener`` for every notification received; returns a function that unsubscribes."""

    # Optional: ``skip_echoes_of(storage)`` stops delivering what ``storage`` itself announces (a storage with
    # transactional notifications): core calls it for its own storage, whose changes it acts on as it makes them.
    # Optional: ``publish_soon(notifications) -> bool`` sends without being awaited (buffered for the end of the
    # loop's turn, say) and returns whether it took them; it never raises.  Core uses it, when a notifier has it,
    # instead of a background task per publish, and falls back to ``publish`` when it returns False.


class Metrics(Protocol):
    """A metrics recorder.  A recorder may implement any subset of these; one that raises is ignored."""

    def task_claimed(self, *, queue: str, step_name: str, kind: str) -> None: ...

    def task_completed(self, *, queue: str, step_name: str, kind: str, duration_s: float) -> None: ...

    def task_failed(self, *, queue: str, step_name: str, kind: str, reason: str, retrying: bool) -> None: ...

    def dead_lettered(self, *, queue: str, step_name: str, kind: str, reason: str) -> None: ...

    def lease_renewed(self, *, task_id: str, success: bool) -> None: ...
