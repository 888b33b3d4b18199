"""The invariants a simulation checks, watching every storage operation as it lands.

The checker sits behind the storage wrapper of every simulated process.  Before a write it notes what the write
is fenced on; after it, it compares the shared :class:`~stent.memory.MemoryStorage` with what it saw last (records
there are immutable, so a changed row is a different object and the comparison is by identity, cheap enough to
run after every write).  Each changed row is checked against the row it replaced:

* a stale fenced write never lands (the fence's token was current and the task leased);
* a finished task never changes again: claiming it means a completed step runs again, finishing it again means it
  completed twice (only replaying a dead letter reopens a task);
* one step key is one task, ever;
* attempts only increase;
* a claim takes only tasks that were due by the claimer's clock, and never a task another worker's lease covers;
* no more tasks of a function are ``running`` than its ``max_concurrent``, counted in storage after every write
  (a paused worker may still be running code whose lease was taken over; storage is what counts);
* a finished execution never changes again, and none disappears before it finished.

Stent's own log lines at ERROR level mark a bug it caught in itself; each is a violation too.

At the end of a run: every execution dispatched exists (or was cleaned up after finishing), and every one has
finished: the run ends a bounded span of virtual time after the faults healed.  None failed with
StorageUnavailable or LeaseLost: stent retries through outages and gives lost work back, it never fails a
workflow for them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import attrs

from stent.memory import MemoryStorage
from stent.model import ExecutionRecord, Fence, StepKey, TaskRecord, TaskState

# Fenced writes take the fence first; renew_leases is checked on its own.
FENCED_WRITES = frozenset(
    {
        "complete_task",
        "fail_task",
        "release_task",
        "suspend_task",
        "cancel_task",
        "get_or_create_steps",
        "expire_step",
    }
)
_PARENT_FENCED = frozenset({"get_or_create_steps", "expire_step"})
READS = frozenset(
    {
        "get_execution",
        "get_task",
        "get_tasks",
        "list_execution_tasks",
        "list_executions",
        "queue_depth",
        "queue_overview",
        "list_signals",
        "list_dead_letters",
        "get_dead_letter",
        "cache_get",
        "list_workers",
        "init_db",
        "close",
    }
)
_EPSILON = timedelta(microseconds=1)


@attrs.frozen
class Violation:
    """One broken invariant: which, when (virtual seconds), and what happened."""

    invariant: str
    time: float
    message: str

    def __str__(self) -> str:
        return f"[t={self.time:.3f}] {self.invariant}: {self.message}"


def _arg(args: Sequence[Any], kwargs: Mapping[str, Any], index: int, name: str) -> Any:
    return args[index] if len(args) > index else kwargs.get(name)


def short(task_id: str | None) -> str:
    """The first 8 characters of a generated (hex) id, which are enough to tell ids apart in a trace."""
    if task_id and len(task_id) == 32 and all(c in "0123456789abcdef" for c in task_id):
        return task_id[:8]
    return task_id or "-"


class InvariantChecker:
    def __init__(
        self,
        storage: MemoryStorage,
        *,
        now: Callable[[], float],
        clock_of: Callable[[str], datetime],
        record: Callable[[str], None],
    ) -> None:
        self.storage = storage
        self._now = now
        self._clock_of = clock_of
        self._record = record
        self._tasks: dict[str, TaskRecord] = dict(storage._tasks)
        self._executions: dict[str, ExecutionRecord] = dict(storage._executions)
        self._step_ids: dict[StepKey, str] = {}
        self._limited: dict[str, list[str]] = {}
        self.finished: dict[str, ExecutionRecord] = {}
        self.deleted: set[str] = set()
        self.violations: list[Violation] = []
        self.writes_checked = 0
        self.claims_checked = 0
        self.runs_started = 0

    def violate(self, invariant: str, message: str) -> None:
        violation = Violation(invariant, self._now(), message)
        self.violations.append(violation)
        self._record(f"VIOLATION {invariant}: {message}")

    # -- around each storage call ----------------------------------------------------------------------------

    def before(self, method: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        """What the call is fenced on, read before it runs."""
        if method in FENCED_WRITES:
            fence = _arg(args, kwargs, 0, "parent" if method in _PARENT_FENCED else "fence")
            if isinstance(fence, Fence):
                return fence, self.storage._tasks.get(fence.task_id)
        if method == "renew_leases":
            fences = _arg(args, kwargs, 1, "fences") or ()
            return {f.task_id: (f, self.storage._tasks.get(f.task_id)) for f in fences}
        if method == "complete_tasks":  # a batch may hold a task twice (a stale run's completion and the current)
            tokens: dict[str, set[int]] = {}
            for completion in _arg(args, kwargs, 0, "completions") or ():
                tokens.setdefault(completion.fence.task_id, set()).add(completion.fence.token)
            return {task_id: (held, self.storage._tasks.get(task_id)) for task_id, held in tokens.items()}
        return None

    def after(
        self,
        node: str,
        method: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        result: Any,
        pre: Any,
        *,
        ok: bool = True,
    ) -> None:
        """The call returned (or raised, ``ok=False``): check the fence it relied on, then every row it changed."""
        if method in READS:
            return
        self.writes_checked += 1
        if not ok:
            pass  # a refused write must have changed nothing: the row comparison below would show it
        elif method in FENCED_WRITES and pre is not None:
            fence, before = pre
            if before is not None and (before.fencing_token != fence.token or not before.state.leased):
                self.violate(
                    "stale write accepted",
                    f"{method} by {node} with token {fence.token} on task {short(fence.task_id)} landed, but the"
                    f" task was {before.state.value} with token {before.fencing_token}",
                )
        elif method == "renew_leases" and pre is not None:
            for task_id in sorted(getattr(result, "renewed", ())):
                fence, before = pre.get(task_id, (None, None))
                if fence is None or before is None or before.fencing_token != fence.token:
                    self.violate(
                        "stale write accepted", f"{node} renewed the lease of {short(task_id)} it had lost"
                    )
        elif method == "complete_tasks" and pre is not None:
            for landed in result or ():
                if not isinstance(landed, TaskRecord):
                    continue  # refused: the row comparison below shows it changed nothing
                tokens, before = pre.get(landed.task_id, (set(), None))
                if before is None or before.fencing_token not in tokens or not before.state.leased:
                    self.violate(
                        "stale write accepted",
                        f"{node} completed {short(landed.task_id)} with token(s) {sorted(tokens)}, but the task was"
                        f" {before and before.state.value} with token {before and before.fencing_token}",
                    )
        claim_now = _arg(args, kwargs, 1, "now") if method == "claim_tasks" else None
        self._diff_tasks(node, method, claim_now)
        self._diff_executions(method)

    # -- rows ------------------------------------------------------------------------------------------------

    def _diff_tasks(self, node: str, method: str, claim_now: datetime | None) -> None:
        current = self.storage._tasks
        seen = self._tasks
        changed = [record for task_id, record in current.items() if seen.get(task_id) is not record]
        if method == "delete_executions_before":
            for task_id in [t for t in seen if t not in current]:
                del seen[task_id]
        limited: set[str] = set()
        for new in changed:
            old = seen.get(new.task_id)
            if old is None:
                self._created(new)
            else:
                self._changed(node, method, old, new, claim_now)
            seen[new.task_id] = new
            if new.max_concurrent is not None:
                limited.add(new.function)
                if old is None:
                    self._limited.setdefault(new.function, []).append(new.task_id)
        for function in sorted(limited):
            self._check_concurrency(function)

    def _created(self, new: TaskRecord) -> None:
        if new.parent_task_id is None or new.step is None:
            return
        key = StepKey(new.parent_task_id, new.parent_attempt or 0, new.step)
        other = self._step_ids.setdefault(key, new.task_id)
        if other != new.task_id:
            self.violate(
                "completed step run again",
                f"step {new.step} of {short(new.parent_task_id)} attempt {key.parent_attempt} was created twice:"
                f" {short(other)} and {short(new.task_id)} ({new.function})",
            )

    def _changed(
        self, node: str, method: str, old: TaskRecord, new: TaskRecord, claim_now: datetime | None
    ) -> None:
        label = f"{short(new.task_id)} ({new.function})"
        if new.attempt < old.attempt:
            self.violate("attempts only increase", f"{label} went from attempt {old.attempt} to {new.attempt}")
        if old.state.terminal and method != "replay_dead_letter":
            if new.state.leased:
                self.violate("completed step run again", f"{label} was {old.state.value} and {node} claimed it")
            elif new.state.terminal:
                self.violate(
                    "task finished twice",
                    f"{label} was {old.state.value}, then {method} made it {new.state.value}",
                )
            else:
                self.violate("task finished twice", f"{label} was {old.state.value}, then {method} reopened it")
            return
        if claim_now is not None and new.state is TaskState.RUNNING and new.fencing_token != old.fencing_token:
            self._claimed(node, old, new, claim_now)

    def _claimed(self, node: str, old: TaskRecord, new: TaskRecord, now: datetime) -> None:
        self.claims_checked += 1
        label = f"{short(new.task_id)} ({new.function})"
        if now > self._clock_of(node) + _EPSILON:
            self.violate("nothing runs before its time", f"{node} claimed with a time ahead of its own clock")
        due: datetime | None
        if old.state is TaskState.PENDING:
            due = old.scheduled_for
        elif old.state is TaskState.SUSPENDED:
            due = old.wake_at
            if due is None:
                self.violate("nothing runs before its time", f"{label} was claimed while suspended with no timer")
                return
        else:
            due = old.lease_expires_at
            if due is None or due > now + _EPSILON:
                self.violate(
                    "one worker per task",
                    f"{node} claimed {label} while {old.lease_owner}'s lease ran until {due}",
                )
            return
        if due is not None and due > now + _EPSILON:
            self.violate("nothing runs before its time", f"{node} claimed {label} due at {due} at {now}")

    def _check_concurrency(self, function: str) -> None:
        tasks = self.storage._tasks
        ids = self._limited.get(function, [])
        running = [tasks[i] for i in ids if i in tasks and tasks[i].state is TaskState.RUNNING]
        if running and len(running) > (running[0].max_concurrent or 0):
            self.violate(
                "max_concurrent never exceeded",
                f"{len(running)} tasks of {function} are running, limit {running[0].max_concurrent}:"
                f" {', '.join(short(t.task_id) + '@' + str(t.lease_owner) for t in running)}",
            )

    def _diff_executions(self, method: str) -> None:
        current = self.storage._executions
        seen = self._executions
        for execution_id, new in current.items():
            old = seen.get(execution_id)
            if old is new:
                continue
            seen[execution_id] = new
            if old is not None and old.state.terminal and method != "replay_dead_letter":
                self.violate(
                    "task finished twice",
                    f"execution {short(execution_id)} was {old.state.value}, then {method} made it {new.state.value}",
                )
            if new.state.terminal and execution_id not in self.finished:
                self.finished[execution_id] = new
        if method == "delete_executions_before":
            for execution_id in [e for e in seen if e not in current]:
                del seen[execution_id]
                self.deleted.add(execution_id)
                if execution_id not in self.finished:
                    self.violate("no execution lost", f"execution {short(execution_id)} was deleted unfinished")

    # -- user checks and the end of the run ------------------------------------------------------------------

    def user_code_started(self, task_id: str, attempt: int, function: str) -> None:
        """A task's code begins to run: its task must not have finished already."""
        self.runs_started += 1
        record = self.storage._tasks.get(task_id)
        if record is not None and record.state.terminal:
            self.violate(
                "completed step run again",
                f"the code of {short(task_id)} ({function}) attempt {attempt} started though the task is"
                f" {record.state.value}",
            )

    def user_check(self, condition: object, message: str) -> None:
        if not condition:
            self.violate("user check", message)

    def finish(
        self,
        dispatched: Sequence[str],
        *,
        healed_at: float,
        tasks_of: Mapping[str, list[TaskRecord]],
        liveness: bool = True,
    ) -> None:
        """End of run: everything dispatched exists (or was cleaned up finished) and, with ``liveness`` (the run
        was not cut short), has finished."""
        executions = self.storage._executions
        for execution_id in dispatched:
            execution = executions.get(execution_id)
            if execution is None:
                if execution_id not in self.deleted:
                    self.violate("no execution lost", f"execution {execution_id} is not in storage")
                continue
            if liveness and not execution.state.terminal:
                stuck = ", ".join(
                    f"{short(t.task_id)} {t.function} {t.state.value}"
                    + (f" lease={t.lease_owner}" if t.lease_owner else "")
                    for t in tasks_of.get(execution_id, [])
                    if not t.state.terminal
                )
                self.violate(
                    "finishes after faults heal",
                    f"execution {execution_id} ({execution.function}) is still {execution.state.value}"
                    f" {self._now() - healed_at:.0f}s after the faults healed; unfinished tasks: {stuck}",
                )
