"""Registers ``oplog://`` storage with stent.  Imported whenever stent loads its plugins, so it stays light."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stent.errors import ConfigurationError
from stent.plugins import Registry, hookimpl

if TYPE_CHECKING:
    from stent_oplog.storage import OplogStorage


def make_oplog_storage(url: str, **options: Any) -> OplogStorage:
    """``oplog:///relative/path.log`` or ``oplog:////absolute/path.log``."""
    from stent_oplog.storage import OplogStorage  # the real work is imported only when a URL is resolved

    path = url.split("://", 1)[1]
    if not path.startswith("/") or len(path) < 2 or "?" in path or options:
        raise ConfigurationError(
            f"{url!r}: use oplog:///relative/path.log or oplog:////absolute/path.log (no host, no options)"
        )
    return OplogStorage(path[1:])


@hookimpl
def stent_register_storage(registry: Registry) -> None:
    registry.add_storage("oplog", make_oplog_storage)
