"""``stent init``, ``stent cleanup`` and ``stent plugins``."""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import attrs

from stent.backends import redact_url
from stent.cli import common
from stent.model import ExecutionState

if TYPE_CHECKING:
    from datetime import datetime

    from stent.executor import Stent

#: Worker rows not refreshed for this long are removed by cleanup, as the workers' own cleanup does.
WORKER_ROW_RETENTION = timedelta(hours=1)
DEFAULT_RETENTION = "7d"


def register(commands: Any) -> None:
    p = commands.add_parser("init", help="create or migrate the storage schema (safe to run again)")
    common.add_output_options(p)
    p.set_defaults(handler=run_init)

    p = commands.add_parser("cleanup", help="delete finished executions and dead letters older than a cutoff")
    common.add_output_options(p)
    p.add_argument(
        "--older-than",
        type=common.duration,
        default=common.duration(DEFAULT_RETENTION),
        metavar="DURATION",
        help=f"finished longer ago than this: 90s, 12h, 7d, 2w... (default {DEFAULT_RETENTION})",
    )
    p.add_argument("--dry-run", action="store_true", help="count what would be deleted; delete nothing")
    p.add_argument("--batch-size", type=common.positive_int, default=500, help="rows per transaction (500)")
    p.set_defaults(handler=run_cleanup)

    p = commands.add_parser("plugins", help="installed and failed plugins, with versions and URL schemes")
    common.add_output_options(p)
    p.set_defaults(handler=run_plugins)


# -- init ---------------------------------------------------------------------------------------------------


def run_init(args: argparse.Namespace) -> int:
    return common.run_async("init", lambda: _init(args))


async def _init(args: argparse.Namespace) -> int:
    url = common.storage_url(args, "init")
    async with common.opened(url, must_exist=False) as executor:
        await executor.backend.init_db()
    if args.json:
        common.print_json({"storage": redact_url(url), "initialised": True})
    else:
        print(f"stent schema is ready in {redact_url(url)}")
    return common.OK


# -- cleanup ------------------------------------------------------------------------------------------------


@attrs.define
class Progress:
    """What a cleanup has done so far, kept outside its coroutine so that Ctrl-C can still report it."""

    executions: int = 0
    dead_letters: int = 0
    workers: int = 0
    started: bool = False


def run_cleanup(args: argparse.Namespace) -> int:
    progress = Progress()

    def interrupted() -> int:
        if args.dry_run or not progress.started:
            print("\nstent cleanup: interrupted; nothing was deleted", file=sys.stderr)
        else:
            print(
                f"\nstent cleanup: interrupted after deleting {progress.executions} executions and"
                f" {progress.dead_letters} dead letters; each batch is its own transaction, so nothing is left"
                " half-deleted: run it again to finish",
                file=sys.stderr,
            )
        return common.INTERRUPTED

    return common.run_async("cleanup", lambda: _cleanup(args, progress), on_interrupt=interrupted)


async def _cleanup(args: argparse.Namespace, progress: Progress) -> int:
    async with common.opened(common.storage_url(args, "cleanup")) as executor:
        now = executor.clock.now()
        cutoff = now - timedelta(seconds=args.older_than)
        workers_cutoff = now - WORKER_ROW_RETENTION
        if args.dry_run:
            counts = await count_removable(executor, cutoff, workers_cutoff)
        else:
            if not args.json:
                print(
                    f"deleting finished executions and dead letters older than {common.when(cutoff)} UTC",
                    flush=True,
                )
            await delete_removable(executor, cutoff, workers_cutoff, args.batch_size, progress, quiet=args.json)
            counts = {
                "executions": progress.executions,
                "dead_letters": progress.dead_letters,
                "workers": progress.workers,
            }
    result = {"dry_run": args.dry_run, "cutoff": cutoff, **counts}
    if args.json:
        common.print_json(result)
        return common.OK
    verb = "would delete" if args.dry_run else "deleted"
    print(
        f"{verb} {counts['executions']} finished executions and {counts['dead_letters']} dead letters older than"
        f" {common.when(cutoff)} UTC, and {counts['workers']} stale worker rows"
    )
    return common.OK


