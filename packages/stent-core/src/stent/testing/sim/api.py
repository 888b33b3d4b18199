"""``simulate()``: run a fleet deterministically from a seed, and report what happened."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from stent.durations import parse_duration
from stent.errors import ConfigurationError, LeaseLost, StorageUnavailable
from stent.executor import Stent
from stent.memory import MemoryStorage
from stent.testing.sim.clock import EPOCH
from stent.testing.sim.faults import FaultMix
from stent.testing.sim.fleet import FleetConfig, Simulation, _since_epoch
from stent.testing.sim.loop import NODE, SimulationStuck
from stent.testing.sim.scenario import Dispatch, Outcome, Scenario, Script, Signal, SimResult
from stent.testing.sim.usercode import instrumented_functions

_ACTIVE: list[Simulation] = []


def check(condition: object, message: str) -> None:
    """Assert ``condition`` from inside simulated code: a false one is recorded as a violation of the run.

    Outside a simulation it is a plain assertion.  Use it for what your workflows promise ("an order is never
    charged twice"); raising AssertionError inside a durable function would only fail that task.
    """
    if _ACTIVE:
        _ACTIVE[-1].checker.user_check(condition, message)
    elif not condition:
        raise AssertionError(message)


def simulate(
    dispatches: Sequence[Dispatch | Sequence[Any]] = (),
    *,
    seed: int = 0,
    faults: FaultMix | str | None = None,
    workers: int | Sequence[Mapping[str, Any]] = 3,
    duration: float | str | timedelta = "1d",
    heal_at: float | str | timedelta | None = None,
    signals: Sequence[Signal] = (),
    script: Script | None = None,
    serve_options: Mapping[str, Any] | None = None,
    executor_options: Mapping[str, Any] | None = None,
    storage: MemoryStorage | Callable[[], MemoryStorage] | None = None,
    storage_latency: float = 0.02,
    compress_idle: bool = True,
    max_steps: int = 2_000_000,
    check: bool = False,
    quiet: bool = False,
    scenario: Scenario | None = None,
    reproduce: str | None = None,
) -> SimResult:
    """Run ``workers`` real stent workers over ``dispatches`` for up to ``duration`` of virtual time.

    Every choice (interleavings, faults, ids, retry jitter) comes from ``seed``: the same seed gives the same
    trace.  ``faults`` is a :class:`FaultMix` or its text form (``"crash,storage,notify"``); faults stop at
    ``heal_at`` (half of ``duration`` by default), and every execution must finish by ``duration``.
    ``workers`` is a count, or one mapping of ``serve()`` options per worker (over ``serve_options``).
    ``signals`` are sent at their times; ``script(control)`` may dispatch, signal and sleep as it likes.
    The run stops early after 20 violations, or after ``max_steps`` loop steps (reported as a livelock).
    With ``check=True`` a broken invariant raises :class:`SimulationFailed` (with the reproduction command);
    otherwise a failing run prints its report (seed, options, command, violations) to stderr unless ``quiet``.
    """
    mix = FaultMix.parse(faults)
    total = parse_duration(duration, name="duration")
    heal = total / 2 if heal_at is None else parse_duration(heal_at, allow_zero=True, name="heal_at")
    if heal > total:
        raise ConfigurationError(f"heal_at ({heal:g}s) must not be after the end of the run ({total:g}s)")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigurationError(f"seed must be an int, got {seed!r}")
    fleet = _worker_options(workers, serve_options)
    if callable(storage) and not isinstance(storage, MemoryStorage):
        storage = storage()
    store = storage if storage is not None else MemoryStorage()
    if not isinstance(store, MemoryStorage):
        raise ConfigurationError("the simulator runs on MemoryStorage (or a subclass of it)")
    config = FleetConfig(
        seed=seed,
        faults=mix,
        workers=fleet,
        duration=total,
        heal_at=heal,
        dispatches=tuple(Dispatch.of(d) for d in dispatches),
        signals=tuple(signals),
        script=script,
        executor_options=dict(executor_options or {}),
        storage=store,
        storage_latency=storage_latency,
        compress_idle=compress_idle,
        max_steps=max_steps,
    )
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        result = _run(config)
    else:
        result = _run_in_thread(config)  # called from async code: the simulation needs a loop of its own
    command = reproduce or _reproduce_command(scenario, config, len(fleet))
    settings = {
        "workers": f"{len(fleet)}" + (f" with {dict(serve_options)}" if serve_options else ""),
        "duration": f"{total:g}s, faults heal at {heal:g}s",
        "storage": type(store).__name__,
    }
    leases = [parse_duration(w.get("lease_duration", 300.0), name="lease_duration") for w in fleet]
    if 2 * mix.skew >= min(leases):
        settings["warning"] = (
            f"clocks up to {2 * mix.skew:g}s apart reach the {min(leases):g}s lease: a lease cannot protect a task"
            " then, so a task may run on two workers and a finished one start again"
        )
    result = _with(result, settings=settings, reproduce=command)
    if check:
        return result.check()
    if not result.ok and not quiet:
        # Say which seed failed and how to repeat it even if the caller only asserts ``result.ok``.
        print(result.report(trace_lines=0), file=sys.stderr)
    return result


def _worker_options(
    workers: int | Sequence[Mapping[str, Any]], serve_options: Mapping[str, Any] | None
) -> tuple[dict[str, Any], ...]:
    base = dict(serve_options or {})
    for reserved in ("worker_id", "lifecycle"):
        if reserved in base:
            raise ConfigurationError(f"serve_options may not set {reserved}: the simulator names its workers")
    if isinstance(workers, int) and not isinstance(workers, bool):
        if workers < 1:
            raise ConfigurationError(f"workers must be at least 1, got {workers}")
        return tuple(dict(base) for _ in range(workers))
    if isinstance(workers, Sequence) and workers and all(isinstance(w, Mapping) for w in workers):
        return tuple({**base, **w} for w in workers)
    raise ConfigurationError(f"workers is a count or a list of serve() option mappings, got {workers!r}")


def _run_in_thread(config: FleetConfig) -> SimResult:
    box: list[SimResult | BaseException] = []

    def target() -> None:
        try:
            box.append(_run(config))
        except BaseException as exc:
            box.append(exc)

    thread = threading.Thread(target=target, name="stent-sim")
    thread.start()
    thread.join()
    if isinstance(box[0], BaseException):
        raise box[0]
    return box[0]


def _run(config: FleetConfig) -> SimResult:
    sim = Simulation(config)
    loop = sim.loop
    started = time.perf_counter()  # noqa: STENT-CLOCK (reports the wall time a simulation took)
    try:
        with _sandbox(sim):
            try:
                try:
                    loop.run_until_complete(sim.main())
                except SimulationStuck as exc:
                    sim.checker.violate("simulation stuck", str(exc))
                    sim.stopped_early = True
                dispatched = list(sim.control.executions) if sim.control else []
                tasks_of: dict[str, list[Any]] = {}
                for task in sim.storage._tasks.values():
                    tasks_of.setdefault(task.execution_id, []).append(task)
                sim.checker.finish(
                    dispatched + [e for e in sim.storage._executions if e not in dispatched],
                    healed_at=config.heal_at,
                    tasks_of=tasks_of,
                    liveness=not sim.stopped_early,
                )
                outcomes = _outcomes(sim, dispatched)
                _check_outage_failures(sim, outcomes)
            finally:
                # Even when the run itself failed, stop every simulated process before the loop closes.
                loop.run_until_complete(sim.teardown())
                loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()
    if sim.errors:
        raise sim.errors[0]
    wall = time.perf_counter() - started  # noqa: STENT-CLOCK (reports the wall time a simulation took)
    stats = {
        "virtual_seconds": round(loop.time(), 3),
        "wall_seconds": round(wall, 3),
        "loop_steps": loop.steps,
        "time_jumps": loop.jumps,
        "compressed_seconds": round(loop.compressed, 3),
        "storage_calls": sim.calls,
        "writes_checked": sim.checker.writes_checked,
        "claims_checked": sim.checker.claims_checked,
        "user_code_runs": sim.checker.runs_started,
        "worker_processes": sum(slot.incarnation for slot in sim.slots),
        "faults": dict(sorted(sim.faults.counts.items())),
        "digest": sim.digest,
    }
    return SimResult(
        seed=config.seed,
        faults=config.faults,
        settings={},
        outcomes=outcomes,
        trace=tuple(sim.trace),
        violations=tuple(sim.checker.violations),
        stats=stats,
        reproduce="",
    )


def _outcomes(sim: Simulation, dispatched: list[str]) -> dict[str, Outcome]:
    client = sim.client
    outcomes: dict[str, Outcome] = {}
    executions = sim.storage._executions
    for execution_id in dispatched + [e for e in executions if e not in dispatched]:
        execution = executions.get(execution_id) or sim.checker.finished.get(execution_id)
        if execution is None or client is None:
            outcomes[execution_id] = Outcome(execution_id, "?", "lost", None, None)
            continue
        finished = execution.state.terminal
        outcomes[execution_id] = Outcome(
            execution_id=execution_id,
            function=execution.function,
            state=execution.state.value,
            result=client._outcome(execution) if finished else None,
            finished_at=round(_since_epoch(execution.finished_at), 6)
            if finished and execution.finished_at
            else None,
        )
    return outcomes


def _check_outage_failures(sim: Simulation, outcomes: Mapping[str, Outcome]) -> None:
    """Stent retries or gives work back through outages and lost leases; neither may fail a workflow."""
    for outcome in outcomes.values():
        error = getattr(outcome.result, "error", None)
        if isinstance(error, StorageUnavailable | LeaseLost):
            sim.checker.violate(
                "outages never fail a workflow",
                f"execution {outcome.execution_id} ({outcome.function}) failed with {type(error).__name__}: {error}",
            )


class _TraceLogHandler(logging.Handler):
    """Stent's own log lines, from inside the simulation, go into the trace with the node that logged them."""

    def __init__(self, sim: Simulation) -> None:
        super().__init__(logging.INFO)
        self.sim = sim

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            message += f" [{type(record.exc_info[1]).__name__}: {record.exc_info[1]}]"
        self.sim.record(f"log {record.levelname.lower()} {record.name}: {message}")
        if record.levelno >= logging.ERROR:
            # Stent logs at ERROR only where it caught a bug of its own (or of a plugin): never expected.
            self.sim.checker.violate("no internal errors", f"{record.name} logged: {message}")


@contextlib.contextmanager
def _sandbox(sim: Simulation) -> Iterator[None]:
    """Make the process deterministic for the run, and put everything back afterwards.

    Ids come from ``uuid.uuid4`` (patched to draw from the seed), user code's module-level ``random`` is seeded,
    the client is the current executor (auto-dispatch), stent's logs feed the trace instead of the console, and
    every durable function is watched (see :mod:`stent.testing.sim.usercode`).
    """
    seed = sim.config.seed
    ids = random.Random(f"{seed}:ids")
    saved_uuid4 = uuid.uuid4
    saved_random = random.getstate()  # noqa: STENT-CLOCK (seeds the user's module-level random, then restores it)
    saved_current = Stent._current
    logger = logging.getLogger("stent")
    saved_level, saved_propagate = logger.level, logger.propagate
    handler = _TraceLogHandler(sim)
    uuid.uuid4 = lambda: uuid.UUID(int=ids.getrandbits(128), version=4)
    random.seed(f"{seed}:global")  # noqa: STENT-CLOCK (user code calling random.random() repeats by seed)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    _ACTIVE.append(sim)
    token = NODE.set("sim")
    try:
        with instrumented_functions(sim):
            yield
    finally:
        NODE.reset(token)
        _ACTIVE.remove(sim)
        logger.removeHandler(handler)
        logger.setLevel(saved_level)
        logger.propagate = saved_propagate
        Stent._current = saved_current
        random.setstate(saved_random)  # noqa: STENT-CLOCK (puts the user's module-level random back)
        uuid.uuid4 = saved_uuid4


def _with(result: SimResult, **changes: Any) -> SimResult:
    import attrs

    return attrs.evolve(result, **changes)


def _reproduce_command(scenario: Scenario | None, config: FleetConfig, workers: int) -> str:
    faults = config.faults.spec()
    found = _scenario_source(scenario) if scenario is not None else None
    if found is None:
        return f"simulate(..., seed={config.seed}, faults={faults!r}) with the same arguments"
    path, name = found
    parts = ["python", "-m", "stent.testing.sim"]
    parts += ["--module", path, "--scenario", name, "--seed", str(config.seed), "--faults", faults]
    assert scenario is not None
    if workers != (scenario.workers if isinstance(scenario.workers, int) else len(scenario.workers)):
        parts += ["--workers", str(workers)]
    if config.duration != parse_duration(scenario.duration, name="duration"):
        parts += ["--duration", f"{config.duration:g}"]
    default_heal = (
        config.duration / 2 if scenario.heal_at is None else parse_duration(scenario.heal_at, name="heal_at")
    )
    if config.heal_at != default_heal:
        parts += ["--heal-at", f"{config.heal_at:g}"]
    return " ".join(parts)


def _scenario_source(scenario: Scenario) -> tuple[str, str] | None:
    """The file and the module-level name a scenario can be found under, for the reproduction command."""
    # Look first where the scenario's own functions live, then everywhere.
    homes = [getattr(Dispatch.of(d).fn, "__module__", None) for d in scenario.dispatches]
    homes.append(getattr(scenario.script, "__module__", None))
    first = [sys.modules[m] for m in dict.fromkeys(homes) if m in sys.modules]
    for module in first + list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if not path:
            continue
        for name, value in list(vars(module).items()):
            if value is scenario:
                try:
                    shown = os.path.relpath(path)
                except ValueError:
                    shown = path
                return (shown if not shown.startswith("..") else str(Path(path))), name
    return None


__all__ = ["EPOCH", "check", "simulate"]
