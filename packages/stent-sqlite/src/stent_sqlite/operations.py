"""Signals, cancellation, time limits, dead letters, the cache and housekeeping for
:class:`~stent_sqlite.SQLiteStorage`, each one transaction with the reference storage's semantics."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from stent.errors import ExecutionFinished, ExecutionNotFound, StentError, TaskNotFound
from stent.model import (
    SIGNAL_PREFIX,
    DeadLetter,
    ExecutionRecord,
    ExecutionState,
    SignalRecord,
    TaskRecord,
    TaskState,
    WorkerInfo,
)
from stent_sqlite.rows import (
    DEAD_LETTER_SELECT,
    EXECUTION_SELECT,
    SIGNAL_SELECT,
    TASK_SELECT,
    WORKER_COLUMNS,
    WORKER_SELECT,
    dead_letter_from_row,
    encode_list,
    execution_from_row,
    signal_from_row,
    task_from_row,
    to_us,
    to_us_or_none,
    worker_from_row,
    worker_params,
)
from stent_sqlite.transitions import (
    TERMINAL_EXECUTION,
    fetch_execution,
    fetch_task,
    stop_unleased,
    stopping,
    update_task,
    wake_parent,
)

if TYPE_CHECKING:
    from stent_sqlite.database import Database

_UNFINISHED_EXECUTION = "('pending', 'running', 'cancelling')"


class SQLiteOperations:
    _db: Database

    # -- signals ---------------------------------------------------------------------------------------------

    async def send_signal(self, execution_id: str, name: str, payload: str, now: datetime) -> SignalRecord:
        now_us = to_us(now)

        def send(conn: sqlite3.Connection) -> SignalRecord:
            execution = fetch_execution(conn, execution_id)
            if execution is None:
                raise ExecutionNotFound(execution_id)
            if stopping(execution):
                raise ExecutionFinished(execution_id, execution.state.value, f"send signal {name!r}")
            # The oldest step of this execution waiting for this name takes the signal at once.
            rows = conn.execute(
                "UPDATE stent_tasks SET state = 'completed', result = :payload, finished_at = :now,"
                " updated_at = :now WHERE task_id = (SELECT task_id FROM stent_tasks WHERE execution_id = :e"
                " AND kind = 'signal' AND function = :function AND state = 'pending' ORDER BY seq LIMIT 1)"
                f" RETURNING {TASK_SELECT}",
                {"payload": payload, "now": now_us, "e": execution_id, "function": SIGNAL_PREFIX + name},
            ).fetchall()
            consumed_by = None
            if rows:
                step = task_from_row(rows[0])
                consumed_by = step.task_id
                wake_parent(conn, step, now)
            stored = conn.execute(
                "INSERT INTO stent_signals (execution_id, name, payload, created_at, consumed_by)"
                " VALUES (?, ?, ?, ?, ?) RETURNING signal_id",
                (execution_id, name, payload, now_us, consumed_by),
            ).fetchall()
            return SignalRecord(stored[0][0], execution_id, name, payload, now, consumed_by)

        return await self._db.run(send)

    async def list_signals(self, execution_id: str) -> list[SignalRecord]:
        rows = await self._db.fetchall(
            f"SELECT {SIGNAL_SELECT} FROM stent_signals WHERE execution_id = ? ORDER BY signal_id", (execution_id,)
        )
        return [signal_from_row(row) for row in rows]

    # -- cancellation and time limits ------------------------------------------------------------------------

    async def cancel_execution(self, execution_id: str, now: datetime) -> tuple[ExecutionRecord, bool]:
        now_us = to_us(now)

        def cancel(conn: sqlite3.Connection) -> tuple[ExecutionRecord, bool]:
            execution = fetch_execution(conn, execution_id)
            if execution is None:
                raise ExecutionNotFound(execution_id)
            if stopping(execution):
                return execution, False
            stop_unleased(conn, [execution_id], now)
            root = fetch_task(conn, execution.root_task_id)
            # A running root learns at its next renewal and ends the execution; otherwise it ends now.
            if root is not None and root.state.leased:
                change = "state = 'cancelling', updated_at = :now"
            else:
                change = "state = 'cancelled', updated_at = :now, finished_at = :now"
            rows = conn.execute(
                f"UPDATE stent_executions SET {change} WHERE execution_id = :e RETURNING {EXECUTION_SELECT}",
                {"now": now_us, "e": execution_id},
            ).fetchall()
            return execution_from_row(rows[0]), True

        return await self._db.run(cancel)

    async def time_out_executions(self, now: datetime, limit: int) -> list[str]:
        if limit <= 0:
            return []
        return await self._db.run(lambda conn: time_out(conn, now, limit))

    # -- dead letters ----------------------------------------------------------------------------------------

    async def list_dead_letters(self, *, limit: int = 100, offset: int = 0) -> list[DeadLetter]:
        rows = await self._db.fetchall(
            f"SELECT {DEAD_LETTER_SELECT} FROM stent_dead_letters ORDER BY created_at DESC, task_id DESC"
            " LIMIT ? OFFSET ?",
            (max(limit, 0), max(offset, 0)),
        )
        return [dead_letter_from_row(row) for row in rows]

    async def get_dead_letter(self, task_id: str) -> DeadLetter | None:
        rows = await self._db.fetchall(
            f"SELECT {DEAD_LETTER_SELECT} FROM stent_dead_letters WHERE task_id = ?", (task_id,)
        )
        return dead_letter_from_row(rows[0]) if rows else None

    async def discard_dead_letter(self, task_id: str) -> bool:
        rows = await self._db.fetchall("DELETE FROM stent_dead_letters WHERE task_id = ? RETURNING 1", (task_id,))
        return bool(rows)

    async def replay_dead_letter(self, task_id: str, queue: str | None, now: datetime) -> TaskRecord:
        now_us = to_us(now)

        def replay(conn: sqlite3.Connection) -> TaskRecord:
            dead = conn.execute("SELECT 1 FROM stent_dead_letters WHERE task_id = ?", (task_id,)).fetchall()
            if not dead:
                raise TaskNotFound(task_id)
            task = fetch_task(conn, task_id)
            if task is None:
                raise StentError(f"dead letter {task_id} belongs to an execution that was cleaned up; discard it")
            conn.execute("DELETE FROM stent_dead_letters WHERE task_id = ?", (task_id,))
            task = update_task(
                conn,
                task_id,
                "state = 'pending', attempt = attempt + 1, queue = :queue, scheduled_for = :now, error = NULL,"
                " finished_at = NULL, updated_at = :now",
                {"queue": queue or task.queue, "now": now_us},
            )
            self._reopen_ancestors(conn, task, now)
            return task

        return await self._db.run(replay)

    def _reopen_ancestors(self, conn: sqlite3.Connection, task: TaskRecord, now: datetime) -> None:
        """Parents that failed because this task failed wait for it again; so does a failed execution."""
        child = task
        while child.parent_task_id is not None:
            parent = fetch_task(conn, child.parent_task_id)
            if parent is None or parent.state is not TaskState.FAILED or parent.attempt != child.parent_attempt:
                return
            conn.execute("DELETE FROM stent_dead_letters WHERE task_id = ?", (parent.task_id,))
            child = update_task(
                conn,
                parent.task_id,
                "state = 'suspended', error = NULL, finished_at = NULL, updated_at = :now",
                {"now": to_us(now)},
            )
        conn.execute(
            "UPDATE stent_executions SET state = 'running', error = NULL, finished_at = NULL, updated_at = ?"
            " WHERE execution_id = ? AND state = ?",
            (to_us(now), child.execution_id, ExecutionState.FAILED.value),
        )

    # -- idempotency and cache -------------------------------------------------------------------------------

    async def cache_get(self, key: str, now: datetime) -> str | None:
        now_us = to_us(now)

        def get(conn: sqlite3.Connection) -> str | None:
            rows = conn.execute("SELECT value, expires_at FROM stent_cache WHERE key = ?", (key,)).fetchall()
            if not rows:
                return None
            value, expires_at = rows[0]
            if expires_at is not None and expires_at <= now_us:
                # Conditional on expiry, so a value stored again since the read above is kept.
                conn.execute("DELETE FROM stent_cache WHERE key = ? AND expires_at <= ?", (key, now_us))
                return None
            return str(value)

        return await self._db.run(get, transaction=False)

    async def cache_put(self, key: str, value: str, expires_at: datetime | None, now: datetime) -> None:
        await self._db.fetchall(
            "INSERT INTO stent_cache (key, value, expires_at) VALUES (?, ?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
            (key, value, to_us_or_none(expires_at)),
        )

    # -- housekeeping ----------------------------------------------------------------------------------------

    async def acquire_leader(self, name: str, owner: str, ttl_seconds: float, now: datetime) -> bool:
        # One statement: take a free or expired lock, or renew our own; another owner's live lock stays.
        rows = await self._db.fetchall(
            "INSERT INTO stent_leaders (name, owner, expires_at) VALUES (:name, :owner, :until)"
            " ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at"
            " WHERE stent_leaders.owner = excluded.owner OR stent_leaders.expires_at <= :now RETURNING 1",
            {
                "name": name,
                "owner": owner,
                "until": to_us(now + timedelta(seconds=ttl_seconds)),
                "now": to_us(now),
            },
        )
        return bool(rows)

    async def release_leader(self, name: str, owner: str) -> None:
        await self._db.fetchall("DELETE FROM stent_leaders WHERE name = ? AND owner = ?", (name, owner))

    async def delete_executions_before(self, cutoff: datetime, limit: int) -> int:
        if limit <= 0:
            return 0

        def delete(conn: sqlite3.Connection) -> int:
            rows = conn.execute(
                "SELECT execution_id FROM stent_executions INDEXED BY ix_stent_executions_finished"
                f" WHERE finished_at IS NOT NULL AND finished_at < ? AND state IN {TERMINAL_EXECUTION}"
                " ORDER BY finished_at, execution_id LIMIT ?",
                (to_us(cutoff), limit),
            ).fetchall()
            ids = encode_list([row[0] for row in rows])
            for table in ("stent_tasks", "stent_signals", "stent_executions"):
                conn.execute(f"DELETE FROM {table} WHERE execution_id IN (SELECT value FROM json_each(?))", (ids,))
            return len(rows)

        return await self._db.run(delete)

    async def delete_dead_letters_before(self, cutoff: datetime, limit: int) -> int:
        if limit <= 0:
            return 0
        rows = await self._db.fetchall(
            "DELETE FROM stent_dead_letters WHERE task_id IN (SELECT task_id FROM stent_dead_letters"
            " WHERE created_at < ? ORDER BY created_at, task_id LIMIT ?) RETURNING 1",
            (to_us(cutoff), limit),
        )
        return len(rows)

    async def record_worker(self, info: WorkerInfo) -> None:
        await self._db.fetchall(
            f"INSERT OR REPLACE INTO stent_workers ({WORKER_SELECT})"
            f" VALUES ({', '.join('?' for _ in WORKER_COLUMNS)})",
            worker_params(info),
        )

    async def remove_worker(self, worker_id: str) -> None:
        await self._db.fetchall("DELETE FROM stent_workers WHERE worker_id = ?", (worker_id,))

    async def list_workers(self) -> list[WorkerInfo]:
        rows = await self._db.fetchall(f"SELECT {WORKER_SELECT} FROM stent_workers ORDER BY worker_id")
        return [worker_from_row(row) for row in rows]

    async def delete_workers_before(self, cutoff: datetime) -> int:
        rows = await self._db.fetchall(
            "DELETE FROM stent_workers WHERE last_seen < ? RETURNING 1", (to_us(cutoff),)
        )
        return len(rows)


def time_out(conn: sqlite3.Connection, now: datetime, limit: int) -> list[str]:
    """End up to ``limit`` unfinished executions whose deadline has passed, in the caller's transaction."""
    now_us = to_us(now)
    rows = conn.execute(
        "SELECT execution_id FROM stent_executions INDEXED BY ix_stent_executions_deadline"
        f" WHERE deadline IS NOT NULL AND state IN {_UNFINISHED_EXECUTION} AND deadline <= ?"
        " ORDER BY deadline, execution_id LIMIT ?",
        (now_us, limit),
    ).fetchall()
    ids = [row[0] for row in rows]
    if ids:
        stop_unleased(conn, ids, now)
        conn.execute(
            "UPDATE stent_executions SET state = 'timed_out', updated_at = ?, finished_at = ?"
            " WHERE execution_id IN (SELECT value FROM json_each(?))",
            (now_us, now_us, encode_list(ids)),
        )
    return ids
