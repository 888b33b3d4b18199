"""stent-nats: a Notifier on core NATS subjects for stent.

Use it through a URL (``Stent(..., notification_backend="nats://localhost:4222")`` or
``Stent.notifications.NatsBackend(url)``); :class:`NatsNotifier` is importable from here for type hints and
direct construction, and is loaded (with nats-py) only when first used.
"""

from __future__ import annotations

import importlib.metadata
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stent_nats.notifier import NatsNotifier
    from stent_nats.settings import NatsSettings

try:  # the version is written once, in pyproject.toml; an install records it in the metadata read here
    __version__ = importlib.metadata.version("stent-nats")
except importlib.metadata.PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["NatsNotifier", "NatsSettings", "__version__"]


def __getattr__(name: str) -> Any:
    # Lazily, so that the plugin host loading stent_nats.plugin does not import nats-py.
    if name == "NatsNotifier":
        from stent_nats.notifier import NatsNotifier

        return NatsNotifier
    if name == "NatsSettings":
        from stent_nats.settings import NatsSettings

        return NatsSettings
    raise AttributeError(f"module 'stent_nats' has no attribute {name!r}")
