"""The NATS notifier over TLS with a user and password, against a private nats-server these tests start: the
whole conformance suite through such URLs (connections cut at a proxy, TLS passing through it), and the ways a
TLS or credentials mistake shows."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest

from local_servers import Certificates, closed_port, make_certificates, private_server, require_binary
from stent import Stent, StorageUnavailable
from stent.ports import Notifier
from stent.testing.conformance.notifier import Inbox, NotifierConformance, NotifierFactory, TcpProxy, marker
from stent_nats import NatsNotifier
from stent_nats.notifier import _in_plain_text

USER, PASSWORD = "app", "s3cret-pw"


@dataclass(frozen=True)
class TlsNats:
    port: int
    certificates: Certificates

    def url(self, port: int | None = None, password: str = PASSWORD, **query: str) -> str:
        options = "&".join(f"{k}={v}" for k, v in {"tls_ca": str(self.certificates.ca), **query}.items())
        return f"nats://{USER}:{password}@127.0.0.1:{port or self.port}?{options}"


@pytest.fixture(scope="module")
def tls_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsNats]:
    """A nats-server of this module alone, requiring TLS and a user and password."""
    binary = require_binary("nats-server")
    certificates = make_certificates(tmp_path_factory.mktemp("nats-tls"))
    port = closed_port()
    argv = [binary, "-a", "127.0.0.1", "-p", str(port), "--tls", "--tlscert", str(certificates.cert),
            "--tlskey", str(certificates.key), "--user", USER, "--pass", PASSWORD]  # fmt: skip
    with private_server(argv, port):
        yield TlsNats(port, certificates)


@pytest.fixture
async def make_notifier(
    tls_nats: TlsNats, prefix: str, proxies: dict[int, TcpProxy]
) -> AsyncIterator[NotifierFactory]:
    made: list[Notifier] = []

    async def make(*, namespace: str = "main") -> Notifier:
        proxy = TcpProxy("127.0.0.1", tls_nats.port)
        await proxy.start()
        notifier = Stent.notifications.NatsBackend(tls_nats.url(proxy.port, prefix=f"{prefix}.{namespace}"))
        proxies[id(notifier)] = proxy
        made.append(notifier)
        await notifier.connect()
        return notifier

    yield make
    for notifier in made:
        await notifier.close()


class TestNatsOverTlsConformance(NotifierConformance):
    pass


async def test_notifications_cross_tls_with_credentials_from_the_url(make_notifier: NotifierFactory) -> None:
    """Two notifiers connected with nats://user:password@...?tls_ca=... exchange notifications, encrypted."""
    publisher, subscriber = await make_notifier(), await make_notifier()
    inbox = Inbox()
    subscriber.subscribe(inbox)
    note = marker()
    await publisher.publish([note])
    await inbox.receives([note], 5)
    assert isinstance(subscriber, NatsNotifier) and subscriber.client is not None
    assert not _in_plain_text(subscriber.client)


async def test_a_server_certificate_from_an_unknown_ca_is_refused(tls_nats: TlsNats) -> None:
    """Without the CA that signed the server's certificate, connect() fails naming host:port."""
    notifier = Stent.notifications.NatsBackend(f"nats://{USER}:{PASSWORD}@127.0.0.1:{tls_nats.port}")
    with pytest.raises(StorageUnavailable, match=f"127.0.0.1:{tls_nats.port}.*CERTIFICATE_VERIFY_FAILED"):
        await notifier.connect()


async def test_a_wrong_password_is_named_and_not_shown(tls_nats: TlsNats) -> None:
    """A wrong password makes connect() say the credentials were rejected, without showing them."""
    notifier = Stent.notifications.NatsBackend(tls_nats.url(password="not-it"))
    with pytest.raises(StorageUnavailable, match="rejected the notifier's credentials") as caught:
        await notifier.connect()
    assert "not-it" not in str(caught.value)
