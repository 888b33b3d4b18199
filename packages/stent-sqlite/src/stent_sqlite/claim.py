"""Claiming tasks: the candidate query and the choice among candidates, inside the caller's write transaction.

The query does the filtering that does not change while the claim runs (due, queue, tags, registered function)
and orders by priority, then oldest (by the time each task became ready).  It also drops the tasks of functions
already at their ``max_concurrent`` when the claim starts, so a saturated function's backlog never stands in
front of other work (no head-of-line blocking).  Choosing among candidates then follows the reference storage
exactly: a function's count of ``running`` tasks grows with each task taken, and a task reclaimed from an
expired ``running`` lease already counts.  Candidates are read in chunks; when a chunk runs out before the batch
is full, the query is run again and sees the tasks just claimed as running."""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import attrs

from stent.model import ClaimRequest, TaskRecord, TaskState
from stent_sqlite.rows import TASK_COLUMNS, encode_list, task_from_row, to_us

_RUNNING_N = len(TASK_COLUMNS)  # index of the per-function running count appended to each candidate row


@functools.cache
def candidate_sql(by_queue: bool, by_tags: bool) -> str:
    """The candidate query for one combination of filters (four texts in all, each prepared once).

    Three parts, each on its own partial index: due pending calls, suspended tasks whose timer is due, and
    leased tasks whose lease ran out.  Each row carries its function's running count and its ready time (the
    wake time of a suspended task, else ``scheduled_for``), which orders tasks of equal priority.
    """
    filters = ["t.kind = 'call'", "t.function IN (SELECT value FROM json_each(:functions))"]
    if by_queue:
        filters.append("t.queue IN (SELECT value FROM json_each(:queues))")
    if by_tags:
        filters.append(
            "(t.tags = '[]' OR EXISTS (SELECT 1 FROM json_each(t.tags) AS g"
            " WHERE g.value IN (SELECT value FROM json_each(:tags))))"
        )
    # A reclaimed running task already holds one of its function's slots: (t.state = 'running') is 1 then.
    filters.append("(t.max_concurrent IS NULL OR coalesce(r.n, 0) - (t.state = 'running') < t.max_concurrent)")
    where = " AND ".join(filters)
    columns = ", ".join(f"t.{c}" for c in TASK_COLUMNS)

    def part(index: str, ready_at: str, due: str) -> str:
        return (
            f"SELECT {columns}, coalesce(r.n, 0), {ready_at} AS ready_at FROM stent_tasks AS t"
            f" INDEXED BY {index} LEFT JOIN running AS r ON r.function = t.function WHERE {due} AND {where}"
        )

    pending_index = "ix_stent_tasks_ready" if by_queue else "ix_stent_tasks_due"
    pending = "t.state = 'pending' AND t.scheduled_for <= :now"
    suspended = "t.state = 'suspended' AND t.wake_at <= :now"
    expired = "t.state IN ('running', 'waiting') AND t.lease_expires_at <= :now"
    return (
        "WITH running(function, n) AS ("
        " SELECT function, count(*) FROM stent_tasks INDEXED BY ix_stent_tasks_limited"
        " WHERE state = 'running' AND max_concurrent IS NOT NULL GROUP BY function) "
        f"{part(pending_index, 't.scheduled_for', pending)}"
        f" UNION ALL {part('ix_stent_tasks_wake', 't.wake_at', suspended)}"
        f" UNION ALL {part('ix_stent_tasks_lease', 't.scheduled_for', expired)}"
        " ORDER BY priority DESC, ready_at, created_at, task_id LIMIT :chunk"
    )


_TAKE = (
    "UPDATE stent_tasks SET state = 'running', lease_owner = ?, lease_expires_at = ?, fencing_token = ?,"
    " started_at = coalesce(started_at, ?), wake_at = NULL, updated_at = ? WHERE task_id = ?"
)
_TOKENS = "UPDATE stent_meta SET value = value + ? WHERE name = 'fencing_token' RETURNING value"
_START_EXECUTIONS = (
    "UPDATE stent_executions SET state = 'running', updated_at = ?"
    " WHERE state = 'pending' AND execution_id IN (SELECT value FROM json_each(?))"
)


def _choose(rows: Sequence[Any], need: int, taken: set[str]) -> list[TaskRecord]:
    """The candidates to take, in order, counting each limited function's running tasks as they are taken."""
    running: dict[str, int] = {}
    chosen: list[TaskRecord] = []
    for row in rows:
        if len(chosen) >= need:
            break
        task = task_from_row(row)
        if task.task_id in taken:  # only when a zero lease made a task claimed above a candidate again
            continue
        if task.max_concurrent is not None:
            count = running.setdefault(task.function, row[_RUNNING_N])
            already = 1 if task.state is TaskState.RUNNING else 0
            if count - already >= task.max_concurrent:
                continue
            running[task.function] = count + 1 - already
        chosen.append(task)
    return chosen


def claim(conn: sqlite3.Connection, request: ClaimRequest, now: datetime) -> list[TaskRecord]:
    """Claim up to ``request.limit`` (> 0) tasks; the caller holds a ``BEGIN IMMEDIATE`` transaction."""
    sql = candidate_sql(request.queues is not None, request.tags is not None)
    params: dict[str, Any] = {
        "now": to_us(now),
        "functions": encode_list(sorted(request.functions)),
        "queues": encode_list(sorted(request.queues or ())),
        "tags": encode_list(sorted(request.tags or ())),
    }
    lease_until = now + timedelta(seconds=request.lease_seconds)
    now_us, lease_us = to_us(now), to_us(lease_until)
    claimed: list[TaskRecord] = []
    taken: set[str] = set()
    while len(claimed) < request.limit:
        need = request.limit - len(claimed)
        # Some slack, so a few candidates skipped for max_concurrent rarely cost a second query.
        chunk = need + min(need, 32) + 8
        rows = conn.execute(sql, {**params, "chunk": chunk}).fetchall()
        chosen = _choose(rows, need, taken)
        if not chosen:
            break
        token_rows = conn.execute(_TOKENS, (len(chosen),)).fetchall()
        first = int(token_rows[0][0]) - len(chosen) + 1
        batch: list[TaskRecord] = []
        for offset, task in enumerate(chosen):
            batch.append(
                attrs.evolve(
                    task,
                    state=TaskState.RUNNING,
                    lease_owner=request.worker_id,
                    lease_expires_at=lease_until,
                    fencing_token=first + offset,
                    started_at=task.started_at or now,
                    wake_at=None,
                    updated_at=now,
                )
            )
        conn.executemany(
            _TAKE, [(request.worker_id, lease_us, t.fencing_token, now_us, now_us, t.task_id) for t in batch]
        )
        roots = [t.execution_id for t in batch if t.parent_task_id is None]
        if roots:
            conn.execute(_START_EXECUTIONS, (now_us, encode_list(roots)))
        claimed.extend(batch)
        taken.update(t.task_id for t in batch)
        if len(rows) < chunk:  # every candidate was seen
            break
    return claimed
