"""What SQLiteStorage promises beyond the port: files, URLs, one shared connection, and a light plugin."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from stent.clocks import FakeClock
from stent.model import ClaimRequest, NewExecution, NewTask, TaskRecord
from stent_sqlite import SQLiteStorage
from stent_sqlite.schema import LATEST_VERSION


def execution(execution_id: str) -> NewExecution:
    return NewExecution(execution_id, NewTask(f"{execution_id}-root", "work", "[]"))


CLAIM = ClaimRequest("w", frozenset({"work"}), 10, 30.0)


async def test_data_survives_close_and_reopen(tmp_path: Path) -> None:
    """What one instance wrote is read back by a new instance on the same file."""
    clock = FakeClock()
    first = SQLiteStorage(tmp_path / "stent.db")
    await first.init_db()
    created, _ = await first.create_execution(execution("e1"), clock.now())
    await first.close()
    second = SQLiteStorage(tmp_path / "stent.db")
    await second.init_db()  # a second init_db is a no-op that keeps the data
    assert await second.get_execution("e1") == created
    await second.close()


async def test_the_file_is_in_wal_mode_at_the_latest_schema(tmp_path: Path) -> None:
    """init_db leaves the file in WAL mode with every migration recorded."""
    storage = SQLiteStorage(tmp_path / "stent.db")
    await storage.init_db()
    with sqlite3.connect(tmp_path / "stent.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT max(version) FROM stent_schema_version").fetchone()[0] == LATEST_VERSION
    await storage.close()


async def test_url_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Three slashes is a path relative to the working directory, four an absolute one; options come along."""
    monkeypatch.chdir(tmp_path)
    relative = SQLiteStorage.from_url("sqlite:///data/rel.db?busy_timeout=2.5")
    assert (relative.path, relative.busy_timeout) == ("data/rel.db", 2.5)
    absolute = SQLiteStorage.from_url(f"sqlite:///{tmp_path}/abs.db", busy_timeout=9)
    assert (absolute.path, absolute.busy_timeout) == (f"{tmp_path}/abs.db", 9.0)
    assert SQLiteStorage.from_url("sqlite://:memory:").path == ":memory:"
    assert SQLiteStorage.from_url("sqlite:///:memory:").path == ":memory:"
    (tmp_path / "data").mkdir()
    await relative.init_db()
    assert (tmp_path / "data" / "rel.db").exists()
    await relative.close()


async def test_in_memory_database_works_for_one_instance() -> None:
    """sqlite://:memory: gives a private database that lives as long as the instance's connection."""
    storage = SQLiteStorage.from_url("sqlite://:memory:")
    await storage.init_db()
    clock = FakeClock()
    await storage.create_execution(execution("e1"), clock.now())
    assert [t.task_id for t in await storage.claim_tasks(CLAIM, clock.now())] == ["e1-root"]
    await storage.close()


async def test_coroutines_sharing_one_instance_never_interleave_transactions(tmp_path: Path) -> None:
    """Fifty coroutines claiming and completing on one instance (one connection) all succeed, each task once."""
    storage = SQLiteStorage(tmp_path / "stent.db")
    await storage.init_db()
    clock = FakeClock()
    for n in range(300):
        await storage.create_execution(execution(f"e{n}"), clock.now())

    async def worker(number: int) -> list[TaskRecord]:
        done: list[TaskRecord] = []
        request = ClaimRequest(f"w{number}", frozenset({"work"}), 2, 30.0)
        while got := await storage.claim_tasks(request, clock.now()):
            for task in got:
                done.append(await storage.complete_task(task.fence, "null", clock.now()))
        return done

    finished = [t.task_id for done in await asyncio.gather(*(worker(n) for n in range(50))) for t in done]
    assert sorted(finished) == sorted(f"e{n}-root" for n in range(300))
    assert (await storage.list_executions(limit=1)).executions[0].state.value == "completed"
    await storage.close()


async def test_a_cancelled_call_runs_whole_and_leaves_the_connection_usable(tmp_path: Path) -> None:
    """A call cancelled while it waits for the lock stops waiting; its operation still runs whole, like a reply
    lost on the way back, and the next call works."""
    path = tmp_path / "stent.db"
    storage = SQLiteStorage(path, busy_timeout=30)
    await storage.init_db()
    clock = FakeClock()
    blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")
    call = asyncio.ensure_future(storage.create_execution(execution("cancelled"), clock.now()))
    for _ in range(20):  # let the call reach BEGIN IMMEDIATE, which now waits on the database thread
        await asyncio.sleep(0)
    call.cancel()
    blocker.execute("ROLLBACK")
    blocker.close()
    with pytest.raises(asyncio.CancelledError):
        await call
    _, created = await storage.create_execution(execution("next"), clock.now())
    assert created
    assert await storage.get_execution("next") is not None
    assert await storage.get_execution("cancelled") is not None
    assert await storage.get_task("cancelled-root") is not None
    await storage.close()


def test_a_program_that_never_closes_its_storage_still_exits(tmp_path: Path) -> None:
    """A program returning from asyncio.run() without close() exits at once, and what it wrote is on disk."""
    path = tmp_path / "stent.db"
    script = (
        "import asyncio, sys\n"
        "from stent.clocks import FakeClock\n"
        "from stent.model import NewExecution, NewTask\n"
        "from stent_sqlite import SQLiteStorage\n"
        "async def main():\n"
        "    storage = SQLiteStorage(sys.argv[1])\n"
        "    await storage.init_db()\n"
        "    await storage.create_execution(NewExecution('e1', NewTask('e1-root', 'work', '[]')), FakeClock().now())\n"
        "asyncio.run(main())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(path)], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT execution_id FROM stent_executions").fetchall() == [("e1",)]
    conn.close()


def test_one_instance_serves_event_loops_in_turn(tmp_path: Path) -> None:
    """An instance used under one asyncio.run() and then under another keeps answering each caller."""
    storage = SQLiteStorage(tmp_path / "stent.db")
    asyncio.run(storage.init_db())
    asyncio.run(storage.create_execution(execution("e1"), FakeClock().now()))
    assert asyncio.run(storage.get_execution("e1")) is not None
    asyncio.run(storage.close())


def test_plugin_and_core_import_without_the_driver() -> None:
    """Importing stent and the sqlite plugin module imports neither the storage nor sqlite3; resolving a URL does."""
    script = (
        "import sys\n"
        "import stent, stent_sqlite, stent_sqlite.plugin\n"
        "early = {'sqlite3', 'stent_sqlite.storage'} & set(sys.modules)\n"
        "assert not early, f'imported too early: {early}'\n"
        "storage = stent_sqlite.plugin.make_sqlite_storage('sqlite://:memory:')\n"
        "assert type(storage).__name__ == 'SQLiteStorage'\n"
        "assert {'sqlite3', 'stent_sqlite.storage'} <= set(sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_the_sqlite_scheme_resolves_through_the_plugin_host(tmp_path: Path) -> None:
    """stent's plugin host builds SQLiteStorage for sqlite:// URLs from the installed entry point."""
    from stent.plugins import make_storage

    storage = make_storage(f"sqlite:///{tmp_path}/stent.db", busy_timeout=3)
    assert isinstance(storage, SQLiteStorage)
    assert (storage.path, storage.busy_timeout) == (f"{tmp_path}/stent.db", 3.0)
