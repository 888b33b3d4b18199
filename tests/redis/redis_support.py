"""Helpers for the Redis notifier tests (imported by name, as pytest puts this folder on sys.path); the local
servers, certificates and log watcher they share with the NATS tests are in tests/local_servers.py."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from stent_redis import RedisNotifier


async def connections_of(admin: Redis, notifier: RedisNotifier) -> list[dict[str, Any]]:
    """The server's view of a notifier's connections (CLIENT LIST rows carrying its client name)."""
    return [c for c in await admin.client_list() if c.get("name") == notifier.client_name]
