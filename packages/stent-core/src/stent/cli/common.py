"""What every ``stent`` subcommand shares: exit codes, opening storage, turning errors into messages, output.

Exit codes (documented in docs/guides/operations.md; scripts rely on them):

==  ==========================================================================================================
0   the command did what was asked
1   the operation failed (a conformance test failed, the execution had already finished, a plugin failed...)
2   bad usage or input: unknown option, malformed URL, duration, JSON payload or module path
3   not found: no such execution, dead letter, or SQLite database file
4   storage unreachable: the database did not answer or refused the connection
130 interrupted (Ctrl-C) in a command that had not finished; ``watch`` exits 0 on Ctrl-C, its normal way out
==  ==========================================================================================================
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

from stent.backends import parse_scheme, redact_url
from stent.errors import (
    BackendNotInstalled,
    ConfigurationError,
    ExecutionNotFound,
    StentError,
    StorageUnavailable,
    TaskNotFound,
)

if TYPE_CHECKING:
    from stent.executor import Stent

OK = 0
FAILED = 1
USAGE = 2
NOT_FOUND = 3
UNAVAILABLE = 4
INTERRUPTED = 130

STORAGE_ENV = "STENT_STORAGE_URL"
NOTIFIER_ENV = "STENT_NOTIFIER_URL"

log = logging.getLogger("stent.cli")


class CommandError(Exception):
    """A failure a command reports as one line on stderr and an exit code, without a traceback."""

    def __init__(self, message: str, code: int = FAILED) -> None:
        super().__init__(message)
        self.code = code


def exit_code_of(exc: BaseException) -> int:
    """The exit code an error means (see the module docstring)."""
    if isinstance(exc, CommandError):
        return exc.code
    if isinstance(exc, ExecutionNotFound | TaskNotFound):
        return NOT_FOUND
    if isinstance(exc, StorageUnavailable):
        return UNAVAILABLE
    if isinstance(exc, ConfigurationError | BackendNotInstalled):
        return USAGE
    if isinstance(exc, ConnectionError | TimeoutError) and not isinstance(exc, StentError):
        return UNAVAILABLE
    if isinstance(exc, OSError) and not isinstance(exc, StentError):
        # Refused, unreachable, name not resolved: a driver that let a socket error through.
        return UNAVAILABLE
    return FAILED


def describe(exc: BaseException) -> str:
    """One line saying what went wrong, for stderr."""
    if isinstance(exc, CommandError | StentError):
        return str(exc)
    if isinstance(exc, OSError | TimeoutError):
        return f"storage unreachable: {type(exc).__name__}: {exc}"
    return f"{type(exc).__name__}: {exc}"


def run_async(
    name: str,
    make: Callable[[], Coroutine[Any, Any, int]],
    *,
    on_interrupt: Callable[[], int] | None = None,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
) -> int:
    """Run one command's coroutine and turn what it raised into a message and an exit code.

    ``on_interrupt`` decides what Ctrl-C means for this command (print progress, exit 0 for ``watch``); by
    default it is exit code 130 with a note.  ``loop_factory`` picks the event loop (:mod:`stent.loops`).
    """
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            return runner.run(make())
    except BrokenPipeError:
        reader_gone()
        return OK
    except KeyboardInterrupt:
        if on_interrupt is not None:
            return on_interrupt()
        print(f"\nstent {name}: interrupted", file=sys.stderr)
        return INTERRUPTED
    except Exception as exc:
        code = exit_code_of(exc)
        print(f"stent {name}: {describe(exc)}", file=sys.stderr)
        if not isinstance(exc, CommandError | StentError) and code == FAILED:
            log.debug("traceback of the unexpected error", exc_info=exc)
            print("  (an unexpected error; run with --log-level DEBUG to see its traceback)", file=sys.stderr)
        return code


def reader_gone() -> None:
    """The reader of our output went away (``stent watch --json | head``): stop quietly.

    Standard output is pointed at /dev/null so that the interpreter's final flush does not fail again.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


# -- storage ------------------------------------------------------------------------------------------------


def storage_url(args: argparse.Namespace, command: str) -> str:
    """The storage URL from ``--storage`` or ``STENT_STORAGE_URL``, or a usage error naming both."""
    url = getattr(args, "storage", None) or os.environ.get(STORAGE_ENV)
    if not url:
        raise CommandError(
            f"needs a storage: pass --storage URL (e.g. --storage sqlite:///app.db) or set {STORAGE_ENV}", USAGE
        )
    parse_scheme(url, "storage")
    return str(url)


def sqlite_file(url: str) -> str | None:
    """The file a ``sqlite://`` URL names, or None (another scheme, or an in-memory database).

    Read the way stent-sqlite reads it: ``sqlite:///relative.db`` and ``sqlite:////absolute.db``.
    """
    if not url.lower().startswith("sqlite://"):
        return None
    rest = url[len("sqlite://") :].partition("?")[0]
    if rest in (":memory:", "/:memory:") or not rest.startswith("/"):
        return None
    return rest[1:] or None


