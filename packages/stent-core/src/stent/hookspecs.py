"""The hooks a stent plugin implements.

A plugin is a module (named by an entry point in the ``stent`` group) whose functions are decorated with
:data:`stent.plugins.hookimpl` and carry one of the names below.  Each hook is handed the
:class:`~stent.plugins.Registry` to fill; a plugin implements only the hooks it needs::

    from stent.plugins import hookimpl

    @hookimpl
    def stent_register_storage(registry):
        registry.add_storage("sqlite", make_sqlite_storage)

A factory is called as ``factory(url, **options)`` only when a user asks for that scheme, so a plugin imports
its driver inside the factory and never at module import.  Built-in adapters (``memory://``) register through
these same hooks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from stent.plugins import Registry

#: The pluggy project name, which is also the entry-point group plugins are listed under.
PROJECT_NAME = "stent"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)


@hookspec
def stent_register_storage(registry: Registry) -> None:
    """Add Storage factories with ``registry.add_storage(scheme, factory)``."""


@hookspec
def stent_register_notifier(registry: Registry) -> None:
    """Add Notifier factories with ``registry.add_notifier(scheme, factory)``."""


@hookspec
def stent_register_commands(registry: Registry) -> None:
    """Add ``stent`` CLI subcommands with ``registry.add_command(name, factory)``."""
