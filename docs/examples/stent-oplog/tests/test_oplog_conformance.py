"""stent's storage conformance suite against oplog://, resolved through the entry point as stent resolves it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from stent import plugins
from stent.clocks import FakeClock
from stent.ports import Storage
from stent.testing.async_support import async_fixture
from stent.testing.conformance import StorageConformance

StorageFactory = Callable[[FakeClock], Awaitable[Storage]]


@async_fixture  # pytest.fixture, which pytest-asyncio also runs in its strict mode
async def make_storage(tmp_path: Path) -> AsyncIterator[StorageFactory]:
    """A fresh store per call: a new log file in the test's temporary directory."""
    made: list[Storage] = []

    async def make(clock: FakeClock) -> Storage:
        storage = plugins.make_storage(f"oplog:///{tmp_path}/store-{len(made)}.log")
        await storage.init_db()
        made.append(storage)
        return storage

    yield make
    for storage in made:
        await storage.close()


@async_fixture
async def reopen_storage() -> AsyncIterator[Callable[[Storage], Awaitable[Storage]]]:
    """The store of a closed storage, opened again from its file (for the `durable` capability's tests)."""
    opened: list[Storage] = []

    async def reopen(storage: Storage) -> Storage:
        again = plugins.make_storage(f"oplog:///{storage.path}")  # type: ignore[attr-defined]
        opened.append(again)
        return again

    yield reopen
    for storage in opened:
        await storage.close()


class TestOplogConformance(StorageConformance):
    pass
