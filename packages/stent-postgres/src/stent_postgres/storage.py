"""PostgresStorage: the Storage port on PostgreSQL, with the reference storage's semantics.

This module holds creation, claiming and leases; finishing is in :mod:`stent_postgres.finishing`, signals,
cancellation, time limits and dead letters in :mod:`stent_postgres.operations`, the cache, leader lock, cleanup
and worker rows in :mod:`stent_postgres.housekeeping`, reads in :mod:`stent_postgres.reads`.
"""

from __future__ import annotations

from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from datetime import datetime, timedelta
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information
import attrs

from stent.errors import ExecutionStopping, StorageUnavailable
from stent.model import (
    SIGNAL_PREFIX,
    ClaimRequest,
    ExecutionRecord,
    ExecutionState,
    Fence,
    LeaseReport,
    NewExecution,
    NewTask,
    StepKey,
    TaskKind,
    TaskRecord,
    TaskState,
    execution_record_for,
)
from stent.ports import Notification
from stent_postgres import schema
from stent_postgres.base import STOPPING_EXECUTION, TERMINAL_TASK, StorageBase, check_fence
from stent_postgres.batches import BatchMixin
from stent_postgres.config import parse_settings
from stent_postgres.housekeeping import HousekeepingMixin
from stent_postgres.operations import OperationsMixin
from stent_postgres.reads import ReadsMixin
from stent_postgres.rows import (
    EXECUTION_SELECT,
    TASK_COLUMNS,
    TASK_INSERT_MANY,
    TASK_SELECT,
    TASK_VALUES,
    check_time,
    execution_from_row,
    task_arrays,
    task_from_new,
    task_from_row,
    task_params,
)

