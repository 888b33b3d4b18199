"""Batch operations: many executions created, or many tasks completed, in one transaction.

Each runs a fixed handful of statements whatever the batch size (a JSON array bound as one parameter and read
with ``json_each``, or ``executemany``), so a worker finishing fifty tasks at once pays for one transaction and a
few statements, not fifty of each.  Semantics are those of the single operations,
item by item: a completion whose fence does not hold changes nothing and gets its error back in its place.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime

from stent.errors import LeaseLost, TaskNotFound
from stent.model import Completion, ExecutionRecord, NewExecution, TaskRecord, execution_record_for
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
from stent_sqlite.transitions import LEASED, after_finish_many, lease_lost

Outcome = TaskRecord | LeaseLost | TaskNotFound

# Every completion of the batch whose fence holds, in one statement; the rest match nothing.
_COMPLETE_MANY = (
    "UPDATE stent_tasks SET state = 'completed', result = c.c_result, error = NULL, finished_at = :now,"
    " lease_owner = NULL, lease_expires_at = NULL, updated_at = :now"
    " FROM (SELECT json_extract(value, '$[0]') AS c_id, json_extract(value, '$[1]') AS c_token,"
    " json_extract(value, '$[2]') AS c_result FROM json_each(:items)) AS c"
    f" WHERE stent_tasks.task_id = c.c_id AND stent_tasks.fencing_token = c.c_token AND {LEASED}"
    f" RETURNING {TASK_SELECT}"
)


def complete_many(
    conn: sqlite3.Connection, completions: Sequence[Completion], now: datetime
) -> tuple[dict[str, TaskRecord], dict[str, LeaseLost | TaskNotFound]]:
    """Complete the (distinct, update-free) ``completions`` in the caller's transaction.

    Returns the completed tasks and, for the others, the error their fence met, both by task id.
    """
    items = [[c.fence.task_id, c.fence.token, c.result] for c in completions]
    rows = conn.execute(_COMPLETE_MANY, {"items": encode_list(items), "now": to_us(now)}).fetchall()
    done = {task.task_id: task for task in map(task_from_row, rows)}
    after_finish_many(conn, list(done.values()), now)
    refused: dict[str, LeaseLost | TaskNotFound] = {}
    missed = [c.fence for c in completions if c.fence.task_id not in done]
    if missed:
        found = {
            row[0]: (row[1], row[2])
            for row in conn.execute(
                "SELECT task_id, fencing_token, state FROM stent_tasks"
                " WHERE task_id IN (SELECT value FROM json_each(?))",
                (encode_list([f.task_id for f in missed]),),
            ).fetchall()
        }
        for fence in missed:
            if fence.task_id not in found:
                refused[fence.task_id] = TaskNotFound(fence.task_id)
            else:
                token, state = found[fence.task_id]
                refused[fence.task_id] = lease_lost(fence, token, state)
    return done, refused


def create_many(
    conn: sqlite3.Connection, news: Sequence[NewExecution], now: datetime
) -> list[tuple[ExecutionRecord, bool]]:
    """Create the executions of ``news`` not stored yet, in the caller's transaction; each record and whether
    this call created it, in order."""
    ids = [new.execution_id for new in news]
    stored = {
        row[0]
        for row in conn.execute(
            "SELECT execution_id FROM stent_executions WHERE execution_id IN (SELECT value FROM json_each(?))",
            (encode_list(ids),),
        ).fetchall()
    }
    made: dict[str, ExecutionRecord] = {}
    roots: list[TaskRecord] = []
    for new in news:
        if new.execution_id in stored or new.execution_id in made:
            continue
        root = task_from_new(new.root, new.execution_id, now)
        made[new.execution_id] = execution_record_for(new, now)
        roots.append(root)
    if made:
        conn.executemany(EXECUTION_INSERT, [execution_params(e) for e in made.values()])
        conn.executemany(TASK_INSERT, [task_params(t) for t in roots])
    existing: dict[str, ExecutionRecord] = {}
    if stored:
        rows = conn.execute(
            f"SELECT {EXECUTION_SELECT} FROM stent_executions WHERE execution_id IN (SELECT value FROM json_each(?))",
            (encode_list(sorted(stored)),),
        ).fetchall()
        existing = {e.execution_id: e for e in map(execution_from_row, rows)}
    out: list[tuple[ExecutionRecord, bool]] = []
    for new in news:
        execution = made.pop(new.execution_id, None)
        if execution is not None:
            out.append((execution, True))
        else:
            out.append((existing.get(new.execution_id) or _created_here(out, new.execution_id), False))
    return out


def _created_here(out: list[tuple[ExecutionRecord, bool]], execution_id: str) -> ExecutionRecord:
    """The record an earlier item of this batch created (the same id given twice)."""
    return next(record for record, _ in out if record.execution_id == execution_id)
