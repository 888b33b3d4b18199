"""The conformance suite: what every adapter must do, as test classes an adapter's tests subclass.

A storage adapter proves itself by running :class:`StorageConformance` against its backend::

    import pytest
    from stent.testing.conformance import StorageConformance

    @pytest.fixture
    async def make_storage(tmp_path):
        made = []

        async def make(clock):
            storage = MyStorage(tmp_path / f"db-{len(made)}")
            await storage.init_db()
            made.append(storage)
            return storage

        yield make
        for storage in made:
            await storage.close()

    class TestMyStorageConformance(StorageConformance):
        pass

``make_storage`` is the one fixture an adapter must provide: given a :class:`~stent.clocks.FakeClock`, it returns
a fresh, isolated, initialised Storage and closes it afterwards.  ``make_peer_storage`` is optional: given a
storage made by ``make_storage`` that declares ``shared``, it opens another client of the same backend (a second
connection), so that the concurrency tests contend through the backend's own locking; without it the racers
share one instance.

Optional capabilities (``shared``, ``durable``, ``transactional_notifications``) are declared by the storage in
its ``capabilities`` attribute; their tests are skipped, naming the capability, unless declared (see
:mod:`~stent.testing.conformance.capabilities` and :mod:`~stent.testing.conformance.storage_optional`).  A known
gap is declared by overriding its test in the subclass with ``@pytest.mark.xfail(strict=True, reason=...)``.

The suite needs only pytest: load ``stent.testing.conformance.plugin`` (``pytest_plugins`` in the top-level
``conftest.py``) for the summary of capabilities at the end of the run and, without pytest-asyncio, to run the
async tests.  The classes' names do not start with ``Test``, so pytest collects them only where an adapter
subclasses them; each area is also a class of its own, to run a part alone.
"""

from __future__ import annotations

from stent.testing.conformance.storage_batches import BatchConformance
from stent.testing.conformance.storage_cancel import CancellationConformance, TimeLimitConformance
from stent.testing.conformance.storage_claim import ClaimChoresConformance, ClaimConformance
from stent.testing.conformance.storage_concurrency import ConcurrencyConformance
from stent.testing.conformance.storage_context import CacheConformance, ContextConformance
from stent.testing.conformance.storage_create import ExecutionCreationConformance, StepCreationConformance
from stent.testing.conformance.storage_deadletters import DeadLetterConformance
from stent.testing.conformance.storage_finish import FinishConformance
from stent.testing.conformance.storage_housekeeping import (
    CleanupConformance,
    LeaderConformance,
    WorkerRowConformance,
)
from stent.testing.conformance.storage_leases import FencingConformance, LeaseConformance
from stent.testing.conformance.storage_optional import (
    DurabilityConformance,
    SharedStoreConformance,
    TransactionalNotificationConformance,
)
from stent.testing.conformance.storage_queues import QueueOverviewConformance
from stent.testing.conformance.storage_reads import ReadConformance
from stent.testing.conformance.storage_signals import SignalConformance
from stent.testing.conformance.storage_suspend import SuspensionConformance


class StorageConformance(
    ExecutionCreationConformance,
    StepCreationConformance,
    ClaimConformance,
    ClaimChoresConformance,
    ConcurrencyConformance,
    LeaseConformance,
    FencingConformance,
    FinishConformance,
    BatchConformance,
    SuspensionConformance,
    SignalConformance,
    CancellationConformance,
    TimeLimitConformance,
    DeadLetterConformance,
    ContextConformance,
    CacheConformance,
    LeaderConformance,
    CleanupConformance,
    WorkerRowConformance,
    ReadConformance,
    QueueOverviewConformance,
    SharedStoreConformance,
    DurabilityConformance,
    TransactionalNotificationConformance,
):
    """Every required behaviour of the Storage port, and the tests of the optional capabilities (which run only
    for a storage that declares them)."""


__all__ = [
    "BatchConformance",
    "CacheConformance",
    "CancellationConformance",
    "ClaimChoresConformance",
    "ClaimConformance",
    "CleanupConformance",
    "ConcurrencyConformance",
    "ContextConformance",
    "DeadLetterConformance",
    "DurabilityConformance",
    "ExecutionCreationConformance",
    "FencingConformance",
    "FinishConformance",
    "LeaderConformance",
    "LeaseConformance",
    "QueueOverviewConformance",
    "ReadConformance",
    "SharedStoreConformance",
    "SignalConformance",
    "StepCreationConformance",
    "StorageConformance",
    "SuspensionConformance",
    "TimeLimitConformance",
    "TransactionalNotificationConformance",
    "WorkerRowConformance",
]

# The notifier suite (stent.testing.conformance.notifier) is reachable from here too.
from stent.testing.conformance.notifier import NotifierConformance as NotifierConformance
