"""Reading executions and tasks back."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime

from stent.model import ExecutionPage, ExecutionRecord, ExecutionState, TaskRecord
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
        if queue is None:
            value = await self._db.fetchval(
                self._sql("SELECT count(*) FROM {s}.tasks WHERE state = 'pending' AND kind = 'call'")
            )
        else:
            value = await self._db.fetchval(
                self._sql(
                    "SELECT count(*) FROM {s}.tasks WHERE state = 'pending' AND kind = 'call' AND queue = $1"
                ),
                queue,
            )
        return int(value)
