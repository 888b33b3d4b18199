"""``stent --version``: the version of stent-core and of every installed distribution that plugs into it.

The adapters (stent-sqlite, stent-postgres, ...) and third-party backends are found through their ``stent`` entry
points, read from the installed metadata without importing them, so a plugin that fails to load is still listed.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from stent import __version__, plugins

CORE_DISTRIBUTION = "stent-core"


def version_text(discover: Callable[[], Iterable[plugins.EntryPointLike]] | None = None) -> str:
    """One line per distribution, ``name version``: stent-core first, then the plugin distributions by name."""
    entry_points = (discover or plugins.discover_entry_points)()
    # the host's own reading of an entry point's distribution, so `stent plugins` and this agree
    found = {plugins._source_of(ep) for ep in entry_points}
    others = sorted(
        {(source.distribution, source.version) for source in found if source.distribution != CORE_DISTRIBUTION}
    )
    lines = [f"{CORE_DISTRIBUTION} {__version__}", *(f"{name} {version}" for name, version in others)]
    return "\n".join(lines) + "\n"


class VersionAction(argparse.Action):
    """``--version``: print :func:`version_text` to stdout and exit 0, like argparse's own version action."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        kwargs.setdefault("help", "show the versions of stent-core and the installed adapters, and exit")
        super().__init__(option_strings, dest=dest, default=argparse.SUPPRESS, nargs=0, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option: str | None = None,
    ) -> None:
        print(version_text(), end="")
        parser.exit(0)
