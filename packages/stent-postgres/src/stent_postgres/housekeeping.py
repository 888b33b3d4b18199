"""The idempotency/cache store, the leader lock, cleanup in batches and worker heartbeat rows."""

from __future__ import annotations

from datetime import datetime, timedelta

from stent.model import WorkerInfo
from stent_postgres.base import TERMINAL_EXECUTION, StorageBase
from stent_postgres.rows import check_time, worker_from_row

# An expired entry is removed when it is read, as the reference storage does, so the table does not keep it.
_CACHE_GET = (
    "WITH gone AS (DELETE FROM {s}.cache WHERE key = $1 AND expires_at <= $2 RETURNING key)"
    " SELECT value FROM {s}.cache WHERE key = $1 AND (expires_at IS NULL OR expires_at > $2)"
)
_CACHE_PUT = (
    "INSERT INTO {s}.cache (key, value, expires_at) VALUES ($1, $2, $3)"
    " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at"
)
# Taken when free, expired, or already ours (a renewal); the row lock of the upsert decides between racers.
_ACQUIRE = (
    "INSERT INTO {s}.leaders (name, owner, expires_at) VALUES ($1, $2, $3)"
    " ON CONFLICT (name) DO UPDATE SET owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at"
    " WHERE leaders.owner = EXCLUDED.owner OR leaders.expires_at <= $4 RETURNING owner"
)
# Oldest first, a bounded batch; rows another cleaner holds are left to it.
_DELETE_EXECUTIONS = (
    "WITH doomed AS (SELECT execution_id FROM {s}.executions"
    f" WHERE state IN {TERMINAL_EXECUTION} AND finished_at < $1"
    " ORDER BY finished_at, execution_id LIMIT $2 FOR UPDATE SKIP LOCKED),"
    " t AS (DELETE FROM {s}.tasks AS t USING doomed WHERE t.execution_id = doomed.execution_id),"
    " g AS (DELETE FROM {s}.signals AS g USING doomed WHERE g.execution_id = doomed.execution_id),"
    " e AS (DELETE FROM {s}.executions AS e USING doomed WHERE e.execution_id = doomed.execution_id"
    " RETURNING 1)"
    " SELECT count(*) FROM e"
)
_DELETE_DEAD_LETTERS = (
    "WITH doomed AS (SELECT task_id FROM {s}.dead_letters WHERE created_at < $1"
    " ORDER BY created_at, task_id LIMIT $2 FOR UPDATE SKIP LOCKED),"
    " d AS (DELETE FROM {s}.dead_letters AS d USING doomed WHERE d.task_id = doomed.task_id RETURNING 1)"
    " SELECT count(*) FROM d"
)
_RECORD_WORKER = (
    "INSERT INTO {s}.workers (worker_id, hostname, pid, queues, tags, max_concurrency, running, state,"
    " started_at, last_seen) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    " ON CONFLICT (worker_id) DO UPDATE SET hostname = EXCLUDED.hostname, pid = EXCLUDED.pid,"
    " queues = EXCLUDED.queues, tags = EXCLUDED.tags, max_concurrency = EXCLUDED.max_concurrency,"
    " running = EXCLUDED.running, state = EXCLUDED.state, started_at = EXCLUDED.started_at,"
    " last_seen = EXCLUDED.last_seen"
)


class HousekeepingMixin(StorageBase):
    # -- idempotency and cache -------------------------------------------------------------------------------

    async def cache_get(self, key: str, now: datetime) -> str | None:
        check_time(now)
        value: str | None = await self._db.fetchval(self._sql(_CACHE_GET), key, now)
        return value

    async def cache_put(self, key: str, value: str, expires_at: datetime | None, now: datetime) -> None:
        check_time(expires_at)
        await self._db.fetch(self._sql(_CACHE_PUT), key, value, expires_at)

    # -- leader lock -----------------------------------------------------------------------------------------

    async def acquire_leader(self, name: str, owner: str, ttl_seconds: float, now: datetime) -> bool:
        check_time(now)
        row = await self._db.fetchrow(self._sql(_ACQUIRE), name, owner, now + timedelta(seconds=ttl_seconds), now)
        return row is not None

    async def release_leader(self, name: str, owner: str) -> None:
        await self._db.fetch(self._sql("DELETE FROM {s}.leaders WHERE name = $1 AND owner = $2"), name, owner)

    # -- cleanup ---------------------------------------------------------------------------------------------

    async def delete_executions_before(self, cutoff: datetime, limit: int) -> int:
        check_time(cutoff)
        if limit <= 0:
            return 0
        return int(await self._db.fetchval(self._sql(_DELETE_EXECUTIONS), cutoff, limit))

    async def delete_dead_letters_before(self, cutoff: datetime, limit: int) -> int:
        check_time(cutoff)
        if limit <= 0:
            return 0
        return int(await self._db.fetchval(self._sql(_DELETE_DEAD_LETTERS), cutoff, limit))

    # -- worker rows -----------------------------------------------------------------------------------------

    async def record_worker(self, info: WorkerInfo) -> None:
        await self._db.fetch(
            self._sql(_RECORD_WORKER),
            info.worker_id,
            info.hostname,
            info.pid,
            None if info.queues is None else list(info.queues),
            None if info.tags is None else list(info.tags),
            info.max_concurrency,
            info.running,
            info.state,
            check_time(info.started_at),
            check_time(info.last_seen),
        )

    async def remove_worker(self, worker_id: str) -> None:
        await self._db.fetch(self._sql("DELETE FROM {s}.workers WHERE worker_id = $1"), worker_id)

    async def list_workers(self) -> list[WorkerInfo]:
        rows = await self._db.fetch(self._sql("SELECT * FROM {s}.workers ORDER BY worker_id"))
        return [worker_from_row(r) for r in rows]

    async def delete_workers_before(self, cutoff: datetime) -> int:
        check_time(cutoff)
        rows = await self._db.fetch(
            self._sql("DELETE FROM {s}.workers WHERE last_seen < $1 RETURNING worker_id"), cutoff
        )
        return len(rows)
