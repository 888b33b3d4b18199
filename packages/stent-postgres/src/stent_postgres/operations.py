"""Signals, cancellation, time limits and dead letters for :class:`~stent_postgres.PostgresStorage`.

``send_signal`` and ``cancel_execution`` lock the execution row first: a signal step being created (which locks
the same row) and a signal being sent are then ordered, so neither misses the other, and steps being created
land before a cancellation looks for what to cancel.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information

from stent.errors import ExecutionFinished, ExecutionNotFound, StentError, TaskNotFound
from stent.model import (
    SIGNAL_PREFIX,
    DeadLetter,
    ExecutionRecord,
    ExecutionState,
    SignalRecord,
    TaskRecord,
)
from stent.ports import Notification
from stent_postgres.base import StorageBase
from stent_postgres.rows import (
    EXECUTION_SELECT,
    TASK_SELECT,
    check_time,
    dead_letter_from_row,
    execution_from_row,
    signal_from_row,
    task_from_row,
)

_LOCK_EXECUTION = f"SELECT {EXECUTION_SELECT} FROM {{s}}.executions WHERE execution_id = $1 FOR UPDATE"
# The oldest pending step waiting for the signal's name takes it.
_SIGNAL_STEP = (
    "UPDATE {s}.tasks SET state = 'completed', result = $3, finished_at = $4, updated_at = $4"
    " WHERE task_id = (SELECT task_id FROM {s}.tasks WHERE execution_id = $1 AND kind = 'signal'"
    " AND function = $2 AND state = 'pending' ORDER BY seq LIMIT 1)"
    f" RETURNING {TASK_SELECT}"
)
_INSERT_SIGNAL = (
    "INSERT INTO {s}.signals (execution_id, name, payload, created_at, consumed_by) VALUES ($1, $2, $3, $4, $5)"
    " RETURNING signal_id, execution_id, name, payload, created_at, consumed_by"
)
# Unleased tasks of a stopping execution end now; leased ones learn at their next renewal or write.
_STOP_UNLEASED = (
    "UPDATE {s}.tasks SET state = 'cancelled', finished_at = $2, updated_at = $2, wake_at = NULL"
    " WHERE execution_id = $1 AND state IN ('pending', 'suspended')"
)
_CANCEL_EXECUTION = (
    "UPDATE {s}.executions AS e SET updated_at = $2,"
    " state = CASE WHEN r.state IN ('running', 'waiting') THEN 'cancelling' ELSE 'cancelled' END,"
    " finished_at = CASE WHEN r.state IN ('running', 'waiting') THEN e.finished_at ELSE $2 END"
    " FROM {s}.tasks AS r WHERE e.execution_id = $1 AND r.task_id = e.root_task_id"
    f" RETURNING {', '.join('e.' + c for c in EXECUTION_SELECT.split(', '))}"
)
_TIME_OUT = (
    "WITH due AS (SELECT execution_id FROM {s}.executions"
    " WHERE deadline IS NOT NULL AND deadline <= $1 AND state IN ('pending', 'running', 'cancelling')"
    " ORDER BY deadline, execution_id LIMIT $2 FOR UPDATE SKIP LOCKED),"
    " t AS (UPDATE {s}.tasks AS t SET state = 'cancelled', finished_at = $1, updated_at = $1, wake_at = NULL"
    " FROM due WHERE t.execution_id = due.execution_id AND t.state IN ('pending', 'suspended')),"
    " e AS (UPDATE {s}.executions AS e SET state = 'timed_out', updated_at = $1, finished_at = $1"
    " FROM due WHERE e.execution_id = due.execution_id RETURNING e.execution_id, e.deadline, e.root_task_id)"
    " SELECT execution_id, CASE WHEN $3 THEN pg_notify($4, json_build_object('kind', 'finished',"
    " 'task_id', root_task_id, 'execution_id', execution_id)::text) END FROM e ORDER BY deadline, execution_id"
)
_DEAD_LETTERS = "SELECT * FROM {s}.dead_letters ORDER BY created_at DESC, task_id DESC LIMIT $1 OFFSET $2"
_REOPEN_PARENT = (
    "UPDATE {s}.tasks SET state = 'suspended', error = NULL, finished_at = NULL, updated_at = $3"
    f" WHERE task_id = $1 AND state = 'failed' AND attempt = $2 RETURNING {TASK_SELECT}"
)


class OperationsMixin(StorageBase):
    # -- signals ---------------------------------------------------------------------------------------------

    async def send_signal(self, execution_id: str, name: str, payload: str, now: datetime) -> SignalRecord:
        check_time(now)

        async def send(conn: asyncpg.Connection) -> SignalRecord:
            row = await conn.fetchrow(self._sql(_LOCK_EXECUTION), execution_id)
            if row is None:
                raise ExecutionNotFound(execution_id)
            execution = execution_from_row(row)
            if execution.state.terminal or execution.state is ExecutionState.CANCELLING:
                raise ExecutionFinished(execution_id, execution.state.value, f"send signal {name!r}")
            step_row = await conn.fetchrow(
                self._sql(_SIGNAL_STEP), execution_id, SIGNAL_PREFIX + name, payload, now
            )
            consumed_by = None
            notes: list[Notification] = []
            if step_row is not None:
                step = task_from_row(step_row)
                consumed_by = step.task_id
                notes = await self._wake_parent(conn, step, now)
            signal = await conn.fetchrow(self._sql(_INSERT_SIGNAL), execution_id, name, payload, now, consumed_by)
            await self._notify(conn, notes)
            return signal_from_row(signal)

        return await self._db.run(send)

    async def list_signals(self, execution_id: str) -> list[SignalRecord]:
        rows = await self._db.fetch(
            self._sql("SELECT * FROM {s}.signals WHERE execution_id = $1 ORDER BY signal_id"), execution_id
        )
        return [signal_from_row(r) for r in rows]

    # -- cancellation and time limits ------------------------------------------------------------------------

    async def cancel_execution(self, execution_id: str, now: datetime) -> tuple[ExecutionRecord, bool]:
        check_time(now)

        async def cancel(conn: asyncpg.Connection) -> tuple[ExecutionRecord, bool]:
            row = await conn.fetchrow(self._sql(_LOCK_EXECUTION), execution_id)
            if row is None:
                raise ExecutionNotFound(execution_id)
            execution = execution_from_row(row)
            if execution.state.terminal or execution.state is ExecutionState.CANCELLING:
                return execution, False
            await conn.execute(self._sql(_STOP_UNLEASED), execution_id, now)
            updated = execution_from_row(await conn.fetchrow(self._sql(_CANCEL_EXECUTION), execution_id, now))
            if updated.state is ExecutionState.CANCELLED:
                await self._notify(
                    conn, [Notification(kind="finished", task_id=updated.root_task_id, execution_id=execution_id)]
                )
            return updated, True

        return await self._db.run(cancel)

    async def time_out_executions(self, now: datetime, limit: int) -> list[str]:
        check_time(now)
        if limit <= 0:
            return []
        return await self._db.run(lambda conn: self._time_out(conn, now, limit), transaction=False)

    async def _time_out(self, conn: asyncpg.Connection, now: datetime, limit: int) -> list[str]:
        rows = await conn.fetch(self._sql(_TIME_OUT), now, limit, self.settings.notify, self._channel)
        return [r["execution_id"] for r in rows]

    # -- dead letters ----------------------------------------------------------------------------------------

    async def list_dead_letters(self, *, limit: int = 100, offset: int = 0) -> list[DeadLetter]:
        rows = await self._db.fetch(self._sql(_DEAD_LETTERS), max(limit, 0), max(offset, 0))
        return [dead_letter_from_row(r) for r in rows]

    async def get_dead_letter(self, task_id: str) -> DeadLetter | None:
        row = await self._db.fetchrow(self._sql("SELECT * FROM {s}.dead_letters WHERE task_id = $1"), task_id)
        return None if row is None else dead_letter_from_row(row)

    async def discard_dead_letter(self, task_id: str) -> bool:
        row = await self._db.fetchrow(
            self._sql("DELETE FROM {s}.dead_letters WHERE task_id = $1 RETURNING task_id"), task_id
        )
        return row is not None

    async def replay_dead_letter(self, task_id: str, queue: str | None, now: datetime) -> TaskRecord:
        check_time(now)

        async def replay(conn: asyncpg.Connection) -> TaskRecord:
            gone = await conn.fetchrow(
                self._sql("DELETE FROM {s}.dead_letters WHERE task_id = $1 RETURNING execution_id"), task_id
            )
            if gone is None:
                raise TaskNotFound(task_id)
            # Lock the execution (the lock order everywhere), then the task and its failed ancestors.
            await conn.fetchrow(
                self._sql("SELECT 1 FROM {s}.executions WHERE execution_id = $1 FOR UPDATE"), gone["execution_id"]
            )
            row = await conn.fetchrow(
                self._sql(
                    "UPDATE {s}.tasks SET state = 'pending', attempt = attempt + 1, queue = coalesce($2, queue),"
                    " scheduled_for = $3, error = NULL, finished_at = NULL, updated_at = $3 WHERE task_id = $1"
                    f" RETURNING {TASK_SELECT}"
                ),
                task_id,
                queue,
                now,
            )
            if row is None:  # rolled back with the transaction, so the dead letter stays
                raise StentError(f"dead letter {task_id} belongs to an execution that was cleaned up; discard it")
            task = task_from_row(row)
            await self._reopen_ancestors(conn, task, now)
            await self._notify(conn, [Notification(kind="work", queue=task.queue)])
            return task

        return await self._db.run(replay)

    async def _reopen_ancestors(self, conn: asyncpg.Connection, task: TaskRecord, now: datetime) -> None:
        """Parents that failed because this task failed wait for it again; so does a failed execution."""
        child = task
        while child.parent_task_id is not None:
            row = await conn.fetchrow(self._sql(_REOPEN_PARENT), child.parent_task_id, child.parent_attempt, now)
            if row is None:
                return
            child = task_from_row(row)
            await conn.execute(self._sql("DELETE FROM {s}.dead_letters WHERE task_id = $1"), child.task_id)
        await conn.execute(
            self._sql(
                "UPDATE {s}.executions SET state = 'running', error = NULL, finished_at = NULL, updated_at = $2"
                " WHERE execution_id = $1 AND state = 'failed'"
            ),
            child.execution_id,
            now,
        )
