"""The benchmark session: setups to run, a ``bench`` fixture that measures a workload in one, and the table and
JSON files written at the end.

Each benchmark is a plain (synchronous) test: ``bench.measure(benchmark, setup, workload)`` opens the setup's
environment, runs the workload once inside ``benchmark.pedantic`` on an event loop of the test's own, and records
the figures it returns.  pytest-benchmark's columns therefore time a whole workload (its setup included); the
figures of record are the workloads' own, printed at the end and saved in ``.benchmarks/summary-<time>.json``
next to pytest-benchmark's JSON (``.benchmarks/pytest-benchmark-<time>.json`` unless ``--benchmark-json`` says
otherwise).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from benchmarks.environment import Environment, Servers, ServiceDown, Setup, unreachable
from benchmarks.report import Figure, cpu_reference_ms, row_of, summary, table, write_summary
from benchmarks.sizes import FULL, SCALE_ENV, scale_from_env
from stent.loops import LoopFactory, loop_factory, loop_name

RESULTS_DIR = Path(__file__).resolve().parents[1] / ".benchmarks"
REQUIRE_SERVICES_ENV = "STENT_REQUIRE_SERVICES"

#: Every setup a workload runs in unless it says otherwise: each backend polling only and with each notifier
#: (PostgreSQL's LISTEN/NOTIFY only with PostgreSQL storage, which then announces its own changes).
SETUPS = [
    Setup("sqlite", "none"),
    Setup("sqlite", "redis"),
    Setup("sqlite", "nats"),
    Setup("postgres", "none"),
    Setup("postgres", "postgres"),
    Setup("postgres", "redis"),
    Setup("postgres", "nats"),
]
BACKEND_SETUPS = [Setup("sqlite", "none"), Setup("postgres", "none")]

_rows: list[dict[str, Any]] = []
_session: dict[str, Any] = {}


def sizes_for_session() -> Any:
    return FULL.scaled(_session.get("scale", 1.0))


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    try:
        _session["scale"] = scale_from_env()
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    _session["stamp"] = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    _session["load_start"] = os.getloadavg()
    _session["cpu_start"] = cpu_reference_ms()
    if getattr(config.option, "benchmark_json", "absent") is None:
        RESULTS_DIR.mkdir(exist_ok=True)
        config.option.benchmark_json = RESULTS_DIR / f"pytest-benchmark-{_session['stamp']}.json"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The scale benchmarks run last: they leave PostgreSQL with 100,000 rows' worth of dirty pages and WAL to
    write back (a checkpoint, autovacuum), which slowed every commit of the benchmarks after them by a third."""
    items.sort(key=lambda item: item.path.name == "test_scale.py")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _rows:
        return
    scale = _session.get("scale", 1.0)
    load = {"start": _session.get("load_start"), "end": os.getloadavg()}
    cpu = {"start": _session.get("cpu_start"), "end": cpu_reference_ms()}
    loop = loop_name(bench_loop())
    path = write_summary(summary(_rows, scale=scale, load=load, cpu=cpu, loop=loop), RESULTS_DIR)
    write = terminalreporter.write_line
    terminalreporter.section("stent benchmarks")
    if scale != 1.0:
        write(f"{SCALE_ENV}={scale:g}: sizes scaled; a target is judged only where the size it is for was run")
    write(f"event loop: {loop} ({LOOP_ENV}=auto|asyncio|uvloop chooses, as `stent worker --loop` does)")
    write(f"load average (1, 5, 15 min): {load['start']} at the start, {load['end']} at the end")
    write(
        f"CPU reference (a million multiply-adds in Python, lower is faster): {cpu['start']} ms at the start,"
        f" {cpu['end']} ms at the end"
    )
    write("")
    for line in table(_rows).splitlines():
        write(line)
    write("")
    write(f"summary saved to {path}; compare two runs with: python benchmarks/compare.py A.json B.json")


class Bench:
    """Opens a setup's environment, measures a workload in it, and records the figures."""

    def __init__(self, run: Callable[[Coroutine[Any, Any, Any]], Any], workdir: Path) -> None:
        self.run = run
        self.workdir = workdir

    def open(self, setup: Setup) -> Environment:
        try:
            env: Environment = self.run(Environment.open(setup, self.workdir, Servers()))
        except ServiceDown as exc:
            if os.environ.get(REQUIRE_SERVICES_ENV) == "1":
                pytest.fail(f"{exc} ({REQUIRE_SERVICES_ENV}=1)", pytrace=False)
            pytest.skip(str(exc))
        return env

    def measure(
        self, benchmark: Any, setup: Setup, workload: Callable[[Environment], Coroutine[Any, Any, list[Figure]]]
    ) -> list[Figure]:
        env = self.open(setup)
        self.run(settle_postgres(Servers()))
        figures: list[Figure] = []
        try:
            benchmark.pedantic(lambda: figures.extend(self.run(workload(env))), rounds=1, iterations=1)
        finally:
            self.run(env.close())
        self.record(setup, figures, benchmark)
        return figures

    def record(self, setup: Setup, figures: list[Figure], benchmark: Any = None) -> None:
        for figure in figures:
            row = row_of(setup, figure)
            _rows.append(row)
            if benchmark is not None:
                benchmark.extra_info[figure.key] = {k: row[k] for k in ("value", "unit", "target", "met")}


async def settle_postgres(servers: Servers) -> None:
    """Write PostgreSQL's dirty pages back now (CHECKPOINT), so that the checkpoint the earlier benchmarks' writes
    call for does not run during the next one, on either backend (on two cores it slowed whatever ran beside it
    by a third).  Nothing when PostgreSQL is not there."""
    if unreachable(servers.postgres) is not None:
        return
    import asyncpg

    conn = await asyncpg.connect(servers.postgres)
    try:
        await conn.execute("CHECKPOINT")
    except asyncpg.InsufficientPrivilegeError:  # CHECKPOINT needs a superuser (or pg_checkpoint, PostgreSQL 15)
        pass
    finally:
        await conn.close()


#: The event loop the benchmarks run on: what ``stent worker`` would take (``auto``: uvloop when installed).
LOOP_ENV = "STENT_BENCH_LOOP"


def bench_loop() -> LoopFactory | None:
    return loop_factory(os.environ.get(LOOP_ENV, "auto"))


@pytest.fixture
def run() -> Iterator[Callable[[Coroutine[Any, Any, Any]], Any]]:
    """Runs a coroutine on the test's own event loop (the same loop for every call of the test), of the kind
    ``stent worker`` runs on."""
    with asyncio.Runner(loop_factory=bench_loop()) as runner:
        yield runner.run


@pytest.fixture
def bench(run: Callable[[Coroutine[Any, Any, Any]], Any], tmp_path: Path) -> Bench:
    return Bench(run, tmp_path)


@pytest.fixture
def sizes() -> Any:
    """The workload sizes of this session (the issue's, scaled by STENT_BENCH_SCALE)."""
    return sizes_for_session()


@pytest.fixture(scope="session")
def pgbench_tps() -> dict[str, Any]:
    """pgbench's simple-update rate on the PostgreSQL server, measured once per session."""
    from benchmarks.pgbench import simple_update_tps

    return asyncio.run(simple_update_tps(Servers().postgres))
