"""Rows to records and back: column lists, time encoding, tags.

Times are INTEGER microseconds since the Unix epoch, so SQL comparisons are exact and a value read back is the
same instant as the one written, as an aware UTC datetime.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from stent.errors import ConfigurationError, StorageCorrupt
from stent.model import (
    DeadLetter,
    ExecutionRecord,
    ExecutionState,
    SignalRecord,
    TaskKind,
    TaskRecord,
    TaskState,
    WorkerInfo,
    task_record_for,
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

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
TASK_INSERT = f"INSERT INTO stent_tasks ({TASK_SELECT}) VALUES ({', '.join('?' for _ in TASK_COLUMNS)})"

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
EXECUTION_INSERT = (
    f"INSERT INTO stent_executions ({EXECUTION_SELECT})"
    f" VALUES ({', '.join('?' for _ in EXECUTION_COLUMNS)}) ON CONFLICT (execution_id) DO NOTHING"
)
SIGNAL_SELECT = "signal_id, execution_id, name, payload, created_at, consumed_by"
DEAD_LETTER_SELECT = "task_id, execution_id, function, queue, reason, error, attempts, created_at"
WORKER_COLUMNS = (
    "worker_id",
    "hostname",
    "pid",
    "queues",
    "tags",
    "max_concurrency",
    "running",
    "state",
    "started_at",
    "last_seen",
)
WORKER_SELECT = ", ".join(WORKER_COLUMNS)


def to_us(moment: datetime) -> int:
    """Microseconds since the epoch of an aware datetime."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ConfigurationError(
            f"stent times must be aware datetimes (UTC), got the naive {moment!r}; take them from a stent clock"
        )
    return (moment - EPOCH) // _MICROSECOND


def to_us_or_none(moment: datetime | None) -> int | None:
    return None if moment is None else to_us(moment)


def from_us(value: int | None) -> datetime | None:
    return None if value is None else EPOCH + timedelta(microseconds=value)


def _required_time(value: int) -> datetime:
    return EPOCH + timedelta(microseconds=value)


def encode_tags(tags: Sequence[str]) -> str:
    return json.dumps(list(tags), ensure_ascii=False)


def encode_list(values: Sequence[Any]) -> str:
    """A JSON array bound as one parameter and read with ``json_each``, so values are never interpolated."""
    return json.dumps(list(values), ensure_ascii=False)


task_from_new = task_record_for
"""The record storage creates for a root task or a step (stent.model.task_record_for)."""


def task_params(task: TaskRecord) -> tuple[Any, ...]:
    """Parameters for :data:`TASK_INSERT`, in :data:`TASK_COLUMNS` order."""
    return (
        task.task_id,
        task.execution_id,
        task.function,
        task.kind.value,
        task.state.value,
        task.queue,
        encode_tags(task.tags),
        task.priority,
        task.args,
        task.attempt,
        task.max_attempts,
        task.max_concurrent,
        task.options,
        to_us(task.scheduled_for),
        to_us(task.created_at),
        to_us(task.updated_at),
        task.parent_task_id,
        task.parent_attempt,
        task.step,
        task.lease_owner,
        to_us_or_none(task.lease_expires_at),
        task.fencing_token,
        task.result,
        task.error,
        to_us_or_none(task.started_at),
        to_us_or_none(task.finished_at),
        to_us_or_none(task.wake_at),
    )


def task_from_row(row: Sequence[Any]) -> TaskRecord:
    """A task row selected with :data:`TASK_SELECT`; an undecodable row raises :class:`StorageCorrupt`."""
    try:
        return TaskRecord(
            task_id=row[0],
            execution_id=row[1],
            function=row[2],
            kind=TaskKind(row[3]),
            state=TaskState(row[4]),
            queue=row[5],
            tags=tuple(json.loads(row[6])),
            priority=row[7],
            args=row[8],
            attempt=row[9],
            max_attempts=row[10],
            max_concurrent=row[11],
            options=row[12],
            scheduled_for=_required_time(row[13]),
            created_at=_required_time(row[14]),
            updated_at=_required_time(row[15]),
            parent_task_id=row[16],
            parent_attempt=row[17],
            step=row[18],
            lease_owner=row[19],
            lease_expires_at=from_us(row[20]),
            fencing_token=row[21],
            result=row[22],
            error=row[23],
            started_at=from_us(row[24]),
            finished_at=from_us(row[25]),
            wake_at=from_us(row[26]),
        )
    except (TypeError, ValueError, OverflowError) as exc:
        raise StorageCorrupt(f"task row {row[0]!r} cannot be decoded: {exc}") from exc


def execution_from_row(row: Sequence[Any]) -> ExecutionRecord:
    """An execution row selected with :data:`EXECUTION_SELECT`."""
    try:
        return ExecutionRecord(
            execution_id=row[0],
            root_task_id=row[1],
            function=row[2],
            queue=row[3],
            state=ExecutionState(row[4]),
            created_at=_required_time(row[5]),
            updated_at=_required_time(row[6]),
            deadline=from_us(row[7]),
            result=row[8],
            error=row[9],
            finished_at=from_us(row[10]),
            counters=row[11],
            custom_state=row[12],
        )
    except (TypeError, ValueError, OverflowError) as exc:
        raise StorageCorrupt(f"execution row {row[0]!r} cannot be decoded: {exc}") from exc


def execution_params(execution: ExecutionRecord) -> tuple[Any, ...]:
    """Parameters for :data:`EXECUTION_INSERT`, in :data:`EXECUTION_COLUMNS` order."""
    return (
        execution.execution_id,
        execution.root_task_id,
        execution.function,
        execution.queue,
        execution.state.value,
        to_us(execution.created_at),
        to_us(execution.updated_at),
        to_us_or_none(execution.deadline),
        execution.result,
        execution.error,
        to_us_or_none(execution.finished_at),
        execution.counters,
        execution.custom_state,
    )


def signal_from_row(row: Sequence[Any]) -> SignalRecord:
    return SignalRecord(row[0], row[1], row[2], row[3], _required_time(row[4]), row[5])


def dead_letter_from_row(row: Sequence[Any]) -> DeadLetter:
    return DeadLetter(row[0], row[1], row[2], row[3], row[4], row[5], row[6], _required_time(row[7]))


def _optional_names(value: str | None) -> tuple[str, ...] | None:
    return None if value is None else tuple(json.loads(value))


def worker_params(info: WorkerInfo) -> tuple[Any, ...]:
    """Parameters in :data:`WORKER_COLUMNS` order; ``None`` queues or tags (no filter) stay NULL."""
    return (
        info.worker_id,
        info.hostname,
        info.pid,
        None if info.queues is None else encode_list(info.queues),
        None if info.tags is None else encode_list(info.tags),
        info.max_concurrency,
        info.running,
        info.state,
        to_us(info.started_at),
        to_us(info.last_seen),
    )


def worker_from_row(row: Sequence[Any]) -> WorkerInfo:
    return WorkerInfo(
        worker_id=row[0],
        hostname=row[1],
        pid=row[2],
        queues=_optional_names(row[3]),
        tags=_optional_names(row[4]),
        max_concurrency=row[5],
        running=row[6],
        state=row[7],
        started_at=_required_time(row[8]),
        last_seen=_required_time(row[9]),
    )
