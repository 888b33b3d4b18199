"""SQLiteStorage: the Storage port on one SQLite file, with the reference storage's semantics.

Every port method is one transaction.  Writes open it with ``BEGIN IMMEDIATE``, so the reads a decision rests on
(the fence, the running counts of a claim) and the writes that follow cannot be interleaved with another
process's.  Worker writes are fenced in the statement itself (``WHERE fencing_token = ? AND state IN
('running', 'waiting')``); only when that matches nothing is the row read again to say why.

The task lifecycle lives here; signals, cancellation, dead letters and housekeeping are in
:mod:`stent_sqlite.operations`, which this class mixes in, as the reference storage does.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, cast

import attrs

from stent.errors import ConfigurationError, ExecutionStopping, LeaseLost, TaskNotFound
from stent.model import (
    SIGNAL_PREFIX,
    ClaimRequest,
    Completion,
    ContextUpdate,
    ExecutionPage,
    ExecutionRecord,
    ExecutionState,
    Fence,
    LeaseReport,
    NewExecution,
    NewTask,
    QueueStats,
    StepKey,
    TaskFailure,
    TaskKind,
    TaskRecord,
    TaskState,
    execution_record_for,
)
from stent_sqlite import batches, claim, queues, schema
from stent_sqlite.database import Database, check_busy_timeout, parse_url
from stent_sqlite.operations import SQLiteOperations, time_out
from stent_sqlite.rows import (
    EXECUTION_INSERT,
    EXECUTION_SELECT,
    TASK_INSERT,
    TASK_SELECT,
    encode_list,
    execution_from_row,
    execution_params,
    task_from_new,
    task_from_row,
    task_params,
    to_us,
)
from stent_sqlite.transitions import (
    STOPPING_EXECUTION,
    add_dead_letter,
    after_finish,
    fenced,
    fenced_update,
    fetch_execution,
    fetch_task,
    stopping,
    update_task,
)

_RELEASE_LEASE = "lease_owner = NULL, lease_expires_at = NULL, updated_at = :now"


class SQLiteStorage(SQLiteOperations):
    """Storage in a SQLite file (WAL mode), shared safely by any number of processes on one host."""

    capabilities: frozenset[str] = frozenset({"shared", "durable"})

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
        if text == ":memory:":  # one connection's private database: neither shared nor kept after close()
            self.capabilities = frozenset()
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
        await self._db.run(lambda conn: schema.migrate(conn, self.path))

    async def close(self) -> None:
        await self._db.close()

    # -- creating work ---------------------------------------------------------------------------------------

    async def create_execution(self, new: NewExecution, now: datetime) -> tuple[ExecutionRecord, bool]:
        root = task_from_new(new.root, new.execution_id, now)
        execution = execution_record_for(new, now)

        def create(conn: sqlite3.Connection) -> tuple[ExecutionRecord, bool]:
            cursor = conn.execute(EXECUTION_INSERT, execution_params(execution))
            if cursor.rowcount == 0:  # the id exists: return what is stored
                existing = fetch_execution(conn, new.execution_id)
                return cast(ExecutionRecord, existing), False
            conn.execute(TASK_INSERT, task_params(root))
            return execution, True

        return await self._db.run(create)

    async def create_executions(
        self, news: Sequence[NewExecution], now: datetime
    ) -> list[tuple[ExecutionRecord, bool]]:
        if not news:
            return []
        return await self._db.run(lambda conn: batches.create_many(conn, news, now))

    async def get_or_create_steps(
        self,
        parent: Fence,
        steps: Sequence[tuple[StepKey, NewTask]],
        now: datetime,
        *,
        allow_stopping: bool = False,
    ) -> list[TaskRecord]:
        def get_or_create(conn: sqlite3.Connection) -> list[TaskRecord]:
            owner = fenced(conn, parent)
            if not allow_stopping:
                execution = fetch_execution(conn, owner.execution_id)
                if stopping(execution):
                    state = execution.state.value if execution else "deleted"
                    raise ExecutionStopping(owner.execution_id, state)
            found = self._existing_steps(conn, [key for key, _ in steps])
            out: list[TaskRecord] = []
            created: list[TaskRecord] = []
            for key, new in steps:
                task = found.get(key)
                if task is None:
                    task = task_from_new(new, owner.execution_id, now, parent_task_id=owner.task_id, key=key)
                    if task.kind is TaskKind.SIGNAL:
                        task = self._consume_buffered_signal(conn, task, now)
                    found[key] = task  # the same key twice in one call is one step
                    created.append(task)
                out.append(task)
            if created:
                conn.executemany(TASK_INSERT, [task_params(t) for t in created])
            if any(not t.state.terminal for t in out) and owner.state is TaskState.RUNNING:
                conn.execute(
                    "UPDATE stent_tasks SET state = 'waiting', updated_at = ? WHERE task_id = ?",
                    (to_us(now), owner.task_id),
                )
            return out

        return await self._db.run(get_or_create)

    def _existing_steps(self, conn: sqlite3.Connection, keys: Sequence[StepKey]) -> dict[StepKey, TaskRecord]:
        """The stored steps among ``keys``: one query per (parent, attempt), which is one query in practice."""
        groups: dict[tuple[str, int], list[int]] = {}
        for key in keys:
            groups.setdefault((key.parent_task_id, key.parent_attempt), []).append(key.step)
        found: dict[StepKey, TaskRecord] = {}
        for (parent_id, attempt), numbers in groups.items():
            rows = conn.execute(
                f"SELECT {TASK_SELECT} FROM stent_tasks WHERE parent_task_id = ? AND parent_attempt = ?"
                " AND step IN (SELECT value FROM json_each(?))",
                (parent_id, attempt, encode_list(numbers)),
            ).fetchall()
            for row in rows:
                task = task_from_row(row)
                found[StepKey(parent_id, attempt, cast(int, task.step))] = task  # the query matched a step
        return found

    def _consume_buffered_signal(self, conn: sqlite3.Connection, step: TaskRecord, now: datetime) -> TaskRecord:
        """A new signal step takes the oldest unconsumed signal of its name, and is created completed with it."""
        rows = conn.execute(
            "UPDATE stent_signals SET consumed_by = :step WHERE signal_id = ("
            " SELECT signal_id FROM stent_signals WHERE execution_id = :execution AND name = :name"
            " AND consumed_by IS NULL ORDER BY signal_id LIMIT 1) RETURNING payload",
            {
                "step": step.task_id,
                "execution": step.execution_id,
                "name": step.function[len(SIGNAL_PREFIX) :],
            },
        ).fetchall()
        if not rows:
            return step
        return attrs.evolve(step, state=TaskState.COMPLETED, result=rows[0][0], finished_at=now, updated_at=now)

    # -- claiming and leases ---------------------------------------------------------------------------------

    async def claim_tasks(self, request: ClaimRequest, now: datetime) -> list[TaskRecord]:
        def claim_and_chores(conn: sqlite3.Connection) -> list[TaskRecord]:
            if request.time_out_limit > 0:
                time_out(conn, now, request.time_out_limit)
            conn.execute(
                "UPDATE stent_workers SET last_seen = ? WHERE worker_id = ?", (to_us(now), request.worker_id)
            )
            if request.limit <= 0 or not request.functions:
                return []
            return claim.claim(conn, request, now)

        return await self._db.run(claim_and_chores)

    async def renew_leases(
        self, worker_id: str, fences: Sequence[Fence], lease_seconds: float, now: datetime
    ) -> LeaseReport:
        if not fences:
            return LeaseReport(frozenset())
        lease_until = now + timedelta(seconds=lease_seconds)
        # One statement, so SQLite runs it atomically without an explicit transaction.  ``+state`` keeps the
        # planner on the task_id index (one probe per fence) rather than walking every leased task.
        rows = await self._db.fetchall(
            "UPDATE stent_tasks SET lease_expires_at = :until, updated_at = :now"
            " WHERE +state IN ('running', 'waiting')"
            " AND task_id IN (SELECT json_extract(value, '$[0]') FROM json_each(:fences))"
            " AND (task_id, fencing_token) IN"
            " (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(:fences))"
            " RETURNING task_id, coalesce((SELECT e.state IN " + STOPPING_EXECUTION + " FROM stent_executions AS e"
            " WHERE e.execution_id = stent_tasks.execution_id), 1)",
            {
                "until": to_us(lease_until),
                "now": to_us(now),
                "fences": encode_list([[f.task_id, f.token] for f in fences]),
            },
        )
        return LeaseReport(frozenset(r[0] for r in rows), frozenset(r[0] for r in rows if r[1]))

    # -- finishing -------------------------------------------------------------------------------------------

    async def complete_task(
        self, fence: Fence, result: str, now: datetime, update: ContextUpdate | None = None
    ) -> TaskRecord:
        return await self._db.run(lambda conn: self._complete(conn, fence, result, update, now))

    async def complete_tasks(
        self, completions: Sequence[Completion], now: datetime
    ) -> list[TaskRecord | LeaseLost | TaskNotFound]:
        if not completions:
            return []
        # Each task's first completion goes in one statement when it carries no context update; the rest one
        # by one after it, exactly as consecutive complete_task calls would.
        batched: dict[str, int] = {}
        for index, completion in enumerate(completions):
            batched.setdefault(completion.fence.task_id, index)
        batched = {task_id: index for task_id, index in batched.items() if not completions[index].update}

        def complete_all(conn: sqlite3.Connection) -> list[TaskRecord | LeaseLost | TaskNotFound]:
            out: list[TaskRecord | LeaseLost | TaskNotFound] = []
            plain = [completions[i] for i in batched.values()]
            done, refused = batches.complete_many(conn, plain, now) if plain else ({}, {})
            for index, completion in enumerate(completions):
                task_id = completion.fence.task_id
                if batched.get(task_id) == index:
                    out.append(done.get(task_id) or refused[task_id])
                    continue
                try:
                    out.append(self._complete(conn, completion.fence, completion.result, completion.update, now))
                except (LeaseLost, TaskNotFound) as exc:
                    out.append(exc)
            return out

        return await self._db.run(complete_all)

    def _complete(
        self, conn: sqlite3.Connection, fence: Fence, result: str, update: ContextUpdate | None, now: datetime
    ) -> TaskRecord:
        task = fenced_update(
            conn,
            fence,
            f"state = 'completed', result = :result, error = NULL, finished_at = :now, {_RELEASE_LEASE}",
            {"result": result, "now": to_us(now)},
        )
        if update:
            self._apply_update(conn, task.execution_id, update, now)
        after_finish(conn, task, now)
        return task

    def _apply_update(
        self, conn: sqlite3.Connection, execution_id: str, update: ContextUpdate, now: datetime
    ) -> None:
        """Add to the execution's counters and set its custom state; read and written in this transaction."""
        execution = cast(ExecutionRecord, fetch_execution(conn, execution_id))
        counters, custom_state = update.applied_to(execution.counters, execution.custom_state)
        conn.execute(
            "UPDATE stent_executions SET counters = ?, custom_state = ?, updated_at = ? WHERE execution_id = ?",
            (counters, custom_state, to_us(now), execution_id),
        )

    async def fail_task(self, fence: Fence, failure: TaskFailure, now: datetime) -> TaskRecord:
        now_us = to_us(now)

        def fail(conn: sqlite3.Connection) -> TaskRecord:
            task = fenced(conn, fence)
            if failure.retry_at is not None and not stopping(fetch_execution(conn, task.execution_id)):
                return update_task(
                    conn,
                    task.task_id,
                    "state = 'pending', attempt = attempt + 1, scheduled_for = :retry_at, error = :error,"
                    f" {_RELEASE_LEASE}",
                    {"retry_at": to_us(failure.retry_at), "error": failure.error, "now": now_us},
                )
            task = update_task(
                conn,
                task.task_id,
                f"state = 'failed', error = :error, finished_at = :now, {_RELEASE_LEASE}",
                {"error": failure.error, "now": now_us},
            )
            if failure.dead_letter:
                add_dead_letter(conn, task, failure.reason, now)
            after_finish(conn, task, now)
            return task

        return await self._db.run(fail)

    async def release_task(self, fence: Fence, now: datetime) -> None:
        await self._db.run(
            lambda conn: fenced_update(
                conn, fence, f"state = 'pending', scheduled_for = :now, {_RELEASE_LEASE}", {"now": to_us(now)}
            )
        )

    async def suspend_task(
        self, fence: Fence, *, waiting_on: Sequence[str], wake_at: datetime | None, now: datetime
    ) -> TaskRecord:
        def suspend(conn: sqlite3.Connection) -> TaskRecord:
            task = fenced(conn, fence)
            already = wake_at is not None and wake_at <= now
            if not already and waiting_on:
                rows = conn.execute(
                    "SELECT 1 FROM stent_tasks WHERE task_id IN (SELECT value FROM json_each(?))"
                    " AND state IN ('completed', 'failed', 'cancelled') LIMIT 1",
                    (encode_list(waiting_on),),
                ).fetchall()
                already = bool(rows)
            params = {"now": to_us(now), "wake_at": None if wake_at is None else to_us(wake_at)}
            if already:  # what it waits for happened already: claimable at once, so no wake-up is lost
                assignments = "state = 'pending', scheduled_for = :now, wake_at = NULL"
            else:
                assignments = "state = 'suspended', wake_at = :wake_at"
            return update_task(conn, task.task_id, f"{assignments}, {_RELEASE_LEASE}", params)

        return await self._db.run(suspend)

    async def cancel_task(self, fence: Fence, error: str | None, now: datetime) -> TaskRecord:
        def cancel(conn: sqlite3.Connection) -> TaskRecord:
            task = fenced_update(
                conn,
                fence,
                f"state = 'cancelled', error = :error, finished_at = :now, {_RELEASE_LEASE}",
                {"error": error, "now": to_us(now)},
            )
            after_finish(conn, task, now)
            return task

        return await self._db.run(cancel)

    async def expire_step(self, parent: Fence, task_id: str, error: str, now: datetime) -> TaskRecord:
        now_us = to_us(now)

        def expire(conn: sqlite3.Connection) -> TaskRecord:
            fenced(conn, parent)
            rows = conn.execute(
                "UPDATE stent_tasks SET state = 'failed', error = ?, finished_at = ?, updated_at = ?"
                " WHERE task_id = ? AND parent_task_id = ? AND state NOT IN ('completed', 'failed', 'cancelled')"
                f" RETURNING {TASK_SELECT}",
                (error, now_us, now_us, task_id, parent.task_id),
            ).fetchall()
            if rows:
                return task_from_row(rows[0])
            step = fetch_task(conn, task_id)
            if step is None or step.parent_task_id != parent.task_id:
                raise TaskNotFound(task_id)
            return step  # it finished first

        return await self._db.run(expire)

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

        def page(conn: sqlite3.Connection) -> ExecutionPage:
            total = conn.execute(f"SELECT count(*) FROM stent_executions{where}", params).fetchone()
            rows = conn.execute(
                f"SELECT {EXECUTION_SELECT} FROM stent_executions{where}"
                " ORDER BY created_at DESC, execution_id DESC LIMIT ? OFFSET ?",
                [*params, max(limit, 0), max(offset, 0)],
            ).fetchall()
            return ExecutionPage(tuple(execution_from_row(row) for row in rows), int(total[0]))

        return await self._db.run(page, write=False)

    async def queue_depth(self, queue: str | None, now: datetime) -> int:
        # Calls only (a pending signal wait is no work for a worker), counted on the claim's indexes.
        rows = await self._db.fetchall(queues.depth_sql(queue is not None), {"now": to_us(now), "queue": queue})
        return int(rows[0][0])

    async def queue_overview(self, now: datetime) -> list[QueueStats]:
        rows = await self._db.fetchall(queues.OVERVIEW_SQL, {"now": to_us(now)})
        return queues.overview_from_rows(rows)
