"""Batch operations: many executions created, or many tasks completed, in a few statements.

A worker that finishes fifty tasks in one turn of its event loop commits them together (a group commit): one
statement, committed on its own, completes every task whose fence holds, wakes their parents, finishes the
executions of the roots among them and sends the notifications.  A task that is the parent of another in the same
batch is left to a transaction after it (one statement must not update a row twice), as are completions carrying
a context update; a completion whose fence does not hold is reported in its place and changes nothing.  Each
completion is atomic, as complete_task's is.  Task rows are locked in task id order.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information

from stent.errors import LeaseLost, StorageUnavailable, TaskNotFound
from stent.model import Completion, ExecutionRecord, NewExecution, TaskRecord, execution_record_for, shared_part
from stent.ports import Notification
from stent_postgres.base import FINISH_EXECUTION_CTE, LEASED, WAKE_PARENT_CTE
from stent_postgres.finishing import FinishingMixin
from stent_postgres.rows import (
    EXECUTION_SELECT,
    TASK_COLUMNS,
    TASK_INSERT_MANY,
    UNIFORM_TASK_INSERT,
    check_time,
    execution_from_row,
    task_arrays,
    task_from_new,
    task_from_row,
    uniform_task_params,
)

Outcome = TaskRecord | LeaseLost | TaskNotFound

# $1 task ids (sorted), $2 their tokens, $3 results, $4 now, $5 whether to NOTIFY, $6 the channel.  One statement
# that commits on its own: it completes the tasks, wakes their parents, finishes the roots' executions and sends
# the notifications (delivered at its commit).  Returns the completed tasks.
_COMPLETE_MANY = (
    "WITH c AS (SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[]) AS c(c_id, c_token, c_result)),"
    " t AS (UPDATE {s}.tasks AS x SET state = 'completed', result = c.c_result, error = NULL,"
    " lease_owner = NULL, lease_expires_at = NULL, finished_at = $4, updated_at = $4 FROM c"
    f" WHERE x.task_id = c.c_id AND x.fencing_token = c.c_token AND x.{LEASED}"
    " AND NOT EXISTS (SELECT 1 FROM {s}.tasks AS k WHERE k.task_id = ANY($1) AND k.parent_task_id = x.task_id)"
    f" RETURNING {', '.join('x.' + c for c in TASK_COLUMNS)}), "
    + WAKE_PARENT_CTE.replace("$NOW", "$4")
    + ", "
    + FINISH_EXECUTION_CTE.replace("$STATE", "'completed'").replace("$NOW", "$4")
    + ", n AS (SELECT pg_notify($6::text, x.payload) FROM ("
    # The payloads of stent_postgres.channel.encode: each task finished, a limited function's slot freed, and
    # the queue of each parent made claimable.
    " SELECT json_build_object('kind', 'finished', 'task_id', t.task_id, 'execution_id', t.execution_id)::text"
    " AS payload FROM t"
    " UNION SELECT json_build_object('kind', 'work', 'queue', t.queue)::text FROM t WHERE t.max_concurrent IS NOT NULL"
    " UNION SELECT json_build_object('kind', 'work', 'queue', p.queue)::text FROM p WHERE p.state = 'pending'"
    ") AS x WHERE $5::boolean)" + f" SELECT {', '.join('t.' + c for c in TASK_COLUMNS)},"
    " (SELECT count(*) FROM e) AS finished_executions, (SELECT count(*) FROM n) AS notified FROM t"
)

# $1, $2: the ids of the executions to create and of their root tasks; $3 function, $4 queue, $5 now, $6 deadline
# (a uniform batch: every execution alike but its ids).
_INSERT_UNIFORM_EXECUTIONS = (
    "INSERT INTO {s}.executions (execution_id, root_task_id, function, queue, state, created_at, updated_at,"
    " deadline) SELECT u.execution_id, u.root_task_id, $3::text, $4::text, 'pending', $5, $5, $6::timestamptz"
    " FROM unnest($1::text[], $2::text[]) AS u(execution_id, root_task_id)"
    " ON CONFLICT (execution_id) DO NOTHING RETURNING execution_id"
)
# $1..$4 and $6: one array per column of the executions to create; $5 now.
_INSERT_EXECUTIONS = (
    "INSERT INTO {s}.executions (execution_id, root_task_id, function, queue, state, created_at, updated_at,"
    " deadline) SELECT u.execution_id, u.root_task_id, u.function, u.queue, 'pending', $5, $5, u.deadline"
    " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $6::timestamptz[])"
    " AS u(execution_id, root_task_id, function, queue, deadline)"
    " ON CONFLICT (execution_id) DO NOTHING RETURNING execution_id"
)
_INSERT_LIMITED = (
    "INSERT INTO {s}.limited_functions AS l (function, max_concurrent)"
    " SELECT * FROM unnest($1::text[], $2::integer[])"
    " ON CONFLICT (function) DO UPDATE SET max_concurrent = EXCLUDED.max_concurrent"
    " WHERE l.max_concurrent < EXCLUDED.max_concurrent"
)


class BatchMixin(FinishingMixin):
    async def complete_tasks(self, completions: Sequence[Completion], now: datetime) -> list[Outcome]:
        check_time(now)
        if not completions:
            return []
        # Each task's first completion goes in the batch statement when it carries no update; a repeat comes
        # after it, one at a time, exactly as consecutive complete_task calls would.
        first: dict[str, int] = {}
        for index, completion in enumerate(completions):
            first.setdefault(completion.fence.task_id, index)
        first = {task_id: index for task_id, index in first.items() if not completions[index].update}
        ids = sorted(first)
        batched = {task_id: completions[index] for task_id, index in first.items()}
        done: dict[str, TaskRecord] = {}
        if ids:
            # The usual batch is this one statement and its commit: one round trip.
            rows = await self._db.fetch(
                self._sql(_COMPLETE_MANY),
                ids,
                [batched[i].fence.token for i in ids],
                [batched[i].result for i in ids],
                now,
                self.settings.notify,
                self._channel,
            )
            done = {task.task_id: task for task in map(task_from_row, rows)}
        rest = [
            (index, completion)
            for index, completion in enumerate(completions)
            if not (first.get(completion.fence.task_id) == index and completion.fence.task_id in done)
        ]

        async def complete_rest(conn: asyncpg.Connection) -> dict[int, Outcome]:
            # A context update, a parent of another task of the batch, a repeat, or a fence that did not hold
            # (the statement for one says which): one at a time, after the batch, as complete_task would.
            out: dict[int, Outcome] = {}
            for index, completion in rest:
                try:
                    out[index] = await self._complete_one(
                        conn, completion.fence, completion.result, completion.update, now
                    )
                except (LeaseLost, TaskNotFound) as exc:
                    out[index] = exc
            return out

        others = await self._db.run(complete_rest) if rest else {}
        return [others[index] if index in others else done[c.fence.task_id] for index, c in enumerate(completions)]

    async def create_executions(
        self, news: Sequence[NewExecution], now: datetime
    ) -> list[tuple[ExecutionRecord, bool]]:
        check_time(now)
        if not news:
            return []
        fresh: dict[str, tuple[ExecutionRecord, NewExecution]] = {}
        for new in news:
            if new.execution_id in fresh:
                continue
            check_time(new.deadline)
            check_time(new.root.scheduled_for)
            fresh[new.execution_id] = (execution_record_for(new, now), new)
        executions = [e for e, _ in fresh.values()]
        first = news[0]
        # A batch dispatch of one function (dispatch_many): every row alike but its ids and arguments.
        shared = shared_part(first)
        uniform = all(shared_part(new) == shared for new in news)

        async def create(conn: asyncpg.Connection) -> list[tuple[ExecutionRecord, bool]]:
            if uniform:
                inserted = await conn.fetch(
                    self._sql(_INSERT_UNIFORM_EXECUTIONS),
                    [e.execution_id for e in executions],
                    [e.root_task_id for e in executions],
                    first.root.function,
                    first.root.queue,
                    now,
                    first.deadline,
                )
            else:
                inserted = await conn.fetch(
                    self._sql(_INSERT_EXECUTIONS),
                    [e.execution_id for e in executions],
                    [e.root_task_id for e in executions],
                    [e.function for e in executions],
                    [e.queue for e in executions],
                    now,
                    [e.deadline for e in executions],
                )
            created = {row[0] for row in inserted}
            if created and uniform:
                made = [new for eid, (_, new) in fresh.items() if eid in created]
                template = task_from_new(first.root, first.execution_id, now)  # what every root shares
                await conn.execute(
                    self._sql(UNIFORM_TASK_INSERT),
                    [new.root.task_id for new in made],
                    [new.execution_id for new in made],
                    [new.root.args for new in made],
                    *uniform_task_params(template),
                )
                await self._created_roots(conn, [template])
            elif created:
                roots = [task_from_new(new.root, eid, now) for eid, (_, new) in fresh.items() if eid in created]
                await conn.execute(self._sql(TASK_INSERT_MANY), *task_arrays(roots))
                await self._created_roots(conn, roots)
            stored: dict[str, ExecutionRecord] = {}
            others = [eid for eid in fresh if eid not in created]
            if others:
                rows = await conn.fetch(
                    self._sql(f"SELECT {EXECUTION_SELECT} FROM {{s}}.executions WHERE execution_id = ANY($1)"),
                    others,
                )
                stored = {e.execution_id: e for e in map(execution_from_row, rows)}
            out: list[tuple[ExecutionRecord, bool]] = []
            reported: set[str] = set()
            for new in news:
                eid = new.execution_id
                if eid in created:
                    out.append((fresh[eid][0], eid not in reported))  # given twice: created by the first
                    reported.add(eid)
                elif eid in stored:
                    out.append((stored[eid], False))
                else:  # only if it was deleted between the two statements
                    raise StorageUnavailable(f"execution {eid} changed while it was created; retry")
            return out

        return await self._db.run(create)

    async def _created_roots(self, conn: asyncpg.Connection, roots: Sequence[TaskRecord]) -> None:
        """After new root tasks were inserted: their functions' limits recorded, their queues announced (one task
        stands for all of a uniform batch)."""
        limits: dict[str, int] = {}
        for root in roots:
            if root.max_concurrent is not None:
                limits[root.function] = max(limits.get(root.function, 0), root.max_concurrent)
        if limits:
            functions = sorted(limits)
            await conn.execute(self._sql(_INSERT_LIMITED), functions, [limits[f] for f in functions])
        await self._notify(conn, [Notification(kind="work", queue=q) for q in sorted({r.queue for r in roots})])
