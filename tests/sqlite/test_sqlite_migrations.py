"""Schema migrations: a file made by an earlier stent-sqlite is brought up to date, and released versions are frozen."""

from __future__ import annotations

import hashlib
import sqlite3
from datetime import timedelta
from pathlib import Path

from stent.clocks import FakeClock
from stent.model import ClaimRequest, TaskState
from stent_sqlite import SQLiteStorage
from stent_sqlite.rows import to_us
from stent_sqlite.schema import LATEST_VERSION, MIGRATIONS

# The digest of every released migration's statements.  A released version is in files people use, so it must
# never change: alter the schema in a new version instead (and add its digest here when it is released).
RELEASED = {1: "246704f16ea01df0670274cbac7e9643f1fa2c22bea577074f7a378cc9a54cb2"}


def _digest(version: int) -> str:
    statements = next(m for m in MIGRATIONS if m.version == version).statements
    return hashlib.sha256("\n;\n".join(statements).encode()).hexdigest()


def _version_1_file(path: Path, clock: FakeClock) -> None:
    """A database exactly as stent-sqlite left it at schema version 1, holding a running and a dead task."""
    now = to_us(clock.now())
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE stent_schema_version (version INTEGER PRIMARY KEY, description TEXT NOT NULL)")
        for statement in MIGRATIONS[0].statements:
            conn.execute(statement)
        conn.execute("INSERT INTO stent_schema_version VALUES (1, ?)", (MIGRATIONS[0].description,))
        conn.execute(
            "INSERT INTO stent_executions VALUES ('e1', 'root', 'flow', 'default', 'running', ?, ?, NULL,"
            " NULL, NULL, NULL)",
            (now, now),
        )
        task = (
            "INSERT INTO stent_tasks (task_id, execution_id, function, kind, state, queue, tags, priority, args,"
            " attempt, max_attempts, options, scheduled_for, created_at, updated_at, parent_task_id,"
            " parent_attempt, step, lease_owner, lease_expires_at, fencing_token, error, finished_at)"
            " VALUES (?, 'e1', ?, 'call', ?, ?, '[]', 0, '[]', ?, 3, '{}', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        lease = now + 30_000_000
        conn.execute(
            task,
            ("root", "flow", "waiting", "default", 1, now, now, now, None, None, None, "w", lease, 1, None, None),
        )
        conn.execute(
            task, ("child", "mail", "failed", "mailq", 3, now, now, now, "root", 1, 0, None, None, 2, "Boom", now)
        )
        conn.execute("UPDATE stent_meta SET value = 2 WHERE name = 'fencing_token'")
        conn.execute("INSERT INTO stent_dead_letters VALUES ('child', 'e1', 'exhausted', 'Boom', ?)", (now,))
    conn.close()


async def test_a_version_1_file_is_migrated_and_keeps_its_data(tmp_path: Path) -> None:
    """init_db brings a version-1 file to the latest version; its rows read back and every operation works."""
    clock = FakeClock()
    path = tmp_path / "old.db"
    _version_1_file(path, clock)
    storage = SQLiteStorage(path)
    await storage.init_db()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT max(version) FROM stent_schema_version").fetchone()[0] == LATEST_VERSION
    conn.close()
    execution = await storage.get_execution("e1")
    assert execution is not None and (execution.counters, execution.custom_state) == ("{}", "{}")
    dead = await storage.get_dead_letter("child")
    assert dead is not None
    assert (dead.function, dead.queue, dead.attempts, dead.reason) == ("mail", "mailq", 3, "exhausted")
    root = await storage.get_task("root")
    assert root is not None and root.wake_at is None
    # The new operations run on the migrated file: suspend the root, replay its child, wake the root.
    parked = await storage.suspend_task(
        root.fence, waiting_on=["child"], wake_at=clock.now() + timedelta(hours=1), now=clock.now()
    )
    assert parked.state is TaskState.PENDING  # the child had already finished
    await storage.send_signal("e1", "go", "1", clock.now())
    (claimed,) = await storage.claim_tasks(ClaimRequest("w2", frozenset({"flow"}), 5, 30.0), clock.now())
    assert claimed.task_id == "root" and claimed.fencing_token == 3
    await storage.close()


async def test_migrating_twice_changes_nothing(tmp_path: Path) -> None:
    """A second init_db on a migrated file finds it up to date."""
    clock = FakeClock()
    path = tmp_path / "old.db"
    _version_1_file(path, clock)
    for _ in range(2):
        storage = SQLiteStorage(path)
        await storage.init_db()
        await storage.close()
    with sqlite3.connect(path) as conn:
        versions = [row[0] for row in conn.execute("SELECT version FROM stent_schema_version ORDER BY version")]
    conn.close()
    assert versions == list(range(1, LATEST_VERSION + 1))


def test_released_migrations_are_never_edited() -> None:
    """The statements of every released schema version are exactly those released."""
    for version, digest in RELEASED.items():
        assert _digest(version) == digest, (
            f"schema version {version} was edited; databases in use are already at it, so change the schema"
            " in a new migration version instead"
        )
