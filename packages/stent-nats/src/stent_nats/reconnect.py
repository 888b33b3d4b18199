"""Reconnection pacing and its logging: exponential backoff with jitter, and one warning per outage."""

from __future__ import annotations

import logging
import random

log = logging.getLogger("stent_nats")


class Backoff:
    """Delays between reconnection attempts: ``initial`` doubling up to ``maximum``, each spread by +-20 %."""

    def __init__(self, initial: float = 0.1, maximum: float = 5.0, rng: random.Random | None = None) -> None:
        self.initial = initial
        self.maximum = maximum
        self._rng = rng or random.Random()
        self._next = initial

    def next_delay(self) -> float:
        delay = self._next
        self._next = min(self._next * 2, self.maximum)
        return delay * self._rng.uniform(0.8, 1.2)

    def reset(self) -> None:
        self._next = self.initial


class OutageLog:
    """Logs one warning when a connection is lost and one info line when all of them are back, whatever the
    number of failed attempts, publishes and connections in between."""

    def __init__(self, address: str) -> None:
        self.address = address
        self._down: set[str] = set()

    @property
    def healthy(self) -> bool:
        return not self._down

    def lost(self, part: str, error: BaseException) -> None:
        if not self._down:
            log.warning(
                "stent notifier lost its %s to NATS at %s (%s); reconnecting with backoff, and stent"
                " polls until then",
                part,
                self.address,
                describe(error),
            )
        else:
            log.debug("NATS at %s still unreachable (%s): %s", self.address, part, describe(error))
        self._down.add(part)

    def restored(self, part: str) -> None:
        if part in self._down:
            self._down.discard(part)
            if not self._down:
                log.info("stent notifier reconnected to NATS at %s", self.address)


def describe(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
