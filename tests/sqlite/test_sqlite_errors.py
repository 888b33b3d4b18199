"""Bad input and bad conditions meet SQLiteStorage: each raises a stent error that says what to do."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from pathlib import Path

import pytest

from stent.clocks import FakeClock
from stent.errors import ConfigurationError, StorageCorrupt, StorageUnavailable
from stent.model import ClaimRequest, NewExecution, NewTask
from stent_sqlite import SQLiteStorage
from stent_sqlite.schema import LATEST_VERSION, MIGRATIONS


def execution(execution_id: str, queue: str = "default", tags: tuple[str, ...] = ()) -> NewExecution:
    return NewExecution(execution_id, NewTask(f"{execution_id}-root", "work", "[]", queue=queue, tags=tags))


def claim(queues: list[str] | None = None, tags: list[str] | None = None) -> ClaimRequest:
    return ClaimRequest(
        "w",
        frozenset({"work"}),
        100,
        30.0,
        queues=None if queues is None else frozenset(queues),
        tags=None if tags is None else frozenset(tags),
    )


def versions(path: Path) -> list[int]:
    with sqlite3.connect(path) as conn:
        return [row[0] for row in conn.execute("SELECT version FROM stent_schema_version ORDER BY version")]


async def test_missing_directory_is_a_configuration_error(tmp_path: Path) -> None:
    """init_db under a directory that does not exist names the directory and says to create it."""
    storage = SQLiteStorage(tmp_path / "absent" / "stent.db")
    with pytest.raises(ConfigurationError, match="absent.*does not exist; create it"):
        await storage.init_db()
    assert not (tmp_path / "absent").exists()


async def test_a_directory_is_not_a_database_file(tmp_path: Path) -> None:
    """Pointing storage at a directory says to give a file inside it."""
    with pytest.raises(ConfigurationError, match="is a directory"):
        await SQLiteStorage(tmp_path).init_db()


async def test_a_file_that_is_not_sqlite_is_reported_corrupt(tmp_path: Path) -> None:
    """A file that is not a SQLite database raises StorageCorrupt naming the file, and is left as it was."""
    path = tmp_path / "notes.txt"
    content = b"these are my notes, not a database\n" * 100
    path.write_bytes(content)
    storage = SQLiteStorage(path)
    with pytest.raises(StorageCorrupt, match="notes.txt"):
        await storage.init_db()
    with pytest.raises(StorageCorrupt, match="notes.txt"):
        await storage.get_task("anything")
    await storage.close()
    assert path.read_bytes() == content


async def test_storage_used_before_init_db_says_to_call_it(tmp_path: Path) -> None:
    """Using a database whose schema was never created raises ConfigurationError pointing at init_db."""
    storage = SQLiteStorage(tmp_path / "fresh.db")
    with pytest.raises(ConfigurationError, match="init_db"):
        await storage.get_task("t")
    await storage.close()


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    """A database migrated by a newer stent-sqlite is refused with a message to upgrade."""
    path = tmp_path / "stent.db"
    storage = SQLiteStorage(path)
    await storage.init_db()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO stent_schema_version VALUES (?, 'from the future')", (LATEST_VERSION + 1,))
    with pytest.raises(ConfigurationError, match="newer than this stent-sqlite supports"):
        await storage.init_db()
    await storage.close()


async def test_a_held_write_lock_raises_storage_unavailable(tmp_path: Path) -> None:
    """A write that cannot get the lock within busy_timeout raises StorageUnavailable, and works once freed."""
    path = tmp_path / "stent.db"
    storage = SQLiteStorage(path, busy_timeout=0.05)
    await storage.init_db()
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StorageUnavailable, match="retry"):
            await storage.create_execution(execution("e1"), FakeClock().now())
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    _, created = await storage.create_execution(execution("e1"), FakeClock().now())
    assert created
    await storage.close()


async def test_concurrent_init_db_on_one_file_migrates_once(tmp_path: Path) -> None:
    """Eight instances initialising one new file at once all succeed, and each migration is applied once."""
    path = tmp_path / "stent.db"
    storages = [SQLiteStorage(path, busy_timeout=30) for _ in range(8)]
    await asyncio.gather(*(s.init_db() for s in storages))
    assert versions(path) == [m.version for m in MIGRATIONS]
    _, created = await storages[3].create_execution(execution("e1"), FakeClock().now())
    assert created and await storages[5].get_execution("e1") is not None
    for storage in storages:
        await storage.close()


async def test_concurrent_init_db_from_processes_migrates_once(tmp_path: Path) -> None:
    """Several worker processes initialising one new file at once all succeed and migrate it once."""
    path = tmp_path / "stent.db"
    script = (
        "import asyncio, sys\n"
        "from stent_sqlite import SQLiteStorage\n"
        "async def main():\n"
        "    s = SQLiteStorage(sys.argv[1], busy_timeout=60)\n"
        "    await s.init_db()\n"
        "    await s.close()\n"
        "asyncio.run(main())\n"
    )
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", script, str(path), stderr=asyncio.subprocess.PIPE
        )
        for _ in range(5)
    ]
    outcomes = [await p.communicate() for p in processes]
    assert [p.returncode for p in processes] == [0] * 5, [err.decode() for _, err in outcomes]
    assert versions(path) == [m.version for m in MIGRATIONS]


ODD_NAMES = ["it's", '"quoted"', "100%", "100_", "a\\b", "ü 🙂 ñ", "'; DROP TABLE stent_tasks; --", "[x]", ""]


async def test_odd_queue_and_tag_names_match_only_themselves(tmp_path: Path) -> None:
    """Queues and tags with quotes, wildcards, backslashes, unicode or SQL in them are matched literally."""
    storage = SQLiteStorage(tmp_path / "stent.db")
    await storage.init_db()
    clock = FakeClock()
    for n, name in enumerate(ODD_NAMES):
        await storage.create_execution(execution(f"e{n}", queue=name, tags=(name,)), clock.now())
    for n, name in enumerate(ODD_NAMES):
        assert await storage.queue_depth(name, clock.now()) == 1
        assert [e.execution_id for e in (await storage.list_executions(queue=name)).executions] == [f"e{n}"]
    for n, name in enumerate(ODD_NAMES):
        got = await storage.claim_tasks(claim(queues=[name], tags=[name]), clock.now())
        assert [(t.task_id, t.queue, t.tags) for t in got] == [(f"e{n}-root", name, (name,))]
    assert await storage.queue_depth(None, clock.now()) == 0
    await storage.close()


@pytest.mark.parametrize("value", [0, -1, "soon", True, None])
def test_bad_busy_timeout_is_refused(tmp_path: Path, value: object) -> None:
    """A busy_timeout that is not a positive number of seconds raises ConfigurationError."""
    with pytest.raises(ConfigurationError, match="busy_timeout"):
        SQLiteStorage(tmp_path / "x.db", busy_timeout=value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://localhost/db", "not a SQLite URL"),
        ("sqlite://host/stent.db", "names a host"),
        ("sqlite:///", "names no file"),
        ("sqlite:///x.db?timeout=3", "unknown SQLite storage option"),
        ("sqlite:///x.db?busy_timeout", "has no value"),
        ("sqlite:///x.db?busy_timeout=-2", "busy_timeout"),
    ],
)
def test_bad_urls_are_refused(url: str, message: str) -> None:
    """A malformed sqlite URL raises ConfigurationError saying what is wrong."""
    with pytest.raises(ConfigurationError, match=message):
        SQLiteStorage.from_url(url)


def test_an_empty_path_is_refused() -> None:
    """An empty path raises ConfigurationError."""
    with pytest.raises(ConfigurationError, match="file path"):
        SQLiteStorage("")
