"""SQLiteStorage: the Storage port on one SQLite file, with the reference storage's semantics.

Every port method is one transaction.  Writes open it with ``BEGIN IMMEDIATE``, so the reads a decision rests on
(the fence, the running counts of a claim) and the writes that follow cannot be interleaved with another
process's.  Worker writes are fenced in the statement itself (``WHERE fencing_token = ? AND state IN
('running', 'waiting')``); only when that matches nothing is the row read again to say why.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, cast

import aiosqlite

from stent.errors import ConfigurationError, LeaseLost, TaskNotFound
from stent.model import (
    ClaimRequest,
    ExecutionPage,
    ExecutionRecord,
    ExecutionState,
    Fence,
    NewExecution,
    NewTask,
    StepKey,
    TaskFailure,
    TaskRecord,
    TaskState,
)
from stent_sqlite import claim, schema
from stent_sqlite.database import Database, check_busy_timeout, parse_url
from stent_sqlite.rows import (
    EXECUTION_SELECT,
    TASK_INSERT,
    TASK_SELECT,
    encode_list,
    execution_from_row,
    task_from_new,
    task_from_row,
    task_params,
    to_us,
    to_us_or_none,
)

_LEASED = "state IN ('running', 'waiting')"
_TERMINAL_EXECUTION = "('completed', 'failed', 'timed_out', 'cancelled')"

# A finished child wakes its parent when the parent still runs the attempt that made the child: a waiting
# parent runs on, a suspended one becomes claimable now.
_WAKE_PARENT = (
    "UPDATE stent_tasks SET"
    " state = CASE state WHEN 'waiting' THEN 'running' ELSE 'pending' END,"
    " scheduled_for = CASE state WHEN 'suspended' THEN :now ELSE scheduled_for END,"
    " updated_at = :now"
    " WHERE task_id = :parent AND attempt = :attempt AND state IN ('waiting', 'suspended')"
)
_FINISH_EXECUTION = (
    "UPDATE stent_executions SET state = :state,"
    " result = CASE :state WHEN 'completed' THEN :result ELSE result END,"
    " error = CASE :state WHEN 'failed' THEN :error ELSE error END,"
    " updated_at = :now, finished_at = :now"
    f" WHERE execution_id = :execution AND state NOT IN {_TERMINAL_EXECUTION}"
)


def _lease_lost(fence: Fence, token: int, state: str) -> LeaseLost:
    if token != fence.token:
        return LeaseLost(fence.task_id, f"token {fence.token} is stale; current is {token}")
    return LeaseLost(fence.task_id, f"task is {state}")


class SQLiteStorage:
    """Storage in a SQLite file (WAL mode), shared safely by any number of processes on one host."""

    capabilities: frozenset[str] = frozenset()

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = 5.0) -> None:
        """``path`` is the database file (created by :meth:`init_db` when missing) or ``":memory:"``.

        ``busy_timeout`` is how many seconds a statement waits for another connection's write lock before the
        call raises :class:`~stent.errors.StorageUnavailable`.
        """
        if not isinstance(path, str | os.PathLike):
            raise ConfigurationError(f"SQLiteStorage takes a file path, not {type(path).__name__}")
        text = os.fspath(path)
        if not isinstance(text, str) or not text:
            raise ConfigurationError("SQLiteStorage needs a file path such as 'stent.db' (a non-empty str)")
        self.path = text
        self.busy_timeout = check_busy_timeout(busy_timeout)
        self._db = Database(text, busy_timeout=self.busy_timeout)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> SQLiteStorage:
        """Storage for ``sqlite:///relative.db``, ``sqlite:////absolute.db`` or ``sqlite://:memory:``.

        URL query options (``?busy_timeout=10``) and keyword ``options`` are the constructor's keywords.
        """
        path, query = parse_url(url)
        merged: dict[str, Any] = {**query, **options}
        unknown = sorted(set(merged) - {"busy_timeout"})
        if unknown:
            raise ConfigurationError(
                f"unknown SQLite storage option(s) {', '.join(unknown)} for {url!r}; the only option is busy_timeout"
            )
        return cls(path, **merged)

    def __repr__(self) -> str:
        return f"SQLiteStorage({self.path!r})"

    async def init_db(self) -> None:
        async with self._db.connection() as conn:
            await schema.migrate(conn, self.path)

    async def close(self) -> None:
        await self._db.close()

    # -- helpers ---------------------------------------------------------------------------------------------

    async def _fence_error(self, conn: aiosqlite.Connection, fence: Fence) -> Exception:
        """Why a fenced statement matched nothing, as the reference storage words it."""
        rows = list(
            await conn.execute_fetchall(
                "SELECT fencing_token, state FROM stent_tasks WHERE task_id = ?", (fence.task_id,)
            )
        )
        if not rows:
            return TaskNotFound(fence.task_id)
        return _lease_lost(fence, rows[0][0], rows[0][1])

    async def _fenced_update(
        self, conn: aiosqlite.Connection, fence: Fence, assignments: str, params: dict[str, Any]
    ) -> TaskRecord:
        rows = list(
            await conn.execute_fetchall(
                f"UPDATE stent_tasks SET {assignments}"
                f" WHERE task_id = :task_id AND fencing_token = :token AND {_LEASED} RETURNING {TASK_SELECT}",
                {**params, "task_id": fence.task_id, "token": fence.token},
            )
        )
        if not rows:
            raise await self._fence_error(conn, fence)
        return task_from_row(rows[0])

    async def _after_finish(self, conn: aiosqlite.Connection, task: TaskRecord, now: datetime) -> None:
        """Wake the parent waiting on a finished task, or finish the execution of a finished root."""
        now_us = to_us(now)
        if task.parent_task_id is None:
            if task.state in (TaskState.COMPLETED, TaskState.FAILED):
                await conn.execute(
                    _FINISH_EXECUTION,
                    {
                        "state": task.state.value,  # completed and failed are execution states too
                        "result": task.result,
                        "error": task.error,
                        "now": now_us,
                        "execution": task.execution_id,
                    },
                )
            return
        await conn.execute(
            _WAKE_PARENT, {"now": now_us, "parent": task.parent_task_id, "attempt": task.parent_attempt}
        )

    # -- creating work ---------------------------------------------------------------------------------------

    async def create_execution(self, new: NewExecution, now: datetime) -> tuple[ExecutionRecord, bool]:
        root = task_from_new(new.root, new.execution_id, now)
        execution = ExecutionRecord(
            execution_id=new.execution_id,
            root_task_id=root.task_id,
            function=root.function,
            queue=root.queue,
            state=ExecutionState.PENDING,
            created_at=now,
            updated_at=now,
            deadline=new.deadline,
        )
        async with self._db.transaction() as conn:
            inserted = list(
                await conn.execute_fetchall(
                    f"INSERT INTO stent_executions ({EXECUTION_SELECT}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL,"
                    " NULL) ON CONFLICT (execution_id) DO NOTHING RETURNING execution_id",
                    (
                        execution.execution_id,
                        execution.root_task_id,
                        execution.function,
                        execution.queue,
                        execution.state.value,
                        to_us(now),
                        to_us(now),
                        to_us_or_none(new.deadline),
                    ),
                )
            )
            if not inserted:
                rows = list(
                    await conn.execute_fetchall(
                        f"SELECT {EXECUTION_SELECT} FROM stent_executions WHERE execution_id = ?",
                        (new.execution_id,),
                    )
                )
                return execution_from_row(rows[0]), False
            await conn.execute(TASK_INSERT, task_params(root))
        return execution, True

    async def get_or_create_steps(
        self, parent: Fence, steps: Sequence[tuple[StepKey, NewTask]], now: datetime
    ) -> list[TaskRecord]:
        async with self._db.transaction() as conn:
            rows = list(
                await conn.execute_fetchall(
                    f"SELECT {TASK_SELECT} FROM stent_tasks WHERE task_id = ?", (parent.task_id,)
                )
            )
            if not rows:
                raise TaskNotFound(parent.task_id)
            owner = task_from_row(rows[0])
            if owner.fencing_token != parent.token or not owner.state.leased:
                raise _lease_lost(parent, owner.fencing_token, owner.state.value)
            found = await self._existing_steps(conn, [key for key, _ in steps])
            out: list[TaskRecord] = []
            created: list[TaskRecord] = []
            for key, new in steps:
                task = found.get(key)
                if task is None:
                    task = task_from_new(new, owner.execution_id, now, parent_task_id=owner.task_id, key=key)
                    found[key] = task  # the same key twice in one call is one step
                    created.append(task)
                out.append(task)
            if created:
                await conn.executemany(TASK_INSERT, [task_params(t) for t in created])
            if any(not t.state.terminal for t in out) and owner.state is TaskState.RUNNING:
                await conn.execute(
                    "UPDATE stent_tasks SET state = 'waiting', updated_at = ? WHERE task_id = ?",
                    (to_us(now), owner.task_id),
                )
        return out

    async def _existing_steps(
        self, conn: aiosqlite.Connection, keys: Sequence[StepKey]
    ) -> dict[StepKey, TaskRecord]:
        """The stored steps among ``keys``: one query per (parent, attempt), which is one query in practice."""
        groups: dict[tuple[str, int], list[int]] = {}
        for key in keys:
            groups.setdefault((key.parent_task_id, key.parent_attempt), []).append(key.step)
        found: dict[StepKey, TaskRecord] = {}
        for (parent_id, attempt), numbers in groups.items():
            rows = await conn.execute_fetchall(
                f"SELECT {TASK_SELECT} FROM stent_tasks WHERE parent_task_id = ? AND parent_attempt = ?"
                " AND step IN (SELECT value FROM json_each(?))",
                (parent_id, attempt, encode_list(numbers)),
            )
            for row in rows:
                task = task_from_row(row)
                found[StepKey(parent_id, attempt, cast(int, task.step))] = task  # the query matched a step
        return found

    # -- claiming and leases ---------------------------------------------------------------------------------

    async def claim_tasks(self, request: ClaimRequest, now: datetime) -> list[TaskRecord]:
        if request.limit <= 0 or not request.functions:
            return []  # nothing can be claimed: skip the write lock
        async with self._db.transaction() as conn:
            return await claim.claim(conn, request, now)

    async def renew_leases(
        self, worker_id: str, fences: Sequence[Fence], lease_seconds: float, now: datetime
    ) -> set[str]:
        if not fences:
            return set()
        lease_until = now + timedelta(seconds=lease_seconds)
        # One statement: SQLite runs it atomically without an explicit transaction.  ``+state`` keeps the
        # planner on the task_id index (one probe per fence) rather than walking every leased task.
        rows = await self._db.fetchall(
            "UPDATE stent_tasks SET lease_expires_at = ?, updated_at = ?"
            " WHERE +state IN ('running', 'waiting')"
            " AND task_id IN (SELECT json_extract(value, '$[0]') FROM json_each(?3))"
            " AND (task_id, fencing_token) IN"
            " (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?3))"
            " RETURNING task_id",
            (to_us(lease_until), to_us(now), encode_list([[f.task_id, f.token] for f in fences])),
        )
        return {row[0] for row in rows}

    # -- finishing -------------------------------------------------------------------------------------------

    async def complete_task(self, fence: Fence, result: str, now: datetime) -> TaskRecord:
        async with self._db.transaction() as conn:
            task = await self._fenced_update(
                conn,
                fence,
                "state = 'completed', result = :result, error = NULL, lease_owner = NULL,"
                " lease_expires_at = NULL, finished_at = :now, updated_at = :now",
                {"result": result, "now": to_us(now)},
            )
            await self._after_finish(conn, task, now)
        return task

    async def fail_task(self, fence: Fence, failure: TaskFailure, now: datetime) -> TaskRecord:
        now_us = to_us(now)
        async with self._db.transaction() as conn:
            if failure.retry_at is not None:
                return await self._fenced_update(
                    conn,
                    fence,
                    "state = 'pending', attempt = attempt + 1, scheduled_for = :retry_at, error = :error,"
                    " lease_owner = NULL, lease_expires_at = NULL, updated_at = :now",
                    {"retry_at": to_us(failure.retry_at), "error": failure.error, "now": now_us},
                )
            task = await self._fenced_update(
                conn,
                fence,
                "state = 'failed', error = :error, lease_owner = NULL, lease_expires_at = NULL,"
                " finished_at = :now, updated_at = :now",
                {"error": failure.error, "now": now_us},
            )
            if failure.dead_letter:
                await conn.execute(
                    "INSERT OR REPLACE INTO stent_dead_letters (task_id, execution_id, reason, error, created_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (task.task_id, task.execution_id, failure.reason, failure.error, now_us),
                )
            await self._after_finish(conn, task, now)
        return task

    async def release_task(self, fence: Fence, now: datetime) -> None:
        async with self._db.transaction() as conn:
            await self._fenced_update(
                conn,
                fence,
                "state = 'pending', scheduled_for = :now, lease_owner = NULL, lease_expires_at = NULL,"
                " updated_at = :now",
                {"now": to_us(now)},
            )

    # -- reads -----------------------------------------------------------------------------------------------

    async def get_execution(self, execution_id: str) -> ExecutionRecord | None:
        rows = await self._db.fetchall(
            f"SELECT {EXECUTION_SELECT} FROM stent_executions WHERE execution_id = ?", (execution_id,)
        )
        return execution_from_row(rows[0]) if rows else None

    async def get_task(self, task_id: str) -> TaskRecord | None:
        rows = await self._db.fetchall(f"SELECT {TASK_SELECT} FROM stent_tasks WHERE task_id = ?", (task_id,))
        return task_from_row(rows[0]) if rows else None

    async def get_tasks(self, task_ids: Sequence[str]) -> list[TaskRecord]:
        if not task_ids:
            return []
        rows = await self._db.fetchall(
            f"SELECT {TASK_SELECT} FROM stent_tasks WHERE task_id IN (SELECT value FROM json_each(?))",
            (encode_list(task_ids),),
        )
        return [task_from_row(row) for row in rows]

    async def list_execution_tasks(self, execution_id: str) -> list[TaskRecord]:
        rows = await self._db.fetchall(
            f"SELECT {TASK_SELECT} FROM stent_tasks WHERE execution_id = ? ORDER BY seq", (execution_id,)
        )
        return [task_from_row(row) for row in rows]

    async def list_executions(
        self,
        *,
        state: ExecutionState | None = None,
        queue: str | None = None,
        function: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> ExecutionPage:
        conditions: list[str] = []
        params: list[Any] = []
        for column, value in (("state", state.value if state else None), ("queue", queue), ("function", function)):
            if value is not None:
                conditions.append(f"{column} = ?")
                params.append(value)
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        async with self._db.transaction(write=False) as conn:
            total = list(await conn.execute_fetchall(f"SELECT count(*) FROM stent_executions{where}", params))
            rows = await conn.execute_fetchall(
                f"SELECT {EXECUTION_SELECT} FROM stent_executions{where}"
                " ORDER BY created_at DESC, execution_id DESC LIMIT ? OFFSET ?",
                [*params, max(limit, 0), max(offset, 0)],
            )
            page = tuple(execution_from_row(row) for row in rows)
        return ExecutionPage(page, int(total[0][0]))

    async def queue_depth(self, queue: str | None, now: datetime) -> int:
        if queue is None:
            rows = await self._db.fetchall("SELECT count(*) FROM stent_tasks WHERE state = 'pending'")
        else:
            rows = await self._db.fetchall(
                "SELECT count(*) FROM stent_tasks WHERE state = 'pending' AND queue = ?", (queue,)
            )
        return int(rows[0][0])
