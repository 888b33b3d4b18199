"""What every storage conformance class shares: the fixtures built on the adapter's ``make_storage``, and
builders for the values that cross the port.

All times come from a :class:`~stent.clocks.FakeClock`, so lease expiry and scheduling are tested in virtual
time and no test sleeps.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import pytest

from stent.clocks import FakeClock
from stent.model import (
    SIGNAL_PREFIX,
    ClaimRequest,
    ExecutionRecord,
    Fence,
    NewExecution,
    NewTask,
    StepKey,
    TaskKind,
    TaskRecord,
)
from stent.ports import Storage
from stent.testing.async_support import ASYNCIO_MARKS, async_fixture
from stent.testing.conformance.capabilities import gate_storage_test

PeerFactory = Callable[[Storage], Awaitable[Storage]]

_ids = itertools.count(1)


def new_id(prefix: str) -> str:
    """A fresh id, readable in failure output."""
    return f"{prefix}-{next(_ids)}"


def new_task(function: str = "work", **fields: Any) -> NewTask:
    """A task to create, with a fresh id and empty JSON arguments unless given."""
    fields.setdefault("task_id", new_id("task"))
    fields.setdefault("args", "[]")
    return NewTask(function=function, **fields)


def signal_wait(name: str, **fields: Any) -> NewTask:
    """A step that waits for the signal ``name`` (what ``Stent.wait_for_signal`` journals)."""
    return new_task(SIGNAL_PREFIX + name, kind=TaskKind.SIGNAL, **fields)


def new_execution(function: str = "work", *, execution_id: str | None = None, **root: Any) -> NewExecution:
    deadline = root.pop("deadline", None)
    return NewExecution(
        execution_id=execution_id or new_id("exec"), root=new_task(function, **root), deadline=deadline
    )


def request(
    worker: str = "worker-1",
    functions: Iterable[str] = ("work",),
    *,
    limit: int = 10,
    lease: float = 30.0,
    queues: Iterable[str] | None = None,
    tags: Iterable[str] | None = None,
    time_out_limit: int = 0,
) -> ClaimRequest:
    """A claim request; ``queues`` and ``tags`` of ``None`` mean no filter."""
    return ClaimRequest(
        worker_id=worker,
        functions=frozenset(functions),
        limit=limit,
        lease_seconds=lease,
        queues=None if queues is None else frozenset(queues),
        tags=None if tags is None else frozenset(tags),
        time_out_limit=time_out_limit,
    )


def ids(tasks: Iterable[TaskRecord]) -> list[str]:
    return [t.task_id for t in tasks]


class StorageCase:
    """Base of the storage conformance classes: fixtures and small scenario helpers.

    The adapter's test module provides ``make_storage``, an async factory fixture: ``await make_storage(clock)``
    returns a fresh, isolated, initialised Storage, and the fixture closes what it made.  It may also provide
    ``make_peer_storage``: ``await make_peer_storage(storage)`` opens another connection (another client) to
    the same backend as ``storage``, so concurrency tests contend for real; a storage that does not declare the
    ``shared`` capability has no other client, and its peers are ``storage`` itself.
    """

    pytestmark = ASYNCIO_MARKS

    @pytest.fixture(autouse=True)
    def _capabilities(self, request: pytest.FixtureRequest, storage: Storage) -> None:
        """Skips the test of an optional capability the storage does not declare (see ``capabilities``)."""
        gate_storage_test(request, storage)

    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock()

    @async_fixture
    async def storage(self, make_storage: Callable[[FakeClock], Awaitable[Storage]], clock: FakeClock) -> Storage:
        return await make_storage(clock)

    @pytest.fixture
    def open_peer(self, request: pytest.FixtureRequest) -> PeerFactory:
        """``await open_peer(storage)``: another client of a shared backend; the same instance otherwise."""
        try:
            factory: PeerFactory = request.getfixturevalue("make_peer_storage")
        except pytest.FixtureLookupError:

            async def same(storage: Storage) -> Storage:
                return storage

            return same

        async def peer(storage: Storage) -> Storage:
            return await factory(storage) if "shared" in storage.capabilities else storage

        return peer

    # -- scenarios -------------------------------------------------------------------------------------------

    @staticmethod
    async def start(storage: Storage, clock: FakeClock, function: str = "work", **root: Any) -> ExecutionRecord:
        execution, created = await storage.create_execution(new_execution(function, **root), clock.now())
        assert created
        return execution

    @classmethod
    async def running_root(
        cls, storage: Storage, clock: FakeClock, function: str = "parent", worker: str = "worker-p"
    ) -> TaskRecord:
        """A new execution whose root task is claimed (running) by ``worker``."""
        execution = await cls.start(storage, clock, function)
        claimed = await storage.claim_tasks(request(worker, [function], limit=1), clock.now())
        assert ids(claimed) == [execution.root_task_id]
        return claimed[0]

    @staticmethod
    async def add_steps(
        storage: Storage, clock: FakeClock, parent: TaskRecord, tasks: Sequence[NewTask], first: int = 0
    ) -> list[TaskRecord]:
        """Create ``tasks`` as steps ``first``, ``first + 1``... of ``parent``'s current attempt."""
        steps = [(StepKey(parent.task_id, parent.attempt, first + i), task) for i, task in enumerate(tasks)]
        return await storage.get_or_create_steps(parent.fence, steps, clock.now())

    @staticmethod
    async def claim_one(
        storage: Storage, clock: FakeClock, function: str = "work", worker: str = "worker-1", **kw: Any
    ) -> TaskRecord:
        claimed = await storage.claim_tasks(request(worker, [function], limit=1, **kw), clock.now())
        assert len(claimed) == 1, f"expected one claimable {function!r} task, got {claimed!r}"
        return claimed[0]

    @staticmethod
    async def execution(storage: Storage, execution_id: str) -> ExecutionRecord:
        record = await storage.get_execution(execution_id)
        assert record is not None, f"execution {execution_id} is missing"
        return record

    @staticmethod
    async def current(storage: Storage, task: TaskRecord | Fence | str) -> TaskRecord:
        task_id = task if isinstance(task, str) else task.task_id
        record = await storage.get_task(task_id)
        assert record is not None, f"task {task_id} is missing"
        return record
