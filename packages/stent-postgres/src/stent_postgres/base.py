"""What every part of :class:`~stent_postgres.PostgresStorage` shares: settings, the database, rendered SQL,
fencing, the parent wake-up and execution finish, and NOTIFY inside a transaction.

Locking discipline (READ COMMITTED throughout): an operation that decides something from rows other than the
ones it updates locks what its decision rests on first, and reads the rest in a later statement (which takes a
fresh snapshot).  Execution rows are locked before task rows.  The few cycles left (a claim marking an execution
running while someone cancels it) are broken by PostgreSQL's deadlock detector, and the loser runs again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information

from stent.errors import LeaseLost, TaskNotFound
from stent.model import Fence, TaskRecord
from stent.ports import Notification
from stent_postgres import channel
from stent_postgres.config import PostgresSettings
from stent_postgres.database import Database
from stent_postgres.schema import quote_ident

LEASED = "state IN ('running', 'waiting')"
TERMINAL_EXECUTION = "('completed', 'failed', 'timed_out', 'cancelled')"
STOPPING_EXECUTION = "('completed', 'failed', 'timed_out', 'cancelled', 'cancelling')"
TERMINAL_TASK = "('completed', 'failed', 'cancelled')"

# A finished child wakes its parent when the parent still runs the attempt that made the child: a waiting
# parent runs on, a suspended one becomes claimable now.  $1 parent id, $2 attempt, $3 now.
WAKE_PARENT = (
    "UPDATE {s}.tasks SET"
    " state = CASE state WHEN 'waiting' THEN 'running' ELSE 'pending' END,"
    " scheduled_for = CASE state WHEN 'suspended' THEN $3 ELSE scheduled_for END,"
    " wake_at = CASE state WHEN 'suspended' THEN NULL ELSE wake_at END,"
    " updated_at = $3"
    " WHERE task_id = $1 AND attempt = $2 AND state IN ('waiting', 'suspended')"
    " RETURNING state, queue"
)

# The same, as a CTE of a statement whose CTE ``t`` returned the finished task.
WAKE_PARENT_CTE = (
    "p AS (UPDATE {s}.tasks AS p SET"
    " state = CASE p.state WHEN 'waiting' THEN 'running' ELSE 'pending' END,"
    " scheduled_for = CASE p.state WHEN 'suspended' THEN $NOW ELSE p.scheduled_for END,"
    " wake_at = CASE p.state WHEN 'suspended' THEN NULL ELSE p.wake_at END,"
    " updated_at = $NOW"
    " FROM t WHERE p.task_id = t.parent_task_id AND p.attempt = t.parent_attempt"
    " AND p.state IN ('waiting', 'suspended')"
    " RETURNING p.state, p.queue)"
)

# Finishing a root task finishes its execution, unless it already ended; a cancelling execution ends
# cancelled whatever the task's outcome, keeping neither result nor error.  $STATE is the execution state
# the task's outcome means (completed, failed or cancelled).
FINISH_EXECUTION_CTE = (
    "e AS (UPDATE {s}.executions AS e SET"
    " state = CASE WHEN e.state = 'cancelling' THEN 'cancelled' ELSE $STATE END,"
    " result = CASE WHEN e.state <> 'cancelling' AND $STATE = 'completed' THEN t.result ELSE e.result END,"
    " error = CASE WHEN e.state <> 'cancelling' AND $STATE <> 'completed' THEN t.error ELSE e.error END,"
    " updated_at = $NOW, finished_at = $NOW"
    " FROM t WHERE t.parent_task_id IS NULL AND e.execution_id = t.execution_id"
    f" AND e.state NOT IN {TERMINAL_EXECUTION}"
    " RETURNING e.execution_id)"
)

# NOTIFY from inside a statement: $N is whether this storage sends notifications, $C the channel.  The
# payload matches stent_postgres.channel.encode (json_build_object adds spaces, which JSON readers ignore).
NOTIFY_FINISHED = (
    "CASE WHEN $N THEN pg_notify($C, json_build_object('kind', 'finished', 'task_id', t.task_id,"
    " 'execution_id', t.execution_id)::text) END"
)
# A limited function's task that ends frees one of its slots: its queue may have work that claims skipped.
NOTIFY_SLOT_FREED = (
    "CASE WHEN $N AND t.max_concurrent IS NOT NULL"
    " THEN pg_notify($C, json_build_object('kind', 'work', 'queue', t.queue)::text) END"
)
NOTIFY_PARENT_WORK = (
    "(SELECT CASE WHEN $N THEN pg_notify($C, json_build_object('kind', 'work', 'queue', p.queue)::text) END"
    " FROM p WHERE p.state = 'pending')"
)


class Sql:
    """Statement templates rendered for one schema, each once: the text a connection prepares stays the same."""

    def __init__(self, schema: str) -> None:
        self._schema = quote_ident(schema)
        self._rendered: dict[str, str] = {}

    def __call__(self, template: str) -> str:
        text = self._rendered.get(template)
        if text is None:
            text = self._rendered[template] = template.replace("{s}", self._schema)
        return text


def lease_lost(fence: Fence, token: int, state: str) -> LeaseLost:
    if token != fence.token:
        return LeaseLost(fence.task_id, f"token {fence.token} is stale; current is {token}")
    return LeaseLost(fence.task_id, f"task is {state}")


def check_fence(fence: Fence, row: asyncpg.Record | None) -> None:
    """Raise what the reference storage raises for a fence that does not hold (``row``: token and state)."""
    if row is None:
        raise TaskNotFound(fence.task_id)
    if row["fencing_token"] != fence.token or row["state"] not in ("running", "waiting"):
        raise lease_lost(fence, row["fencing_token"], row["state"])


class StorageBase:
    settings: PostgresSettings
    _db: Database
    _sql: Sql
    _channel: str

    def _init_base(self, settings: PostgresSettings) -> None:
        self.settings = settings
        self._db = Database(settings)
        self._sql = Sql(settings.schema)
        self._channel = channel.channel_for(settings.schema)

    async def _fence_error(self, conn: asyncpg.Connection, fence: Fence) -> Exception:
        """Why a fenced statement matched nothing, worded as the reference storage words it."""
        row = await conn.fetchrow(
            self._sql("SELECT fencing_token, state FROM {s}.tasks WHERE task_id = $1"), fence.task_id
        )
        try:
            check_fence(fence, row)
        except (LeaseLost, TaskNotFound) as exc:
            return exc
        # The row holds the fence now: it changed between the two statements.  Either way the write did not
        # land, which is what LeaseLost tells the worker.
        return LeaseLost(fence.task_id, "the task changed while the write was made")

    async def _wake_parent(self, conn: asyncpg.Connection, task: TaskRecord, now: datetime) -> list[Notification]:
        """Wake the parent waiting on ``task``; the notifications that announces (work, when it is claimable)."""
        if task.parent_task_id is None:
            return []
        row = await conn.fetchrow(self._sql(WAKE_PARENT), task.parent_task_id, task.parent_attempt, now)
        if row is not None and row["state"] == "pending":
            return [Notification(kind="work", queue=row["queue"])]
        return []

    async def _notify(self, conn: asyncpg.Connection, notes: Sequence[Notification]) -> None:
        """NOTIFY ``notes`` inside the caller's transaction (delivered at commit), when notifications are on."""
        if not self.settings.notify or not notes:
            return
        await conn.execute(
            "SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p", self._channel, channel.encode_all(notes)
        )
