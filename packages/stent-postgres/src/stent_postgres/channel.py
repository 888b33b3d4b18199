"""The NOTIFY channel and payload format shared by the storage (NOTIFY inside its transactions) and the notifier.

The channel is derived from the schema, so deployments that share a server but keep their tables in different
schemas never wake each other.  A payload is compact JSON of the notification's fields, well under PostgreSQL's
8000-byte payload limit for any realistic queue or task name; a notification that would not fit is sent without
its names, which still wakes everyone who listens (a hint may be vague, never wrong).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable

from stent.ports import Notification

log = logging.getLogger("stent_postgres.notifier")

_PREFIX = "stent_"
_MAX_CHANNEL = 63  # PostgreSQL identifiers, channel names included, are at most 63 bytes
_MAX_PAYLOAD = 7900
_FIELDS = (("k", "kind"), ("q", "queue"), ("t", "task_id"), ("e", "execution_id"))


def channel_for(schema: str) -> str:
    """The channel of a schema's deployment: ``stent_<schema>``, hashed when that would be too long."""
    name = _PREFIX + schema
    if len(name.encode()) <= _MAX_CHANNEL:
        return name
    return _PREFIX + hashlib.sha256(schema.encode()).hexdigest()[:40]


def encode(note: Notification) -> str:
    fields = {short: getattr(note, long) for short, long in _FIELDS if getattr(note, long) is not None}
    text = json.dumps(fields, separators=(",", ":"), ensure_ascii=False)
    if len(text.encode()) > _MAX_PAYLOAD:
        text = json.dumps({"k": note.kind}, separators=(",", ":"))
    return text


def encode_all(notes: Iterable[Notification]) -> list[str]:
    """Payloads for a batch, duplicates dropped (PostgreSQL would fold them within a transaction anyway)."""
    return list(dict.fromkeys(encode(n) for n in notes))


def decode(payload: str) -> Notification | None:
    """The notification in ``payload``, or ``None`` (logged) for one this version cannot read."""
    try:
        fields = json.loads(payload)
        kind = fields["k"]
        values = {long: fields.get(short) for short, long in _FIELDS[1:]}
        if not isinstance(kind, str) or not all(v is None or isinstance(v, str) for v in values.values()):
            raise TypeError("fields must be strings")
        return Notification(kind=kind, **values)
    except (ValueError, TypeError, KeyError) as exc:
        log.debug("ignored an unreadable notification payload %r: %s", payload[:200], exc)
        return None
