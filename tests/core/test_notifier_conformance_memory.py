"""The notifier conformance suite against the process-local MemoryNotifier.

memory:// has no server to connect to: one MemoryNotifier instance is the whole bus, so the notifiers a test
makes in one namespace are that one instance, and another namespace is another instance.  There is no
connection to cut or server to be down, so the reconnect and unreachable-server tests skip.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from stent.memory.notifier import MemoryNotifier
from stent.ports import Notifier
from stent.testing.conformance.notifier import NotifierConformance, NotifierFactory


@pytest.fixture
async def make_notifier() -> AsyncIterator[NotifierFactory]:
    buses: dict[str, MemoryNotifier] = {}

    async def make(*, namespace: str = "main") -> Notifier:
        bus = buses.get(namespace)
        if bus is None:
            bus = buses[namespace] = MemoryNotifier()
            await bus.connect()
        return bus

    yield make
    for bus in buses.values():
        await bus.close()


class TestMemoryNotifierConformance(NotifierConformance):
    pass
