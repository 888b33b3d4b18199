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
from stent.model import Completion, ExecutionRecord, NewExecution, TaskRecord, execution_record_for, shared_part
from stent_sqlite.rows import (
    EXECUTION_COLUMNS,
    EXECUTION_INSERT,
    EXECUTION_SELECT,
    TASK_COLUMNS,
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
    this call created it, in order.

    The executions are inserted first (an id already stored is skipped); only when fewer rows landed than were
    given does it look which ids were there before (their root task is not the one given).
    """
    made: dict[str, ExecutionRecord] = {}
    fresh: list[NewExecution] = []
    for new in news:
        if new.execution_id not in made:
            made[new.execution_id] = execution_record_for(new, now)
            fresh.append(new)
    shared = shared_part(fresh[0])
    if all(shared_part(new) == shared for new in fresh):
        # A batch dispatch of one function: every row is the first's but for its ids and arguments.
        executions, tasks = _alike_rows(fresh, now)
    else:
        executions = [execution_params(made[new.execution_id]) for new in fresh]
        tasks = [task_params(task_from_new(new.root, new.execution_id, now)) for new in fresh]
    before = conn.total_changes
    conn.executemany(EXECUTION_INSERT, executions)
    existing: dict[str, ExecutionRecord] = {}
    if conn.total_changes - before < len(fresh):
        rows = conn.execute(
            f"SELECT {EXECUTION_SELECT} FROM stent_executions WHERE execution_id IN (SELECT value FROM json_each(?))",
            (encode_list(list(made)),),
        ).fetchall()
        for stored in map(execution_from_row, rows):
            if stored.root_task_id != made[stored.execution_id].root_task_id:  # there before this call
                existing[stored.execution_id] = stored
                del made[stored.execution_id]
        tasks = [row for row, new in zip(tasks, fresh, strict=True) if new.execution_id in made]
    conn.executemany(TASK_INSERT, tasks)
    out: list[tuple[ExecutionRecord, bool]] = []
    for new in news:
        execution = made.pop(new.execution_id, None)
        if execution is not None:
            out.append((execution, True))
        else:
            out.append((existing.get(new.execution_id) or _created_here(out, new.execution_id), False))
    return out


def _alike_rows(
    fresh: Sequence[NewExecution], now: datetime
) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """The insert parameters of executions alike but for their ids and arguments: each row is the first's with
    its own ids and arguments put in (building a record per row cost more than SQLite's insert)."""
    first = fresh[0]
    execution_row = list(execution_params(execution_record_for(first, now)))
    task_row = list(task_params(task_from_new(first.root, first.execution_id, now)))
    executions, tasks = [], []
    for new in fresh:
        execution_row[_EXECUTION_ID] = new.execution_id
        execution_row[_ROOT_TASK_ID] = new.root.task_id
        executions.append(tuple(execution_row))
        task_row[_TASK_ID] = new.root.task_id
        task_row[_TASK_EXECUTION_ID] = new.execution_id
        task_row[_TASK_ARGS] = new.root.args
        tasks.append(tuple(task_row))
    return executions, tasks


_EXECUTION_ID, _ROOT_TASK_ID = EXECUTION_COLUMNS.index("execution_id"), EXECUTION_COLUMNS.index("root_task_id")
_TASK_ID, _TASK_EXECUTION_ID, _TASK_ARGS = (TASK_COLUMNS.index(c) for c in ("task_id", "execution_id", "args"))


def _created_here(out: list[tuple[ExecutionRecord, bool]], execution_id: str) -> ExecutionRecord:
    """The record an earlier item of this batch created (the same id given twice)."""
    return next(record for record, _ in out if record.execution_id == execution_id)
