"""Registers ``postgresql://`` (and its alias ``postgres://``) storage and notifier with stent's plugin host.

This module is imported whenever stent loads its plugins, so it stays light: asyncpg is imported only when a
``postgresql://`` URL is actually resolved.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stent.plugins import Registry, hookimpl

if TYPE_CHECKING:
    from stent_postgres.notifier import PostgresNotifier
    from stent_postgres.storage import PostgresStorage


def make_postgres_storage(url: str, **options: Any) -> PostgresStorage:
    """Storage for ``postgresql://user:password@host:5432/database?schema=stent&max_size=10``."""
    from stent_postgres.storage import PostgresStorage

    return PostgresStorage(url, **options)


def make_postgres_notifier(url: str, **options: Any) -> PostgresNotifier:
    """A LISTEN/NOTIFY notifier for ``postgresql://...?schema=stent`` (the channel follows the schema)."""
    from stent_postgres.notifier import PostgresNotifier

    return PostgresNotifier(url, **options)


@hookimpl
def stent_register_storage(registry: Registry) -> None:
    # "postgres" is an alias the registry folds into "postgresql".
    registry.add_storage("postgresql", make_postgres_storage)


@hookimpl
def stent_register_notifier(registry: Registry) -> None:
    registry.add_notifier("postgresql", make_postgres_notifier)
