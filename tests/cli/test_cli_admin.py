"""``stent init``, ``cleanup`` and ``plugins``, and plugin-provided commands, through the entry point."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import pytest
from cli_support import Cli, Seeded

from stent import plugins
from stent.cli import common
from stent.memory import MemoryStorage


@pytest.fixture(params=["sqlite", "memory"])
def seeded(request: pytest.FixtureRequest) -> Seeded:
    """The seeded storage on SQLite and on (shared) memory."""
    return request.getfixturevalue(f"seeded_{request.param}")


# -- init -----------------------------------------------------------------------------------------------------


def test_init_creates_the_schema_and_is_idempotent(cli: Cli, tmp_path: Path) -> None:
    """init makes a usable database, running it again changes nothing, and read commands then work."""
    url = f"sqlite:///{tmp_path / 'new.db'}"
    first = cli("--storage", url, "init")
    assert first.code == 0 and "schema is ready" in first.out
    assert json.loads(cli("--storage", url, "init", "--json").out)["initialised"] is True
    assert cli("--storage", url, "list").code == 0


def test_init_bad_targets(cli: Cli, tmp_path: Path) -> None:
    """A missing directory is a usage error; an unreachable server exits 4."""
    run = cli("--storage", f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}", "init")
    assert run.code == common.USAGE and "does not exist" in run.err
    down = cli("--storage", "postgresql://postgres@127.0.0.1:1/test?connect_timeout=2", "init")
    assert down.code == common.UNAVAILABLE


# -- cleanup --------------------------------------------------------------------------------------------------


def test_cleanup_dry_run_counts_exactly_what_cleanup_deletes(cli: Cli, seeded: Seeded) -> None:
    """The dry run deletes nothing and counts the three old finished executions and the dead letter; the real
    run then deletes exactly those and leaves the unfinished ones."""
    dry = json.loads(cli("--storage", seeded.url, "cleanup", "--older-than", "7d", "--dry-run", "--json").out)
    assert (dry["executions"], dry["dead_letters"], dry["dry_run"]) == (3, 1, True)
    assert json.loads(cli("--storage", seeded.url, "list", "--json").out)["total"] == 5
    human = cli("--storage", seeded.url, "cleanup", "--older-than", "7d", "--dry-run")
    assert "would delete 3 finished executions and 1 dead letters" in human.out
    real = cli("--storage", seeded.url, "cleanup", "--older-than", "7d", "--batch-size", "2")
    assert real.code == 0
    assert "deleted 3 finished executions and 1 dead letters" in real.out
    left = json.loads(cli("--storage", seeded.url, "list", "--json").out)["executions"]
    assert {e["execution_id"] for e in left} == {seeded.waiting, seeded.queued}
    assert json.loads(cli("--storage", seeded.url, "dlq", "list", "--json").out)["dead_letters"] == []


def test_cleanup_keeps_what_is_younger_than_the_cutoff(cli: Cli, seeded: Seeded) -> None:
    """Nothing finished more than 60 days ago: the dry run and the cleanup both find nothing."""
    dry = json.loads(cli("--storage", seeded.url, "cleanup", "--older-than", "60d", "--dry-run", "--json").out)
    assert (dry["executions"], dry["dead_letters"]) == (0, 0)
    real = json.loads(cli("--storage", seeded.url, "cleanup", "--older-than", "60d", "--json").out)
    assert (real["executions"], real["dead_letters"]) == (0, 0)
    assert json.loads(cli("--storage", seeded.url, "list", "--json").out)["total"] == 5


@pytest.mark.parametrize("value", ["5x", "-1d", "0", "soon"])
def test_cleanup_rejects_malformed_durations(cli: Cli, seeded_memory: Seeded, value: str) -> None:
    """A duration that does not parse, or is not positive, is a usage error naming the accepted forms."""
    with pytest.raises(SystemExit) as exc:
        cli("--storage", seeded_memory.url, "cleanup", "--older-than", value)
    assert exc.value.code == common.USAGE


class InterruptedStorage(MemoryStorage):
    """Memory storage whose second deletion batch is interrupted by Ctrl-C."""

    calls = 0

    async def delete_executions_before(self, cutoff: datetime, limit: int) -> int:
        InterruptedStorage.calls += 1
        if InterruptedStorage.calls == 2:
            raise KeyboardInterrupt
        return await super().delete_executions_before(cutoff, limit)


def test_ctrl_c_during_cleanup_reports_what_was_deleted(cli: Cli, shared_memory: Any) -> None:
    """Ctrl-C between batches: exit 130, how many went, and that running it again finishes the job."""
    from cli_support import seed

    storage = InterruptedStorage()
    asyncio.run(seed(storage))
    url = shared_memory("interrupted", storage)
    run = cli("--storage", url, "cleanup", "--older-than", "7d", "--batch-size", "1")
    assert run.code == common.INTERRUPTED
    assert "interrupted after deleting 1 executions" in run.err
    assert "run it again" in run.err
    assert "Traceback" not in run.err
    again = json.loads(cli("--storage", url, "cleanup", "--older-than", "7d", "--json").out)
    assert again["executions"] == 2


# -- plugins ----------------------------------------------------------------------------------------------------


def test_plugins_lists_installed_adapters_with_versions(cli: Cli) -> None:
    """The built-in memory adapter and the installed SQLite one, with their schemes, as a table and JSON."""
    run = cli("plugins")
    assert run.code == 0, run.err
    assert "memory (built-in)" in run.out and "sqlite://" in run.out
    data = json.loads(cli("plugins", "--json").out)
    by_name = {p["name"]: p for p in data["plugins"]}
    assert by_name["memory"]["builtin"] is True and by_name["memory"]["storage"] == ["memory"]
    assert by_name["sqlite"]["distribution"] == "stent-sqlite" and by_name["sqlite"]["version"]
    assert data["failures"] == []


class _BrokenDist:
    name = "stent-broken"
    version = "9.9.9"
    metadata: ClassVar[dict[str, str]] = {"Name": "stent-broken"}


class _BrokenEntryPoint:
    name = "broken"
    value = "stent_broken.plugin"
    dist = _BrokenDist()

    def load(self) -> Any:
        raise ImportError("No module named 'stent_broken_driver'")


@pytest.fixture
def broken_plugin_host() -> Any:
    """A plugin host whose only third-party plugin fails to import."""
    host = plugins.PluginHost(discover=lambda: [_BrokenEntryPoint()], environ={})
    plugins.reset_plugin_host(host)
    yield host
    plugins.reset_plugin_host(None)


def test_plugins_reports_failures_with_version_and_exits_1(cli: Cli, broken_plugin_host: Any) -> None:
    """A plugin that fails to load is shown with its distribution, version and error; exit 1."""
    run = cli("plugins")
    assert run.code == common.FAILED
    assert "FAILED broken from stent-broken 9.9.9" in run.out and "stent_broken_driver" in run.out
    data = json.loads(cli("plugins", "--json").out)
    assert data["failures"][0]["version"] == "9.9.9"
    # The built-in commands keep working beside the broken plugin.
    assert cli("--storage", "memory://", "list").code == 0


def test_a_plugin_adds_a_command(cli: Cli) -> None:
    """A plugin's registered command gets its own arguments and exit code; a broken one is left out."""
    module = ModuleType("stent_cli_test_commands")

    def make_hello(parser: Any) -> Any:
        parser.add_argument("--name", default="world")
        return lambda args: print(f"hello {args.name}") or 7

    def make_broken(parser: Any) -> Any:
        raise RuntimeError("cannot build")

    @plugins.hookimpl
    def stent_register_commands(registry: Any) -> None:
        registry.add_command("hello", make_hello)
        registry.add_command("broken-cmd", make_broken)
        registry.add_command("list", make_hello)  # may not replace a built-in

    module.stent_register_commands = stent_register_commands  # type: ignore[attr-defined]
    host = plugins.PluginHost(discover=list, environ={})
    host.register_plugin(module, name="commands")
    plugins.reset_plugin_host(host)
    try:
        run = cli("hello", "--name", "ops")
        assert (run.code, run.out.strip()) == (7, "hello ops")
        broken = cli("broken-cmd")
        assert broken.code == common.FAILED and "failed to load: cannot build" in broken.err
        assert cli("--storage", "memory://", "list").out.startswith("no executions")
    finally:
        plugins.reset_plugin_host(None)
