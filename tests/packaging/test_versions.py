"""Versions: written once in each pyproject.toml, reported by ``__version__`` and by ``stent --version``."""

from __future__ import annotations

import importlib
import importlib.metadata
from typing import Any

import attrs
import pytest
from building import DISTRIBUTIONS, source_version

from stent import plugins
from stent.cli.main import main
from stent.cli.version import version_text

MODULES = {"stent-core": "stent", **{name: name.replace("-", "_") for name in DISTRIBUTIONS[1:]}}


@attrs.frozen
class FakeDist:
    name: str
    version: str


@attrs.define
class UnloadableEntryPoint:
    """An entry point of the `stent` group whose module cannot be imported; counts attempts to load it."""

    name: str
    dist: FakeDist | None
    value: str = "missing_module.plugin"
    loads: int = 0

    def load(self) -> Any:
        self.loads += 1
        raise ImportError("No module named 'missing_module'")


def run_version(capsys: pytest.CaptureFixture[str]) -> list[str]:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    return capsys.readouterr().out.splitlines()


@pytest.mark.parametrize("name", DISTRIBUTIONS)
def test_version_attribute_is_the_version_in_pyproject(name: str) -> None:
    """`stent.__version__` and each adapter's `__version__` are the installed metadata's, i.e. pyproject's."""
    module = importlib.import_module(MODULES[name])
    assert module.__version__ == importlib.metadata.version(name) == source_version(name)


def test_stent_version_prints_core_then_each_installed_adapter(capsys: pytest.CaptureFixture[str]) -> None:
    """`stent --version` prints stent-core's version first, then every installed adapter's, by name."""
    lines = run_version(capsys)
    assert lines[0] == f"stent-core {source_version('stent-core')}"
    adapters = [f"{name} {source_version(name)}" for name in DISTRIBUTIONS[1:]]
    assert set(adapters) <= set(lines[1:])
    assert lines[1:] == sorted(lines[1:])


def test_stent_version_lists_a_broken_plugin_without_loading_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plugin whose module fails to import is still listed with its version; --version never imports plugins."""
    broken = UnloadableEntryPoint("broken", FakeDist("stent-broken", "9.9.9"))
    anonymous = UnloadableEntryPoint("anonymous", None)
    core = UnloadableEntryPoint("memory", FakeDist("stent-core", "0.0.0"))
    monkeypatch.setattr(plugins, "discover_entry_points", lambda: [broken, anonymous, core, broken])
    lines = run_version(capsys)
    assert lines == [
        f"stent-core {source_version('stent-core')}",
        "<unknown distribution> <unknown version>",
        "stent-broken 9.9.9",
    ]
    assert broken.loads == anonymous.loads == core.loads == 0


def test_version_text_without_any_adapter_names_core_alone() -> None:
    """With no adapter installed, the report is stent-core's line alone."""
    assert version_text(discover=list) == f"stent-core {source_version('stent-core')}\n"


def test_version_of_an_uninstalled_source_tree_is_marked_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    """Imported from a source tree that pip never installed, an adapter imports fine and says its version is unknown."""
    import stent_sqlite

    def not_installed(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    try:
        assert importlib.reload(stent_sqlite).__version__ == "0+unknown"
    finally:
        monkeypatch.undo()
        importlib.reload(stent_sqlite)
    assert stent_sqlite.__version__ == source_version("stent-sqlite")
