"""Notifications between simulated processes, each delivery of which may be lost, duplicated or late.

Every node gets its own :class:`SimNotifier` on one shared :class:`SimBus`.  A published notification reaches each
subscriber through the loop, as a callback of the *receiving* node (a real notifier delivers on the receiver's
connection), so a paused receiver gets it when it thaws and a crashed one never does.  Stent must not depend on
any delivery (DESIGN section 4): waiters and idle workers poll as well.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from stent.ports import Notification, NotificationListener

if TYPE_CHECKING:
    from stent.testing.sim.faults import FaultInjector


class SimBus:
    def __init__(self, faults: FaultInjector) -> None:
        self.faults = faults
        self._subscribers: list[tuple[str, contextvars.Context, NotificationListener]] = []
        self.dead: set[str] = set()

    def publish(self, sender: str, notes: Sequence[Notification]) -> None:
        if sender in self.dead:
            return
        loop = self.faults.loop
        for note in notes:
            for receiver, context, listener in list(self._subscribers):
                if receiver in self.dead:
                    continue
                for delay in self.faults.deliveries(sender, receiver, note):
                    loop.call_at(loop.time() + delay, _deliver, self, receiver, listener, note, context=context)

    def subscribe(self, node: str, listener: NotificationListener) -> Callable[[], None]:
        entry = (node, contextvars.copy_context(), listener)
        self._subscribers.append(entry)

        def unsubscribe() -> None:
            if entry in self._subscribers:
                self._subscribers.remove(entry)

        return unsubscribe


def _deliver(bus: SimBus, receiver: str, listener: NotificationListener, note: Notification) -> None:
    if receiver not in bus.dead:
        listener(note)


class SimNotifier:
    """One node's connection to the :class:`SimBus`; implements the Notifier port."""

    def __init__(self, bus: SimBus, node: str) -> None:
        self.bus = bus
        self.node = node

    async def connect(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def publish(self, notifications: Sequence[Notification]) -> None:
        self.bus.publish(self.node, notifications)

    def subscribe(self, listener: NotificationListener) -> Callable[[], None]:
        return self.bus.subscribe(self.node, listener)
