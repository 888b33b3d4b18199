"""Fixtures shared by every test folder.

``services`` reaches the local PostgreSQL, Redis and NATS on their standard ports (DESIGN section 13).  A test
that needs one and finds it down is skipped with the reason, except under ``STENT_REQUIRE_SERVICES=1`` (which
``.ci/run`` sets), where it fails: CI can never pass by skipping.

    async def test_notifier_delivers(services):
        url = services.redis()            # skips (or fails) when Redis is down
        services.require_service("MinIO", "127.0.0.1", 9000)   # any other TCP service
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import attrs
import pytest

from stent import Stent
from stent.memory import MemoryStorage
from stent.ports import Storage
from stent.testing.harness import WorkflowHarness

REQUIRE_SERVICES_ENV = "STENT_REQUIRE_SERVICES"


def _probe(host: str, port: int, timeout: float) -> str | None:
    """``None`` when a TCP connection to host:port succeeds, else why it did not."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"


@attrs.define
class Services:
    """The local services; each method skips (or fails) the calling test when its service is down."""

    host: str = "127.0.0.1"
    timeout: float = 1.0
    # Probe results remembered for the session, so a down service costs one connect timeout, not one per test.
    _seen: dict[tuple[str, int], str | None] = attrs.field(factory=dict)

    def require_service(self, name: str, host: str, port: int) -> None:
        """Return when ``name`` answers on host:port; otherwise skip, or fail under STENT_REQUIRE_SERVICES=1."""
        key = (host, port)
        if key not in self._seen:
            self._seen[key] = _probe(host, port, self.timeout)
        problem = self._seen[key]
        if problem is None:
            return
        if os.environ.get(REQUIRE_SERVICES_ENV) == "1":
            pytest.fail(
                f"{name} is required ({REQUIRE_SERVICES_ENV}=1) but does not answer on {host}:{port}"
                f" ({problem}); start it (.ci/run starts every service the tests need)",
                pytrace=False,
            )
        pytest.skip(
            f"{name} does not answer on {host}:{port} ({problem}); start it to run this test, or set"
            f" {REQUIRE_SERVICES_ENV}=1 to make a missing service a failure"
        )

    def postgres(self) -> str:
        """DSN of the local PostgreSQL (user postgres, trust auth, database test)."""
        self.require_service("PostgreSQL", self.host, 5432)
        return f"postgresql://postgres@{self.host}:5432/test"

    def redis(self) -> str:
        """URL of the local Redis."""
        self.require_service("Redis", self.host, 6379)
        return f"redis://{self.host}:6379/0"

    def nats(self) -> str:
        """URL of the local NATS server."""
        self.require_service("NATS", self.host, 4222)
        return f"nats://{self.host}:4222"


@pytest.fixture(scope="session")
def services() -> Services:
    """The local PostgreSQL, Redis and NATS: ``services.postgres()`` returns a DSN, or skips/fails when down."""
    return Services()


# -- the engine harness on every storage backend ------------------------------------------------------------

BACKENDS = ["memory", "sqlite"]


async def make_storage(kind: str, tmp_path: Path) -> Storage:
    if kind == "memory":
        return MemoryStorage()
    storage = Stent.backends.SQLiteBackend(str(tmp_path / "engine.db"))
    await storage.init_db()
    return storage


@pytest.fixture(params=BACKENDS)
async def harness(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[WorkflowHarness]:
    h = WorkflowHarness(await make_storage(request.param, tmp_path))
    yield h
    await h.stop()
