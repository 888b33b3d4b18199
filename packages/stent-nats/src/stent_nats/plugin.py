"""Registers the ``nats://`` notifier with stent's plugin host.

This module imports no driver: nats-py is imported when the factory is called, so installing stent-nats costs
nothing to a process that does not use it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stent.plugins import Registry, hookimpl

if TYPE_CHECKING:
    from stent_nats.notifier import NatsNotifier


def make_nats_notifier(url: str, **options: Any) -> NatsNotifier:
    """A NatsNotifier for ``url``; the URL's query options may also be given here, and any other keyword goes
    to nats-py's ``connect()`` (``ping_interval=...``, say)."""
    from stent_nats.settings import parse_settings

    settings = parse_settings(url, **options)
    from stent_nats.notifier import NatsNotifier

    return NatsNotifier(settings)


@hookimpl
def stent_register_notifier(registry: Registry) -> None:
    registry.add_notifier("nats", make_nats_notifier)
