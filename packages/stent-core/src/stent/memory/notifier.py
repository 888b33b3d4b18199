"""A process-local Notifier: notifications reach the subscribers of the same instance.

Used by tests and the simulator; fault hooks let a test lose, duplicate or delay notifications.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Sequence

from stent.ports import Notification, NotificationListener

log = logging.getLogger("stent.memory.notifier")


class MemoryNotifier:
    def __init__(self) -> None:
        self._listeners: list[NotificationListener] = []
        self.connected = False
        self.published: deque[Notification] = deque(maxlen=10_000)
        #: When set, called for each notification; return False to drop it (a lost notification).
        self.filter: Callable[[Notification], bool] | None = None

    async def connect(self) -> None:
        self.connected = True

    async def close(self) -> None:
        self.connected = False

    async def publish(self, notifications: Sequence[Notification]) -> None:
        for note in notifications:
            self.published.append(note)
            if self.filter is not None and not self.filter(note):
                continue
            for listener in list(self._listeners):
                # A listener's bug must not fail the publisher (a task completion) or starve the other listeners.
                try:
                    listener(note)
                except Exception:
                    log.exception("notification listener %r raised; ignored", listener)

    def subscribe(self, listener: NotificationListener) -> Callable[[], None]:
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe
