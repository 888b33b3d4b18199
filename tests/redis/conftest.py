"""Fixtures for the Redis notifier tests: notifiers under a random prefix per test, a separate admin connection
to inspect and kill them server-side, and a URL of a server that is down."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from redis.asyncio import Redis
from redis_support import connections_of

from local_servers import LogWatch, closed_port
from stent import Stent
from stent.ports import Notifier
from stent.testing.conformance.notifier import NotifierFactory
from stent_redis import RedisNotifier


@pytest.fixture
def redis_url(services: Any) -> str:
    """The local Redis (skips, or fails under STENT_REQUIRE_SERVICES=1, when it is down)."""
    url: str = services.redis()
    return url


@pytest.fixture
def prefix() -> str:
    """A prefix of this test alone, so parallel tests on the shared server never hear each other."""
    return f"stent-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def admin(redis_url: str) -> AsyncIterator[Redis]:
    """A plain client of the same server, for looking at and killing the notifiers' connections."""
    client = Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
async def make_notifier(redis_url: str, prefix: str) -> AsyncIterator[NotifierFactory]:
    made: list[Notifier] = []

    async def make(*, namespace: str = "main") -> Notifier:
        notifier = Stent.notifications.RedisBackend(f"{redis_url}?prefix={prefix}-{namespace}")
        made.append(notifier)
        await notifier.connect()
        return notifier

    yield make
    for notifier in made:
        await notifier.close()


@pytest.fixture
def break_connection(admin: Redis) -> Callable[[Notifier], Awaitable[None]]:
    """Kill a notifier's connections server-side, by id: ``CLIENT KILL TYPE pubsub`` would also hit the
    notifiers of tests running in parallel on the same server."""

    async def kill(notifier: Notifier) -> None:
        assert isinstance(notifier, RedisNotifier)
        rows = await connections_of(admin, notifier)
        assert rows, f"no connection of {notifier!r} on the server"
        for row in rows:
            await admin.client_kill_filter(_id=row["id"])

    return kill


@pytest.fixture
def make_unreachable_notifier() -> Callable[[], Notifier]:
    def make() -> Notifier:
        return Stent.notifications.RedisBackend(f"redis://127.0.0.1:{closed_port()}?connect_timeout=1")

    return make


@pytest.fixture
def redis_log() -> Iterator[LogWatch]:
    """Everything stent-redis logs during the test, down to DEBUG."""
    logger = logging.getLogger("stent_redis")
    watch, level = LogWatch(), logger.level
    logger.addHandler(watch)
    logger.setLevel(logging.DEBUG)
    yield watch
    logger.removeHandler(watch)
    logger.setLevel(level)
