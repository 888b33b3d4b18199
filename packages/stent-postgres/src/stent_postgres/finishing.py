"""Completing, failing, releasing, suspending and cancelling tasks: the worker writes, each fenced.

The frequent ones (complete, fail, cancel, release) are single statements: the fenced update of the task, the
parent's wake-up and the execution's finish are CTEs of one statement, so a completion is one round trip and
atomic without an explicit transaction.  The parent's row is updated with PostgreSQL's row-level recheck, so a
parent that is suspending itself at the same moment is woken after its suspension lands, never before.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information

from stent.errors import TaskNotFound
from stent.model import ContextUpdate, Fence, TaskFailure, TaskRecord, TaskState
from stent.ports import Notification
from stent_postgres.base import (
    FINISH_EXECUTION_CTE,
    LEASED,
    NOTIFY_FINISHED,
    NOTIFY_PARENT_WORK,
    NOTIFY_SLOT_FREED,
    STOPPING_EXECUTION,
    TERMINAL_TASK,
    WAKE_PARENT_CTE,
    StorageBase,
    check_fence,
)
from stent_postgres.rows import TASK_SELECT, check_time, task_from_row

_T_COLUMNS = ", ".join(f"t.{c}" for c in TASK_SELECT.split(", "))


def _finish(assignments: str, execution_state: str, *, extra_ctes: str = "") -> str:
    """A statement finishing a task: $1 task, $2 token, $3 now, $4 notify?, $5 channel, then ``assignments``'."""
    fenced = (
        f"t AS (UPDATE {{s}}.tasks SET {assignments}, lease_owner = NULL, lease_expires_at = NULL,"
        f" finished_at = $3, updated_at = $3 WHERE task_id = $1 AND fencing_token = $2 AND {LEASED}"
        f" RETURNING {TASK_SELECT})"
    )
    ctes = [fenced, WAKE_PARENT_CTE, FINISH_EXECUTION_CTE.replace("$STATE", f"'{execution_state}'")]
    if extra_ctes:
        ctes.append(extra_ctes)
    text = (
        "WITH " + ", ".join(ctes) + f" SELECT {_T_COLUMNS}, (SELECT count(*) FROM e) AS finished_execution,"
        f" {NOTIFY_FINISHED} AS n1, {NOTIFY_PARENT_WORK} AS n2, {NOTIFY_SLOT_FREED} AS n3 FROM t"
    )
    return text.replace("$NOW", "$3").replace("$N", "$4").replace("$C", "$5")


