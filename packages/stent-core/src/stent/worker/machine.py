"""The worker state machine: every decision a worker makes, and nothing it does.

How it works
------------
A worker's life is a handful of decisions repeated: when to ask storage for work and how much, when to renew
leases, when to stop.  This module makes those decisions and nothing else.  It is sans-IO in the manner of h11:
the async shell (``stent.worker.shell``) feeds it *events* (a claim came back, a task finished, a notification
arrived, time passed, a drain was requested) and performs the *commands* it returns (claim up to n tasks, renew
these leases, stop this task, suspend those waiting tasks, stop).  It never awaits, never reads a clock (each
event carries ``now``, a monotonic reading), and never touches storage, so the simulator and unit tests drive it
directly.

The lifecycle is a table: ``_TRANSITIONS[(state, event type)]`` gives the next state; an event that has no row
for the current state leaves it unchanged.

    starting --Started--> ready --DrainRequested--> draining --(nothing held)--> stopped
    starting --DrainRequested--> draining

Slots.  ``max_concurrency`` bounds tasks *running code*.  A task awaiting steps is *waiting* and gives its slot
back; when it resumes it takes one again even if that briefly exceeds the bound, because making a resumed task
wait for a slot could deadlock a full worker whose running tasks wait on it.  A task whose code has ended is
*finishing* while its outcome is written: its slot is free at once (the next claim goes out beside that write),
its lease is held until the write is done.

Polling.  After a claim that found nothing the next claim waits ``poll_interval``, which then grows by
``poll_backoff_factor`` up to ``poll_interval_max``.  A claim that found work, or a notification, resets it to
the minimum.  A claim that filled every slot it asked for means more work is probably ready, so the next claim
happens as soon as a slot frees.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

import attrs


class LifecycleState(str, enum.Enum):
    STARTING = "starting"
    READY = "ready"
    DRAINING = "draining"
    STOPPED = "stopped"


# -- events (in) ---------------------------------------------------------------------------------------------


@attrs.frozen
class Started:
    now: float


@attrs.frozen
class Tick:
    now: float


@attrs.frozen
class ClaimDone:
    now: float
    requested: int
    claimed: tuple[str, ...]
    failed: bool = False


@attrs.frozen
class TaskWaiting:
    now: float
    task_id: str
    limited: bool = False  # its function has a max_concurrent (the slot it frees may unblock a held-back task)


@attrs.frozen
class TaskResumed:
    now: float
    task_id: str


@attrs.frozen
class TaskFinishing:
    """The task's code has ended; its final write (completion, failure, cancellation) is on its way."""

    now: float
    task_id: str


@attrs.frozen
class TaskEnded:
    now: float
    task_id: str
    limited: bool = False  # its function has a max_concurrent (the slot it frees may unblock a held-back task)


@attrs.frozen
class WorkNotified:
    now: float


@attrs.frozen
class RenewDone:
    now: float
    renewed: frozenset[str]
    asked: frozenset[str]
    failed: bool = False
    #: Renewed tasks whose execution is cancelling or finished: their code must be interrupted.
    stopping: frozenset[str] = frozenset()


@attrs.frozen
class DrainRequested:
    now: float
    timeout: float | None = None


Event = (
    Started
    | Tick
    | ClaimDone
    | TaskWaiting
    | TaskResumed
    | TaskFinishing
    | TaskEnded
    | WorkNotified
    | RenewDone
    | DrainRequested
)

# -- commands (out) ------------------------------------------------------------------------------------------


@attrs.frozen
class Claim:
    limit: int


@attrs.frozen
class RenewLeases:
    task_ids: tuple[str, ...]


@attrs.frozen
class AbandonTask:
    """Stop running a task locally without writing anything: its lease is gone."""

    task_id: str
    reason: str


@attrs.frozen
class InterruptTask:
    """Raise CancelledError into a task's code (its execution is cancelling); it then records the cancellation."""

    task_id: str


@attrs.frozen
class SuspendWaiting:
    """Give back the tasks that are only waiting (draining): suspend them so another worker resumes them."""

    task_ids: tuple[str, ...]


@attrs.frozen
class ReleaseRunning:
    """Drain timed out: stop these tasks and hand them back unfinished."""

    task_ids: tuple[str, ...]


@attrs.frozen
class Housekeep:
    """Periodic chores: end executions past their deadline, refresh this worker's heartbeat row, cleanup."""


@attrs.frozen
class Stop:
    pass


Command = Claim | RenewLeases | AbandonTask | InterruptTask | SuspendWaiting | ReleaseRunning | Housekeep | Stop

