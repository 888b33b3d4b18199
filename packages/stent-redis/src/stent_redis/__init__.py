"""stent-redis: a Notifier on Redis pub/sub for stent.

Use it through a URL (``Stent(..., notification_backend="redis://localhost:6379")`` or
``Stent.notifications.RedisBackend(url)``); :class:`RedisNotifier` is importable from here for type hints and
direct construction, and is loaded (with redis-py) only when first used.
"""

from __future__ import annotations

import importlib.metadata
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stent_redis.notifier import RedisNotifier
    from stent_redis.settings import RedisSettings

try:  # the version is written once, in pyproject.toml; an install records it in the metadata read here
    __version__ = importlib.metadata.version("stent-redis")
except importlib.metadata.PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["RedisNotifier", "RedisSettings", "__version__"]


def __getattr__(name: str) -> Any:
    # Lazily, so that the plugin host loading stent_redis.plugin does not import redis-py.
    if name == "RedisNotifier":
        from stent_redis.notifier import RedisNotifier

        return RedisNotifier
    if name == "RedisSettings":
        from stent_redis.settings import RedisSettings

        return RedisSettings
    raise AttributeError(f"module 'stent_redis' has no attribute {name!r}")
