"""``stent worker MODULE``: import the user's durable functions and serve until SIGTERM or SIGINT drains.

Every ``serve()`` option is a flag (durations take ``30s``, ``5m``, ``1h30m`` or seconds).  Before serving, the
command checks that the storage answers (exit 4 when it does not) and that a SQLite file exists unless
``--init-db`` creates it (exit 3).  It prints one ``ready`` line once the worker claims work, with the health and
metrics addresses; SIGTERM or SIGINT drains: running tasks finish, waiting ones are suspended, and it exits 0.

``--health-port`` serves ``/live``, ``/ready`` and ``/health`` (see :mod:`stent.observability.health`);
``--metrics-port`` serves ``/metrics`` for Prometheus (needs ``stent-core[prometheus]``); both may share a port.
``--otel`` traces each task run with OpenTelemetry (needs ``stent-core[otel]``; configure the exporter in MODULE
or with the usual ``OTEL_*`` variables of your OpenTelemetry distribution).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import importlib.util
import logging
import os
import sys
import traceback
from pathlib import Path
from typing import Any

from stent.backends import redact_url
from stent.cli import common
from stent.cli.common import CommandError
from stent.errors import StentError
from stent.loops import LOOPS, loop_factory, running_loop_name
from stent.worker.options import default_worker_id

log = logging.getLogger("stent.cli")

NOTIFIER_ENV = "STENT_NOTIFIER_URL"


def register(commands: Any) -> None:
    p = commands.add_parser("worker", help="run a worker for the durable functions in MODULE")
    common.add_output_options(p)
    add_arguments(p)
    p.set_defaults(handler=run_command)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = common.duration
    parser.add_argument("module", help="import path (pkg.workflows) or file (path/to/workflows.py) to load")
    parser.add_argument("--worker-id", help="this worker's id (default: host-pid-random)")
    parser.add_argument("--queues", type=common.names, help="comma-separated queues (default: every queue)")
    parser.add_argument("--tags", type=common.names, help="comma-separated tags (tasks with one, plus untagged)")
    parser.add_argument("--max-concurrency", type=common.positive_int, default=10, help="tasks at once (10)")
    parser.add_argument("--poll-interval", type=d, default=0.5, help="first poll delay when idle (0.5s)")
    parser.add_argument("--poll-interval-max", type=d, default=5.0, help="longest poll delay when idle (5s)")
    parser.add_argument("--poll-backoff-factor", type=float, default=2.0, help="poll delay growth when idle (2.0)")
    parser.add_argument("--lease-duration", type=d, default=300.0, help="lease on a claimed task (5m)")
    parser.add_argument(
        "--heartbeat-interval", type=d, default=None, help="lease renewal period (default: lease duration / 2.5)"
    )
    parser.add_argument("--cleanup-interval", type=d, default=3600.0, help="how often cleanup runs (1h)")
    parser.add_argument("--retention-period", type=d, default=7 * 86400.0, help="finished work kept for (7d)")
    parser.add_argument("--drain-timeout", type=d, default=None, help="longest drain before releasing (none)")
    parser.add_argument("--init-db", action="store_true", help="create or migrate the schema before serving")
    parser.add_argument(
        "--notifier",
        default=os.environ.get(NOTIFIER_ENV),
        help=f"notifier URL for push wake-ups, e.g. redis://localhost:6379 (default: ${NOTIFIER_ENV}; none: poll)",
    )
    parser.add_argument("--health-port", type=common.port, help="serve /live, /ready and /health on this port")
    parser.add_argument("--health-host", default="0.0.0.0", help="address for --health-port (0.0.0.0)")
    parser.add_argument("--metrics-port", type=common.port, help="serve Prometheus /metrics on this port")
    parser.add_argument("--metrics-host", default="0.0.0.0", help="address for --metrics-port (0.0.0.0)")
    parser.add_argument(
        "--metrics-interval", type=d, default=15.0, help="how often queue gauges are read from storage (15s)"
    )
    parser.add_argument("--otel", action="store_true", help="trace task runs with OpenTelemetry")
    parser.add_argument(
        "--loop",
        choices=LOOPS,
        default="auto",
        help="event loop: uvloop (faster, pip install 'stent-core[uvloop]') or asyncio's own (auto: uvloop if installed)",
    )


# -- importing the user's module ----------------------------------------------------------------------------


def import_user_module(target: str) -> Any:
    """Import ``target`` as a file path or a dotted module path."""
    if target.endswith(".py") or os.sep in target:
        path = Path(target).resolve()
        if not path.is_file():
            raise CommandError(f"no Python file at {path}", common.USAGE)
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None:
            raise CommandError(f"cannot import {path}", common.USAGE)
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module
        sys.path.insert(0, str(path.parent))  # its sibling modules import as they would when run as a script
        spec.loader.exec_module(module)
        return module
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    return importlib.import_module(target)


def import_failure(target: str, exc: BaseException) -> str:
    """What went wrong importing the user's module: the error and its frames, without importlib's own."""
    frames = [
        f
        for f in traceback.extract_tb(exc.__traceback__)
        if "importlib" not in f.filename and not f.filename.endswith(os.path.join("cli", "worker.py"))
    ]
    lines = [f"stent worker: importing {target} failed: {type(exc).__name__}: {exc}"]
    if frames:
        lines.append("Traceback (most recent call last):")
        lines.extend(line.rstrip("\n") for line in traceback.format_list(frames))
    lines.extend(line.rstrip("\n") for line in traceback.format_exception_only(type(exc), exc))
    return "\n".join(lines)


# -- running ------------------------------------------------------------------------------------------------


def run_command(args: argparse.Namespace) -> int:
    try:
        url = common.storage_url(args, "worker")
        if not args.init_db:
            common.check_sqlite_exists(url, hint="pass --init-db to create it, or run `stent init` first")
    except (CommandError, StentError) as exc:
        print(f"stent worker: {common.describe(exc)}", file=sys.stderr)
        return common.exit_code_of(exc)
    return run(args, url)


def run(args: argparse.Namespace, storage_url: str | None) -> int:
    from stent.engine.durable import registered_functions

    try:
        factory = loop_factory(getattr(args, "loop", "auto"))
    except StentError as exc:
        print(f"stent worker: {exc}", file=sys.stderr)
        return common.exit_code_of(exc)
    try:
        import_user_module(args.module)
    except CommandError as exc:
        print(f"stent worker: {exc}", file=sys.stderr)
        return exc.code
    except BaseException as exc:  # the user's module failed to import (SystemExit included): show why
        if isinstance(exc, KeyboardInterrupt):
            return common.INTERRUPTED
        print(import_failure(args.module, exc), file=sys.stderr)
        return common.USAGE
    if not registered_functions():
        print(
            f"stent worker: warning: {args.module} registers no durable functions (@Stent.durable), so this"
            " worker will claim nothing",
            file=sys.stderr,
        )
    return common.run_async("worker", lambda: _serve(args, storage_url), loop_factory=factory)


async def _serve(args: argparse.Namespace, storage_url: str | None) -> int:
    from stent.executor import Stent

    metrics = _prometheus() if args.metrics_port is not None else None
    if args.otel:
        from stent.observability import otel

        otel.install()
    executor = Stent(storage_url, notification_backend=args.notifier or None, metrics=metrics)
    servers: list[Any] = []
    refresher: asyncio.Task[None] | None = None
    try:
        if args.init_db:
            await executor.backend.init_db()
        await _preflight(executor)
        name = args.worker_id or default_worker_id()
        lifecycle = executor.create_worker_lifecycle(name)
        executor.drain_on_signals(lifecycle)
        servers = await _start_servers(args, executor, metrics)
        serving = asyncio.ensure_future(
            executor.serve(
                worker_id=name,
                queues=args.queues,
                tags=args.tags,
                max_concurrency=args.max_concurrency,
                poll_interval=args.poll_interval,
                poll_interval_max=args.poll_interval_max,
                poll_backoff_factor=args.poll_backoff_factor,
                lease_duration=args.lease_duration,
                heartbeat_interval=args.heartbeat_interval,
                cleanup_interval=args.cleanup_interval,
                retention_period=args.retention_period,
                drain_timeout=args.drain_timeout,
                lifecycle=lifecycle,
            )
        )
        ready = asyncio.ensure_future(lifecycle.wait_until_ready())
        await asyncio.wait((ready, serving), return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        if serving.done():
            serving.result()  # serve() refused its options (or stopped at once): raise why
        if metrics is not None:
            refresher = asyncio.ensure_future(_refresh_gauges(executor, metrics, args))
        if not serving.done():
            print(_ready_line(args, lifecycle.worker_id or name, storage_url, servers), flush=True)
        await serving
        print(f"stent worker {lifecycle.worker_id} stopped", flush=True)
        return common.OK
    finally:
        if refresher is not None:
            refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresher
        for server in servers:
            await server.close()
        await executor.close()
        if args.otel:
            from stent.observability import otel

            otel.uninstall()


def _prometheus() -> Any:
    from stent.observability.prometheus import PrometheusMetrics

    return PrometheusMetrics()


async def _preflight(executor: Any) -> None:
    """Fail fast, with the storage's own message, when it does not answer or has no schema."""
    try:
        await executor.backend.queue_depth(None, executor.clock.now())
    except StentError as exc:
        if common.exit_code_of(exc) == common.USAGE and "schema" in str(exc):
            raise CommandError(f"{exc} (or pass --init-db)", common.USAGE) from None
        raise


