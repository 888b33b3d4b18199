"""What every part of a process shares: storage, clock, codec, notifier, metrics and the waiter registry.

An executor owns one :class:`Runtime` per event loop.  Workers, dispatchers and waiters in the process use it,
so there is one notifier connection and one waiter poller per process however many tasks wait.
"""

from __future__ import annotations

import asyncio
import logging
import random
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from stent._batching import GroupCall
from stent.engine.codec import Codec
from stent.engine.waiters import WaiterRegistry
from stent.errors import StentError
from stent.model import TaskRecord
from stent.ports import Clock, Notification, Notifier, Storage

#: Seconds close() waits for hints still being published.
_PUBLISH_GRACE = 2.0

log = logging.getLogger("stent.runtime")

# Notifiers that already warned about being unreachable: several executors of one process may share one
# notifier, and the outage deserves one warning, not one per executor.
_warned: weakref.WeakSet[object] = weakref.WeakSet()


def _first_warning_for(notifier: object) -> bool:
    try:
        if notifier in _warned:
            return False
        _warned.add(notifier)
    except TypeError:  # not weak-referenceable: warn every time rather than never
        pass
    return True


_METRIC_NAMES = ("task_claimed", "task_completed", "task_failed", "dead_lettered", "lease_renewed")


class MetricsSink:
    """Calls a user's recorder, skipping methods it lacks and swallowing (and logging) what it raises."""

    def __init__(self, recorder: object | None) -> None:
        self._recorder = recorder
        self._methods: dict[str, Callable[..., Any]] = {}
        if recorder is not None:
            for name in _METRIC_NAMES:
                method = getattr(recorder, name, None)
                if callable(method):
                    self._methods[name] = method

    def emit(self, name: str, **fields: Any) -> None:
        method = self._methods.get(name)
        if method is None:
            return
        try:
            method(**fields)
        except Exception:
            log.exception("metrics recorder %r raised in %s; ignored", self._recorder, name)


