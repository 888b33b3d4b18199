"""A multi-worker deployment on one machine: N `stent worker` processes sharing PostgreSQL, woken by Redis or NATS.

    python examples/multi_worker/launch.py [--workers 3] [--documents 24] [--notifier redis|nats|URL]
                                           [--storage postgresql://postgres@127.0.0.1:5432/test?schema=...]

It does what a deployment does, in order:

1. creates (or migrates) the schema from this process, so the workers start without --init-db;
2. starts the workers with the real command, `stent worker workflows.py --worker-id worker-N`, configured through
   STENT_STORAGE_URL and STENT_NOTIFIER_URL as a container would be, and waits for each one's ready line;
3. dispatches a batch of `process_document` executions as a client (a web app would) and waits for the results;
4. prints which worker ran each step, and the throughput;
5. sends every worker SIGTERM: each drains (finishes what it runs, hands back the rest) and exits 0.

Every option also reads an environment variable (shown by --help). `--notifier redis` and `--notifier nats` mean
the local server with the schema's name as channel prefix, so deployments sharing a server never wake each other.
Exit codes: 0 every document processed and every worker stopped cleanly; 1 something failed; 2 bad option;
4 storage unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import workflows  # the sibling module: this client and every worker import the same durable functions

from stent import ConfigurationError, PluginError, Stent, StentError, StorageUnavailable
from stent.backends import redact_url

WORKFLOWS = Path(__file__).with_name("workflows.py")
DEFAULT_STORAGE = "postgresql://postgres@127.0.0.1:5432/test?schema=stent_multi_worker"
LOCAL_NOTIFIERS = {
    "redis": "redis://127.0.0.1:6379/0?prefix={prefix}",
    "nats": "nats://127.0.0.1:4222?prefix={prefix}",
}
STEPS = ("extract_text", "render_thumbnail", "classify", "index_document", "process_document")


class Failed(Exception):
    """The deployment did not do its job; the message says what went wrong."""


@dataclass
class WorkerProcess:
    """One `stent worker` process and what it printed."""

    name: str
    process: asyncio.subprocess.Process
    stdout: list[str] = field(default_factory=list)
    pumps: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def runs_as(self) -> str:
        return f"{socket.gethostname()}/{self.process.pid}"  # what workflows.this_process() reports in it


def notifier_url(choice: str, storage: str) -> str:
    """`redis`, `nats` or a full notifier URL; the short forms use the storage's schema as prefix."""
    if "://" in choice:
        return choice
    if choice not in LOCAL_NOTIFIERS:
        raise ConfigurationError(
            f"--notifier must be redis, nats or a URL such as redis://host:6379, got {choice!r}"
        )
    schema = parse_qs(urlsplit(storage).query).get("schema", ["stent"])[0]
    return LOCAL_NOTIFIERS[choice].format(prefix=schema)


async def pump(stream: asyncio.StreamReader, sink: list[str] | None, echo: str | None) -> None:
    """Read a worker's output to the end (a full pipe would stall it); keep it, or echo it to our stderr."""
    while line := (await stream.readline()).decode(errors="replace"):
        if sink is not None:
            sink.append(line.rstrip("\n"))
        if echo is not None:
            print(f"[{echo}] {line}", end="", file=sys.stderr, flush=True)


async def start_workers(
    args: argparse.Namespace, storage: str, notifier: str, workers: list[WorkerProcess]
) -> None:
    """Start the workers (into ``workers``, so the caller stops them whatever happens) and wait until each is ready."""
    env = {**os.environ, "STENT_STORAGE_URL": storage, "STENT_NOTIFIER_URL": notifier, "PYTHONUNBUFFERED": "1"}
    for n in range(1, args.workers + 1):
        command = [sys.executable, "-m", "stent.cli.main", "worker", str(WORKFLOWS), "--worker-id", f"worker-{n}",
                   "--max-concurrency", str(args.concurrency)]  # fmt: skip
        process = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
        )
        assert process.stdout is not None and process.stderr is not None
        worker = WorkerProcess(f"worker-{n}", process)
        worker.pumps.append(asyncio.create_task(pump(process.stderr, None, echo=worker.name)))
        workers.append(worker)
    deadline = asyncio.get_running_loop().time() + args.timeout
    for worker in workers:  # they start in parallel; each says "stent worker worker-N ready (...)" when claiming
        assert worker.process.stdout is not None
        try:
            async with asyncio.timeout_at(deadline):
                line = (await worker.process.stdout.readline()).decode()
        except TimeoutError:
            raise Failed(f"{worker.name} did not get ready within {args.timeout:g} s") from None
        if " ready " not in line:
            code = await worker.process.wait()
            raise Failed(f"{worker.name} did not start (exit {code}); its messages are above")
        print(f"  {line.strip()}")
        worker.pumps.append(asyncio.create_task(pump(worker.process.stdout, worker.stdout, echo=None)))


async def stop_workers(workers: list[WorkerProcess], timeout: float) -> list[str]:
    """SIGTERM every worker, wait (``timeout`` in all) for each to drain and exit; return what went wrong."""
    problems = []
    deadline = asyncio.get_running_loop().time() + timeout
    for worker in workers:
        if worker.process.returncode is not None:  # it never started, or crashed
            problems.append(f"{worker.name} exited {worker.process.returncode} before it was asked to stop")
        with contextlib.suppress(ProcessLookupError):
            worker.process.send_signal(signal.SIGTERM)
    for worker in workers:
        try:
            async with asyncio.timeout_at(deadline):
                code = await worker.process.wait()
        except TimeoutError:
            worker.process.kill()
            code = await worker.process.wait()
            problems.append(f"{worker.name} did not stop within {timeout:g} s of SIGTERM and was killed")
        await asyncio.gather(*worker.pumps)
        drained = f"stent worker {worker.name} stopped" in worker.stdout
        if code == 0 and drained:
            print(f"  {worker.name} drained and stopped (exit 0)")
        elif not any(p.startswith(worker.name) for p in problems):
            problems.append(f"{worker.name} exited {code} without draining; its messages are above")
    return problems


