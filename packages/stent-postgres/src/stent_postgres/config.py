"""Connection settings from a ``postgresql://`` URL and keyword options, checked before anything connects.

This module never imports the driver: the plugin host imports the plugin module (and through it nothing else)
whenever stent loads its plugins, and settings errors should be reported without a connection attempt.

stent's own options (``schema``, ``min_size``, ``max_size``, ``connect_timeout``, ``command_timeout``,
``statement_cache_size``, ``notify``) are taken out of the URL's query; every other query parameter (``sslmode``,
``application_name``...) stays in the DSN handed to asyncpg, which understands libpq's parameters.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import attrs

from stent.backends import redact_url
from stent.errors import ConfigurationError

DEFAULT_SCHEMA = "stent"

#: Options stent reads itself, with what they mean (for error messages).
OPTIONS: Mapping[str, str] = {
    "schema": "the PostgreSQL schema holding stent's tables (default 'stent')",
    "min_size": "connections the pool keeps open (default 1)",
    "max_size": "most connections the pool opens (default 10)",
    "connect_timeout": "seconds a connection attempt may take (default 10)",
    "command_timeout": "seconds a statement may run before it is cancelled (default: no limit)",
    "statement_cache_size": "prepared statements cached per connection (default 100; 0 behind pgbouncer)",
    "notify": "true to send NOTIFY wake-ups inside storage transactions (default false)",
}

# Unquoted identifiers only: the name is also used, quoted, in every statement and in the NOTIFY channel.
_SCHEMA_RE = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_SCHEMES = ("postgresql", "postgres")


@attrs.frozen
class PostgresSettings:
    """Everything needed to open the pool, plus where it goes, for messages."""

    dsn: str  # the URL without stent's options, as asyncpg takes it
    schema: str = DEFAULT_SCHEMA
    min_size: int = 1
    max_size: int = 10
    connect_timeout: float = 10.0
    command_timeout: float | None = None
    statement_cache_size: int = 100
    notify: bool = False
    host: str = "localhost"
    port: int = 5432
    user: str | None = None
    database: str | None = None

    @property
    def where(self) -> str:
        """``host:port/database`` for messages (never the password)."""
        return f"{self.host}:{self.port}/{self.database or self.user or '?'}"

    @property
    def safe_dsn(self) -> str:
        return redact_url(self.dsn)


def _bool(name: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
        return True
    if isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigurationError(f"{name} must be true or false, got {value!r}")


def _int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            raise ConfigurationError(f"{name} must be a whole number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(f"{name} must be a whole number of at least {minimum}, got {value!r}")
    return value


def _seconds(name: str, value: object, *, allow_none: bool = False) -> float | None:
    if value is None or (isinstance(value, str) and value.lower() in ("", "none")):
        if allow_none:
            return None
        raise ConfigurationError(f"{name} needs a number of seconds")
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ConfigurationError(f"{name} must be a number of seconds, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigurationError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)


def check_schema(name: object) -> str:
    """A schema name stent can use: lower-case letters, digits and ``_``, not starting with ``pg_``."""
    if not isinstance(name, str) or not _SCHEMA_RE.fullmatch(name) or name.startswith("pg_"):
        raise ConfigurationError(
            f"schema must be a plain PostgreSQL name (lower-case letters, digits and _, at most 63, not starting"
            f" with a digit or pg_), got {name!r}"
        )
    return name


def parse_settings(url: str, options: Mapping[str, Any]) -> PostgresSettings:
    """Settings for ``url`` (``postgresql://user:pass@host:5432/db?schema=s``) and keyword ``options``.

    Keyword options win over the URL's; an option stent does not know raises :class:`ConfigurationError`.
    """
    if not isinstance(url, str):
        raise ConfigurationError(f"a PostgreSQL URL must be a str, not {type(url).__name__}")
    parts = urlsplit(url)
    if parts.scheme.lower() not in _SCHEMES:
        raise ConfigurationError(
            f"{redact_url(url)!r} is not a PostgreSQL URL; use postgresql://user:password@host:5432/database"
        )
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        known = "; ".join(f"{k}: {v}" for k, v in OPTIONS.items())
        raise ConfigurationError(f"unknown PostgreSQL option(s) {', '.join(unknown)}; the options are {known}")
    ours: dict[str, Any] = {}
    theirs: list[tuple[str, str]] = []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        (ours.__setitem__(name, value) if name in OPTIONS else theirs.append((name, value)))
    ours.update(options)
    dsn = urlunsplit(("postgresql", parts.netloc, parts.path, urlencode(theirs), parts.fragment))
    try:
        port = parts.port or int(os.environ.get("PGPORT", "5432"))
    except ValueError:
        raise ConfigurationError(f"{redact_url(url)!r} has an invalid port; write host:5432") from None
    min_size = _int("min_size", ours.get("min_size", 1), 0)
    max_size = _int("max_size", ours.get("max_size", 10), 1)
    if min_size > max_size:
        raise ConfigurationError(f"min_size ({min_size}) must not exceed max_size ({max_size})")
    return PostgresSettings(
        dsn=dsn,
        schema=check_schema(ours.get("schema", DEFAULT_SCHEMA)),
        min_size=min_size,
        max_size=max_size,
        connect_timeout=_seconds("connect_timeout", ours.get("connect_timeout", 10.0)) or 10.0,
        command_timeout=_seconds("command_timeout", ours.get("command_timeout"), allow_none=True),
        statement_cache_size=_int("statement_cache_size", ours.get("statement_cache_size", 100), 0),
        notify=_bool("notify", ours.get("notify", False)),
        host=unquote(parts.hostname or os.environ.get("PGHOST", "localhost")),
        port=port,
        user=unquote(parts.username) if parts.username else os.environ.get("PGUSER"),
        database=unquote(parts.path.lstrip("/")) or os.environ.get("PGDATABASE"),
    )