class Runtime:
    def __init__(
        self,
        *,
        storage: Storage,
        clock: Clock,
        codec: Codec,
        rng: random.Random,
        notifier: Notifier | None,
        metrics: object | None,
        poll_min_interval: float,
        poll_max_interval: float,
        poll_backoff_factor: float,
    ) -> None:
        self.storage = storage
        self.clock = clock
        self.codec = codec
        self.rng = rng
        self.notifier = notifier
        self.metrics = MetricsSink(metrics)
        #: Stamped on the hints this runtime publishes (see Notification.origin).
        self.origin = f"{rng.getrandbits(64):016x}"
        self.waiters = WaiterRegistry(
            storage,
            clock,
            poll_min_interval=poll_min_interval,
            poll_max_interval=poll_max_interval,
            poll_backoff_factor=poll_backoff_factor,
        )
        self._work_listeners: list[Callable[[str | None], None]] = []
        self._unsubscribe: Callable[[], None] | None = None
        self._connected = False
        self._started = False
        self._announced_by_storage: bool | None = None
        self._reconnect: asyncio.Future[None] | None = None
        self._connect_lock = asyncio.Lock()
        # Notifications of one loop turn go out in one publish (fifty tasks finishing at once: one message).
        self._publish_many: GroupCall[Sequence[Notification], None] = GroupCall(self._publish_batch)
        self._publishing: set[asyncio.Future[None]] = set()

    async def start(self) -> None:
        """Connect the notifier once per process.

        A notifier that cannot connect leaves stent polling, with one warning, while a background task keeps
        trying with backoff; notifications flow again once it connects.
        """
        async with self._connect_lock:
            if self._started or self.notifier is None:
                return
            self._started = True
            try:
                await self.notifier.connect()
            except Exception as exc:
                if _first_warning_for(self.notifier):
                    log.warning("notifier could not connect (%s); polling until it can", exc)
                else:
                    log.debug("notifier could not connect (%s); polling until it can", exc)
                self._reconnect = asyncio.ensure_future(self._connect_later())
                return
            self._subscribe()

    def _subscribe(self) -> None:
        assert self.notifier is not None
        self._connected = True
        skip_echoes = getattr(self.notifier, "skip_echoes_of", None)
        if callable(skip_echoes) and self._storage_announces():
            # The storage's own announcements come back too; this process acted on its changes as it made them.
            skip_echoes(self.storage)
        self._unsubscribe = self.notifier.subscribe(self._on_notification)

    async def _connect_later(self) -> None:
        assert self.notifier is not None
        delay = 0.5
        while True:
            await self.clock.sleep(delay)
            try:
                await self.notifier.connect()
            except Exception as exc:
                log.debug("notifier still unreachable: %s", exc)
                delay = min(delay * 2, 30.0)
                continue
            log.info("notifier connected; wake-ups are pushed again")
            self._subscribe()
            return

    async def close(self) -> None:
        if self._publishing:  # hints still on their way go out before the notifier closes (boundedly)
            await asyncio.wait(list(self._publishing), timeout=_PUBLISH_GRACE)
        if self._reconnect is not None and not self._reconnect.done():
            self._reconnect.cancel()
            await asyncio.gather(self._reconnect, return_exceptions=True)
        self._started = False
        await self.waiters.close()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self.notifier is not None and self._connected:
            self._connected = False
            try:
                await self.notifier.close()
            except Exception as exc:
                log.warning("notifier close failed: %s", exc)

    # -- notifications -------------------------------------------------------------------------------------

    def on_work(self, listener: Callable[[str | None], None]) -> Callable[[], None]:
        """Call ``listener(queue)`` whenever work may be ready (locally created or announced)."""
        self._work_listeners.append(listener)
        return lambda: self._work_listeners.remove(listener) if listener in self._work_listeners else None

    def _storage_announces(self) -> bool:
        """Whether the storage already announces its changes on this notifier's channel (in its transactions)."""
        if self._announced_by_storage is None:
            hears = getattr(self.notifier, "hears_storage", None)
            self._announced_by_storage = bool(
                "transactional_notifications" in getattr(self.storage, "capabilities", frozenset())
                and callable(hears)
                and hears(self.storage)
            )
        return self._announced_by_storage

    def _on_notification(self, note: Notification) -> None:
        if note.origin is not None and note.origin == self.origin:
            return  # its own hint, back from the notifier: acted on when it was sent
        if note.kind == "finished":
            self.waiters.hint(note.execution_id, note.task_id)
        elif note.kind == "work":
            self._announce_work(note.queue)

    @property
    def hears_hints(self) -> bool:
        """Whether "finished" hints reach this process (its notifier is connected)."""
        return self._connected

    def _announce_work(self, queue: str | None) -> None:
        for listener in list(self._work_listeners):
            try:
                listener(queue)
            except Exception:
                log.exception("work listener failed")

    async def work_created(self, queues: Iterable[str]) -> None:
        """New tasks are ready: wake local workers now, and tell other processes."""
        distinct = sorted(set(queues))
        for queue in distinct:
            self._announce_work(queue)
        await self._publish([Notification(kind="work", queue=q, origin=self.origin) for q in distinct])

    async def work_created_anywhere(self) -> None:
        """Something in an unknown queue became ready (a signal woke a task, say)."""
        self._announce_work(None)
        await self._publish([Notification(kind="work", queue=None, origin=self.origin)])

    async def task_finished(self, record: TaskRecord) -> None:
        """A task ended here: wake local waiters directly, and tell other processes.

        A child whose parent does not wait for it in this process may have woken a suspended parent, which any
        worker can now claim: that is announced as work too, as is the slot a task of a ``max_concurrent``
        function gives back (claims skipped that function's ready tasks while it was full).
        """
        parent_waits_here = self.waiters.is_waited(record.task_id)
        self.waiters.resolve(record)
        notes = [
            Notification(
                kind="finished", task_id=record.task_id, execution_id=record.execution_id, origin=self.origin
            )
        ]
        if record.parent_task_id is None:
            self.waiters.execution_finished(record.execution_id)
        elif not parent_waits_here:
            self._announce_work(None)
            notes.append(Notification(kind="work", queue=None, origin=self.origin))
        if record.max_concurrent is not None:
            self._announce_work(record.queue)
            notes.append(Notification(kind="work", queue=record.queue, origin=self.origin))
        await self._publish(notes)

    async def _publish(self, notes: Sequence[Notification]) -> None:
        """Send hints in the background: a dispatch or a completion never waits for the notifier's round trip
        (a hint that never arrives costs a poll's delay, nothing more)."""
        if self.notifier is None or not notes or self._storage_announces():
            return
        soon = getattr(self.notifier, "publish_soon", None)
        if soon is not None and soon(notes):
            return
        sending = asyncio.ensure_future(self._publish_many(notes))
        self._publishing.add(sending)
        sending.add_done_callback(self._publishing.discard)

    async def _publish_batch(self, batches: list[Sequence[Notification]]) -> list[None]:
        assert self.notifier is not None
        notes = list(dict.fromkeys(note for batch in batches for note in batch))  # each hint once, in order
        try:
            await self.notifier.publish(notes)
        except (StentError, OSError) as exc:
            log.debug("notification not published (%s); waiters will poll", exc)
        return [None] * len(batches)
