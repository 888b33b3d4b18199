"""Building blocks for Notifier adapters: the wire format of a notification, and reconnection pacing.

Adapters on message brokers (stent-redis, stent-nats, and third-party ones) share these so that every notifier
speaks the same format and behaves the same way during an outage: reconnect with backoff, one warning when the
connection is lost, one info line when it is back.
"""

from __future__ import annotations

import json
import logging
import random

from stent.ports import Notification

_FIELDS = ("queue", "task_id", "execution_id", "origin")


def encode_notification(note: Notification) -> bytes:
    """One compact JSON object, absent fields left out."""
    body: dict[str, str] = {"kind": note.kind}
    for name in _FIELDS:
        value = getattr(note, name)
        if value is not None:
            body[name] = value
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def decode_notification(data: bytes | str, log: logging.Logger | None = None) -> Notification | None:
    """The notification in ``data``, or ``None`` (logged at debug) for a message that is not one of ours.

    Unknown fields are ignored and the kind is carried as it is, so a newer stent can add fields and kinds
    without breaking older readers on the same channel.
    """
    try:
        body = json.loads(data)
        fields = {name: body.get(name) for name in _FIELDS}
        if not isinstance(body["kind"], str) or not all(v is None or isinstance(v, str) for v in fields.values()):
            raise TypeError("fields must be strings")
        return Notification(kind=body["kind"], **fields)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        (log or logging.getLogger("stent.notifier")).debug(
            "ignored a message that is not a stent notification (%s): %.200r", exc, data
        )
        return None


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
    """One warning when a connection is lost and one info line when all are back, whatever happens between."""

    def __init__(self, service: str, address: str, log: logging.Logger) -> None:
        self.service = service
        self.address = address
        self.log = log
        self._down: set[str] = set()

    @property
    def healthy(self) -> bool:
        return not self._down

    def lost(self, part: str, error: BaseException) -> None:
        if not self._down:
            self.log.warning(
                "stent notifier lost its %s connection to %s at %s (%s); reconnecting with backoff, and stent"
                " polls until then",
                part,
                self.service,
                self.address,
                describe_error(error),
            )
        else:
            self.log.debug(
                "%s at %s still unreachable for %s: %s", self.service, self.address, part, describe_error(error)
            )
        self._down.add(part)

    def restored(self, part: str) -> None:
        if part in self._down:
            self._down.discard(part)
            if not self._down:
                self.log.info("stent notifier reconnected to %s at %s", self.service, self.address)


def describe_error(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
