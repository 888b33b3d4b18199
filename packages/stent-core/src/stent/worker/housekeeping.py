"""A worker's periodic chores, run when the state machine says ``Housekeep``.

* End executions whose ``max_duration`` has passed (any worker may; the storage operation is idempotent).  The
  claims do it: a claim asks storage to sweep deadlines first when the last sweep is a second old, so an idle
  worker's one query per poll does it too.  Only when this worker is not claiming (it is full, or draining) does
  housekeeping sweep by itself.
* Keep this worker's heartbeat row fresh, for ``stent workers``.  Every claim refreshes its ``last_seen``; the
  whole row is written when what it shows changed (state, running count) and at least every
  ``min(heartbeat_interval, 30s)``, and when no claim refreshed it for that long.
* Every ``cleanup_interval``, on one worker of the cluster at a time (a leader lock with a TTL), delete finished
  executions older than ``retention_period``, old dead letters, and stale worker rows, in bounded batches.

An idle worker therefore makes one storage call per ``poll_interval_max``: its claim.
"""

from __future__ import annotations

import logging
import os
import socket
from datetime import datetime, timedelta

from stent.model import WorkerInfo
from stent.runtime import Runtime
from stent.worker.options import ServeOptions

log = logging.getLogger("stent.worker")

CLEANUP_LOCK = "stent.cleanup"
CLEANUP_BATCH = 500
TIMEOUT_BATCH = 200


class Housekeeper:
    #: Seconds between deadline sweeps (riding on claims, or by housekeeping when the worker is not claiming).
    SWEEP_INTERVAL = 1.0

    def __init__(self, runtime: Runtime, options: ServeOptions) -> None:
        self.runtime = runtime
        self.options = options
        self.started_at = runtime.clock.now()
        self.hostname = socket.gethostname()
        self._next_cleanup: float | None = None
        self._row_interval = min(options.heartbeat_interval, 30.0)
        self._row_written: tuple[str, int] | None = None  # (state, running) of the last full row write
        self._next_row: float | None = None  # when the next full row write is due regardless of changes
        self._last_claim: float | None = None
        self._last_sweep: float | None = None

    def claim_sweeps(self) -> bool:
        """Whether the next claim should sweep deadlines (the last sweep is ``SWEEP_INTERVAL`` old)."""
        tick = self.runtime.clock.monotonic()
        return self._last_sweep is None or tick - self._last_sweep >= self.SWEEP_INTERVAL

    def claimed(self, *, swept: bool) -> None:
        """A claim succeeded (which refreshed this worker's ``last_seen``, and swept deadlines if asked)."""
        tick = self.runtime.clock.monotonic()
        self._last_claim = tick
        if swept:
            self._last_sweep = tick

    async def run(self, *, state: str, running: int) -> None:
        runtime = self.runtime
        now = runtime.clock.now()
        tick = runtime.clock.monotonic()
        try:
            # Claiming: a claim came within the longest poll wait (plus a housekeeping round, as a claim due now
            # may come just after this run).
            claiming = (
                self._last_claim is not None and tick - self._last_claim <= 2 * self.options.poll_interval_max
            )
            if not claiming and self.claim_sweeps():
                self._last_sweep = tick
                timed_out = await runtime.storage.time_out_executions(now, TIMEOUT_BATCH)
                for execution_id in timed_out:
                    runtime.waiters.execution_finished(execution_id)
            await self._heartbeat_row(now, tick, state=state, running=running)
            await self._cleanup(now)
        except Exception as exc:
            log.warning("housekeeping failed, will retry: %s", exc)

    async def _heartbeat_row(self, now: datetime, tick: float, *, state: str, running: int) -> None:
        written = self._row_written
        due = self._next_row is None or tick >= self._next_row
        refreshed = self._last_claim is not None and tick - self._last_claim < self._row_interval
        # A new state is shown at once; a new running count at the next interval; an unchanged row is rewritten
        # only when no claim has refreshed its last_seen lately.
        same_state = written is not None and state == written[0]
        if same_state and (not due or (written is not None and running == written[1] and refreshed)):
            return
        self._next_row = tick + self._row_interval
        self._row_written = (state, running)
        await self.runtime.storage.record_worker(self.info(now, state=state, running=running))

    def info(self, now: datetime, *, state: str, running: int) -> WorkerInfo:
        o = self.options
        return WorkerInfo(
            worker_id=o.worker_id,
            hostname=self.hostname,
            pid=os.getpid(),
            queues=tuple(sorted(o.queues)) if o.queues is not None else None,
            tags=tuple(sorted(o.tags)) if o.tags is not None else None,
            max_concurrency=o.max_concurrency,
            running=running,
            state=state,
            started_at=self.started_at,
            last_seen=now,
        )

    async def _cleanup(self, now: datetime) -> int:
        tick = self.runtime.clock.monotonic()
        if self._next_cleanup is None:
            self._next_cleanup = tick + self.options.cleanup_interval
            return 0
        if tick < self._next_cleanup:
            return 0
        self._next_cleanup = tick + self.options.cleanup_interval
        storage = self.runtime.storage
        if not await storage.acquire_leader(
            CLEANUP_LOCK, self.options.worker_id, self.options.cleanup_interval, now
        ):
            return 0
        return await cleanup(self.runtime, now, timedelta(seconds=self.options.retention_period))


async def cleanup(runtime: Runtime, now: datetime, retention: timedelta, *, batch: int = CLEANUP_BATCH) -> int:
    """Delete finished executions and dead letters older than ``retention``; return how many executions went."""
    storage = runtime.storage
    cutoff = now - retention
    removed = 0
    while True:
        count = await storage.delete_executions_before(cutoff, batch)
        removed += count
        if count < batch:
            break
    while await storage.delete_dead_letters_before(cutoff, batch) >= batch:
        pass
    await storage.delete_workers_before(now - timedelta(hours=1))
    if removed:
        log.info("cleanup removed %d finished executions older than %s", removed, cutoff)
    return removed
