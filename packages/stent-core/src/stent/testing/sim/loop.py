# The loop drives asyncio.BaseEventLoop's own internals (_ready, _scheduled, handles' _when), which typeshed
# does not declare.
# mypy: disable-error-code="attr-defined"
"""A virtual-time asyncio event loop with no I/O, whose interleavings come from a seed.

How it works
------------
Every callback the loop runs belongs to a *node*: the worker (or the client, or the simulator itself) whose code
scheduled it.  The node is a context variable (:data:`NODE`), so it follows the code through tasks, futures and
timers the way asyncio already carries contexts: a task inherits its creator's node, and a callback scheduled
while a node's code runs belongs to that node.

Each node has its own first-in-first-out ready queue, which keeps asyncio's promise that callbacks run in the
order they were scheduled *within a process*.  Between nodes nothing is promised (they are separate processes in
a real fleet), so each step of the loop picks the node to run next from the seeded random source.  Timers due at
the same virtual instant are also shuffled.  Different seeds therefore explore different interleavings, and one
seed always replays the same one: nothing here depends on wall time, hashing or object addresses.

Time never passes while something is runnable.  When no node can run, the clock jumps to the next timer.  When
the only timers left are a fleet's idle polling (see :meth:`SimLoop.call_idle_at`), an optional *compressor*
may allow a longer jump, straight to the next moment at which anything can happen; this is what lets a workflow
that sleeps for 30 days finish in a fraction of a second.

Faults act here too: a node can be *frozen* until a virtual time (a process paused by the operating system: its
timers come due, but nothing of it runs until it thaws) or forever (a crashed process; the simulator cancels its
tasks once the run is over).
"""

from __future__ import annotations

import asyncio
import contextvars
import heapq
import random
from collections import deque
from collections.abc import Callable
from typing import Any

NODE: contextvars.ContextVar[str] = contextvars.ContextVar("stent_sim_node", default="sim")
"""The node (worker incarnation, ``client`` or ``sim``) whose code is running."""

FOREVER = float("inf")


class SimulationStuck(RuntimeError):
    """Nothing can run and no timer is scheduled: the simulated program waits for something that never comes."""


class IdleTimerHandle(asyncio.TimerHandle):
    """A timer that only polls (a worker's or waiter's idle loop): the compressor may fire it late."""

    __slots__ = ()


