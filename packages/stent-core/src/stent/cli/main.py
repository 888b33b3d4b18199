"""The ``stent`` command's entry point: global options and subcommand dispatch."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from stent import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stent", description="Durable functions for Python asyncio.")
    parser.add_argument("--version", action="version", version=f"stent {__version__}")
    parser.add_argument(
        "--storage",
        default=os.environ.get("STENT_STORAGE_URL"),
        help="storage URL, e.g. sqlite:///app.db (default: $STENT_STORAGE_URL)",
    )
    parser.add_argument("--log-level", default="WARNING", help="logging level (default WARNING)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    from stent.cli import demo, worker

    demo.add_arguments(commands.add_parser("demo", help="run the order-processing demo on SQLite"))
    worker.add_arguments(commands.add_parser("worker", help="run a worker for the durable functions in MODULE"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = getattr(logging, str(args.log_level).upper(), None)
    if not isinstance(level, int):
        parser.error(f"unknown --log-level {args.log_level!r}; use DEBUG, INFO, WARNING or ERROR")
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "demo":
        from stent.cli import demo

        return demo.run(args)
    if args.command == "worker":
        from stent.cli import worker

        if not args.storage:
            parser.error("stent worker needs --storage URL (or STENT_STORAGE_URL)")
        return worker.run(args, args.storage)
    parser.error(f"unknown command {args.command!r}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
