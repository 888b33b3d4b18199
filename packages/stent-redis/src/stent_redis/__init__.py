"""stent-redis: a Notifier on Redis pub/sub for stent.

Use it through a URL (``Stent(..., notification_backend="redis://localhost:6379")`` or
``Stent.notifications.RedisBackend(url)``); :class:`RedisNotifier` is importable from here for type hints and
direct construction, and is loaded (with redis-py) only when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stent_redis.notifier import RedisNotifier
    from stent_redis.settings import RedisSettings

__version__ = "0.1.0"

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
