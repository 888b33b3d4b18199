"""Registers the ``redis://`` (and, through core's alias, ``rediss://``) notifier with stent's plugin host.

This module imports no driver: redis-py is imported when a factory is called, so installing stent-redis costs
nothing to a process that does not use it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stent.plugins import Registry, hookimpl

if TYPE_CHECKING:
    from stent_redis.notifier import RedisNotifier


def make_redis_notifier(url: str, **options: Any) -> RedisNotifier:
    """A RedisNotifier for ``url``; ``prefix=`` and ``connect_timeout=`` may also be given here, and any other
    keyword goes to redis-py (``ssl_ca_certs=...``, say)."""
    from stent_redis.settings import parse_settings

    settings = parse_settings(url, **options)
    from stent_redis.notifier import RedisNotifier

    return RedisNotifier(settings)


@hookimpl
def stent_register_notifier(registry: Registry) -> None:
    registry.add_notifier("redis", make_redis_notifier)
