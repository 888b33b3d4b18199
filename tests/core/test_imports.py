"""Core never imports an adapter or a driver: `pip install stent-core` alone must import, and start, quickly.

Each check runs in a fresh interpreter, since this test process has long since imported whatever other tests
needed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

CORE_SRC = Path(__file__).resolve().parents[2] / "packages" / "stent-core" / "src"
DRIVERS = ("sqlite3", "asyncpg", "redis", "nats")  # stent-sqlite drives the standard library's sqlite3
ADAPTERS = ("stent_sqlite", "stent_postgres", "stent_redis", "stent_nats")


def modules_after(code: str) -> set[str]:
    """Top-level module names in sys.modules after running ``code`` in a fresh interpreter."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    # Core's source first, so this checks the tree under test even beside another installed copy.
    path = os.pathsep.join(filter(None, [str(CORE_SRC), os.environ.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "PYTHONPATH": path},
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout.splitlines()[-1]))


@pytest.mark.parametrize("statement", ["import stent", "import stent.plugins", "import stent.backends"])
def test_importing_core_imports_no_driver_or_adapter(statement: str) -> None:
    """`import stent` (and the plugin host) leaves every driver and adapter package unimported."""
    loaded = modules_after(statement) & {*DRIVERS, *ADAPTERS}
    assert not loaded, f"{statement} imported {sorted(loaded)}; import them inside the function that needs them"


def test_loading_every_plugin_imports_no_driver() -> None:
    """Plugins import their drivers inside their factories, so loading all of them imports no driver."""
    loaded = modules_after("import stent.plugins\nstent.plugins.list_plugins()") & set(DRIVERS)
    assert not loaded, f"loading the plugins imported {sorted(loaded)}; a plugin must import its driver lazily"


def test_an_imported_driver_would_be_noticed() -> None:
    """Guards the guard: importing a driver does show up in what the checks above inspect."""
    assert "sqlite3" in modules_after("import sqlite3")
