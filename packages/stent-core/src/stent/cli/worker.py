"""``stent worker MODULE``: import the user's durable functions and serve until SIGTERM or SIGINT drains."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

from stent.errors import StentError
from stent.executor import Stent


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("module", help="import path (pkg.workflows) or file (path/to/workflows.py) to load")
    parser.add_argument("--worker-id")
    parser.add_argument("--queues", help="comma-separated queues (default: every queue)")
    parser.add_argument("--tags", help="comma-separated tags (tasks with one of them, plus untagged ones)")
    parser.add_argument("--max-concurrency", type=int, default=10)
    parser.add_argument("--poll-interval", type=float, default=0.5)
    parser.add_argument("--poll-interval-max", type=float, default=5.0)
    parser.add_argument("--poll-backoff-factor", type=float, default=2.0)
    parser.add_argument("--lease-duration", type=float, default=300.0, help="seconds")
    parser.add_argument("--heartbeat-interval", type=float, default=120.0, help="seconds")
    parser.add_argument("--cleanup-interval", type=float, default=3600.0, help="seconds")
    parser.add_argument("--retention-period", type=float, default=7 * 86400.0, help="seconds")
    parser.add_argument("--drain-timeout", type=float, default=None, help="seconds")
    parser.add_argument("--init-db", action="store_true", help="create or migrate the schema before serving")


def import_user_module(target: str) -> Any:
    """Import ``target`` as a file path or a dotted module path."""
    if target.endswith(".py") or os.sep in target:
        path = Path(target).resolve()
        if not path.is_file():
            raise StentError(f"no Python file at {path}")
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None:
            raise StentError(f"cannot import {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module
        spec.loader.exec_module(module)
        return module
    sys.path.insert(0, os.getcwd())
    return importlib.import_module(target)


def _names(value: str | None) -> list[str] | None:
    return None if value is None else [part.strip() for part in value.split(",") if part.strip()]


def run(args: argparse.Namespace, storage_url: str | None) -> int:
    try:
        import_user_module(args.module)
    except StentError as exc:
        print(f"stent worker: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # the user's module failed to import: show why
        print(f"stent worker: importing {args.module} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_serve(args, storage_url))
    except StentError as exc:
        print(f"stent worker: {exc}", file=sys.stderr)
        return 1


async def _serve(args: argparse.Namespace, storage_url: str | None) -> int:
    executor = Stent(storage_url)
    if args.init_db:
        await executor.backend.init_db()
    lifecycle = executor.create_worker_lifecycle(args.worker_id or f"worker-{os.getpid()}")
    executor.drain_on_signals(lifecycle)
    serving = asyncio.ensure_future(
        executor.serve(
            worker_id=args.worker_id,
            queues=_names(args.queues),
            tags=_names(args.tags),
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
    await lifecycle.wait_until_ready()
    if not serving.done():
        print(f"stent worker {lifecycle.worker_id} ready", flush=True)
    try:
        await serving
    finally:
        await executor.close()
    print(f"stent worker {lifecycle.worker_id} stopped", flush=True)
    return 0
