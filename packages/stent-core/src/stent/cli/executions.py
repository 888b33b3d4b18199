"""``stent list`` and ``stent show ID``: executions, and one execution's steps, result or error, and signals."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections import defaultdict
from datetime import datetime
from typing import TYPE_CHECKING, Any

from stent.cli import common
from stent.cli.common import CommandError
from stent.model import ExecutionState, TaskKind, TaskRecord

if TYPE_CHECKING:
    from stent.executor import Stent
    from stent.model import ExecutionRecord, SignalRecord

STATES = [s.value for s in ExecutionState]


def register(commands: Any) -> None:
    p = commands.add_parser("list", help="list executions, newest first (filter by state, queue, function)")
    common.add_output_options(p)
    p.add_argument("--state", choices=STATES, help="only executions in this state")
    p.add_argument("--queue", help="only executions whose root task ran on this queue")
    p.add_argument("--function", help="only executions of this durable function (its registered name)")
    p.add_argument("--limit", type=common.positive_int, default=50, help="rows per page (default 50)")
    p.add_argument("--offset", type=common.non_negative_int, default=0, help="rows to skip (default 0)")
    p.set_defaults(handler=run_list)

    p = commands.add_parser("show", help="one execution: steps with timings, result or error, counters, signals")
    common.add_output_options(p)
    p.add_argument("execution_id", metavar="ID")
    p.add_argument("--steps", type=common.positive_int, default=500, help="show at most this many steps (500)")
    p.set_defaults(handler=run_show)


# -- list ---------------------------------------------------------------------------------------------------


def run_list(args: argparse.Namespace) -> int:
    return common.run_async("list", lambda: _list(args))


async def _list(args: argparse.Namespace) -> int:
    async with common.opened(common.storage_url(args, "list")) as executor:
        page = await executor.list_executions(
            state=args.state, queue=args.queue, function=args.function, limit=args.limit, offset=args.offset
        )
        now = executor.clock.now()
    rows = [execution_summary(e, now) for e in page.executions]
    if args.json:
        common.print_json({"executions": rows, "total": page.total, "limit": args.limit, "offset": args.offset})
        return common.OK
    if not rows:
        print("no executions" + (" match" if page.total or _filtered(args) else "") + f" (total {page.total})")
        return common.OK
    common.table(
        ["ID", "FUNCTION", "STATE", "QUEUE", "CREATED", "DURATION"],
        [[r["execution_id"], r["function"], r["state"], r["queue"], r["created_at"], common.span(r["duration_s"])]
         for r in rows],
    )  # fmt: skip
    last = args.offset + len(rows)
    footer = f"{args.offset + 1}-{last} of {page.total}"
    if last < page.total:
        footer += f"; next page: --offset {last}"
    print(footer)
    return common.OK


def _filtered(args: argparse.Namespace) -> bool:
    return bool(args.state or args.queue or args.function)


def execution_summary(e: ExecutionRecord, now: Any) -> dict[str, Any]:
    end = e.finished_at if e.state.terminal else now
    return {
        "execution_id": e.execution_id,
        "function": e.function,
        "state": e.state.value,
        "queue": e.queue,
        "created_at": e.created_at,
        "finished_at": e.finished_at,
        "duration_s": common.between(e.created_at, end),
    }


# -- show ---------------------------------------------------------------------------------------------------


def run_show(args: argparse.Namespace) -> int:
    return common.run_async("show", lambda: _show(args))


async def _show(args: argparse.Namespace) -> int:
    async with common.opened(common.storage_url(args, "show")) as executor:
        execution = await executor.backend.get_execution(args.execution_id)
        if execution is None:
            raise CommandError(
                f"no execution with id {args.execution_id!r}; list executions with `stent list`", common.NOT_FOUND
            )
        tasks = await executor.backend.list_execution_tasks(execution.execution_id)
        signals = await executor.backend.list_signals(execution.execution_id)
        now = executor.clock.now()
        report = describe_execution(executor, execution, tasks, signals, now)
    shown = report["steps"][: args.steps]
    if args.json:
        common.print_json({**report, "steps": shown, "steps_total": len(report["steps"])})
        return common.OK
    _print_report(report, shown)
    return common.OK


def decode(executor: Stent, text: str | None) -> Any:
    """A stored payload as a plain value; the text itself when this process cannot read it."""
    if text is None:
        return None
    try:
        return executor.codec.serializer.loads(text)
    except Exception:
        return text


def error_record(executor: Stent, text: str | None) -> dict[str, Any] | None:
    """A stored error as ``{"type", "message", "traceback"}`` without importing the user's exception class."""
    if not text:
        return None
    record = decode(executor, text)
    if isinstance(record, dict) and "qualname" in record:
        module = record.get("module") or ""
        qualname = str(record.get("qualname"))
        name = qualname if module in ("builtins", "") else f"{module}.{qualname}"
        return {
            "type": name,
            "message": str(record.get("message", "")),
            "traceback": str(record.get("traceback", "")),
        }
    return {"type": "<unreadable error>", "message": str(text)[:2000], "traceback": ""}


