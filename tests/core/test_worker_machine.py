"""The sans-IO worker state machine, driven directly with events."""

from __future__ import annotations

from stent.worker.machine import (
    AbandonTask,
    Claim,
    ClaimDone,
    DrainRequested,
    LifecycleState,
    ReleaseRunning,
    RenewDone,
    RenewLeases,
    Started,
    Stop,
    SuspendWaiting,
    TaskEnded,
    TaskFinishing,
    TaskResumed,
    TaskWaiting,
    Tick,
    WorkerConfig,
    WorkerMachine,
    WorkNotified,
)


def machine(max_concurrency: int = 4) -> WorkerMachine:
    return WorkerMachine(
        WorkerConfig(
            max_concurrency=max_concurrency,
            poll_interval=0.5,
            poll_interval_max=5.0,
            poll_backoff_factor=2.0,
            heartbeat_interval=120.0,
        )
    )


def claims(commands: list[object]) -> list[Claim]:
    return [c for c in commands if isinstance(c, Claim)]


def claim_times(m: WorkerMachine, until: float) -> list[float]:
    """Drive empty claims on the machine's own schedule and record when each claim was asked for."""
    times: list[float] = []
    now = 0.0
    commands = m.handle(Started(now))
    while now <= until:
        for command in commands:
            if isinstance(command, Claim):
                times.append(now)
                commands = m.handle(ClaimDone(now, command.limit, ()))
                break
        else:
            deadline = m.next_deadline()
            assert deadline is not None
            now = deadline
            commands = m.handle(Tick(now))
    return times


def test_empty_polls_back_off_as_the_guide_says() -> None:
    """Empty claims wait 0.5, 1, 2, 4, then 5 seconds (capped) between polls."""
    times = claim_times(machine(), 30)
    gaps = [round(b - a, 3) for a, b in zip(times, times[1:])]
    assert gaps[:6] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]


def test_claim_with_work_resets_the_interval_to_minimum() -> None:
    """After a claim that found work, the next empty claim waits the minimum interval again."""
    m = machine()
    assert Claim(4) in m.handle(Started(0.0))
    m.handle(ClaimDone(0.0, 4, ()))  # delay grows to 1.0 for next time
    m.handle(Tick(0.5))
    m.handle(ClaimDone(0.5, 4, ()))
    assert m.poll_delay == 2.0
    commands = m.handle(Tick(1.5))
    assert any(isinstance(c, Claim) for c in commands)
    m.handle(ClaimDone(1.5, 4, ("t1",)))
    assert m.poll_delay == 0.5


def test_notification_triggers_an_immediate_claim() -> None:
    """A work notification makes the worker claim at once, with the interval back at its minimum."""
    m = machine()
    m.handle(Started(0.0))
    m.handle(ClaimDone(0.0, 4, ()))
    m.handle(Tick(0.5))
    m.handle(ClaimDone(0.5, 4, ()))
    commands = m.handle(WorkNotified(0.6))
    assert Claim(4) in commands
    assert m.poll_delay == 0.5


def test_claims_never_exceed_free_slots() -> None:
    """A worker asks for no more tasks than it has free slots, and none when full."""
    m = machine(max_concurrency=3)
    assert claims(m.handle(Started(0.0))) == [Claim(3)]
    m.handle(ClaimDone(0.0, 3, ("a", "b", "c")))
    assert not any(isinstance(c, Claim) for c in m.handle(WorkNotified(0.1)))
    commands = m.handle(TaskEnded(0.2, "a"))
    assert Claim(1) in commands


def test_waiting_task_gives_its_slot_back() -> None:
    """A task awaiting steps frees its slot; resuming takes it back."""
    m = machine(max_concurrency=1)
    m.handle(Started(0.0))
    m.handle(ClaimDone(0.0, 1, ("parent",)))
    commands = m.handle(TaskWaiting(0.1, "parent"))
    assert Claim(1) in commands
    m.handle(ClaimDone(0.1, 1, ("child",)))
    m.handle(TaskResumed(0.2, "parent"))
    assert m.running == {"parent", "child"}


