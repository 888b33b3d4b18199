"""One simulation run: a fleet of real workers and a client on a :class:`~stent.testing.sim.loop.SimLoop`.

Each worker process is a real :class:`~stent.Stent` executor running ``serve()`` (the real worker machine, shell
and engine) with its own :class:`~stent.testing.sim.storage.SimStorage` onto the shared memory storage, its own
:class:`~stent.testing.sim.notifier.SimNotifier`, a :class:`~stent.testing.sim.clock.SimClock` (offset when clocks
are skewed) and a random source derived from the seed.  Its code runs as its own loop node, so the loop can
interleave it with the others, freeze it (a pause) or kill it (a crash), at any callback, which is any await.

A crashed worker keeps its leases: it is frozen for good and every storage call it would still make is refused.
A new process with a fresh worker id takes its place after a while, as a supervisor would restart it.

The run ends when the scenario's script is done and every execution has finished, or at ``duration``.  Faults
stop at ``heal_at``; from then on every execution must finish before ``duration`` (the liveness invariant).
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import random
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import attrs

from stent.durations import parse_duration
from stent.errors import StentError
from stent.executor import Stent
from stent.memory import MemoryStorage
from stent.testing.sim.clock import EPOCH, SimClock
from stent.testing.sim.faults import FaultInjector, FaultMix
from stent.testing.sim.invariants import InvariantChecker
from stent.testing.sim.loop import FOREVER, NODE, SimLoop, node_context
from stent.testing.sim.notifier import SimBus, SimNotifier
from stent.testing.sim.scenario import Dispatch, Script, Signal, SimControl
from stent.testing.sim.storage import SimStorage
from stent.worker.machine import LifecycleState

_ADDRESS = re.compile(r"0x[0-9a-fA-F]+")
# Leases are extended at least this long before they expire when the compressor lets time jump.
_LEASE_MARGIN = 2.0


@attrs.frozen
class FleetConfig:
    seed: int
    faults: FaultMix
    workers: tuple[dict[str, Any], ...]
    duration: float
    heal_at: float
    dispatches: tuple[Dispatch, ...]
    signals: tuple[Signal, ...]
    script: Script | None
    executor_options: Mapping[str, Any]
    storage: MemoryStorage
    storage_latency: float
    compress_idle: bool
    max_steps: int = 2_000_000
    max_violations: int = 20


@attrs.define
class WorkerSlot:
    """A place in the fleet, filled by one worker process at a time (a new one after each crash)."""

    name: str
    options: dict[str, Any]
    offset: float
    lease: float
    incarnation: int = 0
    node: str = ""
    executor: Stent | None = None


class Simulation:
    def __init__(self, config: FleetConfig) -> None:
        self.config = config
        seed = config.seed
        self.loop = SimLoop(random.Random(f"{seed}:schedule"))
        self.trace: list[str] = []
        self.tracing = True
        self._digest = hashlib.sha256()
        self.calls = 0
        self.faults = FaultInjector(
            config.faults,
            random.Random(f"{seed}:faults"),
            self.loop,
            heal_at=config.heal_at,
            latency=config.storage_latency,
            record=self.record,
        )
        self.storage = config.storage
        self.dead: set[str] = set()
        self.clocks: dict[str, SimClock] = {}
        self.idle_tasks: set[asyncio.Task[Any]] = set()
        self.checker = InvariantChecker(
            self.storage, now=self.loop.time, clock_of=lambda node: self.clocks[node].now(), record=self._violated
        )
        self.bus = SimBus(self.faults)
        self.slots = [
            WorkerSlot(
                name=f"w{i + 1}",
                options=options,
                offset=self.faults.clock_offset(),
                lease=_seconds(options.get("lease_duration", 300.0)),
            )
            for i, options in enumerate(config.workers)
        ]
        self._slot_of_node: dict[str, WorkerSlot] = {}
        self.loop.before_step = self._before_step
        if config.compress_idle:
            self.loop.compressor = self._compress_until
        self.executors: list[Stent] = []
        self.client: Stent | None = None
        self.control: SimControl | None = None
        self._done = asyncio.Event()
        self._script_done = False
        #: Set when the run stopped before its natural end (too many violations, a livelock).
        self.stopped_early = False
        self.errors: list[BaseException] = []

    # -- the trace -------------------------------------------------------------------------------------------

    def record(self, text: str) -> None:
        """Add a line to the trace, stamped with virtual time and the node whose code is running."""
        if self.tracing:
            self.trace.append(f"{self.loop.time():12.3f} {NODE.get():<6} {_ADDRESS.sub('0x?', text)}")

    def record_call(self, method: str, summary: str, *, traced: bool) -> None:
        """Every storage call goes into the digest; the ones that matter also into the trace."""
        if not self.tracing:
            return
        self.calls += 1
        self._digest.update(f"{self.loop.time():.6f}|{NODE.get()}|{summary}\n".encode())
        if traced:
            self.record(summary)
        if method not in ("get_tasks", "get_execution") and self.checker.finished:
            self._maybe_done()

    def _violated(self, text: str) -> None:
        self.record(text)
        # Enough is known once this many invariants broke; a broken system may also never finish on its own.
        if len(self.checker.violations) >= self.config.max_violations and not self._done.is_set():
            self.stopped_early = True
            self._done.set()

    @property
    def digest(self) -> str:
        return self._digest.hexdigest()[:16]

    # -- time ------------------------------------------------------------------------------------------------

    def pause_for(self, seconds: float) -> asyncio.Future[None]:
        """A plain virtual delay of the calling node (storage latency); never compressed."""
        future: asyncio.Future[None] = self.loop.create_future()
        self.loop.call_at(self.loop.time() + seconds, _wake, future)
        return future

    def _compress_until(self, next_timer: float) -> float:
        """How far the clock may jump while the fleet only polls: up to the next moment anything can happen."""
        lead = max((slot.offset for slot in self.slots), default=0.0)
        limit = FOREVER
        for task in self.storage._tasks.values():
            state = task.state.value
            if state == "running":
                return next_timer  # code is running (or a parent was just woken): time must pass normally
            if state == "pending" and task.kind.value == "call":
                limit = min(limit, _since_epoch(task.scheduled_for) - lead)
            elif state == "suspended" and task.wake_at is not None:
                limit = min(limit, _since_epoch(task.wake_at) - lead)
            elif state == "waiting" and task.lease_expires_at is not None:
                limit = min(limit, _since_epoch(task.lease_expires_at) - lead - _LEASE_MARGIN)
        for execution in self.storage._executions.values():
            if execution.deadline is not None and not execution.state.terminal:
                limit = min(limit, _since_epoch(execution.deadline) - lead)
        return min(limit, self.config.duration)

    # -- processes -------------------------------------------------------------------------------------------

    def _start(self, slot: WorkerSlot) -> None:
        slot.incarnation += 1
        node = slot.name if slot.incarnation == 1 else f"{slot.name}.{slot.incarnation}"
        slot.node = node
        self._slot_of_node[node] = slot
        clock = SimClock(self.loop, slot.offset, idle_tasks=self.idle_tasks)
        self.clocks[node] = clock
        executor = Stent(
            SimStorage(self.storage, node, self, faulty=True),
            notification_backend=SimNotifier(self.bus, node),
            clock=clock,
            rng=random.Random(f"{self.config.seed}:rng:{node}"),
            **self.config.executor_options,
        )
        self.executors.append(executor)
        slot.executor = executor
        task = self.loop.create_task(self._serve(executor, slot, node), context=node_context(node))
        self.idle_tasks.add(task)

    async def _serve(self, executor: Stent, slot: WorkerSlot, node: str) -> None:
        offset = self.clocks[node].offset
        self.record(f"START worker {node}" + (f" (clock {offset:+.3f}s)" if offset else ""))
        try:
            await executor.serve(worker_id=node, **slot.options)
        except Exception as exc:
            self.record(f"worker {node} stopped with {type(exc).__name__}: {exc}")
            self.errors.append(exc)
            return
        if node not in self.dead and slot.node == node:
            # Drained for a restart: the new process comes up a moment later, as a deploy would bring it.
            self.record(f"STOP worker {node} (drained)")
            delay = self.faults.restart_delay(5.0)
            self.loop.call_at(self.loop.time() + delay, self._start, slot, context=node_context("sim"))

    def _before_step(self, node: str) -> bool:
        if self.loop.steps >= self.config.max_steps and not self._done.is_set():
            self.checker.violate(
                "progress",
                f"{self.loop.steps} loop steps by virtual time {self.loop.time():.3f}s without finishing: a livelock?",
            )
            self.stopped_early = True
            self._done.set()
        slot = self._slot_of_node.get(node)
        if slot is None or slot.node != node or node in self.dead:
            return True
        fault = self.faults.process_fault()
        if fault == "crash":
            self.record(f"FAULT crash {node} (its leases stay until they expire)")
            self.dead.add(node)
            self.bus.dead.add(node)
            self.loop.freeze(node)
            delay = self.faults.restart_delay(slot.lease)
            self.loop.call_at(self.loop.time() + delay, self._start, slot, context=node_context("sim"))
            return False
        if fault == "restart" and slot.executor is not None:
            self.record(f"FAULT restart {node}: drain it, then start a new process")
            slot.executor.request_worker_drain(timeout=slot.lease)
            return True
        if fault == "pause":
            length = self.faults.pause_length(slot.lease)
            self.record(f"FAULT pause {node} for {length:.1f}s (its lease is {slot.lease:g}s)")
            self.loop.freeze(node, self.loop.time() + length)
            return False
        return True

    # -- the client and the run ------------------------------------------------------------------------------

    def _maybe_done(self) -> None:
        if not self._script_done or self._done.is_set():
            return
        executions = self.storage._executions
        # Cheap test first: this runs after every storage call once anything has finished.
        if len(self.checker.finished) < len(executions):
            return
        if all(e.state.terminal for e in executions.values()):
            self._done.set()

    async def _drive(self, control: SimControl) -> None:
        config = self.config
        # Dispatches before signals at the same instant, each kind in the scenario's order.
        events: list[tuple[float, int, int, Dispatch | Signal]] = [
            (d.at, 0, i, d) for i, d in enumerate(config.dispatches)
        ]
        events += [(s.at, 1, i, s) for i, s in enumerate(config.signals)]
        events.sort(key=lambda e: (e[0], e[1], e[2]))
        dispatched: dict[int, str] = {}
        script = None
        if config.script is not None:
            script = asyncio.ensure_future(config.script(control))
        for at, _, index, event in events:
            if at > self.loop.time():
                await self.pause_for(at - self.loop.time())
            if isinstance(event, Dispatch):
                execution_id = await control.dispatch(event.fn, *event.args, **event.options, **event.kwargs)
                dispatched[index] = execution_id
                name = str(getattr(event.fn, "name", event.fn)).rpartition(":")[2]
                self.record(f"DISPATCH {execution_id[:8]} {name}")
            else:
                target = dispatched.get(event.to) if isinstance(event.to, int) else event.to
                if target is None:
                    raise StentError(
                        f"Signal {event.name!r} is sent to dispatch #{event.to}, which does not exist"
                    )
                try:
                    await control.send_signal(target, event.name, event.payload)
                    self.record(f"SIGNAL {event.name} to {target[:8]}")
                except StentError as exc:
                    self.record(f"SIGNAL {event.name} to {target[:8]} refused: {exc}")
        if script is not None:
            await script
        self._script_done = True
        self._maybe_done()

    async def main(self) -> None:
        client_node = "client"
        clock = SimClock(self.loop, 0.0, idle_tasks=self.idle_tasks)
        self.clocks[client_node] = clock
        client = Stent(
            SimStorage(self.storage, client_node, self, faulty=False),
            notification_backend=SimNotifier(self.bus, client_node),
            clock=clock,
            rng=random.Random(f"{self.config.seed}:rng:client"),
            **self.config.executor_options,
        )
        self.client = client
        self.control = SimControl(
            client,
            random.Random(f"{self.config.seed}:script"),
            self.pause_for,
            self.loop.time,
        )
        for slot in self.slots:
            self._start(slot)
        self.loop.call_at(self.config.heal_at, self.record, "faults healed", context=node_context("sim"))
        self.loop.call_at(self.config.duration, self._done.set, context=node_context("sim"))
        driver = self.loop.create_task(self._drive(self.control), context=node_context(client_node))
        driver.add_done_callback(self._driver_done)
        await self._done.wait()
        self.record(f"END after {self.calls} storage calls, digest {self.digest}")

    def _driver_done(self, task: asyncio.Task[None]) -> None:
        error = None if task.cancelled() else task.exception()
        if error is not None:
            self.errors.append(error)
            self._done.set()

    async def teardown(self) -> None:
        """Stop every process: nothing reaches storage any more, then every task is cancelled and awaited."""
        self.tracing = False
        self.faults.heal_at = -1.0
        self.loop.compressor = None
        self.loop.before_step = None
        nodes = list(self.loop.tasks_by_node)
        self.dead.update(nodes)
        self.bus.dead.update(nodes)
        for node in nodes:
            self.loop.thaw(node)
        me = asyncio.current_task()
        # Cancelled code may still start new tasks on its way out (a last housekeeping round, say): repeat.
        for _ in range(10):
            pending = [
                t
                for node in list(self.loop.tasks_by_node)
                for t in self.loop.tasks_by_node[node]
                if not t.done() and t is not me
            ]
            if not pending:
                break
            for task in pending:
                _close_unstarted_arguments(task)
                task.cancel()
            await asyncio.wait(pending, timeout=600.0)
        # A worker cancelled before its loop began never marked itself stopped; nothing of it runs any more.
        for executor in self.executors:
            for lifecycle in executor._lifecycles.values():
                if lifecycle.state is not LifecycleState.STOPPED:
                    lifecycle._set_state(LifecycleState.STOPPED)


def _close_unstarted_arguments(task: asyncio.Task[Any]) -> None:
    """A task cancelled before it started never awaits the coroutines it was handed: close them quietly."""
    coro = task.get_coro()
    if inspect.iscoroutine(coro) and inspect.getcoroutinestate(coro) == inspect.CORO_CREATED and coro.cr_frame:
        for value in coro.cr_frame.f_locals.values():
            if inspect.iscoroutine(value):
                value.close()


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _since_epoch(moment: datetime) -> float:
    return (moment - EPOCH).total_seconds()


def _seconds(value: Any) -> float:
    return parse_duration(value, name="lease_duration")
