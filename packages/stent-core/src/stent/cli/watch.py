"""``stent watch``: a live terminal view of throughput, queues, workers, and running and failing work.

Each refresh reads the same figures as ``stent stats`` (every queue with unfinished work, from one
``queue_overview`` read) plus the newest running and failed executions, and derives throughput from how the
completed and failed counts moved since the previous refresh.  On a terminal the screen is redrawn in place;
otherwise (a pipe, a log) frames follow one another, and ``--json`` prints one JSON object per line.  Ctrl-C
is the normal way out and exits 0; ``--iterations N`` stops after N frames.  A storage that stops answering
after the first frame is shown in the frame and retried at the next refresh.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from typing import TYPE_CHECKING, Any

from stent.backends import redact_url
from stent.cli import common
from stent.cli.executions import error_record, execution_summary
from stent.cli.fleet import collect_stats, print_queues, print_workers
from stent.model import ExecutionState

if TYPE_CHECKING:
    from stent.executor import Stent

CLEAR = "\x1b[H\x1b[2J"


def register(commands: Any) -> None:
    p = commands.add_parser("watch", help="live view of throughput, queues, workers, running and failing work")
    common.add_output_options(p)
    p.add_argument("--interval", type=common.duration, default=2.0, help="seconds between refreshes (default 2)")
    p.add_argument("--iterations", type=common.positive_int, help="stop after this many refreshes")
    p.add_argument("--rows", type=common.positive_int, default=8, help="running and failed executions shown (8)")
    p.set_defaults(handler=run_watch)


def run_watch(args: argparse.Namespace) -> int:
    def quit_quietly() -> int:
        print(file=sys.stdout, flush=True)
        return common.OK

    return common.run_async("watch", lambda: _watch(args), on_interrupt=quit_quietly)


async def _watch(args: argparse.Namespace) -> int:
    url = common.storage_url(args, "watch")
    redraw = sys.stdout.isatty() and not args.json
    async with common.opened(url) as executor:
        previous: dict[str, Any] | None = None
        frame_no = 0
        while True:
            frame_no += 1
            started = executor.clock.monotonic()
            try:
                frame = await snapshot(executor, args.rows)
            except Exception as exc:
                if previous is None:
                    raise  # the first look failed: report it as the command's error
                frame = {"at": executor.clock.now(), "error": common.describe(exc)}
            frame["throughput"] = throughput(previous, frame)
            if args.json:
                print(json.dumps(common.jsonable(frame), sort_keys=True), flush=True)
            else:
                text = render(frame, redact_url(url), args.interval)
                sys.stdout.write((CLEAR if redraw else ("\n" if frame_no > 1 else "")) + text)
                sys.stdout.flush()
            if "error" not in frame:
                previous = frame
            if args.iterations is not None and frame_no >= args.iterations:
                return common.OK
            elapsed = executor.clock.monotonic() - started
            await executor.clock.sleep(max(0.0, args.interval - elapsed))


async def snapshot(executor: Stent, rows: int) -> dict[str, Any]:
    """One frame's figures, read from storage."""
    stats = await collect_stats(executor)
    now = stats["at"]
    running = await executor.backend.list_executions(state=ExecutionState.RUNNING, limit=rows)
    failed = await executor.backend.list_executions(state=ExecutionState.FAILED, limit=rows)
    failing = []
    for e in failed.executions:
        row = execution_summary(e, now)
        error = error_record(executor, e.error)
        row["error"] = f"{error['type']}: {error['message']}" if error else None
        failing.append(row)
    stats["running"] = [execution_summary(e, now) for e in running.executions]
    stats["failing"] = failing
    stats["monotonic"] = executor.clock.monotonic()
    return stats


def throughput(previous: dict[str, Any] | None, frame: dict[str, Any]) -> dict[str, float | None]:
    """Completed and failed executions per minute since the previous frame (None on the first)."""
    if previous is None or "error" in frame:
        return {"completed_per_min": None, "failed_per_min": None}
    minutes = (frame["monotonic"] - previous["monotonic"]) / 60.0
    if minutes <= 0:
        return {"completed_per_min": None, "failed_per_min": None}

    def rate(state: str) -> float:
        # Cleanup deletes finished executions, so a count may drop: never show a negative rate.
        moved: int = frame["executions"][state] - previous["executions"][state]
        return float(max(0, moved) / minutes)

    return {"completed_per_min": rate("completed"), "failed_per_min": rate("failed")}


def render(frame: dict[str, Any], url: str, interval: float) -> str:
    out = io.StringIO()

    def say(text: str = "") -> None:
        print(text, file=out)

    say(f"stent watch  {url}  {common.when(frame['at'])} UTC  (every {interval:g}s; Ctrl-C quits)")
    say()
    if "error" in frame:
        say(f"storage not answering: {frame['error']} (retrying)")
        return out.getvalue()
    t = frame["throughput"]

    def per_min(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}/min"

    say(f"throughput   completed {per_min(t['completed_per_min'])}   failed {per_min(t['failed_per_min'])}")
    say("executions   " + "  ".join(f"{state} {n}" for state, n in frame["executions"].items()))
    capped = "+" if frame["dead_letters_capped"] else ""
    say(f"dead letters {frame['dead_letters']}{capped}")
    say()
    say(f"queues (ready or scheduled: {frame['queue_depth_total']})")
    if frame["queues"]:
        print_queues(frame["queues"], out)
    say()
    say(f"workers ({len(frame['workers'])})")
    if frame["workers"]:
        print_workers(frame["workers"], out)
    say()
    say(f"running ({frame['executions']['running']})")
    if frame["running"]:
        common.table(
            ["ID", "FUNCTION", "QUEUE", "FOR"],
            [
                [r["execution_id"], r["function"], r["queue"], common.span(r["duration_s"])]
                for r in frame["running"]
            ],
            out,
        )
    say()
    say(f"failing ({frame['executions']['failed']})")
    if frame["failing"]:
        common.table(
            ["ID", "FUNCTION", "FINISHED", "ERROR"],
            [
                [r["execution_id"], r["function"], r["finished_at"], (r["error"] or "-")[:70]]
                for r in frame["failing"]
            ],
            out,
        )
    return out.getvalue()
