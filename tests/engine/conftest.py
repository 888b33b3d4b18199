"""Engine behaviour tests run on memory storage and on SQLite, with a fake clock (see stent.testing.harness)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from stent import Stent
from stent.memory import MemoryStorage
from stent.ports import Storage
from stent.testing.harness import WorkflowHarness

BACKENDS = ["memory", "sqlite"]


async def make_storage(kind: str, tmp_path: Path) -> Storage:
    if kind == "memory":
        return MemoryStorage()
    storage = Stent.backends.SQLiteBackend(str(tmp_path / "engine.db"))
    await storage.init_db()
    return storage


@pytest.fixture(params=BACKENDS)
async def harness(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[WorkflowHarness]:
    h = WorkflowHarness(await make_storage(request.param, tmp_path))
    yield h
    await h.stop()
