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

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable

import attrs

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
)


@runtime_checkable
class Clock(Protocol):
    """Where core takes time from.  ``now()`` is an aware UTC datetime."""

    def now(self) -> datetime: ...

    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


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

    async def get_or_create_steps(
        self, parent: Fence, steps: Sequence[tuple[StepKey, NewTask]], now: datetime
    ) -> list[TaskRecord]:
        """Find or create each step of a running parent, in order, fenced by the parent's token.

        A step that already exists is returned as stored (its ``function`` tells the caller whether the replay
        is deterministic).  When any returned step is unfinished, the parent becomes ``waiting``.
        """

    # -- claiming and leases ------------------------------------------------------------------------------------

    async def claim_tasks(self, request: ClaimRequest, now: datetime) -> list[TaskRecord]:
        """Claim up to ``request.limit`` runnable tasks for a worker.

        Runnable: ``pending`` with ``scheduled_for <= now``, or leased with ``lease_expires_at <= now``.  Filters
        by queue, tags and registered function; highest priority first, then oldest; never more ``running``
        tasks of a function than its ``max_concurrent``.  Each claimed task gets the worker as owner, a lease
        until ``now + lease_seconds`` and a new fencing token; a crash-recovered task keeps its attempt.
        """

    async def renew_leases(
        self, worker_id: str, fences: Sequence[Fence], lease_seconds: float, now: datetime
    ) -> set[str]:
        """Extend the leases still held; return the ids of the tasks whose lease was renewed."""

    # -- finishing ----------------------------------------------------------------------------------------------

    async def complete_task(self, fence: Fence, result: str, now: datetime) -> TaskRecord:
        """Record the result.  Wakes a parent waiting on it; completing a root task completes its execution."""

    async def fail_task(self, fence: Fence, failure: TaskFailure, now: datetime) -> TaskRecord:
        """End the attempt: schedule a new attempt at ``failure.retry_at``, or fail the task for good.

        A final failure wakes the parent; failing a root task fails its execution.
        """

    async def release_task(self, fence: Fence, now: datetime) -> None:
        """Give the task back unfinished (pending at once, same attempt), as a draining worker does."""

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
        """Tasks ready or scheduled to run (pending), in one queue or all."""


@attrs.frozen
class Notification:
    """A hint that something happened; never the only way a waiter learns it."""

    kind: str  # "work" (task ready on ``queue``) or "finished" (task ``task_id`` of ``execution_id`` ended)
    queue: str | None = None
    task_id: str | None = None
    execution_id: str | None = None


NotificationListener = Callable[[Notification], None]


@runtime_checkable
class Notifier(Protocol):
    """Pushes wake-up hints between processes.  Delivery is best effort; stent also polls."""

    async def connect(self) -> None: ...

    async def close(self) -> None: ...

    async def publish(self, notifications: Sequence[Notification]) -> None: ...

    def subscribe(self, listener: NotificationListener) -> Callable[[], None]:
        """Call ``listener`` for every notification received; returns a function that unsubscribes."""


class Metrics(Protocol):
    """A metrics recorder.  A recorder may implement any subset of these; one that raises is ignored."""

    def task_claimed(self, *, queue: str, step_name: str, kind: str) -> None: ...

    def task_completed(self, *, queue: str, step_name: str, kind: str, duration_s: float) -> None: ...

    def task_failed(self, *, queue: str, step_name: str, kind: str, reason: str, retrying: bool) -> None: ...

    def dead_lettered(self, *, queue: str, step_name: str, kind: str, reason: str) -> None: ...

    def lease_renewed(self, *, task_id: str, success: bool) -> None: ...
