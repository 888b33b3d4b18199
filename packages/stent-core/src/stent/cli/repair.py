"""Repairing work: ``stent dlq list|show|replay|discard``, ``stent cancel ID`` and ``stent signal ID NAME``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from stent.cli import common
from stent.cli.common import CommandError
from stent.cli.executions import error_record
from stent.errors import ExecutionFinished, ExecutionNotFound, TaskNotFound

if TYPE_CHECKING:
    from stent.executor import Stent
    from stent.model import DeadLetter


def register(commands: Any) -> None:
    dlq = commands.add_parser("dlq", help="dead letters: tasks that failed their last attempt")
    actions = dlq.add_subparsers(dest="dlq_action", metavar="ACTION", required=True)

    p = actions.add_parser("list", help="list dead letters, newest first")
    common.add_output_options(p)
    p.add_argument("--queue", help="only dead letters of this queue")
    p.add_argument("--function", help="only dead letters of this durable function")
    p.add_argument("--limit", type=common.positive_int, default=50, help="rows (default 50)")
    p.add_argument("--offset", type=common.non_negative_int, default=0, help="rows to skip (default 0)")
    p.set_defaults(handler=run_dlq_list)

    p = actions.add_parser("show", help="one dead letter with its error and remote traceback")
    common.add_output_options(p)
    p.add_argument("task_id", metavar="TASK_ID")
    p.set_defaults(handler=run_dlq_show)

    p = actions.add_parser("replay", help="run dead-lettered tasks again; the parents that waited resume")
    common.add_output_options(p)
    p.add_argument("task_ids", metavar="TASK_ID", nargs="*")
    p.add_argument("--all", action="store_true", help="replay every dead letter (with --function: of it only)")
    p.add_argument("--function", help="with --all: only dead letters of this durable function")
    p.add_argument("--queue", help="run the replayed tasks on this queue instead of their own")
    common.add_notifier_option(p)
    p.set_defaults(handler=run_dlq_replay)

    p = actions.add_parser("discard", help="forget dead letters (their executions stay failed)")
    common.add_output_options(p)
    p.add_argument("task_ids", metavar="TASK_ID", nargs="+")
    p.set_defaults(handler=run_dlq_discard)

    p = commands.add_parser("cancel", help="cancel an execution (running code gets CancelledError)")
    common.add_output_options(p)
    p.add_argument("execution_id", metavar="ID")
    common.add_notifier_option(p)
    p.set_defaults(handler=run_cancel)

    p = commands.add_parser("signal", help="send a signal to an execution; PAYLOAD is JSON ('-' reads stdin)")
    common.add_output_options(p)
    p.add_argument("execution_id", metavar="ID")
    p.add_argument("name", metavar="NAME")
    p.add_argument("payload", metavar="PAYLOAD", nargs="?", help="a JSON value, e.g. '{\"approved\": true}'")
    common.add_notifier_option(p)
    p.set_defaults(handler=run_signal)


def dead_letter_row(executor: Stent, d: DeadLetter, *, with_error: bool = False) -> dict[str, Any]:
    row: dict[str, Any] = {
        "task_id": d.task_id,
        "execution_id": d.execution_id,
        "function": d.function,
        "queue": d.queue,
        "reason": d.reason,
        "attempts": d.attempts,
        "created_at": d.created_at,
    }
    if with_error:
        row["error"] = error_record(executor, d.error)
    return row


async def all_dead_letters(executor: Stent, limit: int = 1_000_000) -> list[DeadLetter]:
    found: list[DeadLetter] = []
    while len(found) < limit:
        page = await executor.list_dead_letters(limit=500, offset=len(found))
        found.extend(page)
        if len(page) < 500:
            break
    return found


# -- dlq list / show ----------------------------------------------------------------------------------------


def run_dlq_list(args: argparse.Namespace) -> int:
    return common.run_async("dlq list", lambda: _dlq_list(args))


async def _dlq_list(args: argparse.Namespace) -> int:
    async with common.opened(common.storage_url(args, "dlq")) as executor:
        if args.queue or args.function:
            # The port lists without filters: filter here, then page the filtered list.
            matching = [
                d
                for d in await all_dead_letters(executor)
                if (not args.queue or d.queue == args.queue) and (not args.function or d.function == args.function)
            ]
            total: int | None = len(matching)
            page = matching[args.offset : args.offset + args.limit]
        else:
            page = await executor.list_dead_letters(limit=args.limit, offset=args.offset)
            total = None
        rows = [dead_letter_row(executor, d) for d in page]
    if args.json:
        common.print_json({"dead_letters": rows, "limit": args.limit, "offset": args.offset, "total": total})
        return common.OK
    if not rows:
        print("no dead letters")
        return common.OK
    common.table(
        ["TASK", "EXECUTION", "FUNCTION", "QUEUE", "ATTEMPTS", "WHEN", "REASON"],
        [[r["task_id"], r["execution_id"], r["function"], r["queue"], r["attempts"], r["created_at"],
          _short(r["reason"])] for r in rows],
    )  # fmt: skip
    if len(rows) == args.limit:
        print(f"more may follow: --offset {args.offset + len(rows)}")
    return common.OK


def _short(text: str, limit: int = 80) -> str:
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def run_dlq_show(args: argparse.Namespace) -> int:
    return common.run_async("dlq show", lambda: _dlq_show(args))


async def _dlq_show(args: argparse.Namespace) -> int:
    async with common.opened(common.storage_url(args, "dlq")) as executor:
        dead = await _get(executor, args.task_id)
        row = dead_letter_row(executor, dead, with_error=True)
    if args.json:
        common.print_json(row)
        return common.OK
    for key in ("task_id", "execution_id", "function", "queue", "attempts", "created_at", "reason"):
        print(f"{key.replace('_', ' '):<13}{common.cell(row[key])}")
    error = row["error"]
    if error:
        print(f"{'error':<13}{error['type']}: {error['message']}")
        if error["traceback"]:
            print("remote traceback:")
            for line in error["traceback"].rstrip().splitlines():
                print(f"  {line}")
    print(f"\nreplay it with: stent dlq replay {dead.task_id}")
    return common.OK


async def _get(executor: Stent, task_id: str) -> DeadLetter:
    try:
        return await executor.get_dead_letter(task_id)
    except TaskNotFound:
        raise CommandError(
            f"no dead letter with task id {task_id!r}; list them with `stent dlq list`", common.NOT_FOUND
        ) from None


# -- dlq replay / discard -----------------------------------------------------------------------------------


def run_dlq_replay(args: argparse.Namespace) -> int:
    if args.all == bool(args.task_ids):
        print("stent dlq replay: give TASK_ID... or --all (not both)", file=sys.stderr)
        return common.USAGE
    if args.function and not args.all:
        print("stent dlq replay: --function goes with --all", file=sys.stderr)
        return common.USAGE
    return common.run_async("dlq replay", lambda: _dlq_replay(args))


async def _dlq_replay(args: argparse.Namespace) -> int:
    async with common.opened(common.storage_url(args, "dlq"), notifier=common.notifier_url(args)) as executor:
        if args.all:
            ids = [
                d.task_id
                for d in await all_dead_letters(executor)
                if not args.function or d.function == args.function
            ]
        else:
            ids = list(dict.fromkeys(args.task_ids))
            for task_id in ids:  # all or nothing for typos: check every id before replaying any
                await _get(executor, task_id)
        replayed = []
        for n, task_id in enumerate(ids, 1):
            record = await executor.replay_dead_letter(task_id, queue=args.queue)
            replayed.append({"task_id": task_id, "execution_id": record.execution_id, "queue": record.queue})
            if not args.json:
                print(
                    f"replayed {task_id} (execution {record.execution_id}) on queue {record.queue} [{n}/{len(ids)}]"
                )
    if args.json:
        common.print_json({"replayed": replayed})
    elif not replayed:
        print("no dead letters to replay")
    return common.OK


def run_dlq_discard(args: argparse.Namespace) -> int:
    return common.run_async("dlq discard", lambda: _dlq_discard(args))


async def _dlq_discard(args: argparse.Namespace) -> int:
    async with common.opened(common.storage_url(args, "dlq")) as executor:
        ids = list(dict.fromkeys(args.task_ids))
        for task_id in ids:
            await _get(executor, task_id)
        for task_id in ids:
            await executor.discard_dead_letter(task_id)
            if not args.json:
                print(f"discarded {task_id}")
    if args.json:
        common.print_json({"discarded": ids})
    return common.OK


# -- cancel / signal ----------------------------------------------------------------------------------------


def run_cancel(args: argparse.Namespace) -> int:
    return common.run_async("cancel", lambda: _cancel(args))


async def _cancel(args: argparse.Namespace) -> int:
    async with common.opened(common.storage_url(args, "cancel"), notifier=common.notifier_url(args)) as executor:
        try:
            changed = await executor.cancel(args.execution_id)
            state = (await executor.state_of(args.execution_id)).state.value
        except ExecutionNotFound:
            raise CommandError(
                f"no execution with id {args.execution_id!r}; list executions with `stent list`", common.NOT_FOUND
            ) from None
    # Already cancelled (or being cancelled) is what was asked for; any other end is a failure to cancel.
    ok = changed or state in ("cancelling", "cancelled")
    if args.json:
        common.print_json({"execution_id": args.execution_id, "changed": changed, "state": state})
    elif changed:
        print(
            f"execution {args.execution_id} is {state}"
            + (" (running code stops at its next heartbeat)" if state == "cancelling" else "")
        )
    elif ok:
        print(f"execution {args.execution_id} was already {state}")
    else:
        print(
            f"stent cancel: execution {args.execution_id} has already finished ({state}); nothing to cancel",
            file=sys.stderr,
        )
    return common.OK if ok else common.FAILED


def parse_payload(text: str | None) -> Any:
    """The signal payload: JSON text, ``-`` for standard input, or nothing (``null``)."""
    if text is None:
        return None
    if text == "-":
        text = sys.stdin.read()
    try:
        return json.loads(text)
    except ValueError as exc:
        raise CommandError(
            f"the payload is not valid JSON ({exc}); quote it for the shell, e.g. '{{\"approved\": true}}' or '\"yes\"'",
            common.USAGE,
        ) from None


def run_signal(args: argparse.Namespace) -> int:
    return common.run_async("signal", lambda: _signal(args))


async def _signal(args: argparse.Namespace) -> int:
    payload = parse_payload(args.payload)
    if not args.name.strip():
        raise CommandError("the signal name is empty", common.USAGE)
    async with common.opened(common.storage_url(args, "signal"), notifier=common.notifier_url(args)) as executor:
        try:
            await executor.send_signal(args.execution_id, args.name, payload)
        except ExecutionNotFound:
            raise CommandError(
                f"no execution with id {args.execution_id!r}; list executions with `stent list`", common.NOT_FOUND
            ) from None
        except ExecutionFinished as exc:
            raise CommandError(str(exc), common.FAILED) from None
    if args.json:
        common.print_json({"execution_id": args.execution_id, "name": args.name, "sent": True})
    else:
        print(f"sent signal {args.name!r} to execution {args.execution_id}")
    return common.OK