# One statement: the execution, its root task (the task's values are $1..$27, see rows.TASK_VALUES) and, for a
# limited function, its row in limited_functions; nothing when the execution id exists already.
_N = len(TASK_COLUMNS)
_CREATE_EXECUTION = (
    "WITH e AS (INSERT INTO {s}.executions (execution_id, root_task_id, function, queue, state, created_at,"
    f" updated_at, deadline) VALUES ($2, $1, $3, $6, 'pending', $15, $15, ${_N + 1}::timestamptz)"
    " ON CONFLICT (execution_id) DO NOTHING RETURNING execution_id),"
    f" t AS (INSERT INTO {{s}}.tasks ({TASK_SELECT}) SELECT {TASK_VALUES} FROM e),"
    " l AS (INSERT INTO {s}.limited_functions AS l (function, max_concurrent) SELECT $3, $12 FROM e"
    " WHERE $12::integer IS NOT NULL ON CONFLICT (function) DO UPDATE SET max_concurrent = EXCLUDED.max_concurrent"
    " WHERE l.max_concurrent < EXCLUDED.max_concurrent)"
    f" SELECT e.execution_id, CASE WHEN ${_N + 2}::boolean THEN pg_notify(${_N + 3}::text,"
    " json_build_object('kind', 'work', 'queue', $6::text)::text) END FROM e"
)
# A function's row keeps the greatest max_concurrent its tasks had ($1 functions, $2 their greatest limits).
_INSERT_LIMITED = (
    "INSERT INTO {s}.limited_functions AS l (function, max_concurrent)"
    " SELECT * FROM unnest($1::text[], $2::integer[])"
    " ON CONFLICT (function) DO UPDATE SET max_concurrent = EXCLUDED.max_concurrent"
    " WHERE l.max_concurrent < EXCLUDED.max_concurrent"
)
# The execution row first (the lock order everywhere: execution, then parent, then its children): a shared lock
# for ordinary steps (a cancellation waits for the steps to land, and then cancels them), exclusive when a signal
# step may consume a buffered signal (so that it and send_signal never miss each other).
_LOCK_EXECUTION_OF = (
    "SELECT e.state FROM {s}.executions AS e"
    " WHERE e.execution_id = (SELECT execution_id FROM {s}.tasks WHERE task_id = $1) FOR {mode}"
)
_LOCK_PARENT = f"SELECT {TASK_SELECT} FROM {{s}}.tasks WHERE task_id = $1 FOR UPDATE"
# get_or_create_steps' usual case (no signal waits, no limited functions) as one statement that commits on its
# own: lock the parent's execution (shared) and then the parent (the lock order everywhere: the execution row is
# locked by the scalar subquery, evaluated below the parent's row lock); when the parent's fence holds and its
# execution is not stopping, insert the steps not stored yet, mark the parent waiting when a step it reached is
# unfinished (stored before or inserted now), and announce the queues of new ready calls and, when a waiting task
# of a limited function gives its slot back, its own.  $1..$n the task columns (execution_id is the parent's,
# whatever is given), then now, the parent's id, its token, the step numbers, whether to NOTIFY, the channel and
# whether a stopping execution may still get steps.  Rows: the parent as it was found (NULL when there is none)
# with each inserted step's id (NULL when none was).
_CREATE_STEPS = (
    "WITH p AS (SELECT t.task_id, t.execution_id, t.state, t.fencing_token, t.attempt,"
    " (SELECT e.state FROM {s}.executions AS e WHERE e.execution_id = t.execution_id FOR SHARE) AS execution_state"
    f" FROM {{s}}.tasks AS t WHERE t.task_id = ${_N + 2} FOR UPDATE OF t),"
    f" ok AS (SELECT p.execution_id, p.attempt FROM p WHERE p.fencing_token = ${_N + 3}"
    f" AND p.state IN ('running', 'waiting') AND (${_N + 7}::boolean OR p.execution_state NOT IN {STOPPING_EXECUTION})),"
    " ins AS ("
    + TASK_INSERT_MANY.replace("u.execution_id", "ok.execution_id", 1)
    + ", ok ON CONFLICT (parent_task_id, parent_attempt, step) DO NOTHING RETURNING task_id, state, kind, queue),"
    f" w AS (UPDATE {{s}}.tasks AS o SET state = 'waiting', updated_at = ${_N + 1} FROM ok"
    f" WHERE o.task_id = ${_N + 2} AND o.state = 'running'"
    f" AND (EXISTS (SELECT 1 FROM ins WHERE ins.state NOT IN {TERMINAL_TASK})"
    f" OR EXISTS (SELECT 1 FROM {{s}}.tasks AS k WHERE k.parent_task_id = ${_N + 2}"
    f" AND k.parent_attempt = ok.attempt AND k.step = ANY(${_N + 4}::integer[])"
    f" AND k.state NOT IN {TERMINAL_TASK}))"
    " RETURNING o.queue, o.max_concurrent),"
    f" n AS (SELECT pg_notify(${_N + 6}::text, json_build_object('kind', 'work', 'queue', q.queue)::text)"
    " FROM (SELECT ins.queue FROM ins WHERE ins.kind = 'call' AND ins.state = 'pending'"
    " UNION SELECT w.queue FROM w WHERE w.max_concurrent IS NOT NULL) AS q"
    f" WHERE ${_N + 5}::boolean)"
    " SELECT p.task_id AS parent_id, p.execution_id, p.state, p.fencing_token, p.execution_state,"
    " ins.task_id, (SELECT count(*) FROM n) AS notified"
    " FROM (SELECT 1) AS one LEFT JOIN p ON true LEFT JOIN ins ON true"
)
# An execution in one of these states takes no new step (unless the caller allows it: a cancelled task's cleanup).
_STOPPING_STATES = frozenset(
    {state.value for state in ExecutionState if state.terminal or state is ExecutionState.CANCELLING} | {"deleted"}
)
_EXISTING_STEPS = (
    f"SELECT {TASK_SELECT} FROM {{s}}.tasks WHERE parent_task_id = $1 AND parent_attempt = $2 AND step = ANY($3)"
)
_BUFFERED_SIGNALS = (
    "SELECT signal_id, name, payload FROM {s}.signals"
    " WHERE execution_id = $1 AND consumed_by IS NULL AND name = ANY($2) ORDER BY signal_id"
)
_CONSUME_SIGNALS = (
    "UPDATE {s}.signals AS s SET consumed_by = c.step FROM unnest($1::bigint[], $2::text[]) AS c(id, step)"
    " WHERE s.signal_id = c.id"
)
_RENEW = (
    "UPDATE {s}.tasks AS t SET lease_expires_at = $1, updated_at = $2"
    " FROM unnest($3::text[], $4::bigint[]) AS f(task_id, token)"
    " WHERE t.task_id = f.task_id AND t.fencing_token = f.token AND t.state IN ('running', 'waiting')"
    " RETURNING t.task_id, coalesce((SELECT e.state FROM {s}.executions AS e"
    f" WHERE e.execution_id = t.execution_id) IN {STOPPING_EXECUTION}, true) AS stopping"
)
# The claim refreshes the claiming worker's heartbeat row in the same statement (another table: the claim
# function never reads it).
_CLAIM = (
    "WITH seen AS (UPDATE {s}.workers SET last_seen = $6 WHERE worker_id = $1)"
    f" SELECT {TASK_SELECT} FROM {{s}}.claim_tasks($1, $2, $3, $4, $5, $6, $7)"
)
_SEEN = "UPDATE {s}.workers SET last_seen = $2 WHERE worker_id = $1"


