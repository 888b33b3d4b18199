"""Reading a notifier URL: stent's own options come out of the query, the rest is redis-py's business.

``redis://[[user]:password@]host[:port][/db][?prefix=NAME&connect_timeout=SECONDS&<redis-py options>]``, and
``rediss://`` for TLS.  Parsing imports no driver, so a bad URL fails where the notifier is built.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from stent.backends import redact_url
from stent.errors import ConfigurationError

DEFAULT_PREFIX = "stent"
DEFAULT_CONNECT_TIMEOUT = 2.0
DEFAULT_PORT = 6379
_PREFIX_RE = re.compile(r"[A-Za-z0-9_.:\-]{1,100}")


@dataclass(frozen=True)
class RedisSettings:
    """What a RedisNotifier is built from."""

    #: The URL handed to redis-py: the caller's, minus stent's query options.
    driver_url: str
    #: ``host:port``, for messages (never the URL, which may hold a password).
    address: str
    prefix: str
    connect_timeout: float
    tls: bool
    #: Keyword arguments for redis-py beyond the URL (``ssl_ca_certs=...``, say).
    driver_options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def channel(self) -> str:
        """The pub/sub channel of this prefix: deployments with different prefixes never hear each other."""
        return f"{self.prefix}:notifications"


def parse_settings(
    url: str, *, prefix: str | None = None, connect_timeout: float | None = None, **driver_options: Any
) -> RedisSettings:
    """Settings for ``url``; options given both in the URL and as arguments must agree."""
    shown = redact_url(url) if isinstance(url, str) else repr(url)
    if not isinstance(url, str):
        raise ConfigurationError(
            f"a Redis notifier URL must be a str such as 'redis://localhost:6379', not {shown}"
        )
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("redis", "rediss"):
        raise ConfigurationError(
            f"{shown!r} is not a Redis URL: use redis://host:6379, or rediss://host:6379 for TLS"
        )
    try:
        host, port = parts.hostname or "localhost", parts.port or DEFAULT_PORT
    except ValueError as exc:
        raise ConfigurationError(f"{shown!r} has an invalid port ({exc}); write redis://host:6379") from exc
    query = parse_qsl(parts.query, keep_blank_values=True)
    ours = {key: value for key, value in query if key in ("prefix", "connect_timeout")}
    for key in ours:
        if sum(1 for k, _ in query if k == key) > 1:
            raise ConfigurationError(f"{shown!r} gives {key} more than once; give it once")
    rest = [(key, value) for key, value in query if key not in ours]
    prefix = _agree("prefix", ours.get("prefix"), prefix, shown)
    timeout = _agree("connect_timeout", ours.get("connect_timeout"), connect_timeout, shown)
    return RedisSettings(
        driver_url=urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(rest), parts.fragment)),
        address=f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
        prefix=_prefix(DEFAULT_PREFIX if prefix is None else prefix),
        connect_timeout=_seconds(DEFAULT_CONNECT_TIMEOUT if timeout is None else timeout),
        tls=scheme == "rediss",
        driver_options=dict(driver_options),
    )


def _agree(name: str, in_url: str | None, argument: Any, shown: str) -> Any:
    if in_url is not None and argument is not None and str(argument) != in_url:
        raise ConfigurationError(
            f"{name} is {in_url!r} in the URL {shown!r} but {argument!r} as an argument; give it in one place"
        )
    return in_url if in_url is not None else argument


def _prefix(value: Any) -> str:
    if not isinstance(value, str) or not _PREFIX_RE.fullmatch(value):
        raise ConfigurationError(
            f"prefix must be 1 to 100 letters, digits or '_.:-' (such as 'myapp' or 'myapp:prod'), got {value!r}"
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
