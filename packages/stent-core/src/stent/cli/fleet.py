"""``stent stats`` and ``stent workers``: the cluster at a glance, from storage (shared with ``stent watch``).

Queues come from one read, :meth:`~stent.ports.Storage.queue_overview`: every queue with unfinished work, with
its ready, scheduled, running and suspended tasks and how long its oldest ready task has waited for a worker.
"""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import TYPE_CHECKING, Any

from stent.cli import common
from stent.model import ExecutionState, QueueStats

if TYPE_CHECKING:
    from stent.executor import Stent
    from stent.model import WorkerInfo

#: A worker row not refreshed for this long is shown as stale (rows refresh every 30 s at most).
STALE_AFTER_S = 90.0
#: How far ``stats`` scans the dead letters to count them.
SCAN_LIMIT = 10_000
_PAGE = 500


def register(commands: Any) -> None:
    p = commands.add_parser("stats", help="counts by state, queue depths, dead letters and workers")
    common.add_output_options(p)
    p.add_argument(
        "--queue",
        type=common.names,
        action="extend",
        default=[],
        help="also list these queues when they have no unfinished work (comma-separated or repeated;"
        " busy queues are always listed)",
    )
    p.set_defaults(handler=run_stats)

    p = commands.add_parser("workers", help="the cluster's workers, from their heartbeat rows")
    common.add_output_options(p)
    p.set_defaults(handler=run_workers)


# -- collecting ---------------------------------------------------------------------------------------------


async def count_dead_letters(executor: Stent, limit: int = SCAN_LIMIT) -> int:
    """How many dead letters there are, counting up to ``limit``."""
    count, offset = 0, 0
    while offset < limit:
        page = await executor.backend.list_dead_letters(limit=_PAGE, offset=offset)
        count += len(page)
        if len(page) < _PAGE:
            break
        offset += _PAGE
    return count


async def collect_stats(executor: Stent, extra_queues: list[str] | None = None) -> dict[str, Any]:
    """Counts by state, every queue with unfinished work (and ``extra_queues``), dead letters and worker rows."""
    storage = executor.backend
    now = executor.clock.now()
    counts: dict[str, int] = {}
    for state in ExecutionState:
        page = await storage.list_executions(state=state, limit=1)
        counts[state.value] = page.total
    overview = {q.queue: q for q in await storage.queue_overview(now)}
    for queue in extra_queues or ():
        overview.setdefault(queue, QueueStats(queue))
    queue_rows = [queue_row(overview[name], now) for name in sorted(overview)]
    dead = await count_dead_letters(executor)
    workers = await storage.list_workers()
    return {
        "at": now,
        "executions": counts,
        "total": sum(counts.values()),
        "queue_depth_total": sum(int(q["depth"]) for q in queue_rows),
        "queues": queue_rows,
        "dead_letters": dead,
        "dead_letters_capped": dead >= SCAN_LIMIT,
        "workers": [worker_row(w, now) for w in workers],
    }


def queue_row(q: QueueStats, now: datetime) -> dict[str, Any]:
    """One queue for ``stats --json`` and ``watch --json``: its counts and how long its ready work has waited."""
    return {
        "queue": q.queue,
        "depth": q.depth,  # ready + scheduled, as queue_depth counts
        "ready": q.ready,
        "scheduled": q.scheduled,
        "running": q.running,
        "suspended": q.suspended,
        "oldest_ready_at": q.oldest_ready_at,
        "oldest_pending_s": q.oldest_ready_age(now),  # the age of oldest_ready_at, 0.0 when nothing is ready
    }


def print_queues(rows: list[dict[str, Any]], out: Any = None) -> None:
    common.table(
        ["QUEUE", "READY", "SCHEDULED", "RUNNING", "SUSPENDED", "OLDEST READY"],
        [
            [
                q["queue"],
                q["ready"],
                q["scheduled"],
                q["running"],
                q["suspended"],
                common.span(q["oldest_pending_s"]) if q["oldest_ready_at"] is not None else "-",
            ]
            for q in rows
        ],
        out,
    )


def worker_row(w: WorkerInfo, now: datetime) -> dict[str, Any]:
    seen = (now - w.last_seen).total_seconds()
    return {
        "worker_id": w.worker_id,
        "hostname": w.hostname,
        "pid": w.pid,
        "state": w.state,
        "running": w.running,
        "max_concurrency": w.max_concurrency,
        "queues": list(w.queues) if w.queues is not None else None,
        "tags": list(w.tags) if w.tags is not None else None,
        "started_at": w.started_at,
        "last_seen": w.last_seen,
        "last_seen_s": max(0.0, seen),
        "stale": seen > STALE_AFTER_S,
    }


# -- stats --------------------------------------------------------------------------------------------------


def run_stats(args: argparse.Namespace) -> int:
    return common.run_async("stats", lambda: _stats(args))


async def _stats(args: argparse.Namespace) -> int:
    async with common.opened(common.storage_url(args, "stats")) as executor:
        stats = await collect_stats(executor, args.queue)
    if args.json:
        common.print_json(stats)
        return common.OK
    print(f"executions ({stats['total']})")
    common.table(["STATE", "COUNT"], [[state, n] for state, n in stats["executions"].items()])
    print()
    print(f"queues (ready or scheduled tasks: {stats['queue_depth_total']} in all)")
    if stats["queues"]:
        print_queues(stats["queues"])
    else:
        print("no queue has unfinished work")
    print()
    capped = "+" if stats["dead_letters_capped"] else ""
    print(
        f"dead letters: {stats['dead_letters']}{capped}"
        + ("  (see `stent dlq list`)" if stats["dead_letters"] else "")
    )
    live = [w for w in stats["workers"] if not w["stale"]]
    print(
        f"workers: {len(live)} live"
        + (f", {len(stats['workers']) - len(live)} stale" if len(live) < len(stats["workers"]) else "")
    )
    return common.OK


# -- workers ------------------------------------------------------------------------------------------------


def run_workers(args: argparse.Namespace) -> int:
    return common.run_async("workers", lambda: _workers(args))


async def _workers(args: argparse.Namespace) -> int:
    async with common.opened(common.storage_url(args, "workers")) as executor:
        now = executor.clock.now()
        rows = [worker_row(w, now) for w in await executor.backend.list_workers()]
    if args.json:
        common.print_json({"workers": rows})
        return common.OK
    if not rows:
        print("no workers have reported (rows appear when `stent worker` or serve() runs)")
        return common.OK
    print_workers(rows)
    return common.OK


def print_workers(rows: list[dict[str, Any]], out: Any = None) -> None:
    common.table(
        ["WORKER", "HOST", "PID", "STATE", "RUNNING", "QUEUES", "TAGS", "STARTED", "LAST SEEN"],
        [
            [
                w["worker_id"],
                w["hostname"],
                w["pid"],
                w["state"] + (" (stale)" if w["stale"] else ""),
                f"{w['running']}/{w['max_concurrency']}",
                w["queues"] if w["queues"] is not None else "*",
                w["tags"] if w["tags"] is not None else "*",
                w["started_at"],
                common.span(w["last_seen_s"]) + " ago",
            ]
            for w in rows
        ],
        out,
    )
