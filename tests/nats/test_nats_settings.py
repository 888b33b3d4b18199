"""Reading NATS notifier URLs and options: no server needed."""

from __future__ import annotations

from pathlib import Path

import pytest

from stent import ConfigurationError, Stent
from stent_nats import NatsNotifier
from stent_nats.settings import parse_settings


def test_defaults_and_subjects() -> None:
    """A bare URL gets the 'stent' prefix, a 2 s connect timeout, NATS's port, and a subject per kind."""
    settings = parse_settings("nats://")
    assert (settings.prefix, settings.subjects, settings.address) == ("stent", "stent.*", "localhost:4222")
    assert (settings.connect_timeout, settings.wants_tls) == (2.0, False)
    assert [settings.subject(k) for k in ("work", "finished", "later.kind")] == [
        "stent.work",
        "stent.finished",
        "stent.other",
    ]


def test_query_options_are_read_and_credentials_stay_in_the_server_url() -> None:
    """stent's options leave the URL given to nats-py, which keeps the user and password; messages show host:port."""
    settings = parse_settings(
        "nats://u:s3cret@h:4333?prefix=myapp.prod&connect_timeout=0.5&name=api&tls_ca=/ca.pem"
    )
    assert settings.server_url == "nats://u:s3cret@h:4333"
    assert (settings.address, settings.prefix, settings.subjects) == ("h:4333", "myapp.prod", "myapp.prod.*")
    assert (settings.connect_timeout, settings.name, settings.tls_ca, settings.wants_tls) == (
        0.5,
        "api",
        "/ca.pem",
        True,
    )


@pytest.mark.parametrize(
    ("query", "expected"), [("tls", True), ("tls=true", True), ("tls=1", True), ("tls=no", False)]
)
def test_tls_flag(query: str, expected: bool) -> None:
    """?tls (bare or true-ish) asks for TLS; false-ish values do not."""
    assert parse_settings(f"nats://h?{query}").tls is expected


def test_options_as_arguments_must_agree_with_the_url() -> None:
    """Options may be keyword arguments; given in both places they must agree, flags in any spelling."""
    assert parse_settings("nats://h?tls=true", tls=True).tls is True
    assert parse_settings("nats://h", prefix="p", ping_interval=5).driver_options == {"ping_interval": 5}
    with pytest.raises(ConfigurationError, match="prefix is 'a' in the URL .* but 'b' as an argument"):
        parse_settings("nats://h?prefix=a", prefix="b")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("nats://h?color=blue", "unknown option 'color'"),
        ("nats://h?prefix=a&prefix=b", "more than once"),
        ("nats://a:4222,b:4222", "several servers"),
        ("nats://h:port", "invalid port"),
        ("redis://h", "not a NATS URL"),
        ("nats://h?tls=maybe", "tls must be true or false"),
        ("nats://h?connect_timeout=-1", "connect_timeout must be a positive number"),
        ("nats://h?name=", "name must be a non-empty string"),
    ],
)
def test_bad_urls_are_explained(url: str, message: str) -> None:
    """Each mistake in a URL raises a ConfigurationError saying which."""
    with pytest.raises(ConfigurationError, match=message):
        parse_settings(url)


@pytest.mark.parametrize("prefix", ["", "a..b", ".a", "a.", "a b", "a*", "a.>", "ü", "x" * 101])
def test_prefixes_must_be_subject_tokens(prefix: str) -> None:
    """A prefix is dot-separated subject tokens, without wildcards, spaces or empty tokens."""
    with pytest.raises(ConfigurationError, match="prefix must be NATS subject tokens"):
        parse_settings("nats://h", prefix=prefix)


def test_the_password_never_appears_in_errors() -> None:
    """A bad URL's message hides the password."""
    with pytest.raises(ConfigurationError) as caught:
        parse_settings("nats://u:s3cret@h?color=blue")
    assert "s3cret" not in str(caught.value)


def test_url_resolves_through_the_plugin() -> None:
    """nats:// URLs build a NatsNotifier through stent's plugin host."""
    notifier = Stent.notifications.NatsBackend("nats://h:1?prefix=p")
    assert isinstance(notifier, NatsNotifier)
    assert notifier.settings.subjects == "p.*"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"ping_intervall": 3}, "takes no option 'ping_intervall'"),
        ({"allow_reconnect": True}, "sets 'allow_reconnect' itself"),
        ({"tls_ca": "/nonexistent/ca.pem"}, "TLS files .* cannot be read"),
        ({"creds": "/nonexistent/user.creds"}, "creds file '/nonexistent/user.creds' .* does not exist"),
    ],
)
def test_bad_options_fail_when_the_notifier_is_built(options: dict[str, object], message: str) -> None:
    """Options nats-py does not take, options the notifier owns and missing files fail at construction."""
    with pytest.raises(ConfigurationError, match=message):
        Stent.notifications.NatsBackend("nats://h", **options)


def test_credentials_files_need_nkeys(tmp_path: Path) -> None:
    """A creds file is accepted when nats-py's nkeys support is installed; without it, the error says what to
    install."""
    creds = tmp_path / "user.creds"
    creds.write_text("-----BEGIN NATS USER JWT-----\n")
    try:
        import nkeys  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigurationError, match=r"pip install 'stent-nats\[nkeys\]'"):
            Stent.notifications.NatsBackend(f"nats://h?creds={creds}")
    else:
        assert isinstance(Stent.notifications.NatsBackend(f"nats://h?creds={creds}"), NatsNotifier)
