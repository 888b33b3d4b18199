"""Registers ``sqlite://`` storage with stent's plugin host.

This module is imported whenever stent loads its plugins, so it must stay light: the storage and its driver
(sqlite3) are imported only when a ``sqlite://`` URL is actually resolved.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stent.plugins import Registry, hookimpl

if TYPE_CHECKING:
    from stent_sqlite.storage import SQLiteStorage


def make_sqlite_storage(url: str, **options: Any) -> SQLiteStorage:
    """SQLite storage for ``sqlite:///relative.db``, ``sqlite:////absolute.db`` or ``sqlite://:memory:``."""
    from stent_sqlite.storage import SQLiteStorage

    return SQLiteStorage.from_url(url, **options)


@hookimpl
def stent_register_storage(registry: Registry) -> None:
    registry.add_storage("sqlite", make_sqlite_storage)
