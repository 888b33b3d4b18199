"""The storage conformance suite against the reference in-memory storage."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from stent.clocks import FakeClock
from stent.memory import MemoryStorage
from stent.ports import Storage
from stent.testing.conformance import StorageConformance


@pytest.fixture
def make_storage() -> Callable[[FakeClock], Awaitable[Storage]]:
    async def make(clock: FakeClock) -> Storage:
        storage = MemoryStorage()
        await storage.init_db()
        return storage

    return make


class TestMemoryConformance(StorageConformance):
    pass
