"""Reading executions and tasks back."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime

from stent.model import ExecutionPage, ExecutionRecord, ExecutionState, QueueStats, TaskRecord
from stent_postgres.base import StorageBase
from stent_postgres.rows import EXECUTION_SELECT, TASK_SELECT, execution_from_row, task_from_row


@functools.cache
def _list_executions_sql(by_state: bool, by_queue: bool, by_function: bool) -> str:
    """One statement per combination of filters (eight texts in all), so each plans for its own filters."""
    conditions = [
        f"{column} = ${n}"
        for n, (column, used) in enumerate(
            (("state", by_state), ("queue", by_queue), ("function", by_function)), 3
        )
        if used
    ]
    # Unused filters keep their parameter numbers: ``$n IS NULL`` makes PostgreSQL infer each one's type.
    unused = [f"${n}::text IS NULL" for n, used in enumerate((by_state, by_queue, by_function), 3) if not used]
    where = " AND ".join(conditions + unused)
    # The total comes with the page in one statement (one snapshot), even for a page past the end.
    return (
        f"WITH matching AS (SELECT {EXECUTION_SELECT} FROM {{s}}.executions WHERE {where}),"
        " page AS (SELECT * FROM matching ORDER BY created_at DESC, execution_id DESC LIMIT $1 OFFSET $2)"
        f" SELECT (SELECT count(*) FROM matching) AS total, page.* FROM (SELECT 1) AS one LEFT JOIN page ON true"
    )


class ReadsMixin(StorageBase):
    async def get_execution(self, execution_id: str) -> ExecutionRecord | None:
        row = await self._db.fetchrow(
            self._sql(f"SELECT {EXECUTION_SELECT} FROM {{s}}.executions WHERE execution_id = $1"), execution_id
        )
        return None if row is None else execution_from_row(row)

    async def get_task(self, task_id: str) -> TaskRecord | None:
        row = await self._db.fetchrow(
            self._sql(f"SELECT {TASK_SELECT} FROM {{s}}.tasks WHERE task_id = $1"), task_id
        )
        return None if row is None else task_from_row(row)

    async def get_tasks(self, task_ids: Sequence[str]) -> list[TaskRecord]:
        if not task_ids:
            return []
        rows = await self._db.fetch(
            self._sql(f"SELECT {TASK_SELECT} FROM {{s}}.tasks WHERE task_id = ANY($1)"), list(task_ids)
        )
        return [task_from_row(r) for r in rows]

    async def list_execution_tasks(self, execution_id: str) -> list[TaskRecord]:
        rows = await self._db.fetch(
            self._sql(f"SELECT {TASK_SELECT} FROM {{s}}.tasks WHERE execution_id = $1 ORDER BY seq"), execution_id
        )
        return [task_from_row(r) for r in rows]

    async def list_executions(
        self,
        *,
        state: ExecutionState | None = None,
        queue: str | None = None,
        function: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> ExecutionPage:
        sql = _list_executions_sql(state is not None, queue is not None, function is not None)
        rows = await self._db.fetch(
            self._sql(sql), max(limit, 0), max(offset, 0), state.value if state else None, queue, function
        )
        page = tuple(execution_from_row(r) for r in rows if r["execution_id"] is not None)
        return ExecutionPage(page, int(rows[0]["total"]))

    async def queue_depth(self, queue: str | None, now: datetime) -> int:
        # Each part on its own partial index (tasks_queue_depth, tasks_wake, tasks_lease): due timers and lost
        # leases are found by time, so the count never reads the leases that still hold.
        if queue is None:
            value = await self._db.fetchval(self._sql(_DEPTH), now)
        else:
            value = await self._db.fetchval(self._sql(_DEPTH_BY_QUEUE), now, queue)
        return int(value)

    async def queue_overview(self, now: datetime) -> list[QueueStats]:
        rows = await self._db.fetch(self._sql(_OVERVIEW), now)
        return [
            QueueStats(
                queue=r["queue"],
                ready=r["ready"],
                scheduled=r["scheduled"],
                running=r["running"],
                suspended=r["suspended"],
                oldest_ready_at=r["oldest_ready_at"],
            )
            for r in rows
        ]


def _depth_sql(queue: str) -> str:
    """``queue_depth``: pending calls (due or not), suspended tasks whose timer came, leases that ran out."""
    parts = (
        "state = 'pending' AND kind = 'call'",
        "state = 'suspended' AND wake_at <= $1 AND kind = 'call'",
        "state IN ('running', 'waiting') AND lease_expires_at <= $1 AND kind = 'call'",
    )
    return "SELECT " + " + ".join(f"(SELECT count(*) FROM {{s}}.tasks WHERE {part}{queue})" for part in parts)


_DEPTH = _depth_sql("")
_DEPTH_BY_QUEUE = _depth_sql(" AND queue = $2")

# Every unfinished call task in one pass, in one snapshot; each is ready (with the moment it became ready) or
# else counted by its state.  No index holds suspended tasks without a timer, so this reads the table once.
_OVERVIEW = (
    "SELECT queue,"
    " count(*) FILTER (WHERE ready_at IS NOT NULL)::integer AS ready,"
    " count(*) FILTER (WHERE ready_at IS NULL AND state = 'pending')::integer AS scheduled,"
    " count(*) FILTER (WHERE ready_at IS NULL AND state IN ('running', 'waiting'))::integer AS running,"
    " count(*) FILTER (WHERE ready_at IS NULL AND state = 'suspended')::integer AS suspended,"
    " min(ready_at) AS oldest_ready_at"
    " FROM (SELECT queue, state, CASE"
    " WHEN state = 'pending' AND scheduled_for <= $1 THEN scheduled_for"
    " WHEN state = 'suspended' AND wake_at <= $1 THEN wake_at"
    " WHEN state IN ('running', 'waiting') AND lease_expires_at <= $1 THEN lease_expires_at END AS ready_at"
    " FROM {s}.tasks WHERE kind = 'call' AND state IN ('pending', 'suspended', 'running', 'waiting')) AS t"
    " GROUP BY queue ORDER BY queue"  # queue is COLLATE "C": code-point order, as Python sorts
)
