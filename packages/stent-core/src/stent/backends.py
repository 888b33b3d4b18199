"""Backends by URL: which schemes name which adapter, and the ``Stent.backends`` / ``Stent.notifications`` helpers.

Everything here resolves through the plugin host (:mod:`stent.plugins`), so ``Backends.SQLiteBackend(path)`` and
``Backends.from_url("sqlite:///" + path)`` are the same thing, and a missing adapter raises
:class:`~stent.errors.BackendNotInstalled` naming the package to install.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from stent.errors import ConfigurationError

if TYPE_CHECKING:
    from stent.ports import Notifier, Storage

#: URL schemes that mean the same adapter.  ``rediss`` (Redis over TLS) reaches the ``redis`` factory, which
#: receives the URL unchanged and so still sees the TLS scheme.
SCHEME_ALIASES: Mapping[str, str] = {"postgres": "postgresql", "rediss": "redis"}

#: Adapters that are distributions of their own: kind -> scheme -> the pip package that provides it.
KNOWN_ADAPTERS: Mapping[str, Mapping[str, str]] = {
    "storage": {"sqlite": "stent-sqlite", "postgresql": "stent-postgres"},
    "notifier": {"postgresql": "stent-postgres", "redis": "stent-redis", "nats": "stent-nats"},
}


def canonical_scheme(scheme: str) -> str:
    """The scheme a registration is filed under: lower case, aliases folded (``postgres`` -> ``postgresql``)."""
    scheme = scheme.lower()
    return SCHEME_ALIASES.get(scheme, scheme)


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``, for messages and logs."""
    return re.sub(r"(://[^/@:]*:)[^/@]*@", r"\1***@", url)


def parse_scheme(url: object, kind: str) -> str:
    """The canonical scheme of a backend URL; raises :class:`ConfigurationError` for anything not a URL."""
    example = "'sqlite:///path/to/stent.db', 'postgresql://user@host/db' or 'memory://'"
    if kind == "notifier":
        example = "'redis://localhost:6379', 'nats://localhost:4222' or 'memory://'"
    if not isinstance(url, str):
        raise ConfigurationError(f"a {kind} URL must be a str such as {example}, not {type(url).__name__}")
    match = _URL_RE.match(url)
    if match is None:
        hint = f" (for a file path, use 'sqlite:///{url}')" if kind == "storage" and url else ""
        raise ConfigurationError(
            f"{redact_url(url)!r} is not a {kind} URL: expected scheme://..., such as {example}{hint}"
        )
    return canonical_scheme(match.group(1))


_URL_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*)://")


def _url_of(constructor: str, value: object, schemes: tuple[str, ...], example: str, instead: str) -> str:
    """``value`` checked to be a URL of one of ``schemes``, for the named constructor."""
    if not isinstance(value, str):
        raise ConfigurationError(f"{constructor} takes a URL str such as {example!r}, not {type(value).__name__}")
    match = _URL_RE.match(value)
    if match is None or canonical_scheme(match.group(1)) not in schemes:
        raise ConfigurationError(
            f"{constructor} takes a URL such as {example!r}, got {redact_url(value)!r}; {instead}"
        )
    return value


class Backends:
    """Storage constructors, reached as ``Stent.backends``."""

    @staticmethod
    def SQLiteBackend(path: str | os.PathLike[str], **options: Any) -> Storage:
        """SQLite storage in the file at ``path`` (created when missing); needs stent-sqlite."""
        if not isinstance(path, str | os.PathLike):
            raise ConfigurationError(
                f"SQLiteBackend takes a file path (str or os.PathLike) such as 'workflow.db', not"
                f" {type(path).__name__}"
            )
        text = os.fspath(path)
        if not isinstance(text, str):
            raise ConfigurationError("SQLiteBackend takes a str path, not bytes; decode it first")
        if not text:
            raise ConfigurationError("SQLiteBackend needs a file path such as 'workflow.db', got an empty string")
        if _URL_RE.match(text):
            raise ConfigurationError(
                f"SQLiteBackend takes a file path, not a URL ({redact_url(text)!r}); use"
                " Stent.backends.from_url(url) for URLs"
            )
        from stent.plugins import make_storage

        # An absolute path keeps its leading slash after the three of the URL: sqlite:////abs/path.
        return make_storage("sqlite:///" + text, **options)

    @staticmethod
    def PostgresBackend(dsn: str, **options: Any) -> Storage:
        """PostgreSQL storage at ``dsn`` (``postgresql://user:pass@host:5432/db``); needs stent-postgres."""
        from stent.plugins import make_storage

        url = _url_of(
            "PostgresBackend",
            dsn,
            ("postgresql",),
            "postgresql://user:pass@localhost:5432/stent",
            "use Stent.backends.from_url(url) for other schemes",
        )
        return make_storage(url, **options)

    @staticmethod
    def MemoryBackend() -> Storage:
        """In-process storage that is gone when the process ends: for tests, demos and the simulator."""
        from stent.plugins import make_storage

        return make_storage("memory://")

    @staticmethod
    def from_url(url: str, **options: Any) -> Storage:
        """Storage for any installed scheme: ``sqlite:///path``, ``postgresql://...``, ``memory://``."""
        from stent.plugins import make_storage

        return make_storage(url, **options)


class Notifications:
    """Notifier constructors, reached as ``Stent.notifications``."""

    @staticmethod
    def RedisBackend(url: str, **options: Any) -> Notifier:
        """Wake-ups over Redis pub/sub (``redis://host:6379`` or ``rediss://`` for TLS); needs stent-redis."""
        from stent.plugins import make_notifier

        url = _url_of(
            "RedisBackend",
            url,
            ("redis",),
            "redis://localhost:6379",
            "use NatsBackend for NATS, or Stent.notifications.from_url(url) for any scheme",
        )
        return make_notifier(url, **options)

    @staticmethod
    def NatsBackend(url: str, **options: Any) -> Notifier:
        """Wake-ups over NATS (``nats://host:4222``); needs stent-nats."""
        from stent.plugins import make_notifier

        url = _url_of(
            "NatsBackend",
            url,
            ("nats",),
            "nats://localhost:4222",
            "use RedisBackend for Redis, or Stent.notifications.from_url(url) for any scheme",
        )
        return make_notifier(url, **options)

    @staticmethod
    def PostgresBackend(dsn: str, **options: Any) -> Notifier:
        """Wake-ups over PostgreSQL LISTEN/NOTIFY (``postgresql://...``); needs stent-postgres."""
        from stent.plugins import make_notifier

        url = _url_of(
            "Notifications.PostgresBackend",
            dsn,
            ("postgresql",),
            "postgresql://user:pass@localhost:5432/stent",
            "use Stent.notifications.from_url(url) for other schemes",
        )
        return make_notifier(url, **options)

    @staticmethod
    def MemoryBackend() -> Notifier:
        """Wake-ups within one process: for tests, demos and the simulator."""
        from stent.plugins import make_notifier

        return make_notifier("memory://")

    @staticmethod
    def from_url(url: str, **options: Any) -> Notifier:
        """A notifier for any installed scheme: ``redis://``, ``nats://``, ``postgresql://``, ``memory://``."""
        from stent.plugins import make_notifier

        return make_notifier(url, **options)
