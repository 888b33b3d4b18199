"""Queue depth and the per-queue overview: counts of unfinished call tasks, each on the claim's partial indexes.

A task is counted where the claim would find it (see :mod:`stent_sqlite.claim`): pending calls on
``ix_stent_tasks_ready``/``ix_stent_tasks_due``, suspended tasks on ``ix_stent_tasks_wake`` and leased tasks on
``ix_stent_tasks_lease``.  Those indexes hold only unfinished rows, so the cost follows the work waiting or
running, never the finished tasks kept until cleanup.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from stent.model import QueueStats
from stent_sqlite.rows import from_us

_PENDING = "state = 'pending' AND kind = 'call'"
_SUSPENDED = "state = 'suspended' AND kind = 'call'"
_LEASED = "state IN ('running', 'waiting') AND kind = 'call'"


@functools.cache
def depth_sql(by_queue: bool) -> str:
    """``queue_depth``: pending calls, due or not, plus suspended tasks whose timer has come and leased tasks
    whose lease ran out (what a claim takes besides pending calls); ``:now`` and, ``by_queue``, ``:queue``."""
    queue = " AND queue = :queue" if by_queue else ""
    pending_index = "ix_stent_tasks_ready" if by_queue else "ix_stent_tasks_due"
    return (
        f"SELECT (SELECT count(*) FROM stent_tasks INDEXED BY {pending_index} WHERE {_PENDING}{queue})"
        f" + (SELECT count(*) FROM stent_tasks INDEXED BY ix_stent_tasks_wake"
        f" WHERE {_SUSPENDED} AND wake_at <= :now{queue})"
        f" + (SELECT count(*) FROM stent_tasks INDEXED BY ix_stent_tasks_lease"
        f" WHERE {_LEASED} AND lease_expires_at <= :now{queue})"
    )


# One row per queue: ready, scheduled, running, suspended, and the earliest moment a ready task became ready.
# Each arm gives every row of its kind one 0/1 per count (a timer or lease of NULL never comes due).
OVERVIEW_SQL = (
    "SELECT queue, sum(ready), sum(scheduled), sum(running), sum(suspended), min(ready_at) FROM ("
    " SELECT queue, scheduled_for <= :now AS ready, scheduled_for > :now AS scheduled, 0 AS running,"
    " 0 AS suspended, CASE WHEN scheduled_for <= :now THEN scheduled_for END AS ready_at"
    f" FROM stent_tasks INDEXED BY ix_stent_tasks_ready WHERE {_PENDING}"
    " UNION ALL"
    " SELECT queue, coalesce(wake_at <= :now, 0), 0, 0, coalesce(wake_at > :now, 1),"
    " CASE WHEN wake_at <= :now THEN wake_at END"
    f" FROM stent_tasks INDEXED BY ix_stent_tasks_wake WHERE {_SUSPENDED}"
    " UNION ALL"
    " SELECT queue, coalesce(lease_expires_at <= :now, 0), 0, coalesce(lease_expires_at > :now, 1), 0,"
    " CASE WHEN lease_expires_at <= :now THEN lease_expires_at END"
    f" FROM stent_tasks INDEXED BY ix_stent_tasks_lease WHERE {_LEASED}"
    ") GROUP BY queue ORDER BY queue"  # BINARY collation: code-point order, as Python sorts
)


def overview_from_rows(rows: Sequence[Sequence[Any]]) -> list[QueueStats]:
    return [
        QueueStats(
            queue=row[0],
            ready=int(row[1]),
            scheduled=int(row[2]),
            running=int(row[3]),
            suspended=int(row[4]),
            oldest_ready_at=from_us(row[5]),
        )
        for row in rows
    ]
