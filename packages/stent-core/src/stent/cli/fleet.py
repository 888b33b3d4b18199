"""``stent stats`` and ``stent workers``: the cluster at a glance, from storage (shared with ``stent watch``)."""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import TYPE_CHECKING, Any

from stent.cli import common
from stent.model import ExecutionState

if TYPE_CHECKING:
    from stent.executor import Stent
    from stent.model import WorkerInfo

#: A worker row not refreshed for this long is shown as stale (rows refresh every 30 s at most).
STALE_AFTER_S = 90.0
#: How far ``stats`` scans lists (dead letters, active executions) to count them and find queues.
SCAN_LIMIT = 10_000
_PAGE = 500
_ACTIVE = (ExecutionState.PENDING, ExecutionState.RUNNING, ExecutionState.CANCELLING)


def register(commands: Any) -> None:
    p = commands.add_parser("stats", help="counts by state, queue depths, dead letters and workers")
    common.add_output_options(p)
    p.add_argument(
        "--queue", action="append", default=[], help="also report this queue (repeatable; busy queues are found)"
    )
    p.set_defaults(handler=run_stats)

    p = commands.add_parser("workers", help="the cluster's workers, from their heartbeat rows")
    common.add_output_options(p)
    p.set_defaults(handler=run_workers)


# -- collecting ---------------------------------------------------------------------------------------------


async def count_dead_letters(executor: Stent, limit: int = SCAN_LIMIT) -> tuple[int, set[str]]:
    """How many dead letters there are (up to ``limit``), and their queues."""
    count, offset = 0, 0
    queues: set[str] = set()
    while offset < limit:
        page = await executor.backend.list_dead_letters(limit=_PAGE, offset=offset)
        count += len(page)
        queues.update(d.queue for d in page)
        if len(page) < _PAGE:
            break
        offset += _PAGE
    return count, queues


async def collect_stats(executor: Stent, extra_queues: list[str] | None = None) -> dict[str, Any]:
    """Counts by state, queues with depth and oldest pending age, dead letters and worker rows."""
    from stent.observability.prometheus import oldest_pending_age

    storage = executor.backend
    now = executor.clock.now()
    counts: dict[str, int] = {}
    queues: set[str] = set(extra_queues or ())
    for state in ExecutionState:
        page = await storage.list_executions(state=state, limit=1)
        counts[state.value] = page.total
    for state in _ACTIVE:
        if counts[state.value]:
            page = await storage.list_executions(state=state, limit=min(counts[state.value], 1000))
            queues.update(e.queue for e in page.executions)
    dead, dead_queues = await count_dead_letters(executor)
    queues.update(dead_queues)
    workers = await storage.list_workers()
    for worker in workers:
        queues.update(worker.queues or ())
    queue_rows: list[dict[str, Any]] = []
    for queue in sorted(queues):
        queue_rows.append(
            {
                "queue": queue,
                "depth": await storage.queue_depth(queue, now),
                "oldest_pending_s": await oldest_pending_age(executor, queue),
            }
        )
    total_depth = await storage.queue_depth(None, now)
    unlisted = total_depth - sum(int(q["depth"]) for q in queue_rows)
    if unlisted > 0:
        # Tasks can run on queues no execution, worker row or dead letter names (a replay elsewhere, a step's
        # own queue); the port cannot list queues, so their depth is shown as one row.
        queue_rows.append({"queue": "(other queues)", "depth": unlisted, "oldest_pending_s": 0.0})
    return {
        "at": now,
        "executions": counts,
        "total": sum(counts.values()),
        "queue_depth_total": total_depth,
        "queues": queue_rows,
        "dead_letters": dead,
        "dead_letters_capped": dead >= SCAN_LIMIT,
        "workers": [worker_row(w, now) for w in workers],
    }


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
        common.table(
            ["QUEUE", "DEPTH", "OLDEST PENDING"],
            [[q["queue"], q["depth"], common.span(q["oldest_pending_s"]) if q["oldest_pending_s"] else "-"]
             for q in stats["queues"]],
        )  # fmt: skip
    else:
        print("no busy queues")
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
