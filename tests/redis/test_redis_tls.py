"""The Redis notifier over TLS with a password, against a private redis-server these tests start: the whole
conformance suite through rediss:// URLs, and the ways a TLS or credentials mistake shows."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass

import pytest
from redis.asyncio import Redis
from redis_support import connections_of

from local_servers import Certificates, closed_port, make_certificates, private_server, require_binary
from stent import Stent, StorageUnavailable
from stent.ports import Notifier
from stent.testing.conformance.notifier import Inbox, NotifierConformance, NotifierFactory, marker
from stent_redis import RedisNotifier

PASSWORD = "s3cret-pw"


@dataclass(frozen=True)
class TlsRedis:
    port: int
    certificates: Certificates

    def url(self, password: str = PASSWORD, **query: str) -> str:
        options = "&".join(f"{k}={v}" for k, v in {"ssl_ca_certs": str(self.certificates.ca), **query}.items())
        return f"rediss://:{password}@localhost:{self.port}/0?{options}"


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsRedis]:
    """A redis-server of this module alone, speaking only TLS and requiring a password."""
    binary = require_binary("redis-server")
    certificates = make_certificates(tmp_path_factory.mktemp("redis-tls"))
    port = closed_port()
    argv = [binary, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
            "--tls-cert-file", str(certificates.cert), "--tls-key-file", str(certificates.key),
            "--tls-ca-cert-file", str(certificates.ca), "--tls-auth-clients", "no",
            "--requirepass", PASSWORD, "--save", "", "--appendonly", "no"]  # fmt: skip
    with private_server(argv, port):
        yield TlsRedis(port, certificates)


@pytest.fixture
async def admin(tls_redis: TlsRedis) -> AsyncIterator[Redis]:
    client = Redis.from_url(tls_redis.url(), decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
async def make_notifier(tls_redis: TlsRedis, prefix: str) -> AsyncIterator[NotifierFactory]:
    made: list[Notifier] = []

    async def make(*, namespace: str = "main") -> Notifier:
        notifier = Stent.notifications.RedisBackend(tls_redis.url(prefix=f"{prefix}-{namespace}"))
        made.append(notifier)
        await notifier.connect()
        return notifier

    yield make
    for notifier in made:
        await notifier.close()


@pytest.fixture
def break_connection(admin: Redis) -> Callable[[Notifier], Awaitable[None]]:
    async def kill(notifier: Notifier) -> None:
        assert isinstance(notifier, RedisNotifier)
        for row in await connections_of(admin, notifier):
            await admin.client_kill_filter(_id=row["id"])

    return kill


class TestRedisOverTlsConformance(NotifierConformance):
    pass


async def test_notifications_cross_tls_with_the_password_from_the_url(make_notifier: NotifierFactory) -> None:
    """Two notifiers connected with rediss://:password@... exchange notifications."""
    publisher, subscriber = await make_notifier(), await make_notifier()
    inbox = Inbox()
    subscriber.subscribe(inbox)
    note = marker()
    await publisher.publish([note])
    await inbox.receives([note], 5)


async def test_a_server_certificate_from_an_unknown_ca_is_refused(tls_redis: TlsRedis) -> None:
    """Without the CA that signed the server's certificate, connect() fails naming host:port."""
    notifier = Stent.notifications.RedisBackend(f"rediss://:{PASSWORD}@localhost:{tls_redis.port}")
    with pytest.raises(StorageUnavailable, match=f"localhost:{tls_redis.port}.*certificate verify failed"):
        await notifier.connect()


async def test_a_wrong_password_is_named_and_not_shown(tls_redis: TlsRedis) -> None:
    """A wrong password makes connect() say the credentials were rejected, without showing them."""
    notifier = Stent.notifications.RedisBackend(tls_redis.url(password="not-it"))
    with pytest.raises(StorageUnavailable, match="rejected the notifier's credentials") as caught:
        await notifier.connect()
    assert "not-it" not in str(caught.value)


async def test_plain_text_to_a_tls_port_fails_within_the_timeout(tls_redis: TlsRedis) -> None:
    """A redis:// URL (no TLS) for a TLS-only port fails connect() instead of hanging."""
    notifier = Stent.notifications.RedisBackend(
        f"redis://:{PASSWORD}@localhost:{tls_redis.port}?connect_timeout=0.5"
    )
    with pytest.raises(StorageUnavailable, match=f"localhost:{tls_redis.port}"):
        await notifier.connect()
