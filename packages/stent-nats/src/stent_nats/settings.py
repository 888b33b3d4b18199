"""Reading a notifier URL: ``nats://[user:password@|token@]host[:port][?options]``.

nats-py reads the user, password or token from the URL itself; everything else is a query option of stent's:
``prefix``, ``connect_timeout``, ``name``, the TLS options (``tls``, ``tls_ca``, ``tls_cert``, ``tls_key``,
``tls_hostname``, ``tls_handshake_first``) and NATS credentials files (``creds``, ``nkey``).  Keyword arguments
may give the same options, and any other keyword goes to nats-py's ``connect()``.  Parsing imports no driver.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from stent.backends import redact_url
from stent.errors import ConfigurationError

DEFAULT_PREFIX = "stent"
DEFAULT_CONNECT_TIMEOUT = 2.0
DEFAULT_PORT = 4222
# Subject tokens: no spaces, no wildcards, no empty tokens; dots separate tokens.
_PREFIX_RE = re.compile(r"[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*")
_TEXT_OPTIONS = ("prefix", "name", "tls_ca", "tls_cert", "tls_key", "tls_hostname", "creds", "nkey")
_FLAG_OPTIONS = ("tls", "tls_handshake_first")
_OPTIONS = (*_TEXT_OPTIONS, *_FLAG_OPTIONS, "connect_timeout")
# A bare `?tls` turns the option on.
_TRUE, _FALSE = ("1", "true", "yes", "on", ""), ("0", "false", "no", "off")


@dataclass(frozen=True)
class NatsSettings:
    """What a NatsNotifier is built from."""

    #: The server URL handed to nats-py, credentials included, query removed.
    server_url: str
    #: ``host:port``, for messages (never the URL, which may hold a password or token).
    address: str
    prefix: str
    connect_timeout: float
    name: str | None = None
    tls: bool = False
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_hostname: str | None = None
    tls_handshake_first: bool = False
    creds: str | None = None
    nkey: str | None = None
    #: Further keyword arguments for nats-py's ``connect()``.
    driver_options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def subjects(self) -> str:
        """The wildcard a notifier subscribes to: ``<prefix>.work``, ``<prefix>.finished`` and the like."""
        return f"{self.prefix}.*"

    def subject(self, kind: str) -> str:
        """The subject a notification of ``kind`` is published on; kinds core does not use share one subject."""
        return f"{self.prefix}.{kind if kind in ('work', 'finished') else 'other'}"

    @property
    def wants_tls(self) -> bool:
        return self.tls or any(
            (self.tls_ca, self.tls_cert, self.tls_key, self.tls_hostname, self.tls_handshake_first)
        )


def parse_settings(url: str, **options: Any) -> NatsSettings:
    """Settings for ``url``; an option given both in the URL and as an argument must agree."""
    if not isinstance(url, str):
        raise ConfigurationError(f"a NATS notifier URL must be a str such as 'nats://localhost:4222', not {url!r}")
    shown = redact_url(url)
    parts = urlsplit(url)
    if parts.scheme.lower() != "nats":
        raise ConfigurationError(
            f"{shown!r} is not a NATS URL: use nats://host:4222 (TLS: nats://host:4222?tls=true)"
        )
    if "," in parts.netloc:
        raise ConfigurationError(
            f"{shown!r} lists several servers; give one (a NATS cluster tells its clients about the others)"
        )
    try:
        host, port = parts.hostname or "localhost", parts.port or DEFAULT_PORT
    except ValueError as exc:
        raise ConfigurationError(f"{shown!r} has an invalid port ({exc}); write nats://host:4222") from exc
    query = parse_qsl(parts.query, keep_blank_values=True)
    in_url: dict[str, str] = {}
    for key, value in query:
        if key not in _OPTIONS:
            raise ConfigurationError(
                f"{shown!r} has an unknown option {key!r}; the URL takes {', '.join(_OPTIONS)} (pass other nats-py"
                " options as keyword arguments)"
            )
        if key in in_url:
            raise ConfigurationError(f"{shown!r} gives {key} more than once; give it once")
        in_url[key] = value
    chosen = {key: _agree(key, in_url.get(key), options.pop(key, None), shown) for key in _OPTIONS}
    return NatsSettings(
        server_url=urlunsplit((parts.scheme, parts.netloc, "", "", "")),
        address=f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
        prefix=_prefix(DEFAULT_PREFIX if chosen["prefix"] is None else chosen["prefix"]),
        connect_timeout=_seconds(
            DEFAULT_CONNECT_TIMEOUT if chosen["connect_timeout"] is None else chosen["connect_timeout"]
        ),
        name=_text("name", chosen["name"]),
        tls=_flag("tls", chosen["tls"]),
        tls_ca=_text("tls_ca", chosen["tls_ca"]),
        tls_cert=_text("tls_cert", chosen["tls_cert"]),
        tls_key=_text("tls_key", chosen["tls_key"]),
        tls_hostname=_text("tls_hostname", chosen["tls_hostname"]),
        tls_handshake_first=_flag("tls_handshake_first", chosen["tls_handshake_first"]),
        creds=_text("creds", chosen["creds"]),
        nkey=_text("nkey", chosen["nkey"]),
        driver_options=options,
    )


def _agree(name: str, in_url: str | None, argument: Any, shown: str) -> Any:
    if in_url is not None and argument is not None and str(argument) != in_url and _flag_text(argument) != in_url:
        raise ConfigurationError(
            f"{name} is {in_url!r} in the URL {shown!r} but {argument!r} as an argument; give it in one place"
        )
    return in_url if in_url is not None else argument


def _flag_text(value: Any) -> str | None:
    return ("true" if value else "false") if isinstance(value, bool) else None


def _prefix(value: Any) -> str:
    if not isinstance(value, str) or len(value) > 100 or not _PREFIX_RE.fullmatch(value):
        raise ConfigurationError(
            "prefix must be NATS subject tokens (letters, digits, '_' and '-') joined by dots, at most 100"
            f" characters, such as 'myapp' or 'myapp.prod'; got {value!r}"
        )
    return value


def _seconds(value: Any) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = math.nan
    if isinstance(value, bool) or not (0 < seconds < math.inf):
        raise ConfigurationError(f"connect_timeout must be a positive number of seconds, got {value!r}")
    return seconds


def _text(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{name} must be a non-empty string, got {value!r}")
    return value


def _flag(name: str, value: Any) -> bool:
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, str) and value.lower() in _TRUE + _FALSE:
        return value.lower() in _TRUE
    raise ConfigurationError(f"{name} must be true or false, got {value!r}")
