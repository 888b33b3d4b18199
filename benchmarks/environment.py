"""Where a benchmark runs: one storage backend and one notifier, isolated, with executors and a worker on them.

A :class:`Setup` names the pair (``sqlite-none``, ``postgres-redis``...).  An :class:`Environment` gives it a
place of its own: a fresh SQLite file, or a fresh PostgreSQL schema (``bench_<random>``, dropped at the end);
Redis and NATS notifiers get a random prefix, so parallel runs never hear each other.

Every executor an environment makes has a storage object (a connection pool) and a notifier of its own, as two
processes would: the client that dispatches and waits, and the worker that runs the work, share nothing but the
database and the notifier's server.  So a wake-up in a benchmark really crosses the notifier, and a waiter in
the client really waits for it (or for its poll).  The worker runs in the benchmark's process, as a background
task (``executor.serve(max_concurrency=50)``); only the memory benchmark runs ``stent worker`` as a process of its
own, whose memory it can read from outside (:mod:`benchmarks.scale`).  Memory storage (for the smoke tests) is
the one exception to "nothing shared": it is the database, so the executors share the object, and a count of
the worker's storage calls then includes the client's.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import uuid
from pathlib import Path
from typing import Any

import attrs

from stent import Stent
from stent.ports import Clock, Notifier, Storage
from stent.worker.lifecycle import WorkerLifecycle

BACKENDS = ("memory", "sqlite", "postgres")
NOTIFIERS = ("none", "memory", "postgres", "redis", "nats")

#: With no notifier, the worker polls this often (seconds), and the waiters at least this often: the figure
#: polling-only latency is held to.  With a notifier they keep stent's defaults, and a wake-up makes them fast.
POLL_ONLY_INTERVAL = 0.1

#: The worker of issue 9: one process, fifty tasks at once.
MAX_CONCURRENCY = 50


@attrs.frozen
class Setup:
    """A storage backend and a notifier (``none``: polling only)."""

    backend: str
    notifier: str

    def __attrs_post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown backend {self.backend!r}; one of {', '.join(BACKENDS)}")
        if self.notifier not in NOTIFIERS:
            raise ValueError(f"unknown notifier {self.notifier!r}; one of {', '.join(NOTIFIERS)}")
        if self.notifier == "memory" and self.backend != "memory":
            raise ValueError(
                "the memory notifier only reaches executors of one process: use it with memory storage"
            )

    @property
    def name(self) -> str:
        return f"{self.backend}-{self.notifier}"

    @property
    def polling(self) -> bool:
        return self.notifier == "none"

    def __str__(self) -> str:
        return self.name


@attrs.frozen
class Servers:
    """Where the shared services are (the local ones on their standard ports by default)."""

    postgres: str = "postgresql://postgres@127.0.0.1:5432/test"
    redis: str = "redis://127.0.0.1:6379/0"
    nats: str = "nats://127.0.0.1:4222"


def unreachable(url: str, timeout: float = 1.0) -> str | None:
    """``None`` when the server of ``url`` accepts a TCP connection, else why not."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port
    try:
        with socket.create_connection((host, port or 0), timeout=timeout):
            return None
    except OSError as exc:
        return f"{host}:{port} does not answer ({type(exc).__name__}: {exc})"