async def count_removable(executor: Stent, cutoff: datetime, workers_cutoff: datetime) -> dict[str, int]:
    """Count exactly what :func:`delete_removable` would delete now, by reading it."""
    storage = executor.backend
    executions = 0
    for state in ExecutionState:
        if not state.terminal:
            continue
        offset = 0
        while True:
            page = await storage.list_executions(state=state, limit=500, offset=offset)
            executions += sum(1 for e in page.executions if e.finished_at is not None and e.finished_at < cutoff)
            offset += len(page.executions)
            if not page.executions or offset >= page.total:
                break
    dead = 0
    offset = 0
    while True:
        letters = await storage.list_dead_letters(limit=500, offset=offset)
        dead += sum(1 for d in letters if d.created_at < cutoff)
        offset += len(letters)
        if len(letters) < 500:
            break
    workers = sum(1 for w in await storage.list_workers() if w.last_seen < workers_cutoff)
    return {"executions": executions, "dead_letters": dead, "workers": workers}


async def delete_removable(
    executor: Stent,
    cutoff: datetime,
    workers_cutoff: datetime,
    batch: int,
    progress: Progress,
    *,
    quiet: bool = False,
) -> None:
    """Delete in bounded batches, as the workers' own cleanup does, showing progress on a terminal."""
    storage = executor.backend
    show = not quiet and sys.stderr.isatty()
    progress.started = True
    while True:
        count = await storage.delete_executions_before(cutoff, batch)
        progress.executions += count
        if show:
            print(f"\r  {progress.executions} executions deleted", end="", file=sys.stderr, flush=True)
        if count < batch:
            break
    while True:
        count = await storage.delete_dead_letters_before(cutoff, batch)
        progress.dead_letters += count
        if count < batch:
            break
    progress.workers = await storage.delete_workers_before(workers_cutoff)
    if show:
        print(file=sys.stderr)


# -- plugins ------------------------------------------------------------------------------------------------


def run_plugins(args: argparse.Namespace) -> int:
    from stent.plugins import list_plugins

    try:
        report = list_plugins()
    except Exception as exc:
        print(f"stent plugins: {common.describe(exc)}", file=sys.stderr)
        return common.FAILED
    data: dict[str, list[dict[str, Any]]] = {
        "plugins": [
            {
                "name": p.name,
                "distribution": p.distribution,
                "version": p.version,
                "builtin": p.builtin,
                "storage": list(p.storage),
                "notifiers": list(p.notifiers),
                "commands": list(p.commands),
            }
            for p in report.plugins
        ],
        "failures": [
            {"name": f.name, "distribution": f.distribution, "version": f.version, "error": f.error}
            for f in report.failures
        ],
        "conflicts": [
            {"kind": c.kind, "scheme": c.scheme, "plugins": [s.describe() for s in c.sources]}
            for c in report.conflicts
        ],
        "disabled": [
            {"name": s.name, "distribution": s.distribution, "version": s.version} for s in report.disabled
        ],
    }
    healthy = not report.failures and not report.conflicts
    if args.json:
        common.print_json(data)
        return common.OK if healthy else common.FAILED

    def schemes(items: list[str], suffix: str = "://") -> str:
        return ", ".join(f"{s}{suffix}" for s in items) or "-"

    common.table(
        ["PLUGIN", "DISTRIBUTION", "VERSION", "STORAGE", "NOTIFIERS", "COMMANDS"],
        [[p["name"] + (" (built-in)" if p["builtin"] else ""), p["distribution"], p["version"],
          schemes(p["storage"]), schemes(p["notifiers"]), schemes(p["commands"], "")] for p in data["plugins"]],
    )  # fmt: skip
    for failure in data["failures"]:
        print(
            f"\nFAILED {failure['name']} from {failure['distribution']} {failure['version']}: {failure['error']}"
        )
    for conflict in data["conflicts"]:
        print(
            f"\nCONFLICT the {conflict['kind']} scheme {conflict['scheme']}:// is claimed by "
            + " and ".join(conflict["plugins"])
        )
    for disabled in data["disabled"]:
        print(
            f"\ndisabled {disabled['name']} from {disabled['distribution']} {disabled['version']} (STENT_DISABLE_PLUGINS)"
        )
    return common.OK if healthy else common.FAILED
