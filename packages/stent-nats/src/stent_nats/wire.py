"""How a Notification travels: one compact JSON object per message, absent fields left out.

Unknown fields are ignored and the kind is carried as it is, so a newer stent can add fields and kinds without
breaking older readers on the same channel.
"""

from __future__ import annotations

import json
import logging

from stent.ports import Notification

log = logging.getLogger("stent_nats")

_FIELDS = ("queue", "task_id", "execution_id")


def encode(note: Notification) -> bytes:
    body: dict[str, str] = {"kind": note.kind}
    for name in _FIELDS:
        value = getattr(note, name)
        if value is not None:
            body[name] = value
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def decode(data: bytes | str) -> Notification | None:
    """The notification in ``data``, or ``None`` (logged) for a message that is not one of ours."""
    try:
        body = json.loads(data)
        fields = {name: body.get(name) for name in _FIELDS}
        if not isinstance(body["kind"], str) or not all(v is None or isinstance(v, str) for v in fields.values()):
            raise TypeError("fields must be strings")
        return Notification(kind=body["kind"], **fields)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        log.debug("ignored a message that is not a stent notification (%s): %.200r", exc, data)
        return None
