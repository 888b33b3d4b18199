"""Steps that several port operations share, run inside the caller's transaction.

They mirror the reference storage's helpers one for one (fence checks, waking a parent, finishing an execution,
cancelling what holds no lease, dead-lettering), so that each operation in :mod:`stent_sqlite.storage` and
:mod:`stent_sqlite.operations` reads like its reference counterpart.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from stent.errors import LeaseLost, TaskNotFound
from stent.model import ExecutionRecord, ExecutionState, Fence, TaskRecord, TaskState
from stent_sqlite.rows import EXECUTION_SELECT, TASK_SELECT, encode_list, execution_from_row, task_from_row, to_us

LEASED = "state IN ('running', 'waiting')"
TERMINAL_EXECUTION = "('completed', 'failed', 'timed_out', 'cancelled')"
STOPPING_EXECUTION = "('completed', 'failed', 'timed_out', 'cancelled', 'cancelling')"

# A finished child wakes its parent when the parent still runs the attempt that made the child: a waiting
# parent runs on, a suspended one becomes claimable now.
_WAKE_PARENT = (
    "UPDATE stent_tasks SET"
    " state = CASE state WHEN 'waiting' THEN 'running' ELSE 'pending' END,"
    " scheduled_for = CASE state WHEN 'suspended' THEN :now ELSE scheduled_for END,"
    " wake_at = CASE state WHEN 'suspended' THEN NULL ELSE wake_at END,"
    " updated_at = :now"
    " WHERE task_id = :parent AND attempt = :attempt AND state IN ('waiting', 'suspended')"
)
# SET expressions read the row as it was, so every CASE sees the old state.  A cancelling execution ends
# cancelled whatever finished its root: a late completion never overwrites a cancellation.
_FINISH_EXECUTION = (
    "UPDATE stent_executions SET"
    " state = CASE state WHEN 'cancelling' THEN 'cancelled' ELSE :state END,"
    " result = CASE WHEN state <> 'cancelling' AND :state = 'completed' THEN :result ELSE result END,"
    " error = CASE WHEN state <> 'cancelling' AND :state <> 'completed' THEN :error ELSE error END,"
    " updated_at = :now, finished_at = :now"
    f" WHERE execution_id = :execution AND state NOT IN {TERMINAL_EXECUTION}"
)
_ROOT_ENDS = {TaskState.COMPLETED: "completed", TaskState.FAILED: "failed", TaskState.CANCELLED: "cancelled"}


def fetch_task(conn: sqlite3.Connection, task_id: str) -> TaskRecord | None:
    rows = conn.execute(f"SELECT {TASK_SELECT} FROM stent_tasks WHERE task_id = ?", (task_id,)).fetchall()
    return task_from_row(rows[0]) if rows else None


def fetch_execution(conn: sqlite3.Connection, execution_id: str) -> ExecutionRecord | None:
    rows = conn.execute(
        f"SELECT {EXECUTION_SELECT} FROM stent_executions WHERE execution_id = ?", (execution_id,)
    ).fetchall()
    return execution_from_row(rows[0]) if rows else None


def stopping(execution: ExecutionRecord | None) -> bool:
    """Whether an execution takes no new work: gone, finished, or being cancelled."""
    return execution is None or execution.state.terminal or execution.state is ExecutionState.CANCELLING


def lease_lost(fence: Fence, token: int, state: str) -> LeaseLost:
    if token != fence.token:
        return LeaseLost(fence.task_id, f"token {fence.token} is stale; current is {token}")
    return LeaseLost(fence.task_id, f"task is {state}")


def fenced(conn: sqlite3.Connection, fence: Fence) -> TaskRecord:
    """The task ``fence`` holds, or :class:`TaskNotFound` / :class:`LeaseLost`."""
    task = fetch_task(conn, fence.task_id)
    if task is None:
        raise TaskNotFound(fence.task_id)
    if task.fencing_token != fence.token or not task.state.leased:
        raise lease_lost(fence, task.fencing_token, task.state.value)
    return task


def fenced_update(conn: sqlite3.Connection, fence: Fence, assignments: str, params: dict[str, Any]) -> TaskRecord:
    """Apply ``assignments`` to the task ``fence`` holds, checked in the statement itself; the updated task."""
    rows = conn.execute(
        f"UPDATE stent_tasks SET {assignments}"
        f" WHERE task_id = :task_id AND fencing_token = :token AND {LEASED} RETURNING {TASK_SELECT}",
        {**params, "task_id": fence.task_id, "token": fence.token},
    ).fetchall()
    if rows:
        return task_from_row(rows[0])
    # Matched nothing: read the row again only to say why, as the reference storage does.
    found = conn.execute(
        "SELECT fencing_token, state FROM stent_tasks WHERE task_id = ?", (fence.task_id,)
    ).fetchall()
    if not found:
        raise TaskNotFound(fence.task_id)
    raise lease_lost(fence, found[0][0], found[0][1])


def update_task(conn: sqlite3.Connection, task_id: str, assignments: str, params: dict[str, Any]) -> TaskRecord:
    """Apply ``assignments`` to a task the transaction has already checked; the updated task."""
    rows = conn.execute(
        f"UPDATE stent_tasks SET {assignments} WHERE task_id = :task_id RETURNING {TASK_SELECT}",
        {**params, "task_id": task_id},
    ).fetchall()
    return task_from_row(rows[0])


def wake_parent(conn: sqlite3.Connection, task: TaskRecord, now: datetime) -> None:
    conn.execute(_WAKE_PARENT, {"now": to_us(now), "parent": task.parent_task_id, "attempt": task.parent_attempt})


def after_finish(conn: sqlite3.Connection, task: TaskRecord, now: datetime) -> None:
    """Wake the parent waiting on a finished task, or finish the execution of a finished root."""
    after_finish_many(conn, [task], now)


def after_finish_many(conn: sqlite3.Connection, tasks: Sequence[TaskRecord], now: datetime) -> None:
    """:func:`after_finish` for each of ``tasks``: one statement per kind of effect, however many tasks."""
    now_us = to_us(now)
    wakes = [
        {"now": now_us, "parent": t.parent_task_id, "attempt": t.parent_attempt}
        for t in tasks
        if t.parent_task_id is not None
    ]
    finishes = [
        {
            "state": _ROOT_ENDS[t.state],
            "result": t.result,
            "error": t.error,
            "now": now_us,
            "execution": t.execution_id,
        }
        for t in tasks
        if t.parent_task_id is None and t.state in _ROOT_ENDS
    ]
    if wakes:
        conn.executemany(_WAKE_PARENT, wakes)
    if finishes:
        conn.executemany(_FINISH_EXECUTION, finishes)


def stop_unleased(conn: sqlite3.Connection, execution_ids: Sequence[str], now: datetime) -> None:
    """Cancel the executions' tasks no worker holds (pending or suspended); leased ones learn on renewal."""
    now_us = to_us(now)
    conn.execute(
        "UPDATE stent_tasks SET state = 'cancelled', finished_at = ?, updated_at = ?, wake_at = NULL"
        " WHERE execution_id IN (SELECT value FROM json_each(?)) AND state IN ('pending', 'suspended')",
        (now_us, now_us, encode_list(execution_ids)),
    )


def add_dead_letter(conn: sqlite3.Connection, task: TaskRecord, reason: str, now: datetime) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO stent_dead_letters"
        " (task_id, execution_id, function, queue, reason, error, attempts, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            task.task_id,
            task.execution_id,
            task.function,
            task.queue,
            reason,
            task.error or "",
            task.attempt,
            to_us(now),
        ),
    )
