"""Conformance: signals (stored, buffered, consumed once, in order) and signal waits that time out."""

from __future__ import annotations

import asyncio

import pytest

from stent.clocks import FakeClock
from stent.errors import ExecutionFinished, ExecutionNotFound, LeaseLost, TaskNotFound
from stent.model import StepKey, TaskRecord, TaskState
from stent.ports import Storage
from stent.testing.conformance._support import PeerFactory, StorageCase, request, signal_wait


class SignalConformance(StorageCase):
    async def test_signals_to_unknown_or_finished_executions_are_refused(
        self, storage: Storage, clock: FakeClock
    ) -> None:
        """Sending to an unknown execution raises ExecutionNotFound; to a finished one, ExecutionFinished."""
        with pytest.raises(ExecutionNotFound):
            await storage.send_signal("no-such-execution", "go", "1", clock.now())
        execution = await self.start(storage, clock)
        task = await self.claim_one(storage, clock)
        await storage.complete_task(task.fence, "null", clock.now())
        with pytest.raises(ExecutionFinished):
            await storage.send_signal(execution.execution_id, "go", "1", clock.now())
        assert await storage.list_signals(execution.execution_id) == []
        assert await storage.list_signals("no-such-execution") == []

    async def test_signals_are_stored_in_order(self, storage: Storage, clock: FakeClock) -> None:
        """Signals nobody waits for are buffered and listed oldest first, with increasing ids, unconsumed."""
        execution = await self.start(storage, clock)
        sent, times = [], []
        for name, payload in [("go", '"a"'), ("stop", '"b"'), ("go", '"c"')]:
            times.append(clock.now())
            sent.append(await storage.send_signal(execution.execution_id, name, payload, clock.now()))
            clock.advance(1)
        assert [(s.execution_id, s.name, s.payload, s.consumed_by) for s in sent] == [
            (execution.execution_id, "go", '"a"', None),
            (execution.execution_id, "stop", '"b"', None),
            (execution.execution_id, "go", '"c"', None),
        ]
        assert [s.created_at for s in sent] == times
        assert sent[0].signal_id < sent[1].signal_id < sent[2].signal_id
        assert await storage.list_signals(execution.execution_id) == sent
        other = await self.start(storage, clock)
        assert await storage.list_signals(other.execution_id) == []

    async def test_a_new_wait_consumes_the_oldest_buffered_signal(
        self, storage: Storage, clock: FakeClock
    ) -> None:
        """A signal wait created after signals arrived takes the oldest unconsumed one of its name, once."""
        parent = await self.running_root(storage, clock)
        first = await storage.send_signal(parent.execution_id, "go", '"first"', clock.now())
        unrelated = await storage.send_signal(parent.execution_id, "other", '"x"', clock.now())
        second = await storage.send_signal(parent.execution_id, "go", '"second"', clock.now())
        clock.advance(1)
        one, two, three = await self.add_steps(
            storage, clock, parent, [signal_wait("go"), signal_wait("go"), signal_wait("go")]
        )
        assert (one.state, one.result, one.finished_at) == (TaskState.COMPLETED, '"first"', clock.now())
        assert (two.state, two.result) == (TaskState.COMPLETED, '"second"')
        assert (three.state, three.result) == (TaskState.PENDING, None)
        consumed = {s.signal_id: s.consumed_by for s in await storage.list_signals(parent.execution_id)}
        assert consumed == {first.signal_id: one.task_id, unrelated.signal_id: None, second.signal_id: two.task_id}
        # Asked again (a replay), the steps come back as stored and consume nothing more.
        again = await self.add_steps(storage, clock, parent, [signal_wait("go"), signal_wait("go")])
        assert again == [one, two]

    async def test_a_wait_satisfied_by_buffered_signals_leaves_the_parent_running(
        self, storage: Storage, clock: FakeClock
    ) -> None:
        """When every new signal wait found its signal, the parent has nothing to wait for and keeps running."""
        parent = await self.running_root(storage, clock)
        await storage.send_signal(parent.execution_id, "go", "1", clock.now())
        (step,) = await self.add_steps(storage, clock, parent, [signal_wait("go")])
        assert step.state is TaskState.COMPLETED
        assert (await self.current(storage, parent)).state is TaskState.RUNNING

    async def test_a_signal_completes_a_waiting_step_and_wakes_a_suspended_parent(
        self, storage: Storage, clock: FakeClock
    ) -> None:
        """A signal sent to a wait that is already there completes it at once and makes its suspended parent pending."""
        parent = await self.running_root(storage, clock)
        (step,) = await self.add_steps(storage, clock, parent, [signal_wait("approve")])
        assert step.state is TaskState.PENDING
        await storage.suspend_task(parent.fence, waiting_on=[step.task_id], wake_at=None, now=clock.now())
        clock.advance(5)
        signal = await storage.send_signal(parent.execution_id, "approve", '{"ok": true}', clock.now())
        assert signal.consumed_by == step.task_id
        done = await self.current(storage, step)
        assert (done.state, done.result, done.finished_at) == (TaskState.COMPLETED, '{"ok": true}', clock.now())
        woken = await self.current(storage, parent)
        assert (woken.state, woken.scheduled_for) == (TaskState.PENDING, clock.now())
        assert await storage.list_signals(parent.execution_id) == [signal]

    async def test_a_signal_wakes_a_parent_waiting_in_memory(self, storage: Storage, clock: FakeClock) -> None:
        """A signal that completes the step of a leased, waiting parent makes that parent running again."""
        parent = await self.running_root(storage, clock)
        await self.add_steps(storage, clock, parent, [signal_wait("go")])
        assert (await self.current(storage, parent)).state is TaskState.WAITING
        await storage.send_signal(parent.execution_id, "go", "1", clock.now())
        woken = await self.current(storage, parent)
        assert (woken.state, woken.fencing_token) == (TaskState.RUNNING, parent.fencing_token)

    async def test_each_signal_goes_to_the_oldest_wait_of_its_name(
        self, storage: Storage, clock: FakeClock
    ) -> None:
        """Signals sent to several waits of one name complete them oldest first, one signal each."""
        parent = await self.running_root(storage, clock)
        steps = await self.add_steps(
            storage, clock, parent, [signal_wait("go"), signal_wait("other"), signal_wait("go")]
        )
        a = await storage.send_signal(parent.execution_id, "go", '"a"', clock.now())
        b = await storage.send_signal(parent.execution_id, "go", '"b"', clock.now())
        c = await storage.send_signal(parent.execution_id, "go", '"c"', clock.now())
        assert (a.consumed_by, b.consumed_by, c.consumed_by) == (steps[0].task_id, steps[2].task_id, None)
        now = {t.task_id: t for t in await storage.get_tasks([s.task_id for s in steps])}
        assert [now[s.task_id].result for s in steps] == ['"a"', None, '"b"']
        assert now[steps[1].task_id].state is TaskState.PENDING
        (late,) = await self.add_steps(storage, clock, parent, [signal_wait("go")], first=3)
        assert late.result == '"c"'  # the leftover signal stayed buffered

    async def test_signals_never_cross_executions(self, storage: Storage, clock: FakeClock) -> None:
        """A signal is consumed only by a wait of the execution it was sent to."""
        parent = await self.running_root(storage, clock)
        (step,) = await self.add_steps(storage, clock, parent, [signal_wait("go")])
        other = await self.start(storage, clock)
        sent = await storage.send_signal(other.execution_id, "go", "1", clock.now())
        assert sent.consumed_by is None
        assert (await self.current(storage, step)).state is TaskState.PENDING

    async def test_racing_sends_and_waits_pair_up_exactly_once(
        self, storage: Storage, clock: FakeClock, open_peer: PeerFactory
    ) -> None:
        """Signals sent while waits are created on other connections each end in exactly one wait."""
        parent = await self.running_root(storage, clock)
        count = 40
        senders = [await open_peer(storage) for _ in range(4)]
        creator = await open_peer(storage)

        async def send(number: int) -> None:
            peer = senders[number % len(senders)]
            await peer.send_signal(parent.execution_id, "go", str(number), clock.now())

        async def wait(number: int) -> list[TaskRecord]:
            key = StepKey(parent.task_id, parent.attempt, number)
            return await creator.get_or_create_steps(parent.fence, [(key, signal_wait("go"))], clock.now())

        await asyncio.gather(*(send(n) for n in range(count)), *(wait(n) for n in range(count)))
        steps = [t for t in await storage.list_execution_tasks(parent.execution_id) if t.parent_task_id]
        assert len(steps) == count
        assert all(t.state is TaskState.COMPLETED for t in steps), "a wait was left without a signal"
        assert sorted(int(t.result or "-1") for t in steps) == list(range(count))
        signals = await storage.list_signals(parent.execution_id)
        assert sorted(s.consumed_by or "" for s in signals) == sorted(t.task_id for t in steps)

    async def test_an_expired_wait_fails_and_leaves_later_signals_buffered(
        self, storage: Storage, clock: FakeClock
    ) -> None:
        """expire_step fails a pending wait with the error; a signal sent afterwards is buffered for a new wait."""
        parent = await self.running_root(storage, clock)
        (step,) = await self.add_steps(storage, clock, parent, [signal_wait("go")])
        clock.advance(30)
        expired = await storage.expire_step(parent.fence, step.task_id, "SignalTimeout", clock.now())
        assert (expired.state, expired.error, expired.finished_at) == (
            TaskState.FAILED,
            "SignalTimeout",
            clock.now(),
        )
        assert await self.current(storage, step) == expired
        sent = await storage.send_signal(parent.execution_id, "go", "1", clock.now())
        assert sent.consumed_by is None

    async def test_expiring_a_finished_wait_changes_nothing(self, storage: Storage, clock: FakeClock) -> None:
        """A wait that got its signal before its timeout is returned as it is by expire_step."""
        parent = await self.running_root(storage, clock)
        (step,) = await self.add_steps(storage, clock, parent, [signal_wait("go")])
        await storage.send_signal(parent.execution_id, "go", "1", clock.now())
        done = await self.current(storage, step)
        clock.advance(1)
        assert await storage.expire_step(parent.fence, step.task_id, "SignalTimeout", clock.now()) == done
        assert await self.current(storage, step) == done

    async def test_expire_step_is_fenced_and_checks_the_parent(self, storage: Storage, clock: FakeClock) -> None:
        """expire_step needs the parent's current fence, and only touches that parent's own steps."""
        parent = await self.running_root(storage, clock)
        (step,) = await self.add_steps(storage, clock, parent, [signal_wait("go")])
        other = await self.running_root(storage, clock, "other", worker="w2")
        with pytest.raises(TaskNotFound):
            await storage.expire_step(other.fence, step.task_id, "late", clock.now())
        with pytest.raises(TaskNotFound):
            await storage.expire_step(parent.fence, "no-such-step", "late", clock.now())
        clock.advance(31)  # the parent's lease expires and another worker takes it over
        await self.claim_one(storage, clock, "parent", worker="w3")
        with pytest.raises(LeaseLost):
            await storage.expire_step(parent.fence, step.task_id, "late", clock.now())
        assert (await self.current(storage, step)).state is TaskState.PENDING

    async def test_signal_waits_are_never_claimed(self, storage: Storage, clock: FakeClock) -> None:
        """A pending signal wait is not work: no claim takes it, even one registering its name."""
        parent = await self.running_root(storage, clock)
        (step,) = await self.add_steps(storage, clock, parent, [signal_wait("go")])
        got = await storage.claim_tasks(request(functions=[step.function, "work"]), clock.now())
        assert got == []
        assert await storage.queue_depth(None, clock.now()) == 0
