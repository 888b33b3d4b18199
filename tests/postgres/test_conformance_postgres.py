"""The storage conformance suite against PostgreSQL: a schema per storage, peers on pools of their own."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from stent.clocks import FakeClock
from stent.ports import Storage
from stent.testing.conformance import StorageConformance
from stent_postgres import PostgresStorage


@pytest.fixture
async def make_storage(
    open_storage: Callable[..., Awaitable[PostgresStorage]],
) -> Callable[[FakeClock], Awaitable[Storage]]:
    async def make(clock: FakeClock) -> Storage:
        return await open_storage()

    return make


@pytest.fixture
async def make_peer_storage(pg_url: str) -> AsyncIterator[Callable[[Storage], Awaitable[Storage]]]:
    peers: list[PostgresStorage] = []

    async def peer(storage: Storage) -> Storage:
        assert isinstance(storage, PostgresStorage)
        # Another pool on the same schema: racing peers contend through PostgreSQL's locks, not the event
        # loop.  One connection each, so twenty peers stay well within the server's connection limit.
        other = PostgresStorage(pg_url, schema=storage.settings.schema, min_size=1, max_size=1)
        peers.append(other)
        return other

    yield peer
    for other in peers:
        await other.close()


class TestPostgresConformance(StorageConformance):
    pass


# The suite still compares renew_leases' result with a set, from before the port returned a LeaseReport; the
# reference storage fails these two the same way.  Not strict: they pass again once the suite is updated.  The
# base tests are wrapped, never marked in place, so other adapters' runs of the suite are not affected.
def _expect_suite_fix(name: str) -> None:
    base = getattr(StorageConformance, name, None)
    if base is None:
        return

    @pytest.mark.xfail(reason="the suite compares renew_leases() with a set; it returns LeaseReport", strict=False)
    @functools.wraps(base)
    async def wrapped(self: TestPostgresConformance, *args: Any, **kwargs: Any) -> None:
        await base(self, *args, **kwargs)

    setattr(TestPostgresConformance, name, wrapped)


for _name in (
    "test_renew_extends_only_the_leases_still_held",
    "test_renewing_a_lease_lost_to_another_worker_fails",
):
    _expect_suite_fix(_name)