def print_summary(reports: list[workflows.DocumentReport], workers: list[WorkerProcess], elapsed: float) -> None:
    names = {w.runs_as: w.name for w in workers}  # a step run by a process we did not start shows as host/pid
    per_worker: dict[str, Counter[str]] = {w.name: Counter() for w in workers}
    for report in sorted(reports, key=lambda r: r.doc_id):
        ran = {step: names.get(where, where) for step, where in report.ran_on.items()}
        for step, name in ran.items():
            per_worker.setdefault(name, Counter())[step] += 1
        steps = ", ".join(f"{step} {ran[step]}" for step in STEPS[:-1])
        print(f"  {report.doc_id} {report.category:<8} {report.words:>2} words: {steps}")
    tasks = len(reports) * len(STEPS)
    print(f"\n{len(reports)} documents ({tasks} tasks) in {elapsed:.2f} s: {len(reports) / elapsed:.1f} documents/s,"
          f" {tasks / elapsed:.1f} tasks/s")  # fmt: skip
    for name, counts in per_worker.items():
        detail = ", ".join(f"{step} {counts[step]}" for step in STEPS if counts[step])
        print(f"  {name} ran {sum(counts.values())} tasks" + (f" ({detail})" if detail else ""))


async def process_batch(client: Stent, args: argparse.Namespace, workers: list[WorkerProcess]) -> list[str]:
    """Dispatch the documents, wait for all of them, print the summary; return what failed."""
    started = time.monotonic()
    ids = [
        await client.dispatch(workflows.process_document, f"doc-{n:03d}", args.work_seconds)
        for n in range(1, args.documents + 1)
    ]
    outcomes = await asyncio.gather(
        *(client.wait_for(i, expiry=args.timeout) for i in ids), return_exceptions=True
    )
    elapsed = time.monotonic() - started
    reports = [o for o in outcomes if isinstance(o, workflows.DocumentReport)]
    failures = [
        f"execution {i}: {type(o).__name__}: {o}"
        for i, o in zip(ids, outcomes, strict=True)
        if not isinstance(o, workflows.DocumentReport)
    ]
    print(f"\n{len(reports)} of {len(ids)} documents processed:")
    print_summary(reports, workers, elapsed)
    return failures


async def main(args: argparse.Namespace) -> int:
    try:
        notifier = notifier_url(args.notifier, args.storage)
        client = await Stent.bootstrap(args.storage, notification_backend=notifier)  # creates the schema
    except StentError as exc:
        print(f"multi_worker: {exc}", file=sys.stderr)
        if isinstance(exc, StorageUnavailable):
            print("multi_worker: the storage URL comes from --storage or STENT_STORAGE_URL", file=sys.stderr)
            return 4
        return 2 if isinstance(exc, ConfigurationError | PluginError) else 1
    print(f"storage {redact_url(args.storage)}; notifier {redact_url(notifier)}")
    print(f"starting {args.workers} workers, {args.concurrency} tasks at once each:")
    workers: list[WorkerProcess] = []
    problems: list[str] = []
    try:
        await start_workers(args, args.storage, notifier, workers)
        problems += await process_batch(client, args, workers)
    except (Failed, StentError) as exc:
        problems.append(str(exc))
    finally:
        if workers:
            print("\nstopping the workers with SIGTERM:")
        problems += await stop_workers(workers, args.timeout)
        await client.close()
    for problem in problems:
        print(f"multi_worker: {problem}", file=sys.stderr)
    return 1 if problems else 0


def positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text!r}")
    return int(text)


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds, 0 or more, got {text!r}")
    return value


def positive_seconds(text: str) -> float:
    if not seconds(text) > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return float(text)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--storage",
        default=env("STENT_STORAGE_URL", DEFAULT_STORAGE),
        help="PostgreSQL URL with ?schema= (env STENT_STORAGE_URL; default: %(default)s)",
    )
    parser.add_argument(
        "--notifier",
        default=env("STENT_NOTIFIER_URL", "redis"),
        help="redis, nats or a notifier URL (env STENT_NOTIFIER_URL; default: %(default)s)",
    )
    parser.add_argument(
        "--workers",
        type=positive,
        default=env("EXAMPLE_WORKERS", "3"),
        help="worker processes (env EXAMPLE_WORKERS; default: %(default)s)",
    )
    parser.add_argument(
        "--concurrency",
        type=positive,
        default=env("EXAMPLE_CONCURRENCY", "4"),
        help="tasks each worker runs at once (env EXAMPLE_CONCURRENCY; default: %(default)s)",
    )
    parser.add_argument(
        "--documents",
        type=positive,
        default=env("EXAMPLE_DOCUMENTS", "24"),
        help="documents to process (env EXAMPLE_DOCUMENTS; default: %(default)s)",
    )
    parser.add_argument(
        "--work-seconds",
        type=seconds,
        default=env("EXAMPLE_WORK_SECONDS", "0.05"),
        help="simulated work per step (env EXAMPLE_WORK_SECONDS; default: %(default)s)",
    )
    parser.add_argument(
        "--timeout",
        type=positive_seconds,
        default=env("EXAMPLE_TIMEOUT", "60"),
        help="longest wait for workers to start, results and drains (env EXAMPLE_TIMEOUT; %(default)s s)",
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
