"""The SQLite schema and its versioned migrations.

Every table is prefixed ``stent_`` so that stent can share a database file with an application.  Times are
stored as INTEGER microseconds since the Unix epoch (UTC): they compare exactly in SQL and come back as the same
instant.  Task tags are a JSON array (``'[]'`` when untagged) matched with ``json_each``.

:func:`migrate` is what ``init_db()`` runs, in a write transaction: it takes the write lock first (``BEGIN
IMMEDIATE``) and only then reads the schema version, so when many workers start at once exactly one applies each
migration and the others find the work done.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from stent.errors import ConfigurationError

if TYPE_CHECKING:
    import sqlite3


@attrs.frozen
class Migration:
    """One step from ``version - 1`` to ``version``; its statements run in the migrating transaction."""

    version: int
    description: str
    statements: tuple[str, ...]


# Version 1, as released: never edit it (databases in use are at this version); change the schema in a new
# version below.
_V1 = (
    # Counters shared by every connection; ``fencing_token`` makes tokens unique across all tasks and claims.
    """CREATE TABLE stent_meta (
        name TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    ) WITHOUT ROWID""",
    "INSERT INTO stent_meta (name, value) VALUES ('fencing_token', 0)",
    """CREATE TABLE stent_executions (
        execution_id TEXT PRIMARY KEY,
        root_task_id TEXT NOT NULL,
        function TEXT NOT NULL,
        queue TEXT NOT NULL,
        state TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        deadline INTEGER,
        result TEXT,
        error TEXT,
        finished_at INTEGER
    )""",
    "CREATE INDEX ix_stent_executions_created ON stent_executions (created_at, execution_id)",
    "CREATE INDEX ix_stent_executions_state ON stent_executions (state, created_at, execution_id)",
    # ``seq`` (the rowid) is the insertion order an execution's tasks are listed in; an explicit INTEGER
    # PRIMARY KEY keeps it stable across VACUUM.
    """CREATE TABLE stent_tasks (
        seq INTEGER PRIMARY KEY,
        task_id TEXT NOT NULL UNIQUE,
        execution_id TEXT NOT NULL,
        function TEXT NOT NULL,
        kind TEXT NOT NULL,
        state TEXT NOT NULL,
        queue TEXT NOT NULL,
        tags TEXT NOT NULL,
        priority INTEGER NOT NULL,
        args TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        max_attempts INTEGER NOT NULL,
        max_concurrent INTEGER,
        options TEXT NOT NULL,
        scheduled_for INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        parent_task_id TEXT,
        parent_attempt INTEGER,
        step INTEGER,
        lease_owner TEXT,
        lease_expires_at INTEGER,
        fencing_token INTEGER NOT NULL DEFAULT 0,
        result TEXT,
        error TEXT,
        started_at INTEGER,
        finished_at INTEGER
    )""",
    # A step's identity; root tasks have NULL parents, which a UNIQUE index treats as distinct.
    "CREATE UNIQUE INDEX ux_stent_tasks_step ON stent_tasks (parent_task_id, parent_attempt, step)",
    "CREATE INDEX ix_stent_tasks_execution ON stent_tasks (execution_id)",
    # The claim names its index for each part (INDEXED BY), so plans do not hinge on statistics: due pending
    # tasks of given queues (also queue_depth), due pending tasks of any queue, leased tasks whose lease ran
    # out.  The partial indexes hold only the rows they serve, so they stay small.
    "CREATE INDEX ix_stent_tasks_ready ON stent_tasks (state, queue, scheduled_for, priority)",
    "CREATE INDEX ix_stent_tasks_due ON stent_tasks (scheduled_for, queue) WHERE state = 'pending'",
    """CREATE INDEX ix_stent_tasks_lease ON stent_tasks (lease_expires_at)
        WHERE state IN ('running', 'waiting')""",
    # max_concurrent counts running tasks per function; only limited functions' running rows are indexed.
    """CREATE INDEX ix_stent_tasks_limited ON stent_tasks (function)
        WHERE state = 'running' AND max_concurrent IS NOT NULL""",
    """CREATE TABLE stent_dead_letters (
        task_id TEXT PRIMARY KEY,
        execution_id TEXT NOT NULL,
        reason TEXT NOT NULL,
        error TEXT NOT NULL,
        created_at INTEGER NOT NULL
    )""",
    "CREATE INDEX ix_stent_dead_letters_created ON stent_dead_letters (created_at)",
)

# Version 2: the full Storage port.  A new version, never an edit of version 1, so that files made by an earlier
# stent-sqlite are brought up to date by init_db().
_V2 = (
    # Suspended tasks: when their timer fires.
    "ALTER TABLE stent_tasks ADD COLUMN wake_at INTEGER",
    # Counters and custom state of an execution, JSON objects updated with task completions.
    "ALTER TABLE stent_executions ADD COLUMN counters TEXT NOT NULL DEFAULT '{}'",
    "ALTER TABLE stent_executions ADD COLUMN custom_state TEXT NOT NULL DEFAULT '{}'",
    # Time limits look only at unfinished executions that have a deadline; cleanup only at finished ones.
    """CREATE INDEX ix_stent_executions_deadline ON stent_executions (deadline, execution_id)
        WHERE deadline IS NOT NULL AND state IN ('pending', 'running', 'cancelling')""",
    """CREATE INDEX ix_stent_executions_finished ON stent_executions (finished_at, execution_id)
        WHERE finished_at IS NOT NULL""",
    # The claim names its index for each part (INDEXED BY), so plans do not hinge on statistics.  Each index is
    # partial and holds only the rows it serves: pending calls by queue and due time (also queue_depth),
    # pending calls of any queue by due time, leased tasks by lease expiry (version 1), suspended tasks by wake
    # time.  Pending signal waits (which no worker claims) are in none of them, however many there are.
    "DROP INDEX ix_stent_tasks_ready",
    """CREATE INDEX ix_stent_tasks_ready ON stent_tasks (queue, scheduled_for, priority)
        WHERE state = 'pending' AND kind = 'call'""",
    "DROP INDEX ix_stent_tasks_due",
    """CREATE INDEX ix_stent_tasks_due ON stent_tasks (scheduled_for, queue)
        WHERE state = 'pending' AND kind = 'call'""",
    "CREATE INDEX ix_stent_tasks_wake ON stent_tasks (wake_at) WHERE state = 'suspended'",
    # A signal goes to the oldest pending wait of its name in its execution, however many tasks that has.
    """CREATE INDEX ix_stent_tasks_signal_wait ON stent_tasks (execution_id, function, seq)
        WHERE kind = 'signal' AND state = 'pending'""",
    # AUTOINCREMENT: a signal id is never reused, even after cleanup deleted the newest signals.
    """CREATE TABLE stent_signals (
        signal_id INTEGER PRIMARY KEY AUTOINCREMENT,
        execution_id TEXT NOT NULL,
        name TEXT NOT NULL,
        payload TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        consumed_by TEXT
    )""",
    "CREATE INDEX ix_stent_signals_execution ON stent_signals (execution_id, signal_id)",
    """CREATE INDEX ix_stent_signals_buffered ON stent_signals (execution_id, name, signal_id)
        WHERE consumed_by IS NULL""",
    # A dead letter keeps what it needs to be listed after its execution was cleaned up; rows written by
    # version 1 take those values from their task.
    "ALTER TABLE stent_dead_letters ADD COLUMN function TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE stent_dead_letters ADD COLUMN queue TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE stent_dead_letters ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0",
    """UPDATE stent_dead_letters SET (function, queue, attempts) =
        (SELECT t.function, t.queue, t.attempt FROM stent_tasks AS t WHERE t.task_id = stent_dead_letters.task_id)
        WHERE task_id IN (SELECT task_id FROM stent_tasks)""",
    "DROP INDEX ix_stent_dead_letters_created",
    "CREATE INDEX ix_stent_dead_letters_created ON stent_dead_letters (created_at, task_id)",
    """CREATE TABLE stent_cache (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        expires_at INTEGER
    ) WITHOUT ROWID""",
    """CREATE TABLE stent_leaders (
        name TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        expires_at INTEGER NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE stent_workers (
        worker_id TEXT PRIMARY KEY,
        hostname TEXT NOT NULL,
        pid INTEGER NOT NULL,
        queues TEXT,
        tags TEXT,
        max_concurrency INTEGER NOT NULL,
        running INTEGER NOT NULL,
        state TEXT NOT NULL,
        started_at INTEGER NOT NULL,
        last_seen INTEGER NOT NULL
    ) WITHOUT ROWID""",
)

#: Every migration, in order; a database at version N has had 1..N applied.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "executions, tasks, steps and dead letters", _V1),
    Migration(2, "suspension, signals, context, dead letter details, cache, leader locks, workers", _V2),
)

LATEST_VERSION = MIGRATIONS[-1].version

_VERSION_TABLE = """CREATE TABLE IF NOT EXISTS stent_schema_version (
    version INTEGER PRIMARY KEY,
    description TEXT NOT NULL
)"""


def current_version(conn: sqlite3.Connection) -> int:
    """The schema version recorded in the database, 0 when none was."""
    rows = conn.execute("SELECT max(version) FROM stent_schema_version").fetchall()
    return int(rows[0][0] or 0)


def migrate(conn: sqlite3.Connection, path: str) -> int:
    """Bring the schema to :data:`LATEST_VERSION`; returns how many migrations ran.

    The caller holds a ``BEGIN IMMEDIATE`` transaction, so every migration applies or none does.
    """
    conn.execute(_VERSION_TABLE)
    # Read inside the write transaction: a worker that started at the same moment may have migrated already.
    version = current_version(conn)
    if version > LATEST_VERSION:
        raise ConfigurationError(
            f"the stent database {path!r} has schema version {version}, newer than this stent-sqlite"
            f" supports ({LATEST_VERSION}); upgrade stent-sqlite on this host"
        )
    pending = [m for m in MIGRATIONS if m.version > version]
    for migration in pending:
        for statement in migration.statements:
            conn.execute(statement)
        conn.execute(
            "INSERT INTO stent_schema_version (version, description) VALUES (?, ?)",
            (migration.version, migration.description),
        )
    return len(pending)
