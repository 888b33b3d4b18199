"""The ``services`` fixture skips tests whose service is down, and fails them when services are required."""

from __future__ import annotations

import socket
from typing import Any

import pytest


def _closed_port() -> int:
    """A loopback port that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_a_listening_service_lets_the_test_run(services: Any) -> None:
    """A service that accepts a TCP connection is treated as up."""
    fresh = type(services)()
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        fresh.require_service("fake", "127.0.0.1", server.getsockname()[1])


def test_a_down_service_skips_with_its_name_and_address(services: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without STENT_REQUIRE_SERVICES, a down service skips the test and says what was missing."""
    monkeypatch.delenv("STENT_REQUIRE_SERVICES", raising=False)
    port = _closed_port()
    with pytest.raises(pytest.skip.Exception, match=rf"fake does not answer on 127\.0\.0\.1:{port}"):
        type(services)().require_service("fake", "127.0.0.1", port)


def test_a_down_service_fails_when_services_are_required(services: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under STENT_REQUIRE_SERVICES=1, a down service is a failure, so CI cannot pass by skipping."""
    monkeypatch.setenv("STENT_REQUIRE_SERVICES", "1")
    port = _closed_port()
    with pytest.raises(pytest.fail.Exception, match=rf"fake is required .* 127\.0\.0\.1:{port}"):
        type(services)().require_service("fake", "127.0.0.1", port)


def test_a_probe_result_is_remembered(services: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A service found down is not probed again, so many tests of a down service cost one timeout."""
    monkeypatch.delenv("STENT_REQUIRE_SERVICES", raising=False)
    fresh = type(services)()
    port = _closed_port()
    for _ in range(2):
        with pytest.raises(pytest.skip.Exception):
            fresh.require_service("fake", "127.0.0.1", port)
    assert list(fresh._seen) == [("127.0.0.1", port)]


def test_standard_services_use_the_standard_ports(services: Any) -> None:
    """postgres(), redis() and nats() probe 5432, 6379 and 4222 and return URLs for them."""
    fresh = type(services)()
    for port in (5432, 6379, 4222):
        fresh._seen[("127.0.0.1", port)] = None  # as if the probe had succeeded
    assert fresh.postgres() == "postgresql://postgres@127.0.0.1:5432/test"
    assert fresh.redis() == "redis://127.0.0.1:6379/0"
    assert fresh.nats() == "nats://127.0.0.1:4222"