def describe_execution(
    executor: Stent, execution: ExecutionRecord, tasks: list[TaskRecord], signals: list[SignalRecord], now: Any
) -> dict[str, Any]:
    root = next((t for t in tasks if t.task_id == execution.root_task_id), None)
    end = execution.finished_at if execution.state.terminal else now
    try:
        counters = json.loads(execution.counters or "{}")
        custom = {k: decode(executor, v) for k, v in json.loads(execution.custom_state or "{}").items()}
    except (ValueError, AttributeError):
        counters, custom = {}, {}
    return {
        "execution": {
            "execution_id": execution.execution_id,
            "function": execution.function,
            "state": execution.state.value,
            "queue": execution.queue,
            "created_at": execution.created_at,
            "started_at": root.started_at if root else None,
            "finished_at": execution.finished_at,
            "deadline": execution.deadline,
            "duration_s": common.between(execution.created_at, end),
            "arguments": decode(executor, root.args) if root else None,
            "result": decode(executor, execution.result) if execution.state is ExecutionState.COMPLETED else None,
            "error": error_record(executor, execution.error),
            "counters": counters,
            "state_values": custom,
        },
        "steps": [_step(executor, t, depth, now) for t, depth in ordered_steps(tasks, execution.root_task_id)],
        "signals": [
            {
                "signal_id": s.signal_id,
                "name": s.name,
                "payload": decode(executor, s.payload),
                "created_at": s.created_at,
                "consumed_by": s.consumed_by,
            }
            for s in signals
        ],
    }


def ordered_steps(tasks: list[TaskRecord], root_id: str) -> list[tuple[TaskRecord, int]]:
    """Tasks depth first from the root, each parent's steps in step order (a tree as indented rows)."""
    children: dict[str | None, list[TaskRecord]] = defaultdict(list)
    for task in tasks:
        children[task.parent_task_id].append(task)
    for group in children.values():
        group.sort(key=lambda t: (t.parent_attempt or 0, t.step or 0, t.created_at))
    out: list[tuple[TaskRecord, int]] = []
    seen: set[str] = set()

    def walk(task: TaskRecord, depth: int) -> None:
        seen.add(task.task_id)
        out.append((task, depth))
        for child in children.get(task.task_id, []):
            walk(child, depth + 1)

    for top in children.get(None, []):
        walk(top, 0)
    for task in tasks:  # orphans (a parent already deleted): keep them visible
        if task.task_id not in seen:
            walk(task, 0)
    return out


