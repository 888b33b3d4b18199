"""The ``stent`` command's entry point: global options, subcommands, and commands that plugins add.

Global options come before the subcommand (``stent --storage URL list``); ``--storage`` and ``--json`` are also
accepted after it (``stent list --storage URL --json``).  Exit codes are listed in :mod:`stent.cli.common`.

A plugin adds a subcommand from its ``stent_register_commands`` hook with ``registry.add_command(name,
factory)``: ``factory(parser)`` adds its arguments to the subcommand's ``argparse`` parser and returns the
function that runs it, called with the parsed arguments and returning the exit code.  A plugin command that
fails to build says why when it is run (exit 1); it never breaks the built-in commands.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from stent.cli import common
from stent.cli.version import VersionAction

log = logging.getLogger("stent.cli")

BUILTIN = (
    "worker", "list", "show", "stats", "watch", "dlq", "cancel", "signal", "init", "cleanup", "workers",
    "plugins", "conformance", "demo",
)  # fmt: skip

EPILOG = """exit codes: 0 ok, 1 operation failed, 2 bad usage or input, 3 not found, 4 storage unreachable,
130 interrupted.  Docs: docs/guides/operations.md"""


def build_parser(*, with_plugins: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stent", description="Durable functions for Python asyncio: run and operate workers.", epilog=EPILOG
    )
    parser.add_argument("--version", action=VersionAction)
    parser.add_argument(
        "--storage",
        default=os.environ.get(common.STORAGE_ENV),
        help=f"storage URL, e.g. sqlite:///app.db or postgresql://host/db (default: ${common.STORAGE_ENV})",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables, for scripts")
    parser.add_argument("--log-level", default="WARNING", help="logging level (default WARNING)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    from stent.cli import admin, conformance, demo, executions, fleet, repair, watch, worker

    worker.register(commands)
    executions.register(commands)
    fleet.register(commands)
    watch.register(commands)
    repair.register(commands)
    admin.register(commands)
    conformance.register(commands)
    p = commands.add_parser("demo", help="run the order-processing demo on SQLite")
    demo.add_arguments(p)
    p.set_defaults(handler=demo.run)
    if with_plugins:
        _add_plugin_commands(commands)
    return parser


def _add_plugin_commands(commands: Any) -> None:
    try:
        from stent.plugins import get_plugin_host

        registrations = get_plugin_host().commands()
    except Exception as exc:
        log.warning("plugin commands are unavailable: %s", exc)
        return
    for name, registration in registrations.items():
        if name in BUILTIN:
            log.warning("%s tries to replace `stent %s`; ignored", registration.source.describe(), name)
            continue
        parser = commands.add_parser(name, help=f"(from {registration.source.distribution})")
        try:
            handler = registration.factory(parser)
            if not callable(handler):
                raise TypeError(f"its factory returned {type(handler).__name__}, not a function of the arguments")
        except Exception as exc:
            problem = f"the command {name!r} of {registration.source.describe()} failed to load: {exc}"
            log.debug(problem)
            parser.set_defaults(handler=_broken_handler(name, problem))
            continue
        parser.set_defaults(handler=_plugin_handler(name, handler))


def _broken_handler(name: str, problem: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        print(f"stent {name}: {problem}", file=sys.stderr)
        return common.FAILED

    return run


def _plugin_handler(
    name: str, handler: Callable[[argparse.Namespace], Any]
) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            code = handler(args)
        except KeyboardInterrupt:
            return common.INTERRUPTED
        except Exception as exc:
            print(f"stent {name}: {common.describe(exc)}", file=sys.stderr)
            return common.exit_code_of(exc)
        return code if isinstance(code, int) else common.OK

    return run


def _wants_plugins(argv: Sequence[str]) -> bool:
    """Load plugin commands only when the command line may name one (or asks for help)."""
    for arg in argv:
        if arg in ("-h", "--help"):
            return True
        if not arg.startswith("-"):
            return arg not in BUILTIN
    return True


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    # Built-in commands never depend on third-party plugins loading (a broken plugin cannot break `stent list`);
    # storage URLs still resolve through every plugin when a command opens storage.
    parser = build_parser(with_plugins=_wants_plugins(arguments))
    args = parser.parse_args(arguments)
    level = getattr(logging, str(args.log_level).upper(), None)
    if not isinstance(level, int):
        parser.error(f"unknown --log-level {args.log_level!r}; use DEBUG, INFO, WARNING or ERROR")
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return common.USAGE
    try:
        return int(handler(args))
    except KeyboardInterrupt:
        print(f"\nstent {args.command}: interrupted", file=sys.stderr)
        return common.INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
