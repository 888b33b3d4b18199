"""pytest fixtures for testing your own durable functions, on a fake clock, in milliseconds.

Loaded by :mod:`stent.testing.pytest_plugin`; enable it in your top-level ``conftest.py``::

    pytest_plugins = ["stent.testing.pytest_plugin"]

- ``stent_clock``: a :class:`~stent.clocks.FakeClock`; time stands still until advanced.
- ``stent_executor``: a :class:`~stent.Stent` on in-memory storage and ``stent_clock``, with a seeded ``rng``.
- ``stent_sqlite_executor``: the same on a SQLite file in the test's ``tmp_path`` (needs stent-sqlite installed).
- ``stent_worker``: a :class:`~stent.testing.harness.WorkflowHarness` on ``stent_executor`` with one worker serving
  in the background (drained at teardown): ``run``, ``finish``, ``advance``, ``steps``; idle virtual time passes in
  one jump.
- ``stent_worker_options``: the ``serve()`` options of that worker (override the fixture to change them).
- ``stent_simulator``: the simulator (:class:`~stent.testing.sim.pytest_plugin.SimFixture`, also named ``sim``).

To run ``stent_worker`` on SQLite, override ``stent_executor`` to return ``stent_sqlite_executor``.  The async
fixtures run under stent's own runner with plain pytest, and under pytest-asyncio when it is active.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from stent.clocks import FakeClock
from stent.errors import ConfigurationError
from stent.executor import Stent
from stent.memory import MemoryStorage
from stent.ports import Storage
from stent.testing.async_support import async_fixture
from stent.testing.harness import WorkflowHarness

if TYPE_CHECKING:  # imported by pytest as a plugin (below), so that its asserts are rewritten
    from stent.testing.sim.pytest_plugin import SimFixture

pytest_plugins = ["stent.testing.sim.pytest_plugin"]

#: The seed of ``stent_executor``'s random source (retry jitter): the same in every test, so runs repeat.
SEED = 7


@pytest.fixture
def stent_clock() -> FakeClock:
    """A fake clock at 2030-01-01 UTC that moves only when advanced."""
    return FakeClock()


@contextlib.asynccontextmanager
async def _executor(storage: Storage, clock: FakeClock) -> AsyncIterator[Stent]:
    await storage.init_db()
    executor = Stent(storage, clock=clock, rng=random.Random(SEED))
    try:
        yield executor
    finally:
        await executor.close()


@async_fixture
async def stent_executor(stent_clock: FakeClock) -> AsyncIterator[Stent]:
    """An executor on fresh in-memory storage, on ``stent_clock``, with a seeded random source."""
    async with _executor(MemoryStorage(), stent_clock) as executor:
        yield executor


@async_fixture
async def stent_sqlite_executor(stent_clock: FakeClock, tmp_path: Path) -> AsyncIterator[Stent]:
    """An executor on a fresh SQLite file in ``tmp_path``, on ``stent_clock``, with a seeded random source."""
    async with _executor(Stent.backends.SQLiteBackend(str(tmp_path / "stent.db")), stent_clock) as executor:
        yield executor


@pytest.fixture
def stent_worker_options() -> dict[str, Any]:
    """``serve()`` options for the ``stent_worker`` fixture's worker; override this fixture to set some."""
    return {}


@async_fixture
async def stent_worker(
    stent_executor: Stent, stent_worker_options: dict[str, Any]
) -> AsyncIterator[WorkflowHarness]:
    """A harness on ``stent_executor`` with one worker (``"worker-1"``) serving every durable function."""
    if not isinstance(stent_worker_options, dict):
        raise ConfigurationError(
            f"the stent_worker_options fixture must return a dict of serve() options, got {stent_worker_options!r}"
        )
    harness = WorkflowHarness(executor=stent_executor, skip_idle_time=True)
    try:
        await harness.start_worker("worker-1", **stent_worker_options)
        yield harness
    finally:
        await harness.stop()


@pytest.fixture
def stent_simulator(sim: SimFixture) -> SimFixture:
    """Deterministic fleet simulations of your workflows: ``stent_simulator.run(...)`` and ``.sweep(...)``."""
    return sim
