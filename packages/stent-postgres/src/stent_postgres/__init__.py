"""stent-postgres: the Storage port on PostgreSQL (asyncpg), and a Notifier on LISTEN/NOTIFY.

``PostgresStorage`` and ``PostgresNotifier`` are imported lazily, so importing this package (as the plugin host
does to register the ``postgresql://`` scheme) never imports the driver.
"""

from __future__ import annotations

import importlib.metadata
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stent_postgres.notifier import PostgresNotifier
    from stent_postgres.storage import PostgresStorage

try:  # the version is written once, in pyproject.toml; an install records it in the metadata read here
    __version__ = importlib.metadata.version("stent-postgres")
except importlib.metadata.PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"
__all__ = ["PostgresNotifier", "PostgresStorage", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "PostgresStorage":
        from stent_postgres.storage import PostgresStorage

        return PostgresStorage
    if name == "PostgresNotifier":
        from stent_postgres.notifier import PostgresNotifier

        return PostgresNotifier
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