@attrs.define
class RunningWorker:
    """A worker serving in this process as a background task."""

    executor: Stent
    lifecycle: WorkerLifecycle
    task: asyncio.Task[None]

    @classmethod
    async def start(cls, executor: Stent, **options: Any) -> RunningWorker:
        lifecycle = executor.create_worker_lifecycle(f"bench-{uuid.uuid4().hex[:8]}")
        task = asyncio.ensure_future(executor.serve(lifecycle=lifecycle, **options))
        ready = asyncio.ensure_future(lifecycle.wait_until_ready())
        await asyncio.wait((ready, task), return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        if task.done():
            task.result()  # serve() failed: raise why
            raise RuntimeError("the benchmark's worker stopped before it was ready")
        return cls(executor, lifecycle, task)

    async def stop(self, timeout: float = 60.0) -> None:
        """Drain the worker; cancel it if it has not stopped within ``timeout`` seconds."""
        if not self.task.done():
            self.executor.request_worker_drain(self.lifecycle)
        await asyncio.wait([self.task], timeout=timeout)
        while not self.task.done():
            # Cancelled again until it ends: a cancellation that lands while the worker wakes up can be lost.
            self.task.cancel()
            await asyncio.wait([self.task], timeout=1.0)
        if not self.task.cancelled():
            self.task.result()


class Environment:
    """One setup's isolated storage and notifier, and the executors and workers made on them."""

    def __init__(self, setup: Setup, workdir: Path, servers: Servers) -> None:
        self.setup = setup
        self.servers = servers
        self.token = uuid.uuid4().hex[:12]
        self.workdir = workdir / f"bench-{self.token}"
        self.schema = f"bench_{self.token}"
        self._executors: list[Stent] = []
        self._workers: list[RunningWorker] = []
        self._shared_storage: Storage | None = None
        self._shared_notifier: Notifier | None = None

    @classmethod
    async def open(cls, setup: Setup, workdir: Path, servers: Servers | None = None) -> Environment:
        """A fresh environment; raises :class:`ServiceDown` when a server it needs does not answer."""
        env = cls(setup, workdir, servers or Servers())
        for needed in env.needed_servers():
            problem = unreachable(needed)
            if problem is not None:
                raise ServiceDown(f"{setup.name} needs {needed.split('://')[0]}: {problem}")
        env.workdir.mkdir(parents=True)
        return env

    def needed_servers(self) -> list[str]:
        wanted = {self.setup.backend, self.setup.notifier}
        return [getattr(self.servers, name) for name in ("postgres", "redis", "nats") if name in wanted]

    # -- what executors are made of ------------------------------------------------------------------------

    @property
    def storage_url(self) -> str:
        """The storage as a URL, for a ``stent worker`` process (memory storage has none: it is this process's)."""
        if self.setup.backend == "sqlite":
            return f"sqlite:///{self.workdir / 'bench.db'}"
        if self.setup.backend == "postgres":
            notify = "&notify=true" if self.setup.notifier == "postgres" else ""
            return f"{self.servers.postgres}?schema={self.schema}{notify}"
        raise ValueError("memory storage lives in one process and has no URL")

    @property
    def notifier_url(self) -> str | None:
        kind = self.setup.notifier
        if kind == "postgres":
            return f"{self.servers.postgres}?schema={self.schema}"  # the storage's schema names the channel
        if kind == "redis":
            return f"{self.servers.redis}?prefix=bench-{self.token}"
        if kind == "nats":
            return f"{self.servers.nats}?prefix=bench-{self.token}"
        return None

    def storage(self) -> Storage:
        """A storage object (with a pool of its own) on this environment's database."""
        if self.setup.backend == "memory":
            if self._shared_storage is None:
                self._shared_storage = Stent.backends.MemoryBackend()
            return self._shared_storage
        return Stent.backends.from_url(self.storage_url)

    def notifier(self) -> Notifier | None:
        if self.setup.notifier == "memory":
            if self._shared_notifier is None:
                self._shared_notifier = Stent.notifications.MemoryBackend()
            return self._shared_notifier
        url = self.notifier_url
        return None if url is None else Stent.notifications.from_url(url)

    async def executor(self, *, clock: Clock | None = None) -> Stent:
        """An executor with a storage and a notifier of its own (as another process would have)."""
        options: dict[str, Any] = {}
        if self.setup.polling:
            # Waiters keep their default first wait (shorter than the worker's poll) and back off to the poll.
            options.update(poll_max_interval=POLL_ONLY_INTERVAL)
        executor = Stent(self.storage(), notification_backend=self.notifier(), clock=clock, **options)
        self._executors.append(executor)
        await executor.backend.init_db()
        return executor

    def serve_options(self) -> dict[str, Any]:
        """``serve()`` options: fifty at once; polling every POLL_ONLY_INTERVAL when nothing pushes wake-ups."""
        options: dict[str, Any] = {"max_concurrency": MAX_CONCURRENCY}
        if self.setup.polling:
            options.update(poll_interval=POLL_ONLY_INTERVAL, poll_interval_max=POLL_ONLY_INTERVAL)
        return options

    async def start_worker(self, executor: Stent, **options: Any) -> RunningWorker:
        worker = await RunningWorker.start(executor, **{**self.serve_options(), **options})
        self._workers.append(worker)
        return worker

    async def refresh_statistics(self) -> None:
        """Refresh the database's planner statistics (``ANALYZE`` of the schema's tables on PostgreSQL, as
        autovacuum does after enough changes); nothing on the other backends."""
        if self.setup.backend != "postgres":
            return
        import asyncpg

        conn = await asyncpg.connect(self.servers.postgres)
        try:
            tables = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = $1", self.schema)
            for row in tables:
                await conn.execute(f'ANALYZE "{self.schema}"."{row["tablename"]}"')
        finally:
            await conn.close()

    # -- the end -------------------------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop the workers, close the executors, and drop the schema or remove the files."""
        for worker in self._workers:
            await worker.stop(timeout=30.0)
        for executor in reversed(self._executors):
            try:
                await executor.close()
            except Exception as exc:  # a notifier that cannot close must not keep the schema alive
                print(f"benchmark: closing an executor of {self.setup.name} failed: {exc}")
        if self.setup.backend == "postgres":
            await drop_schema(self.servers.postgres, self.schema)
        shutil.rmtree(self.workdir, ignore_errors=True)


class ServiceDown(Exception):
    """A server the setup needs does not answer."""


async def drop_schema(url: str, schema: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


def rss_bytes(pid: int | None = None) -> int:
    """The resident set size of a process (this one by default), from /proc (Linux)."""
    path = Path(f"/proc/{pid or os.getpid()}/status")
    for line in path.read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS line in {path}")
