"""In-memory adapters: the reference Storage and a process-local Notifier."""

from stent.memory.storage import MemoryStorage

__all__ = ["MemoryStorage"]
