"""The NOTIFY channel and payload format shared by the storage (NOTIFY inside its transactions) and the notifier.

The channel is derived from the schema, so deployments that share a server but keep their tables in different
schemas never wake each other.  Payloads are the wire format every stent notifier speaks
(:mod:`stent.notifier_kit`: compact JSON with ``kind``, ``queue``, ``task_id``, ``execution_id``); the storage's
SQL builds the same objects with ``json_build_object``.  PostgreSQL limits a payload to 8000 bytes: a
notification that would not fit is sent with its kind alone, which still wakes everyone who listens (a hint may
be vague, never wrong).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable

from stent.notifier_kit import decode_notification, encode_notification
from stent.ports import Notification

log = logging.getLogger("stent_postgres.notifier")

_PREFIX = "stent_"
_MAX_CHANNEL = 63  # PostgreSQL identifiers, channel names included, are at most 63 bytes
_MAX_PAYLOAD = 7900


def channel_for(schema: str) -> str:
    """The channel of a schema's deployment: ``stent_<schema>``, hashed when that would be too long."""
    name = _PREFIX + schema
    if len(name.encode()) <= _MAX_CHANNEL:
        return name
    return _PREFIX + hashlib.sha256(schema.encode()).hexdigest()[:40]


def encode(note: Notification) -> str:
    data = encode_notification(note)
    if len(data) > _MAX_PAYLOAD:
        data = encode_notification(Notification(kind=note.kind))
    return data.decode()


def encode_all(notes: Iterable[Notification]) -> list[str]:
    """Payloads for a batch, duplicates dropped (PostgreSQL would fold them within a transaction anyway)."""
    return list(dict.fromkeys(encode(n) for n in notes))


def decode(payload: str) -> Notification | None:
    """The notification in ``payload``, or ``None`` (logged at debug) for one this version cannot read."""
    return decode_notification(payload, log)