def check_sqlite_exists(url: str, *, hint: str = "create it with `stent init`") -> None:
    """Refuse a ``sqlite://`` URL whose file does not exist, so that a typo never creates an empty database."""
    path = sqlite_file(url)
    if path is None:
        return
    if os.path.isdir(path):
        raise CommandError(f"{path!r} is a directory, not a SQLite database file", USAGE)
    if not os.path.exists(path):
        raise CommandError(
            f"no SQLite database at {os.path.abspath(path)!r}; check the path in {redact_url(url)!r}"
            f" (sqlite:///relative.db, sqlite:////absolute.db), or {hint}",
            NOT_FOUND,
        )


def make_executor(url: str, *, must_exist: bool = True, notifier: str | None = None, **options: Any) -> Stent:
    """A :class:`~stent.executor.Stent` on ``url``; for read commands the SQLite file must already exist."""
    from stent.executor import Stent

    if must_exist:
        check_sqlite_exists(url)
    return Stent(url, notification_backend=notifier, **options)


@contextlib.asynccontextmanager
async def opened(
    url: str, *, must_exist: bool = True, notifier: str | None = None, **options: Any
) -> AsyncIterator[Stent]:
    """An executor on ``url`` for the length of a command, closed however the command ends."""
    executor = make_executor(url, must_exist=must_exist, notifier=notifier, **options)
    try:
        yield executor
    finally:
        try:
            await executor.close()
        except Exception as exc:  # closing must not hide the command's own outcome
            log.debug("closing the storage failed: %s", exc)


# -- arguments ----------------------------------------------------------------------------------------------


def duration(text: str) -> float:
    """An argparse type: a duration such as ``90``, ``30s``, ``5m``, ``7d`` in seconds."""
    from stent.durations import parse_duration

    try:
        return parse_duration(text, name="duration")
    except ConfigurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0 to 65535, got {value}")
    return value


def names(text: str) -> list[str]:
    """A comma-separated list of names; empty entries are dropped."""
    items = [part.strip() for part in text.split(",") if part.strip()]
    if not items:
        raise argparse.ArgumentTypeError("give at least one name (comma-separated)")
    return items


# -- output -------------------------------------------------------------------------------------------------


def jsonable(value: Any) -> Any:
    """``value`` with datetimes as ISO text and other odd values as text, for ``--json`` output."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if hasattr(value, "value") and isinstance(value.value, str):  # enums
        return value.value
    return str(value)


def print_json(value: Any, out: TextIO | None = None) -> None:
    print(json.dumps(jsonable(value), indent=2, sort_keys=True), file=out or sys.stdout)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], out: TextIO | None = None) -> None:
    """Print rows under headers in aligned columns; a column of numbers is right-aligned."""
    text_rows = [[cell(value) for value in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in text_rows:
        for i, value in enumerate(row):
            widths[i] = max(widths[i], len(value))
    numeric = [all(_is_number(r[i]) for r in text_rows) and text_rows for i in range(len(headers))]
    target = out or sys.stdout

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if numeric[i] else v.ljust(w) for i, (v, w) in enumerate(zip(values, widths))]
        return "  ".join(parts).rstrip()

    print(line(list(headers)), file=target)
    for row in text_rows:
        print(line(row), file=target)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return when(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple | frozenset | set):
        return ",".join(str(v) for v in value) or "-"
    if hasattr(value, "value") and isinstance(value.value, str):
        return str(value.value)
    return str(value)


def when(moment: datetime | None) -> str:
    """A stored time in UTC, to the second."""
    if moment is None:
        return "-"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def span(seconds: float | None) -> str:
    """A duration for people: ``350ms``, ``12.5s``, ``4m05s``, ``3h02m``, ``2d04h``."""
    if seconds is None:
        return "-"
    if seconds < 0:
        seconds = 0.0
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return (end - start).total_seconds()


def add_output_options(parser: argparse.ArgumentParser) -> None:
    """``--storage`` and ``--json`` accepted after the subcommand as well as before it."""
    parser.add_argument(
        "--storage",
        default=argparse.SUPPRESS,
        help=f"storage URL, e.g. sqlite:///app.db (default: ${STORAGE_ENV})",
    )
    parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON for scripts")


def add_notifier_option(parser: argparse.ArgumentParser) -> None:
    """``--notifier URL``: tell workers at once about what the command changed, instead of at their next poll."""
    parser.add_argument(
        "--notifier",
        default=argparse.SUPPRESS,
        help=f"notifier URL to wake workers at once, e.g. redis://localhost:6379 (default: ${NOTIFIER_ENV})",
    )


def notifier_url(args: argparse.Namespace) -> str | None:
    """The notifier URL from ``--notifier`` or ``STENT_NOTIFIER_URL``; None means workers learn by polling."""
    url = getattr(args, "notifier", None) or os.environ.get(NOTIFIER_ENV)
    if url:
        parse_scheme(url, "notifier")
    return url or None