_COMPLETE = _finish("state = 'completed', result = $6, error = NULL", "completed")
_FAIL = _finish(
    "state = 'failed', error = $6",
    "failed",
    extra_ctes=(
        "d AS (INSERT INTO {s}.dead_letters (task_id, execution_id, function, queue, reason, error, attempts,"
        " created_at) SELECT t.task_id, t.execution_id, t.function, t.queue, $7, coalesce(t.error, ''), t.attempt,"
        " $3 FROM t WHERE $8 ON CONFLICT (task_id) DO UPDATE SET execution_id = EXCLUDED.execution_id,"
        " function = EXCLUDED.function, queue = EXCLUDED.queue, reason = EXCLUDED.reason, error = EXCLUDED.error,"
        " attempts = EXCLUDED.attempts, created_at = EXCLUDED.created_at RETURNING 1)"
    ),
).replace(" AS n3 FROM t", " AS n3, (SELECT count(*) FROM d) AS dead FROM t")
_CANCEL = _finish("state = 'cancelled', error = $6", "cancelled")
# A retry is a new attempt, unless the execution is stopping (then the failure is final).
_RETRY = (
    "UPDATE {s}.tasks AS t SET state = 'pending', attempt = attempt + 1, scheduled_for = $4, error = $5,"
    " lease_owner = NULL, lease_expires_at = NULL, updated_at = $3"
    f" WHERE task_id = $1 AND fencing_token = $2 AND {LEASED} AND EXISTS (SELECT 1 FROM {{s}}.executions AS e"
    f" WHERE e.execution_id = t.execution_id AND e.state NOT IN {STOPPING_EXECUTION}) RETURNING {TASK_SELECT}"
)
_RELEASE = (
    "UPDATE {s}.tasks SET state = 'pending', scheduled_for = $3, lease_owner = NULL, lease_expires_at = NULL,"
    f" updated_at = $3 WHERE task_id = $1 AND fencing_token = $2 AND {LEASED}"
    " RETURNING task_id, CASE WHEN $4 THEN pg_notify($5, json_build_object('kind', 'work', 'queue', queue)::text) END"
)
_SUSPEND = (
    "UPDATE {s}.tasks SET state = 'suspended', wake_at = $4, lease_owner = NULL, lease_expires_at = NULL,"
    f" updated_at = $3 WHERE task_id = $1 AND fencing_token = $2 AND {LEASED} RETURNING {TASK_SELECT}"
)
_SUSPEND_DUE = (
    "UPDATE {s}.tasks SET state = 'pending', scheduled_for = $3, wake_at = NULL, lease_owner = NULL,"
    f" lease_expires_at = NULL, updated_at = $3 WHERE task_id = $1 AND fencing_token = $2 AND {LEASED}"
    f" RETURNING {TASK_SELECT}"
)
# Run after the suspension, in a statement of its own so that it sees every child finished before the lock.
_SUSPEND_WOKEN = (
    "UPDATE {s}.tasks SET state = 'pending', scheduled_for = $2, wake_at = NULL"
    f" WHERE task_id = $1 AND EXISTS (SELECT 1 FROM {{s}}.tasks AS c WHERE c.task_id = ANY($3)"
    f" AND c.state IN {TERMINAL_TASK}) RETURNING {TASK_SELECT}"
)
_EXPIRE = (
    "UPDATE {s}.tasks SET state = 'failed', error = $3, finished_at = $4, updated_at = $4"
    f" WHERE task_id = $1 AND parent_task_id = $2 AND state NOT IN {TERMINAL_TASK}"
    " AND EXISTS (SELECT 1 FROM {s}.tasks AS p WHERE p.task_id = $2 AND p.fencing_token = $5"
    f" AND p.{LEASED}) RETURNING {TASK_SELECT}"
)
_LOCK_EXECUTION_OF = (
    "SELECT e.counters, e.custom_state FROM {s}.executions AS e"
    " WHERE e.execution_id = (SELECT execution_id FROM {s}.tasks WHERE task_id = $1) FOR UPDATE"
)


