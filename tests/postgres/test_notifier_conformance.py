"""The notifier conformance suite against LISTEN/NOTIFY: a channel (schema name) per test and namespace,
connections killed server-side with pg_terminate_backend."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest

from stent import Stent
from stent.ports import Notifier
from stent.testing.conformance.notifier import NotifierConformance, NotifierFactory
from stent_postgres import PostgresNotifier


@pytest.fixture
async def make_notifier(pg_url: str) -> AsyncIterator[NotifierFactory]:
    run = uuid.uuid4().hex[:12]
    made: list[Notifier] = []

    async def make(*, namespace: str = "main") -> Notifier:
        # The channel follows the schema; the schema itself need not exist for notifications.
        notifier = Stent.notifications.PostgresBackend(f"{pg_url}?schema=t{run}_{namespace}", reconnect_delay=0.05)
        made.append(notifier)
        await notifier.connect()
        return notifier

    yield make
    for notifier in made:
        await notifier.close()


@pytest.fixture
def break_connection(admin: asyncpg.Connection) -> Callable[[Notifier], Awaitable[None]]:
    """Kill a notifier's listening connection server-side, by its backend pid."""

    async def kill(notifier: Notifier) -> None:
        assert isinstance(notifier, PostgresNotifier)
        pid = notifier.backend_pid
        assert pid is not None, "the notifier is not connected"
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)

    return kill


@pytest.fixture
def make_unreachable_notifier(closed_port_url: str) -> Callable[[], Notifier]:
    return lambda: PostgresNotifier(closed_port_url, connect_timeout=2, reconnect_delay=0.05)


class TestPostgresNotifierConformance(NotifierConformance):
    pass
