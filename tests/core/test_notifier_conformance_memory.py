"""The notifier conformance suite against the process-local MemoryNotifier.

memory:// has no server to connect to: one MemoryNotifier instance is the whole bus, so the notifiers a test
makes in one namespace are that one instance, and another namespace is another instance.  There is no
connection to cut or server to be down, so the reconnect and unreachable-server tests skip.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence

import pytest

from stent.memory.notifier import MemoryNotifier
from stent.ports import Notification, NotificationListener, Notifier
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


# -- teeth: the suite fails notifiers that break a guarantee ------------------------------------------------


class _Quick(NotifierConformance):
    """The suite with short bounds: memory delivers at once, so a failure need not wait for network time."""

    DELIVERY_TIMEOUT = 0.3
    IDLE_POLL_INTERVAL = 1.0
    PICKUP_LIMIT = 0.3


class _NoneBecomesEmpty(MemoryNotifier):
    """Loses the difference between an absent field and an empty one, as a careless encoding would."""

    async def publish(self, notifications: Sequence[Notification]) -> None:
        await super().publish(
            [Notification(n.kind, n.queue or "", n.task_id or "", n.execution_id or "") for n in notifications]
        )


class _StickyListeners(MemoryNotifier):
    """Returns an unsubscribe function that does nothing."""

    def subscribe(self, listener: NotificationListener) -> Callable[[], None]:
        super().subscribe(listener)
        return lambda: None


class _FragileListeners(MemoryNotifier):
    """Lets a listener's exception escape into the publisher, as MemoryNotifier once did."""

    async def publish(self, notifications: Sequence[Notification]) -> None:
        for note in notifications:
            for listener in list(self._listeners):
                listener(note)


class _Silent(MemoryNotifier):
    """Accepts every publish and delivers nothing."""

    async def publish(self, notifications: Sequence[Notification]) -> None:
        return None


def factory(kind: type[MemoryNotifier], *, leak_namespaces: bool = False) -> NotifierFactory:
    buses: dict[str, MemoryNotifier] = {}

    async def make(*, namespace: str = "main") -> Notifier:
        key = "main" if leak_namespaces else namespace
        if key not in buses:
            buses[key] = kind()
            await buses[key].connect()
        return buses[key]

    return make


@pytest.mark.parametrize(
    ("test", "kind", "leak"),
    [
        pytest.param("test_every_field_round_trips", _NoneBecomesEmpty, False, id="absent-fields-become-empty"),
        pytest.param("test_namespaces_are_isolated", MemoryNotifier, True, id="namespaces-leak"),
        pytest.param("test_unsubscribe_stops_delivery", _StickyListeners, False, id="unsubscribe-does-nothing"),
        pytest.param(
            "test_a_raising_listener_does_not_stop_delivery", _FragileListeners, False, id="listener-errors-escape"
        ),
        pytest.param(
            "test_fan_out_reaches_every_listener_of_every_notifier", _Silent, False, id="delivers-nothing"
        ),
        pytest.param(
            "test_idle_worker_picks_up_announced_work_well_before_its_poll", _Silent, False, id="workers-not-woken"
        ),
        pytest.param("test_lost_notifications_delay_but_never_lose_work", _Silent, False, id="nothing-to-lose"),
    ],
)
async def test_the_suite_fails_a_notifier_that_breaks_a_guarantee(
    test: str, kind: type[MemoryNotifier], leak: bool
) -> None:
    """Each deliberately broken notifier fails the conformance test of the guarantee it breaks (a listener's
    escaping RuntimeError is that failure for the fragile one)."""
    with pytest.raises((AssertionError, pytest.fail.Exception, RuntimeError)):
        await getattr(_Quick(), test)(factory(kind, leak_namespaces=leak))