class SimLoop(asyncio.BaseEventLoop):
    """An event loop on virtual time, for the simulator; see the module docstring."""

    def __init__(self, rng: random.Random) -> None:
        super().__init__()
        self._now = 0.0
        self._rng = rng
        self._queues: dict[str, deque[asyncio.Handle]] = {}
        self._frozen: dict[str, float] = {}
        self.tasks_by_node: dict[str, list[asyncio.Task[Any]]] = {}
        #: Given the time of the next timer, returns the latest time the clock may jump to (see module doc).
        self.compressor: Callable[[float], float] | None = None
        #: Called with a node before one of its callbacks runs; returning False means the callback was held.
        self.before_step: Callable[[str], bool] | None = None
        self.steps = 0
        self.jumps = 0
        self.compressed = 0.0
        self.set_exception_handler(_quiet_exception_handler)

    # -- time ------------------------------------------------------------------------------------------------

    def time(self) -> float:
        return self._now

    def call_idle_at(self, when: float, callback: Callable[..., object], *args: Any) -> asyncio.TimerHandle:
        """Like ``call_at``, for a timer that only polls: the compressor may fire it late."""
        self._check_closed()
        timer = IdleTimerHandle(when, callback, args, self, None)
        heapq.heappush(self._scheduled, timer)
        timer._scheduled = True
        return timer

    # -- nodes -----------------------------------------------------------------------------------------------

    def create_task(self, coro: Any, *, name: Any = None, context: contextvars.Context | None = None) -> Any:
        task = super().create_task(coro, name=name, context=context)
        node = context.get(NODE, "sim") if context is not None else NODE.get()
        tasks = self.tasks_by_node.setdefault(node, [])
        if len(tasks) > 64 and len(tasks) % 64 == 0:
            tasks[:] = [t for t in tasks if not t.done()]
        tasks.append(task)
        return task

    def freeze(self, node: str, until: float = FOREVER) -> None:
        """Run nothing of ``node`` until virtual time ``until`` (forever: it crashed)."""
        self._frozen[node] = max(until, self._frozen.get(node, 0.0))
        if until != FOREVER:
            self.call_at(until, self._thaw_if_due, node, context=_sim_context())

    def thaw(self, node: str) -> None:
        self._frozen.pop(node, None)

    def _thaw_if_due(self, node: str) -> None:
        if self._frozen.get(node, FOREVER) <= self._now:
            del self._frozen[node]

    def is_frozen(self, node: str) -> bool:
        return node in self._frozen

    # -- the scheduler ---------------------------------------------------------------------------------------

    def _process_events(self, event_list: Any) -> None:  # no I/O, ever
        return None

    def _write_to_self(self) -> None:
        return None

    def _intake(self) -> None:
        ready = self._ready
        queues = self._queues
        while ready:
            handle = ready.popleft()
            node = handle._context.get(NODE, "sim")
            queue = queues.get(node)
            if queue is None:
                queue = queues[node] = deque()
            queue.append(handle)

    def _runnable(self) -> list[str]:
        frozen = self._frozen
        return [node for node, queue in self._queues.items() if queue and node not in frozen]

    def _run_once(self) -> None:
        scheduled = self._scheduled
        if scheduled and scheduled[0]._when <= self._now:
            self._collect_due()  # timers that came due meanwhile join the queues, as in asyncio's own loop
        self._intake()
        nodes = self._runnable()
        if not nodes:
            self._advance()
            self._intake()
            nodes = self._runnable()
            if not nodes:
                return
        node = nodes[0] if len(nodes) == 1 else nodes[self._rng.randrange(len(nodes))]
        if self.before_step is not None and not self.before_step(node):
            return
        handle = self._queues[node].popleft()
        if handle._cancelled:
            return
        self.steps += 1
        handle._run()

    def _next_timer(self) -> asyncio.TimerHandle | None:
        scheduled = self._scheduled
        while scheduled and scheduled[0]._cancelled:
            self._timer_cancelled_count -= 1
            heapq.heappop(scheduled)._scheduled = False
        return scheduled[0] if scheduled else None

    def _advance(self) -> None:
        """Nothing can run: move the clock to the next timer (or further, when the compressor allows)."""
        first = self._next_timer()
        if first is None:
            if self._stopping:
                return
            raise SimulationStuck(
                "nothing can run and no timer is pending: the simulated code waits for something that never comes"
            )
        target = first._when
        if self.compressor is not None and isinstance(first, IdleTimerHandle):
            significant = min(
                (h._when for h in self._scheduled if not h._cancelled and not isinstance(h, IdleTimerHandle)),
                default=FOREVER,
            )
            allowed = min(self.compressor(target), significant)
            if allowed > target:
                self.compressed += allowed - target
                target = allowed
        if target > self._now:
            self._now = target
            self.jumps += 1
        self._collect_due()

    def _collect_due(self) -> None:
        due: list[asyncio.TimerHandle] = []
        scheduled = self._scheduled
        while scheduled and scheduled[0]._when <= self._now:
            handle = heapq.heappop(scheduled)
            handle._scheduled = False
            if not handle._cancelled:
                due.append(handle)
        # Timers due at the same instant have no order a program may rely on: shuffle each group.
        start = 0
        for index in range(1, len(due) + 1):
            if index == len(due) or due[index]._when != due[start]._when:
                if index - start > 1:
                    group = due[start:index]
                    self._rng.shuffle(group)
                    due[start:index] = group
                start = index
        self._ready.extend(due)

    # -- what a simulation must never do ---------------------------------------------------------------------

    def run_in_executor(self, executor: Any, func: Any, *args: Any) -> Any:  # type: ignore[override]
        raise RuntimeError("the simulation has no threads: run_in_executor is not available inside it")

    async def getaddrinfo(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the simulation has no network")

    async def create_connection(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the simulation has no network")


def _sim_context() -> contextvars.Context:
    context = contextvars.copy_context()
    context.run(NODE.set, "sim")
    return context


def node_context(node: str) -> contextvars.Context:
    """A fresh context whose code belongs to ``node``."""
    context = contextvars.Context()
    context.run(NODE.set, node)
    return context


def _quiet_exception_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    # Crashed workers' tasks are abandoned mid-flight on purpose; asyncio's complaints about them are noise here.
    return None