class FinishingMixin(StorageBase):
    async def _finish_task(
        self, conn: asyncpg.Connection, sql: str, fence: Fence, now: datetime, *args: object
    ) -> TaskRecord:
        check_time(now)
        row = await conn.fetchrow(
            self._sql(sql), fence.task_id, fence.token, now, self.settings.notify, self._channel, *args
        )
        if row is None:
            raise await self._fence_error(conn, fence)
        return task_from_row(row)

    async def complete_task(
        self, fence: Fence, result: str, now: datetime, update: ContextUpdate | None = None
    ) -> TaskRecord:
        return await self._db.run(
            lambda conn: self._complete_one(conn, fence, result, update, now), transaction=bool(update)
        )

    async def _complete_one(
        self, conn: asyncpg.Connection, fence: Fence, result: str, update: ContextUpdate | None, now: datetime
    ) -> TaskRecord:
        """Complete one task on ``conn``; with an update, inside the caller's transaction."""
        if not update:
            return await self._finish_task(conn, _COMPLETE, fence, now, result)
        # The execution row first (the lock order everywhere), then the task.
        row = await conn.fetchrow(self._sql(_LOCK_EXECUTION_OF), fence.task_id)
        task = await self._finish_task(conn, _COMPLETE, fence, now, result)
        assert row is not None  # the task exists, so its execution does
        counters, custom_state = update.applied_to(row["counters"], row["custom_state"])
        await conn.execute(
            self._sql(
                "UPDATE {s}.executions SET counters = $2, custom_state = $3, updated_at = $4 WHERE execution_id = $1"
            ),
            task.execution_id,
            counters,
            custom_state,
            now,
        )
        return task

    async def fail_task(self, fence: Fence, failure: TaskFailure, now: datetime) -> TaskRecord:
        check_time(now)
        check_time(failure.retry_at)

        async def fail(conn: asyncpg.Connection) -> TaskRecord:
            if failure.retry_at is not None:
                row = await conn.fetchrow(
                    self._sql(_RETRY), fence.task_id, fence.token, now, failure.retry_at, failure.error
                )
                if row is not None:
                    retried = task_from_row(row)
                    if retried.max_concurrent is not None:  # it gave its slot back
                        await self._notify(conn, [Notification(kind="work", queue=retried.queue)])
                    return retried
                # Not retried: the fence does not hold (raised here), or the execution is stopping.
                check_fence(fence, await self._fence_row(conn, fence))
            return await self._finish_task(
                conn, _FAIL, fence, now, failure.error, failure.reason, failure.dead_letter
            )

        # The retry path may take two statements; a transaction keeps them one decision.
        return await self._db.run(fail, transaction=failure.retry_at is not None)

    async def _fence_row(self, conn: asyncpg.Connection, fence: Fence) -> asyncpg.Record | None:
        return await conn.fetchrow(
            self._sql("SELECT fencing_token, state FROM {s}.tasks WHERE task_id = $1"), fence.task_id
        )

    async def release_task(self, fence: Fence, now: datetime) -> None:
        check_time(now)

        async def release(conn: asyncpg.Connection) -> None:
            row = await conn.fetchrow(
                self._sql(_RELEASE), fence.task_id, fence.token, now, self.settings.notify, self._channel
            )
            if row is None:
                raise await self._fence_error(conn, fence)

        await self._db.run(release, transaction=False)

    async def suspend_task(
        self, fence: Fence, *, waiting_on: Sequence[str], wake_at: datetime | None, now: datetime
    ) -> TaskRecord:
        check_time(now)
        check_time(wake_at)

        async def suspend(conn: asyncpg.Connection) -> TaskRecord:
            if wake_at is not None and wake_at <= now:  # the timer is already due: claimable at once
                row = await conn.fetchrow(self._sql(_SUSPEND_DUE), fence.task_id, fence.token, now)
            else:
                # Suspending first locks the row: a child finishing from now on waits for this transaction and
                # then wakes the suspended task; one that finished before is seen by the next statement.
                row = await conn.fetchrow(self._sql(_SUSPEND), fence.task_id, fence.token, now, wake_at)
                if row is not None and waiting_on:
                    row = (
                        await conn.fetchrow(self._sql(_SUSPEND_WOKEN), fence.task_id, now, list(waiting_on)) or row
                    )
            if row is None:
                raise await self._fence_error(conn, fence)
            task = task_from_row(row)
            # Claimable again at once, or its slot of a limited function given back: work may be ready.
            if task.state is TaskState.PENDING or task.max_concurrent is not None:
                await self._notify(conn, [Notification(kind="work", queue=task.queue)])
            return task

        return await self._db.run(suspend)

    async def cancel_task(self, fence: Fence, error: str | None, now: datetime) -> TaskRecord:
        return await self._db.run(
            lambda conn: self._finish_task(conn, _CANCEL, fence, now, error), transaction=False
        )

    async def expire_step(self, parent: Fence, task_id: str, error: str, now: datetime) -> TaskRecord:
        check_time(now)

        async def expire(conn: asyncpg.Connection) -> TaskRecord:
            # One statement, the step's row the only one locked (a parent is never locked before its child),
            # and only while the parent's fence holds.
            expired = await conn.fetchrow(self._sql(_EXPIRE), task_id, parent.task_id, error, now, parent.token)
            if expired is not None:
                return task_from_row(expired)
            check_fence(parent, await self._fence_row(conn, parent))
            step = await conn.fetchrow(
                self._sql(f"SELECT {TASK_SELECT} FROM {{s}}.tasks WHERE task_id = $1 AND parent_task_id = $2"),
                task_id,
                parent.task_id,
            )
            if step is None:
                raise TaskNotFound(task_id)
            return task_from_row(step)  # it finished first

        return await self._db.run(expire)
