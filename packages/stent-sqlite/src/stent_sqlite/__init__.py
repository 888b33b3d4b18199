"""stent-sqlite: the Storage port on SQLite (through the standard library's sqlite3).

``SQLiteStorage`` is imported lazily so that importing this package (as the plugin host does to register the
``sqlite://`` scheme) never imports the driver or the storage code.
"""

from __future__ import annotations

import importlib.metadata
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stent_sqlite.storage import SQLiteStorage

try:  # the version is written once, in pyproject.toml; an install records it in the metadata read here
    __version__ = importlib.metadata.version("stent-sqlite")
except importlib.metadata.PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"
__all__ = ["SQLiteStorage", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "SQLiteStorage":
        from stent_sqlite.storage import SQLiteStorage

        return SQLiteStorage
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
