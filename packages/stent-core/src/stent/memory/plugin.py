"""The built-in ``memory://`` adapters, registered through the same hooks as every other plugin.

Each ``memory://`` URL resolved gives a new, empty store or notifier: two calls never share state, so hand the
same instance to every part of a program that must see the same data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stent.errors import ConfigurationError
from stent.plugins import Registry, hookimpl

if TYPE_CHECKING:
    from stent.memory.notifier import MemoryNotifier
    from stent.memory.storage import MemoryStorage


def _no_options(what: str, options: dict[str, Any]) -> None:
    if options:
        raise ConfigurationError(f"{what} takes no options, got {', '.join(sorted(options))}; remove them")


def make_memory_storage(url: str, **options: Any) -> MemoryStorage:
    """A fresh in-memory Storage for ``memory://``."""
    _no_options("memory:// storage", options)
    from stent.memory.storage import MemoryStorage

    return MemoryStorage()


def make_memory_notifier(url: str, **options: Any) -> MemoryNotifier:
    """A fresh process-local Notifier for ``memory://``."""
    _no_options("memory:// notifier", options)
    from stent.memory.notifier import MemoryNotifier

    return MemoryNotifier()


@hookimpl
def stent_register_storage(registry: Registry) -> None:
    registry.add_storage("memory", make_memory_storage)


@hookimpl
def stent_register_notifier(registry: Registry) -> None:
    registry.add_notifier("memory", make_memory_notifier)
