"""Rows to records and back.

Times are ``timestamptz``: asyncpg returns them as aware UTC datetimes, the same instants the caller's clock
gave, to the microsecond.  Tags are ``text[]`` (empty when untagged).
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from stent.errors import ConfigurationError, StorageCorrupt
from stent.model import (
    DeadLetter,
    ExecutionRecord,
    ExecutionState,
    NewTask,
    SignalRecord,
    StepKey,
    TaskKind,
    TaskRecord,
    TaskState,
    WorkerInfo,
    task_record_for,
)

TASK_COLUMNS = (
    "task_id",
    "execution_id",
    "function",
    "kind",
    "state",
    "queue",
    "tags",
    "priority",
    "args",
    "attempt",
    "max_attempts",
    "max_concurrent",
    "options",
    "scheduled_for",
    "created_at",
    "updated_at",
    "parent_task_id",
    "parent_attempt",
    "step",
    "lease_owner",
    "lease_expires_at",
    "fencing_token",
    "result",
    "error",
    "started_at",
    "finished_at",
    "wake_at",
)
TASK_SELECT = ", ".join(TASK_COLUMNS)

EXECUTION_COLUMNS = (
    "execution_id",
    "root_task_id",
    "function",
    "queue",
    "state",
    "created_at",
    "updated_at",
    "deadline",
    "result",
    "error",
    "finished_at",
    "counters",
    "custom_state",
)
EXECUTION_SELECT = ", ".join(EXECUTION_COLUMNS)

#: Each task column's SQL type (text unless listed).
COLUMN_TYPES = {
    "tags": "text[]",
    "priority": "bigint",
    "attempt": "integer",
    "max_attempts": "integer",
    "max_concurrent": "integer",
    "parent_attempt": "integer",
    "step": "integer",
    "fencing_token": "bigint",
    "scheduled_for": "timestamptz",
    "created_at": "timestamptz",
    "updated_at": "timestamptz",
    "lease_expires_at": "timestamptz",
    "started_at": "timestamptz",
    "finished_at": "timestamptz",
    "wake_at": "timestamptz",
}


def column_type(column: str) -> str:
    return COLUMN_TYPES.get(column, "text")


#: ``INSERT`` of any number of tasks: parameters are one array per column (see :func:`task_arrays`).  Tags
#: travel as array literals, parsed by PostgreSQL, since an array of arrays cannot have rows of different
#: lengths.
TASK_INSERT_MANY = (
    f"INSERT INTO {{s}}.tasks ({TASK_SELECT}) SELECT "
    + ", ".join(f"u.{c}::text[]" if c == "tags" else f"u.{c}" for c in TASK_COLUMNS)
    + " FROM unnest("
    + ", ".join(f"${i + 1}::{'text' if c == 'tags' else column_type(c)}[]" for i, c in enumerate(TASK_COLUMNS))
    + f") AS u({TASK_SELECT})"
)

#: The columns that differ between the root tasks of a batch dispatch of one function (``dispatch_many``).
VARYING_TASK_COLUMNS = ("task_id", "execution_id", "args")

#: ``INSERT`` of tasks that share every column but :data:`VARYING_TASK_COLUMNS`: those three as arrays ($1..$3),
#: then each other column once, in :data:`TASK_COLUMNS` order.  A batch of thousands sends three arrays instead of
#: twenty-seven (the driver checks every element of every array it encodes).
UNIFORM_TASK_INSERT = (
    f"INSERT INTO {{s}}.tasks ({TASK_SELECT}) SELECT "
    + ", ".join(
        f"u.{c}"
        if c in VARYING_TASK_COLUMNS
        else f"${4 + [x for x in TASK_COLUMNS if x not in VARYING_TASK_COLUMNS].index(c)}::{column_type(c)}"
        for c in TASK_COLUMNS
    )
    + f" FROM unnest($1::text[], $2::text[], $3::text[]) AS u({', '.join(VARYING_TASK_COLUMNS)})"
)


def uniform_task_params(task: TaskRecord) -> list[Any]:
    """The shared columns of :data:`UNIFORM_TASK_INSERT` (``$4`` on), taken from one task of the batch."""
    return [
        value
        for column, value in zip(TASK_COLUMNS, task_params(task), strict=True)
        if column not in VARYING_TASK_COLUMNS
    ]


#: The values of one task as statement parameters ``$1..$n`` (in :data:`TASK_COLUMNS` order), typed.
TASK_VALUES = ", ".join(f"${i + 1}::{column_type(c)}" for i, c in enumerate(TASK_COLUMNS))


def task_params(task: TaskRecord) -> list[Any]:
    """One task's values for :data:`TASK_VALUES` (on the path of every dispatch: one attrgetter call, then the
    few columns that need converting)."""
    values = list(_TASK_VALUES(task))
    values[_TAGS] = list(values[_TAGS])
    for index in _ENUMS:
        values[index] = values[index].value
    for index in _TIMES:
        check_time(values[index])
    return values


def check_time(moment: datetime | None) -> datetime | None:
    if moment is not None and (moment.tzinfo is None or moment.utcoffset() is None):
        raise ConfigurationError(
            f"stent times must be aware datetimes (UTC), got the naive {moment!r}; take them from a stent clock"
        )
    return moment


def _array_literal(values: Sequence[str]) -> str:
    """A PostgreSQL array literal of strings, every element quoted so no name is ever misread."""
    quoted = ('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values)
    return "{" + ",".join(quoted) + "}"


_TASK_VALUES = operator.attrgetter(*TASK_COLUMNS)
_TAGS = TASK_COLUMNS.index("tags")
_ENUMS = (TASK_COLUMNS.index("kind"), TASK_COLUMNS.index("state"))
_TIMES = tuple(i for i, c in enumerate(TASK_COLUMNS) if COLUMN_TYPES.get(c) == "timestamptz")


def task_arrays(tasks: Sequence[TaskRecord]) -> list[list[Any]]:
    """The parameters of :data:`TASK_INSERT_MANY` for ``tasks``: one list per column (built column-wise, as a
    batch dispatch of thousands spends its time here)."""
    if not tasks:
        return [[] for _ in TASK_COLUMNS]
    columns = [list(column) for column in zip(*map(_TASK_VALUES, tasks), strict=True)]
    columns[_TAGS] = [_array_literal(tags) for tags in columns[_TAGS]]
    for index in _ENUMS:
        columns[index] = [member.value for member in columns[index]]
    for index in _TIMES:
        for moment in columns[index]:
            check_time(moment)
    return columns


def task_from_new(
    new: NewTask,
    execution_id: str,
    now: datetime,
    *,
    parent_task_id: str | None = None,
    key: StepKey | None = None,
) -> TaskRecord:
    """The record storage creates for a root task or a step (the same fields the reference storage sets)."""
    check_time(now)
    check_time(new.scheduled_for)
    return task_record_for(new, execution_id, now, parent_task_id=parent_task_id, key=key)


def task_from_row(row: Mapping[str, Any]) -> TaskRecord:
    """A task row holding :data:`TASK_COLUMNS`; an undecodable row raises :class:`StorageCorrupt`."""
    try:
        fields = {c: row[c] for c in TASK_COLUMNS}
        fields["kind"] = TaskKind(fields["kind"])
        fields["state"] = TaskState(fields["state"])
        fields["tags"] = tuple(fields["tags"])
        return TaskRecord(**fields)
    except (TypeError, ValueError, KeyError) as exc:
        raise StorageCorrupt(f"task row {row.get('task_id')!r} cannot be decoded: {exc}") from exc


def execution_from_row(row: Mapping[str, Any]) -> ExecutionRecord:
    try:
        fields = {c: row[c] for c in EXECUTION_COLUMNS}
        fields["state"] = ExecutionState(fields["state"])
        return ExecutionRecord(**fields)
    except (TypeError, ValueError, KeyError) as exc:
        raise StorageCorrupt(f"execution row {row.get('execution_id')!r} cannot be decoded: {exc}") from exc


def signal_from_row(row: Mapping[str, Any]) -> SignalRecord:
    return SignalRecord(
        signal_id=row["signal_id"],
        execution_id=row["execution_id"],
        name=row["name"],
        payload=row["payload"],
        created_at=row["created_at"],
        consumed_by=row["consumed_by"],
    )


def dead_letter_from_row(row: Mapping[str, Any]) -> DeadLetter:
    return DeadLetter(
        task_id=row["task_id"],
        execution_id=row["execution_id"],
        function=row["function"],
        queue=row["queue"],
        reason=row["reason"],
        error=row["error"],
        attempts=row["attempts"],
        created_at=row["created_at"],
    )


def worker_from_row(row: Mapping[str, Any]) -> WorkerInfo:
    return WorkerInfo(
        worker_id=row["worker_id"],
        hostname=row["hostname"],
        pid=row["pid"],
        queues=None if row["queues"] is None else tuple(row["queues"]),
        tags=None if row["tags"] is None else tuple(row["tags"]),
        max_concurrency=row["max_concurrency"],
        running=row["running"],
        state=row["state"],
        started_at=row["started_at"],
        last_seen=row["last_seen"],
    )
