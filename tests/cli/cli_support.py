"""Helpers of the CLI tests: in-process runs of ``stent``, seeded storages, and a shared memory:// scheme."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

import attrs
import pytest

from stent.cli.main import main
from stent.clocks import FakeClock
from stent.memory import MemoryStorage
from stent.plugins import get_plugin_host, hookimpl
from stent.ports import Storage
from stent.testing.harness import WorkflowHarness

sys.path.insert(0, str(Path(__file__).parent))
import cli_workflows as wf

#: Seeded executions start this long ago, so that cleanup cutoffs either side of it are easy to pick.
SEED_AGE = timedelta(days=30)


@attrs.frozen
class Run:
    """What one ``stent`` invocation did."""

    code: int
    out: str
    err: str


Cli = Callable[..., Run]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    """Run ``stent ARGS...`` in this process; returns the exit code and what it printed."""

    def run(*args: str) -> Run:
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


@attrs.frozen
class Seeded:
    """A storage URL holding one execution of each kind the commands show."""

    url: str
    done: str = "done-1"
    broken: str = "broken-1"
    waiting: str = "waiting-1"
    queued: str = "queued-1"


async def seed(storage: Storage) -> None:
    """Executions in every state, made on a fake clock that starts SEED_AGE ago."""
    h = WorkflowHarness(storage)
    h.clock = FakeClock(datetime.now(UTC) - SEED_AGE)
    h.executor.clock = h.clock
    await h.start_worker("seeder", queues=["default"])
    await h.executor.dispatch(wf.add_all, 3, execution_id="done-1")
    await h.executor.dispatch(wf.add_all, 1, execution_id="done-2")
    await h.executor.dispatch(wf.fails, "no fuel", execution_id="broken-1")
    await h.executor.dispatch(wf.wait_approval, execution_id="waiting-1")
    await h.executor.dispatch(wf.double, 21, execution_id="queued-1", queue="slow")
    for eid in ("done-1", "done-2"):
        await h.finish(eid)
    try:
        await h.finish("broken-1")
    except RuntimeError:
        pass
    await h.advance(5)
    await h.stop()


@pytest.fixture
async def seeded_sqlite(tmp_path: Path) -> Seeded:
    """A SQLite file with seeded executions."""
    from stent import Stent

    path = tmp_path / "seeded.db"
    storage = Stent.backends.SQLiteBackend(str(path))
    await storage.init_db()
    await seed(storage)
    return Seeded(f"sqlite:///{path}")


# -- memory storage shared with the command, through a plugin scheme of the tests ---------------------------

SHARED: dict[str, Storage] = {}


def _shared_storage(url: str, **options: object) -> Storage:
    name = url.split("://", 1)[1]
    if name not in SHARED:
        SHARED[name] = MemoryStorage()
    return SHARED[name]


_plugin = ModuleType("stent_cli_test_plugin")


@hookimpl
def stent_register_storage(registry: object) -> None:
    registry.add_storage("clitest", _shared_storage)  # type: ignore[attr-defined]


_plugin.stent_register_storage = stent_register_storage  # type: ignore[attr-defined]


@pytest.fixture
def shared_memory() -> Iterator[Callable[[str], str]]:
    """``shared(name)`` -> a ``clitest://name`` URL whose MemoryStorage the test and the command share."""
    host = get_plugin_host()
    if "clitest" not in host.schemes("storage"):
        host.register_plugin(_plugin, name="clitest")

    def shared(name: str, storage: Storage | None = None) -> str:
        if storage is not None:
            SHARED[name] = storage
        return f"clitest://{name}"

    yield shared
    SHARED.clear()


@pytest.fixture
async def seeded_memory(shared_memory: Callable[..., str]) -> Seeded:
    """A shared MemoryStorage with seeded executions."""
    storage = MemoryStorage()
    await seed(storage)
    return Seeded(shared_memory("seeded", storage))