_TRANSITIONS: dict[tuple[LifecycleState, type], LifecycleState] = {
    (LifecycleState.STARTING, Started): LifecycleState.READY,
    (LifecycleState.STARTING, DrainRequested): LifecycleState.DRAINING,
    (LifecycleState.READY, DrainRequested): LifecycleState.DRAINING,
}


@attrs.define
class WorkerConfig:
    max_concurrency: int
    poll_interval: float
    poll_interval_max: float
    poll_backoff_factor: float
    heartbeat_interval: float
    housekeeping_interval: float = 1.0


class WorkerMachine:
    """Decides what a worker does next; see the module docstring."""

    def __init__(self, config: WorkerConfig) -> None:
        self.config = config
        self.state = LifecycleState.STARTING
        self.running: set[str] = set()
        self.waiting: set[str] = set()
        self.finishing: set[str] = set()  # code ended, final write on its way: no slot, lease still held
        self.handing_back: set[str] = set()  # told to suspend or release; held until the shell reports the end
        self._interrupted: set[str] = set()
        self.poll_delay = config.poll_interval
        self._next_claim_at: float | None = None
        self._claim_in_flight = False
        self._last_claim_full = False
        self._last_claim_found_work = False
        self._notified_during_claim = False
        self._next_heartbeat_at: float | None = None
        self._renew_in_flight = False
        self._drain_deadline: float | None = None
        self._drain_handed_back = False
        self._next_housekeeping_at: float | None = None

    # -- queries -------------------------------------------------------------------------------------------

    @property
    def held(self) -> set[str]:
        return self.running | self.waiting | self.finishing | self.handing_back

    @property
    def free_slots(self) -> int:
        return max(0, self.config.max_concurrency - len(self.running))

    def next_deadline(self) -> float | None:
        """The monotonic time at which the machine wants a :class:`Tick`, if any."""
        claim_at = None if self._claim_in_flight else self._next_claim_at
        heartbeat_at = None if self._renew_in_flight else self._next_heartbeat_at
        # The drain deadline matters only while tasks run (it releases them); a passed one with nothing running
        # would ask for a tick in the past forever, a busy loop until the next event.
        drain_at = None if self._drain_handed_back or not self.running else self._drain_deadline
        times = [t for t in (claim_at, heartbeat_at, drain_at, self._next_housekeeping_at) if t is not None]
        return min(times) if times else None

    # -- the one entry point -------------------------------------------------------------------------------

    def handle(self, event: Event) -> list[Command]:
        commands = self._apply(event)
        commands.extend(self._decide(event.now))
        return commands

    def handle_all(self, events: Iterable[Event], now: float) -> list[Command]:
        """Every event, in order, then one decision at ``now``: fifty tasks finishing in one turn of the loop make
        one claim for fifty slots, not a claim for the first and another for the rest."""
        commands: list[Command] = []
        for event in events:
            commands.extend(self._apply(event))
        commands.extend(self._decide(now))
        return commands

    def _apply(self, event: Event) -> list[Command]:
        """What ``event`` changes, and the commands it calls for by itself (tasks whose lease is gone)."""
        self.state = _TRANSITIONS.get((self.state, type(event)), self.state)
        match event:
            case Started(now):
                self._next_claim_at = now
                self._next_housekeeping_at = now
            case ClaimDone(now, requested, claimed, failed):
                self._on_claim_done(now, requested, claimed, failed)
            case TaskWaiting(_, task_id, limited):
                if task_id in self.running:
                    self.running.discard(task_id)
                    self.waiting.add(task_id)
                    self._rearm_claim(event.now, limited)
            case TaskResumed(_, task_id):
                if task_id in self.waiting:
                    self.waiting.discard(task_id)
                    self.running.add(task_id)
            case TaskFinishing(now, task_id):
                if task_id in self.running:
                    self.running.discard(task_id)
                    self.finishing.add(task_id)
                    # Not as a limited function's slot: storage counts the task running until its write lands,
                    # and TaskEnded re-arms for that.
                    self._rearm_claim(now, False)
            case TaskEnded(now, task_id, limited):
                self.running.discard(task_id)
                self.finishing.discard(task_id)
                self.waiting.discard(task_id)
                self.handing_back.discard(task_id)
                self._interrupted.discard(task_id)
                self._rearm_claim(now, limited)
            case WorkNotified(now):
                self.poll_delay = self.config.poll_interval
                self._next_claim_at = now
                # A claim already on its way may have looked before this work existed: look again after it.
                self._notified_during_claim = self._claim_in_flight
            case RenewDone():
                return self._on_renew_done(event)
            case DrainRequested(now, timeout):
                if timeout is not None and self._drain_deadline is None:
                    self._drain_deadline = now + timeout
            case Tick():
                pass
        return []

    # -- transitions ---------------------------------------------------------------------------------------

    def _rearm_claim(self, now: float, limited: bool) -> None:
        # A freed slot is worth a claim at once when the last claim filled every slot (more may be ready), or when
        # it found work and the slot was a limited function's (a task may be held back only by the max_concurrent
        # limit this very completion just relaxed).  After a partial claim the queue was drained: the next claim
        # is already scheduled, and one now would only find nothing.
        worth_it = self._last_claim_full or (limited and self._last_claim_found_work)
        if worth_it and (self._next_claim_at is None or self._next_claim_at > now):
            self._next_claim_at = now

    def _on_claim_done(self, now: float, requested: int, claimed: tuple[str, ...], failed: bool) -> None:
        self._claim_in_flight = False
        self.running.update(claimed)
        self._last_claim_found_work = bool(claimed) and not failed
        if claimed:
            self.poll_delay = self.config.poll_interval
            self._last_claim_full = len(claimed) >= requested
            self._next_claim_at = now if self._last_claim_full else now + self.poll_delay
        else:
            self._last_claim_full = False
            self._next_claim_at = now + self.poll_delay
            self.poll_delay = min(self.poll_delay * self.config.poll_backoff_factor, self.config.poll_interval_max)
        if failed:
            self._last_claim_full = False
        if self._notified_during_claim:
            self._notified_during_claim = False
            self.poll_delay = self.config.poll_interval
            self._next_claim_at = now

    def _on_renew_done(self, event: RenewDone) -> list[Command]:
        self._renew_in_flight = False
        commands: list[Command] = []
        if not event.failed:
            for task_id in sorted(event.asked - event.renewed):
                if task_id in self.held:
                    self.running.discard(task_id)
                    self.finishing.discard(task_id)
                    self.waiting.discard(task_id)
                    self.handing_back.discard(task_id)
                    commands.append(AbandonTask(task_id, "lease lost: another worker took the task over"))
            for task_id in sorted(event.stopping & event.renewed):
                if task_id in self.held and task_id not in self._interrupted:
                    self._interrupted.add(task_id)
                    commands.append(InterruptTask(task_id))
        return commands

    def _decide(self, now: float) -> list[Command]:
        commands: list[Command] = []
        if self.state is LifecycleState.STOPPED:
            return commands
        if self.state is LifecycleState.READY:
            commands.extend(self._maybe_claim(now))
            if self._next_housekeeping_at is not None and now >= self._next_housekeeping_at:
                self._next_housekeeping_at = now + self.config.housekeeping_interval
                commands.append(Housekeep())
        elif self.state is LifecycleState.DRAINING:
            commands.extend(self._drain(now))
        commands.extend(self._maybe_heartbeat(now))
        if self.state is LifecycleState.DRAINING and not self.held and not self._claim_in_flight:
            self.state = LifecycleState.STOPPED
            self._next_claim_at = self._next_heartbeat_at = self._drain_deadline = None
            self._next_housekeeping_at = None
            commands.append(Stop())
        return commands

    def _maybe_claim(self, now: float) -> Iterable[Command]:
        if self._claim_in_flight or self._next_claim_at is None or now < self._next_claim_at:
            return ()
        slots = self.free_slots
        if slots <= 0:
            self._next_claim_at = None  # re-armed when a slot frees
            return ()
        self._claim_in_flight = True
        self._next_claim_at = None
        return (Claim(slots),)

    def _maybe_heartbeat(self, now: float) -> Iterable[Command]:
        if not self.held:
            self._next_heartbeat_at = None
            return ()
        if self._next_heartbeat_at is None:
            self._next_heartbeat_at = now + self.config.heartbeat_interval
            return ()
        if now < self._next_heartbeat_at or self._renew_in_flight:
            return ()
        self._renew_in_flight = True
        self._next_heartbeat_at = now + self.config.heartbeat_interval
        return (RenewLeases(tuple(sorted(self.held))),)

    def _drain(self, now: float) -> Iterable[Command]:
        self._next_claim_at = None
        self._next_housekeeping_at = None
        commands: list[Command] = []
        if self.waiting:
            commands.append(SuspendWaiting(tuple(sorted(self.waiting))))
            self.handing_back |= self.waiting
            self.waiting = set()
        if (
            self._drain_deadline is not None
            and now >= self._drain_deadline
            and self.running
            and not self._drain_handed_back
        ):
            self._drain_handed_back = True
            commands.append(ReleaseRunning(tuple(sorted(self.running))))
            self.handing_back |= self.running
            self.running = set()
        return commands
