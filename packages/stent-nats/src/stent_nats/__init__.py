"""stent-nats: a Notifier on core NATS subjects for stent.

Use it through a URL (``Stent(..., notification_backend="nats://localhost:4222")`` or
``Stent.notifications.NatsBackend(url)``); :class:`NatsNotifier` is importable from here for type hints and
direct construction, and is loaded (with nats-py) only when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stent_nats.notifier import NatsNotifier
    from stent_nats.settings import NatsSettings

__version__ = "0.1.0"

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
