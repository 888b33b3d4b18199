"""Reading Redis notifier URLs and options: no server needed."""

from __future__ import annotations

import pytest

from stent import ConfigurationError, Stent
from stent_redis import RedisNotifier
from stent_redis.settings import parse_settings


def test_defaults() -> None:
    """A bare URL gets the 'stent' prefix, a 2 s connect timeout and Redis's default port."""
    settings = parse_settings("redis://")
    assert (settings.prefix, settings.channel) == ("stent", "stent:notifications")
    assert (settings.address, settings.connect_timeout, settings.tls) == ("localhost:6379", 2.0, False)


def test_stent_options_leave_the_query_and_the_rest_stays_for_redis_py() -> None:
    """prefix and connect_timeout are read from the query and removed; redis-py's options are kept in order."""
    settings = parse_settings("rediss://h:6380/2?ssl_cert_reqs=none&prefix=myapp:prod&connect_timeout=0.5&x=1")
    assert (settings.prefix, settings.channel, settings.connect_timeout) == (
        "myapp:prod",
        "myapp:prod:notifications",
        0.5,
    )
    assert settings.driver_url == "rediss://h:6380/2?ssl_cert_reqs=none&x=1"
    assert (settings.address, settings.tls) == ("h:6380", True)


def test_options_as_arguments_and_agreement_with_the_url() -> None:
    """Options may be arguments; given in both places they must agree."""
    assert parse_settings("redis://h", prefix="a", connect_timeout=3).prefix == "a"
    assert parse_settings("redis://h?prefix=a", prefix="a").prefix == "a"
    with pytest.raises(ConfigurationError, match="prefix is 'a' in the URL .* but 'b' as an argument"):
        parse_settings("redis://h?prefix=a", prefix="b")
    with pytest.raises(ConfigurationError, match="more than once"):
        parse_settings("redis://h?prefix=a&prefix=b")


@pytest.mark.parametrize("prefix", ["", "has space", "star*", "x" * 101, "ü"])
def test_bad_prefixes_are_refused(prefix: str) -> None:
    """A prefix must be 1 to 100 letters, digits or '_.:-'."""
    with pytest.raises(ConfigurationError, match="prefix must be"):
        parse_settings("redis://h", prefix=prefix)


@pytest.mark.parametrize("timeout", ["0", "-1", "soon", "inf", "nan"])
def test_bad_connect_timeouts_are_refused(timeout: str) -> None:
    """connect_timeout must be a positive, finite number of seconds."""
    with pytest.raises(ConfigurationError, match="connect_timeout must be a positive number"):
        parse_settings(f"redis://h?connect_timeout={timeout}")


def test_bad_urls_are_explained_without_the_password() -> None:
    """A wrong scheme or port is named, and the password never appears in the message."""
    with pytest.raises(ConfigurationError, match="invalid port") as caught:
        parse_settings("redis://user:s3cret@h:port")
    assert "s3cret" not in str(caught.value)
    with pytest.raises(ConfigurationError, match="not a Redis URL"):
        parse_settings("nats://h:4222")


def test_ipv6_address_is_bracketed() -> None:
    """An IPv6 host is shown as [host]:port."""
    assert parse_settings("redis://[::1]:7000").address == "[::1]:7000"


def test_url_and_scheme_alias_resolve_through_the_plugin() -> None:
    """redis:// and rediss:// URLs build a RedisNotifier through stent's plugin host, with keyword options."""
    plain = Stent.notifications.RedisBackend("redis://h:1", prefix="p")
    tls = Stent.notifications.from_url("rediss://h:2")
    assert isinstance(plain, RedisNotifier) and isinstance(tls, RedisNotifier)
    assert (plain.channel, tls.settings.tls) == ("p:notifications", True)


def test_options_redis_py_refuses_fail_at_construction() -> None:
    """An option redis-py does not take (TLS options on a plain URL, a typo) fails when the notifier is built."""
    with pytest.raises(ConfigurationError, match="ssl_cert_reqs") as caught:
        Stent.notifications.RedisBackend("redis://u:s3cret@h?ssl_cert_reqs=none")
    assert "s3cret" not in str(caught.value)
    with pytest.raises(ConfigurationError, match="socket_timout"):
        Stent.notifications.RedisBackend("redis://h", socket_timout=3)