class PostgresStorage(BatchMixin, OperationsMixin, HousekeepingMixin, ReadsMixin, StorageBase):
    """Storage in a PostgreSQL schema, shared by any number of worker processes on any number of hosts."""

    def __init__(self, dsn: str, **options: Any) -> None:
        """``dsn`` is a ``postgresql://user:password@host:5432/database`` URL.

        Options (keywords, or the URL's query parameters): ``schema`` (default ``stent``), ``min_size`` and
        ``max_size`` of the connection pool (1 and 10), ``connect_timeout`` (10 s), ``command_timeout`` (none),
        ``statement_cache_size`` (100; 0 behind pgbouncer in transaction mode) and ``notify`` (send NOTIFY
        wake-ups inside this storage's transactions; off).
        """
        self._init_base(parse_settings(dsn, options))
        # Declared so that core can leave publishing to the storage when it announces its own changes.
        self.capabilities: frozenset[str] = frozenset(
            {"shared", "durable", "transactional_notifications"} if self.settings.notify else {"shared", "durable"}
        )

    @classmethod
    def from_url(cls, url: str, **options: Any) -> PostgresStorage:
        return cls(url, **options)

    def __repr__(self) -> str:
        return f"PostgresStorage({self.settings.safe_dsn!r}, schema={self.settings.schema!r})"

    @property
    def backend_pids(self) -> AbstractSet[int]:
        """The server processes of this storage's open connections (live): a NOTIFY they send is signed with one."""
        return self._db.backend_pids

    async def init_db(self) -> None:
        await self._db.run(lambda conn: schema.migrate(conn, self.settings), transaction=False)

    async def close(self) -> None:
        await self._db.close()

    # -- creating work ---------------------------------------------------------------------------------------

    async def create_execution(self, new: NewExecution, now: datetime) -> tuple[ExecutionRecord, bool]:
        root = task_from_new(new.root, new.execution_id, now)
        check_time(new.deadline)
        execution = execution_record_for(new, now)

        async def create(conn: asyncpg.Connection) -> tuple[ExecutionRecord, bool]:
            created = await conn.fetchrow(
                self._sql(_CREATE_EXECUTION), *task_params(root), new.deadline, self.settings.notify, self._channel
            )
            if created is not None:
                return execution, True
            row = await conn.fetchrow(
                self._sql(f"SELECT {EXECUTION_SELECT} FROM {{s}}.executions WHERE execution_id = $1"),
                new.execution_id,
            )
            if row is None:  # only if it was deleted between the two statements
                raise StorageUnavailable(f"execution {new.execution_id} changed while it was created; retry")
            return execution_from_row(row), False

        return await self._db.run(create, transaction=False)

    async def get_or_create_steps(
        self,
        parent: Fence,
        steps: Sequence[tuple[StepKey, NewTask]],
        now: datetime,
        *,
        allow_stopping: bool = False,
    ) -> list[TaskRecord]:
        check_time(now)
        signals = any(new.kind is TaskKind.SIGNAL for _, new in steps)

        if not signals and not any(new.max_concurrent is not None for _, new in steps):
            return await self._create_plain_steps(parent, steps, now, allow_stopping)

        async def create(conn: asyncpg.Connection) -> list[TaskRecord]:
            mode = "UPDATE" if signals else "SHARE"
            execution_state = await conn.fetchval(
                self._sql(_LOCK_EXECUTION_OF.replace("{mode}", mode)), parent.task_id
            )
            row = await conn.fetchrow(self._sql(_LOCK_PARENT), parent.task_id)
            check_fence(parent, row)
            assert row is not None and execution_state is not None  # a task's execution exists
            owner = task_from_row(row)
            state = ExecutionState(execution_state)
            if not allow_stopping and (state.terminal or state is ExecutionState.CANCELLING):
                raise ExecutionStopping(owner.execution_id, state.value)
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
                consumed = await self._consume_buffered(conn, owner.execution_id, created, now)
                if consumed:
                    out = [consumed.get(t.task_id, t) for t in out]
                    created = [consumed.get(t.task_id, t) for t in created]
                await conn.execute(self._sql(TASK_INSERT_MANY), *task_arrays(created))
                limits: dict[str, int] = {}
                for t in created:
                    if t.max_concurrent is not None:
                        limits[t.function] = max(t.max_concurrent, limits.get(t.function, t.max_concurrent))
                if limits:
                    functions = sorted(limits)
                    await conn.execute(self._sql(_INSERT_LIMITED), functions, [limits[f] for f in functions])
            waiting = any(not t.state.terminal for t in out) and owner.state is TaskState.RUNNING
            if waiting:
                await conn.execute(
                    self._sql("UPDATE {s}.tasks SET state = 'waiting', updated_at = $2 WHERE task_id = $1"),
                    owner.task_id,
                    now,
                )
            queues = {t.queue for t in created if t.kind is TaskKind.CALL and t.state is TaskState.PENDING}
            if waiting and owner.max_concurrent is not None:
                queues.add(owner.queue)  # a waiting task gives its slot of a limited function back
            await self._notify(conn, [Notification(kind="work", queue=q) for q in sorted(queues)])
            return out

        return await self._db.run(create)

    async def _create_plain_steps(
        self, parent: Fence, steps: Sequence[tuple[StepKey, NewTask]], now: datetime, allow_stopping: bool
    ) -> list[TaskRecord]:
        """get_or_create_steps' usual case in one statement and one round trip (see _CREATE_STEPS)."""
        fresh: dict[StepKey, TaskRecord] = {}
        for key, new in steps:  # the same key twice in one call is one step; the execution id comes back below
            if key not in fresh:
                fresh[key] = task_from_new(new, "", now, parent_task_id=parent.task_id, key=key)
        rows = await self._db.fetch(
            self._sql(_CREATE_STEPS),
            *task_arrays(list(fresh.values())),
            now,
            parent.task_id,
            parent.token,
            [key.step for key in fresh if key.parent_task_id == parent.task_id],
            self.settings.notify,
            self._channel,
            allow_stopping,
        )
        found = rows[0]
        check_fence(parent, found if found["parent_id"] is not None else None)
        execution_id = found["execution_id"]
        if not allow_stopping and (found["execution_state"] or "deleted") in _STOPPING_STATES:
            raise ExecutionStopping(execution_id, found["execution_state"] or "deleted")
        inserted = {row["task_id"] for row in rows if row["task_id"] is not None}
        records = {key: attrs.evolve(task, execution_id=execution_id) for key, task in fresh.items()}
        if len(inserted) < len(records):  # a replay: the steps stored before are read back as they are
            stored = await self._db.run(
                lambda conn: self._existing_steps(
                    conn, [k for k, t in records.items() if t.task_id not in inserted]
                ),
                transaction=False,
            )
            records.update(stored)
        return [records[key] for key, _ in steps]

    async def _existing_steps(
        self, conn: asyncpg.Connection, keys: Sequence[StepKey]
    ) -> dict[StepKey, TaskRecord]:
        """The stored steps among ``keys``: one query per (parent, attempt), which is one query in practice."""
        groups: dict[tuple[str, int], list[int]] = {}
        for key in keys:
            groups.setdefault((key.parent_task_id, key.parent_attempt), []).append(key.step)
        found: dict[StepKey, TaskRecord] = {}
        for (parent_id, attempt), numbers in groups.items():
            for row in await conn.fetch(self._sql(_EXISTING_STEPS), parent_id, attempt, numbers):
                found[StepKey(parent_id, attempt, row["step"])] = task_from_row(row)
        return found

    async def _consume_buffered(
        self, conn: asyncpg.Connection, execution_id: str, created: Sequence[TaskRecord], now: datetime
    ) -> dict[str, TaskRecord]:
        """New signal steps take the oldest unconsumed signals of their names, in step order."""
        waiting = [t for t in created if t.kind is TaskKind.SIGNAL and t.state is TaskState.PENDING]
        if not waiting:
            return {}
        names = sorted({t.function[len(SIGNAL_PREFIX) :] for t in waiting})
        buffered: dict[str, list[asyncpg.Record]] = {}
        for row in await conn.fetch(self._sql(_BUFFERED_SIGNALS), execution_id, names):
            buffered.setdefault(row["name"], []).append(row)
        consumed: dict[str, TaskRecord] = {}
        pairs: list[tuple[int, str]] = []
        for step in waiting:
            queue = buffered.get(step.function[len(SIGNAL_PREFIX) :])
            if not queue:
                continue
            signal = queue.pop(0)
            pairs.append((signal["signal_id"], step.task_id))
            consumed[step.task_id] = attrs.evolve(
                step, state=TaskState.COMPLETED, result=signal["payload"], finished_at=now, updated_at=now
            )
        if pairs:
            await conn.execute(self._sql(_CONSUME_SIGNALS), [p[0] for p in pairs], [p[1] for p in pairs])
        return consumed

    # -- claiming and leases ---------------------------------------------------------------------------------

    async def claim_tasks(self, request: ClaimRequest, now: datetime) -> list[TaskRecord]:
        check_time(now)

        async def claim(conn: asyncpg.Connection) -> list[TaskRecord]:
            if request.time_out_limit > 0:  # its own statement, committed first: the claim then sees its effect
                await self._time_out(conn, now, request.time_out_limit)
            if request.limit <= 0 or not request.functions:
                await conn.execute(self._sql(_SEEN), request.worker_id, now)
                return []
            rows = await conn.fetch(
                self._sql(_CLAIM),
                request.worker_id,
                sorted(request.functions),
                None if request.queues is None else sorted(request.queues),
                None if request.tags is None else sorted(request.tags),
                request.limit,
                now,
                now + timedelta(seconds=request.lease_seconds),
            )
            return [task_from_row(row) for row in rows]

        return await self._db.run(claim, transaction=False)

    async def renew_leases(
        self, worker_id: str, fences: Sequence[Fence], lease_seconds: float, now: datetime
    ) -> LeaseReport:
        if not fences:
            return LeaseReport(frozenset(), frozenset())
        check_time(now)
        rows = await self._db.fetch(
            self._sql(_RENEW),
            now + timedelta(seconds=lease_seconds),
            now,
            [f.task_id for f in fences],
            [f.token for f in fences],
        )
        return LeaseReport(
            frozenset(r["task_id"] for r in rows), frozenset(r["task_id"] for r in rows if r["stopping"])
        )