def test_a_finishing_task_frees_its_slot_but_keeps_its_lease_until_it_ends() -> None:
    """Once a task's code has ended its slot takes the next claim, beside its final write; its lease is renewed
    until that write is done, and a drain waits for it."""
    m = machine(max_concurrency=2)
    m.handle(Started(0.0))
    m.handle(ClaimDone(0.0, 2, ("a", "b")))
    assert Claim(1) in m.handle(TaskFinishing(0.1, "a"))
    m.handle(ClaimDone(0.1, 1, ("c",)))
    assert m.running == {"b", "c"} and m.finishing == {"a"}
    assert RenewLeases(("a", "b", "c")) in m.handle(Tick(120.0))
    m.handle(TaskEnded(120.5, "a"))
    assert m.held == {"b", "c"}
    m.handle(DrainRequested(121.0))
    m.handle(TaskFinishing(121.1, "b"))
    m.handle(TaskFinishing(121.2, "c"))
    assert m.state is LifecycleState.DRAINING, "a drain must wait for the final writes"
    m.handle(TaskEnded(121.3, "b"))
    assert Stop() in m.handle(TaskEnded(121.4, "c"))


def test_events_of_one_turn_make_one_claim_for_every_slot_they_free() -> None:
    """Fifty tasks finishing in one turn of the loop: one claim for fifty, not one for the first and then more."""
    m = machine(max_concurrency=50)
    m.handle(Started(0.0))
    ids = tuple(f"t{i}" for i in range(50))
    m.handle(ClaimDone(0.0, 50, ids))
    commands = m.handle_all([TaskFinishing(0.1, t) for t in ids], 0.1)
    assert claims(commands) == [Claim(50)]


def test_heartbeat_renews_all_held_tasks_in_one_command() -> None:
    """Every heartbeat_interval the machine asks to renew every held task at once."""
    m = machine()
    m.handle(Started(0.0))
    m.handle(ClaimDone(0.0, 4, ("a", "b")))
    m.handle(TaskWaiting(1.0, "b"))
    commands = m.handle(Tick(120.0))
    assert RenewLeases(("a", "b")) in commands


def test_lost_lease_abandons_the_task() -> None:
    """A renewal that did not renew a task makes the machine abandon it."""
    m = machine()
    m.handle(Started(0.0))
    m.handle(ClaimDone(0.0, 4, ("a", "b")))
    m.handle(Tick(120.0))
    commands = m.handle(RenewDone(120.1, frozenset({"a"}), frozenset({"a", "b"})))
    assert AbandonTask("b", "lease lost: another worker took the task over") in commands
    assert m.held == {"a"}


def test_drain_stops_claiming_suspends_waiters_and_stops_when_empty() -> None:
    """Draining claims nothing more, hands waiting tasks back, and stops once nothing is held."""
    m = machine()
    m.handle(Started(0.0))
    m.handle(ClaimDone(0.0, 4, ("runner", "waiter")))
    m.handle(TaskWaiting(0.1, "waiter"))
    commands = m.handle(DrainRequested(1.0))
    assert m.state is LifecycleState.DRAINING
    assert SuspendWaiting(("waiter",)) in commands
    m.handle(ClaimDone(1.05, 3, ()))  # the claim the freed slot started before the drain still completes
    assert not any(isinstance(c, Claim) for c in m.handle(WorkNotified(1.1)))
    m.handle(TaskEnded(1.2, "waiter"))
    assert m.state is LifecycleState.DRAINING
    assert Stop() in m.handle(TaskEnded(1.3, "runner"))
    assert m.state is LifecycleState.STOPPED


def test_drain_timeout_releases_running_tasks() -> None:
    """A drain with a timeout hands back the tasks still running when it expires."""
    m = machine()
    m.handle(Started(0.0))
    m.handle(ClaimDone(0.0, 4, ("slow",)))
    m.handle(DrainRequested(1.0, timeout=10.0))
    assert m.next_deadline() == 11.0
    assert ReleaseRunning(("slow",)) in m.handle(Tick(11.0))


def test_drain_before_start_stops_without_claiming() -> None:
    """A worker drained while starting never claims."""
    m = machine()
    commands = m.handle(DrainRequested(0.0))
    assert Stop() in commands
    assert not any(isinstance(c, Claim) for c in commands)


def test_notification_during_an_empty_claim_is_not_lost() -> None:
    """Work announced while a claim is in flight is claimed right after that claim returns empty."""
    m = machine()
    m.handle(Started(0.0))  # claim 1 in flight
    m.handle(WorkNotified(0.1))
    commands = m.handle(ClaimDone(0.2, 4, ()))
    assert Claim(4) in commands
