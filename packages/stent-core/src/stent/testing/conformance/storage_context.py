"""Conformance: an execution's counters and custom state, and the idempotency/cache store."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from stent.clocks import FakeClock
from stent.errors import LeaseLost
from stent.model import ContextUpdate, TaskFailure
from stent.ports import Storage
from stent.testing.conformance._support import StorageCase, new_task


class ContextConformance(StorageCase):
    async def _context(self, storage: Storage, execution_id: str) -> tuple[dict[str, int], dict[str, str]]:
        execution = await self.execution(storage, execution_id)
        return json.loads(execution.counters), json.loads(execution.custom_state)

    async def test_a_new_execution_has_empty_counters_and_state(self, storage: Storage, clock: FakeClock) -> None:
        """Counters and custom state of a new execution are empty JSON objects."""
        execution = await self.start(storage, clock)
        assert await self._context(storage, execution.execution_id) == ({}, {})

    async def test_completion_applies_its_update_to_the_execution(
        self, storage: Storage, clock: FakeClock
    ) -> None:
        """Completing a task with an update increments counters and sets state keys of its execution."""
        root = await self.running_root(storage, clock)
        a, b = await self.add_steps(storage, clock, root, [new_task("work"), new_task("work")])
        first = await self.claim_one(storage, clock)
        odd = '{"text": "é \\" \\\\ ☃", "n": [1, 2]}'  # serialized values are opaque text
        clock.advance(1)
        update = ContextUpdate(increments=(("done", 1), ("bytes", 500)), state=(("phase", '"one"'), ("odd", odd)))
        await storage.complete_task(first.fence, "1", clock.now(), update)
        assert await self._context(storage, root.execution_id) == (
            {"done": 1, "bytes": 500},
            {"phase": '"one"', "odd": odd},
        )
        assert (await self.execution(storage, root.execution_id)).updated_at == clock.now()
        second = await self.claim_one(storage, clock)
        update = ContextUpdate(increments=(("done", 1), ("bytes", -200)), state=(("phase", '"two"'),))
        await storage.complete_task(second.fence, "2", clock.now(), update)
        assert await self._context(storage, root.execution_id) == (
            {"done": 2, "bytes": 300},
            {"phase": '"two"', "odd": odd},
        )
        assert {a.task_id, b.task_id} == {first.task_id, second.task_id}

    async def test_the_root_completion_update_lands_with_the_result(
        self, storage: Storage, clock: FakeClock
    ) -> None:
        """The update carried by a root's completion is applied, and the execution completes in the same call."""
        execution = await self.start(storage, clock)
        root = await self.claim_one(storage, clock)
        await storage.complete_task(root.fence, '"r"', clock.now(), ContextUpdate(increments=(("n", 3),)))
        done = await self.execution(storage, execution.execution_id)
        assert (json.loads(done.counters), done.result) == ({"n": 3}, '"r"')

    async def test_a_rejected_completion_applies_no_update(self, storage: Storage, clock: FakeClock) -> None:
        """A completion refused for a stale token leaves the counters and state as they were."""
        execution = await self.start(storage, clock)
        stale = await self.claim_one(storage, clock, worker="w1", lease=10)
        clock.advance(11)
        await self.claim_one(storage, clock, worker="w2")
        with pytest.raises(LeaseLost):
            await storage.complete_task(
                stale.fence, "1", clock.now(), ContextUpdate(increments=(("n", 1),), state=(("k", "1"),))
            )
        assert await self._context(storage, execution.execution_id) == ({}, {})

    async def test_failures_and_empty_updates_change_nothing(self, storage: Storage, clock: FakeClock) -> None:
        """A failed attempt carries no update, and an empty update leaves counters and state untouched."""
        root = await self.running_root(storage, clock)
        await self.add_steps(storage, clock, root, [new_task("work", max_attempts=2), new_task("work")])
        first = await self.claim_one(storage, clock)
        await storage.fail_task(
            first.fence, TaskFailure(error="E", reason="error", retry_at=clock.now()), clock.now()
        )
        second = await self.claim_one(storage, clock)
        await storage.complete_task(second.fence, "1", clock.now(), ContextUpdate())
        await storage.complete_task((await self.claim_one(storage, clock)).fence, "2", clock.now(), None)
        assert await self._context(storage, root.execution_id) == ({}, {})


class CacheConformance(StorageCase):
    async def test_a_stored_value_is_read_back(self, storage: Storage, clock: FakeClock) -> None:
        """cache_put stores a value under its key, cache_get returns it, and a later put replaces it."""
        assert await storage.cache_get("k", clock.now()) is None
        await storage.cache_put("k", '{"v": 1}', None, clock.now())
        await storage.cache_put("other", '"x"', None, clock.now())
        assert await storage.cache_get("k", clock.now()) == '{"v": 1}'
        await storage.cache_put("k", '{"v": 2}', None, clock.now())
        assert await storage.cache_get("k", clock.now()) == '{"v": 2}'
        assert await storage.cache_get("other", clock.now()) == '"x"'
        assert await storage.cache_get("k'%", clock.now()) is None

    async def test_values_expire_at_their_time(self, storage: Storage, clock: FakeClock) -> None:
        """A value with an expiry is returned before it and not from it on; one without never expires."""
        expires = clock.now() + timedelta(seconds=60)
        await storage.cache_put("short", "1", expires, clock.now())
        await storage.cache_put("forever", "2", None, clock.now())
        clock.advance(59.999)
        assert await storage.cache_get("short", clock.now()) == "1"
        clock.advance(0.001)
        assert await storage.cache_get("short", clock.now()) is None
        clock.advance(timedelta(days=3650))
        assert await storage.cache_get("forever", clock.now()) == "2"
        await storage.cache_put("short", "3", clock.now() + timedelta(seconds=1), clock.now())
        assert await storage.cache_get("short", clock.now()) == "3"

    async def test_an_expired_value_can_be_replaced(self, storage: Storage, clock: FakeClock) -> None:
        """Storing again after expiry makes the key readable again, even without an expiry."""
        await storage.cache_put("k", "old", clock.now() + timedelta(seconds=1), clock.now())
        clock.advance(2)
        assert await storage.cache_get("k", clock.now()) is None
        await storage.cache_put("k", "new", None, clock.now())
        clock.advance(100)
        assert await storage.cache_get("k", clock.now()) == "new"