async def _start_servers(args: argparse.Namespace, executor: Any, metrics: Any) -> list[Any]:
    from stent.observability.http import HttpServer

    routes: dict[tuple[str, int], dict[str, Any]] = {}
    if args.health_port is not None:
        from stent.observability.health import health_routes

        routes.setdefault((args.health_host, args.health_port), {}).update(health_routes(executor))
    if metrics is not None:
        routes.setdefault((args.metrics_host, args.metrics_port), {}).update(metrics.routes())
    servers = []
    try:
        for (host, number), handlers in routes.items():
            server = HttpServer(handlers, host, number)
            try:
                await server.start()
            except OSError as exc:
                raise CommandError(
                    f"cannot listen on {host}:{number}: {exc.strerror or exc}", common.USAGE
                ) from None
            servers.append(server)
    except BaseException:
        for server in servers:
            await server.close()
        raise
    return servers


async def _refresh_gauges(executor: Any, metrics: Any, args: argparse.Namespace) -> None:
    warned = False
    while True:
        try:
            await metrics.refresh_gauges(executor, args.queues)
            warned = False
        except Exception as exc:
            if not warned:  # one warning per outage, not one per interval
                log.warning("could not refresh the queue gauges from storage: %s", exc)
                warned = True
        await executor.clock.sleep(args.metrics_interval)


def _ready_line(args: argparse.Namespace, worker_id: str, storage_url: str | None, servers: list[Any]) -> str:
    parts = [f"storage {redact_url(storage_url or '')}"]
    parts.append("queues " + (",".join(args.queues) if args.queues else "*"))
    parts.append(f"concurrency {args.max_concurrency}")
    parts.append(f"loop {running_loop_name()}")
    for server in servers:
        paths = ",".join(sorted(server.routes))
        parts.append(f"http://{server.host}:{server.port} {paths}")
    return f"stent worker {worker_id} ready (" + "; ".join(parts) + ")"
