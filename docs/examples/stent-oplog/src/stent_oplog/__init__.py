"""stent-oplog: an example stent Storage that keeps the reference in-memory store in a log file."""

from __future__ import annotations

from stent_oplog.storage import OplogStorage

__all__ = ["OplogStorage"]
