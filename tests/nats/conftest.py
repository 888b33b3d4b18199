"""Fixtures for the NATS notifier tests: notifiers under a random subject prefix per test, each reaching the
shared server through a proxy of its own, so that a test can cut one notifier's connection without restarting
a server other tests use."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

from local_servers import LogWatch, closed_port
from stent import Stent
from stent.ports import Notifier
from stent.testing.conformance.notifier import NotifierFactory, TcpProxy


@pytest.fixture
def nats_url(services: Any) -> str:
    """The local NATS (skips, or fails under STENT_REQUIRE_SERVICES=1, when it is down)."""
    url: str = services.nats()
    return url


@pytest.fixture
def prefix() -> str:
    """A subject prefix of this test alone, so parallel tests on the shared server never hear each other."""
    return f"stent-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def proxies(nats_url: str) -> AsyncIterator[dict[int, TcpProxy]]:
    """The proxy in front of each notifier the test made, by the notifier's id()."""
    made: dict[int, TcpProxy] = {}
    yield made
    for proxy in made.values():
        await proxy.stop()


@pytest.fixture
async def make_notifier(
    nats_url: str, prefix: str, proxies: dict[int, TcpProxy]
) -> AsyncIterator[NotifierFactory]:
    made: list[Notifier] = []
    host, port = nats_url.split("//", 1)[1].split(":")

    async def make(*, namespace: str = "main") -> Notifier:
        proxy = TcpProxy(host, int(port))
        await proxy.start()
        notifier = Stent.notifications.NatsBackend(f"nats://127.0.0.1:{proxy.port}?prefix={prefix}.{namespace}")
        proxies[id(notifier)] = proxy
        made.append(notifier)
        await notifier.connect()
        return notifier

    yield make
    for notifier in made:
        await notifier.close()


@pytest.fixture
def break_connection(proxies: dict[int, TcpProxy]) -> Callable[[Notifier], Awaitable[None]]:
    """Cut a notifier's connection abruptly at its proxy: to the client, the server dropped it."""

    async def cut(notifier: Notifier) -> None:
        proxies[id(notifier)].cut()

    return cut


@pytest.fixture
def make_unreachable_notifier() -> Callable[[], Notifier]:
    def make() -> Notifier:
        return Stent.notifications.NatsBackend(f"nats://127.0.0.1:{closed_port()}?connect_timeout=1")

    return make


@pytest.fixture
def nats_log() -> Iterator[LogWatch]:
    """Everything stent-nats logs during the test, down to DEBUG."""
    logger = logging.getLogger("stent_nats")
    watch, level = LogWatch(), logger.level
    logger.addHandler(watch)
    logger.setLevel(logging.DEBUG)
    yield watch
    logger.removeHandler(watch)
    logger.setLevel(level)