def _step(executor: Stent, t: TaskRecord, depth: int, now: Any) -> dict[str, Any]:
    started, end = t.started_at, t.finished_at if t.state.terminal else (now if t.started_at else None)
    if t.kind is not TaskKind.CALL:
        # A sleep or signal wait never runs: its time is the wait, from creation to its end (or now).
        started, end = t.created_at, t.finished_at if t.state.terminal else now
        wake = decode(executor, t.result) if t.kind is TaskKind.SLEEP else None
        if isinstance(wake, str):
            with contextlib.suppress(ValueError):
                wake = datetime.fromisoformat(wake)
        if isinstance(wake, datetime):
            end = wake
    return {
        "task_id": t.task_id,
        "depth": depth,
        "step": t.step,
        "function": t.function,
        "kind": t.kind.value,
        "state": t.state.value,
        "queue": t.queue,
        "attempt": t.attempt,
        "max_attempts": t.max_attempts,
        "created_at": t.created_at,
        "started_at": started,
        "finished_at": t.finished_at,
        "duration_s": common.between(started, end),
        "worker": t.lease_owner if t.state.leased else None,
        "wake_at": t.wake_at,
        "error": error_record(executor, t.error) if t.state.value in ("failed", "cancelled") else None,
    }


def _print_report(report: dict[str, Any], steps: list[dict[str, Any]], out: Any = None) -> None:
    out = out or sys.stdout
    e = report["execution"]

    def say(text: str = "") -> None:
        print(text, file=out)

    say(f"execution  {e['execution_id']}")
    say(f"function   {e['function']}")
    say(f"state      {e['state']}")
    say(f"queue      {e['queue']}")
    say(f"created    {common.when(e['created_at'])}")
    say(f"started    {common.when(e['started_at'])}")
    say(f"finished   {common.when(e['finished_at'])}")
    say(f"duration   {common.span(e['duration_s'])}")
    if e["deadline"] is not None:
        say(f"deadline   {common.when(e['deadline'])}")
    say(f"arguments  {_compact(e['arguments'])}")
    if e["result"] is not None or e["state"] == "completed":
        say(f"result     {_compact(e['result'])}")
    if e["error"]:
        _print_error(e["error"], say)
    if e["counters"]:
        say("counters   " + ", ".join(f"{k}={v}" for k, v in sorted(e["counters"].items())))
    if e["state_values"]:
        say("state      " + ", ".join(f"{k}={_compact(v)}" for k, v in sorted(e["state_values"].items())))
    say()
    total = len(report["steps"])
    say(
        f"steps ({total})" if len(steps) == total else f"steps (first {len(steps)} of {total}; --steps N for more)"
    )
    rows = []
    for s in steps:
        label = "root" if s["depth"] == 0 and s["step"] is None else f"#{s['step']}"
        rows.append(
            [
                "  " * s["depth"] + label,
                s["function"],
                s["state"],
                f"{s['attempt']}/{s['max_attempts']}",
                common.when(s["started_at"]),
                common.span(s["duration_s"]),
                s["worker"] or (f"wakes {common.when(s['wake_at'])}" if s["wake_at"] else "-"),
            ]
        )
    common.table(["STEP", "FUNCTION", "STATE", "ATTEMPT", "STARTED", "DURATION", "WORKER"], rows, out)
    failed = [s for s in steps if s["error"] and s["depth"] > 0]
    for s in failed[:5]:
        say()
        say(f"step #{s['step']} {s['function']} ({s['task_id']}) {s['state']}:")
        _print_error(s["error"], say)
    if report["signals"]:
        say()
        say(f"signals ({len(report['signals'])})")
        common.table(
            ["NAME", "SENT", "CONSUMED BY", "PAYLOAD"],
            [[s["name"], s["created_at"], s["consumed_by"] or "(waiting)", _compact(s["payload"])]
             for s in report["signals"]],
            out,
        )  # fmt: skip


def _print_error(error: dict[str, Any], say: Any) -> None:
    say(f"error      {error['type']}: {error['message']}")
    if error["traceback"]:
        say("remote traceback:")
        for line in error["traceback"].rstrip().splitlines():
            say(f"  {line}")


def _compact(value: Any, limit: int = 200) -> str:
    try:
        text = json.dumps(common.jsonable(value), sort_keys=True)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
