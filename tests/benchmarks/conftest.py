"""Fixtures for the benchmarks' smoke tests: the benchmark package importable from the repository's root, and
environments on the local services (skipped, or failed under STENT_REQUIRE_SERVICES=1, when one is down)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.environment import Environment, Servers, Setup


@pytest.fixture
async def open_env(services: Any, tmp_path: Path) -> AsyncIterator[Callable[[str], Awaitable[Environment]]]:
    """``await open_env("sqlite-redis")``: a fresh environment of that setup, closed after the test."""
    opened: list[Environment] = []

    async def make(name: str) -> Environment:
        setup = Setup(*name.split("-"))
        wanted = {setup.backend, setup.notifier}
        default = Servers()
        servers = Servers(
            postgres=services.postgres() if "postgres" in wanted else default.postgres,
            redis=services.redis() if "redis" in wanted else default.redis,
            nats=services.nats() if "nats" in wanted else default.nats,
        )
        env = await Environment.open(setup, tmp_path, servers)
        opened.append(env)
        return env

    yield make
    for env in opened:
        await env.close()
