"""``stent list``, ``show``, ``stats`` and ``workers`` through the entry point, with their bad inputs."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cli_support import Cli, Seeded, wf

from stent.cli import common
from stent.clocks import FakeClock
from stent.memory import MemoryStorage
from stent.testing.harness import WorkflowHarness

READ_COMMANDS = [["list"], ["show", "done-1"], ["stats"], ["workers"], ["watch", "--iterations", "1"],
                 ["dlq", "list"], ["cleanup", "--dry-run"], ["cancel", "x"], ["signal", "x", "go"]]  # fmt: skip


@pytest.fixture(params=["sqlite", "memory"])
def seeded(request: pytest.FixtureRequest) -> Seeded:
    """The seeded storage on SQLite and on (shared) memory."""
    return request.getfixturevalue(f"seeded_{request.param}")


def test_list_shows_every_execution_newest_first(cli: Cli, seeded: Seeded) -> None:
    """A table of all five seeded executions, with the page footer."""
    run = cli("--storage", seeded.url, "list")
    assert run.code == 0, run.err
    for eid in ("done-1", "done-2", "broken-1", "waiting-1", "queued-1"):
        assert eid in run.out
    assert run.out.splitlines()[0].split() == ["ID", "FUNCTION", "STATE", "QUEUE", "CREATED", "DURATION"]
    assert "1-5 of 5" in run.out


def test_list_filters_and_pages_as_json(cli: Cli, seeded: Seeded) -> None:
    """--state, --queue and --function filter; --limit/--offset page; the total counts every match."""
    run = cli("list", "--storage", seeded.url, "--state", "completed", "--json")
    data = json.loads(run.out)
    assert {e["execution_id"] for e in data["executions"]} == {"done-1", "done-2"}
    assert data["total"] == 2
    run = cli("--storage", seeded.url, "--json", "list", "--queue", "slow")
    assert [e["execution_id"] for e in json.loads(run.out)["executions"]] == ["queued-1"]
    run = cli("--storage", seeded.url, "list", "--function", "cli.fails", "--json")
    assert [e["state"] for e in json.loads(run.out)["executions"]] == ["failed"]
    first = json.loads(cli("--storage", seeded.url, "list", "--limit", "2", "--json").out)
    second = json.loads(cli("--storage", seeded.url, "list", "--limit", "2", "--offset", "2", "--json").out)
    assert first["total"] == second["total"] == 5
    assert len(first["executions"]) == len(second["executions"]) == 2
    assert not {e["execution_id"] for e in first["executions"]} & {e["execution_id"] for e in second["executions"]}
    human = cli("--storage", seeded.url, "list", "--limit", "2")
    assert "next page: --offset 2" in human.out


def test_list_reports_an_empty_result(cli: Cli, seeded: Seeded) -> None:
    """A filter that matches nothing says so and still exits 0."""
    run = cli("--storage", seeded.url, "list", "--state", "timed_out")
    assert run.code == 0
    assert "no executions match" in run.out


@pytest.mark.parametrize(
    "args",
    [["--state", "bogus"], ["--limit", "0"], ["--limit", "ten"], ["--offset", "-1"]],
    ids=["state", "limit-zero", "limit-text", "offset-negative"],
)
def test_list_rejects_bad_options_with_usage_exit(cli: Cli, seeded: Seeded, args: list[str]) -> None:
    """Malformed filters and paging are usage errors (exit 2)."""
    with pytest.raises(SystemExit) as exc:
        cli("--storage", seeded.url, "list", *args)
    assert exc.value.code == common.USAGE


def test_show_prints_steps_result_and_timings(cli: Cli, seeded: Seeded) -> None:
    """A completed execution: its result, arguments and each step with its state and attempt."""
    run = cli("--storage", seeded.url, "show", seeded.done)
    assert run.code == 0, run.err
    assert "state      completed" in run.out
    assert "result     6" in run.out
    assert "arguments  " in run.out and "[3]" in run.out
    assert run.out.count("cli.double") == 3
    assert "steps (4)" in run.out
    assert "counters   items=3" in run.out
    assert 'state      phase="summed"' in run.out
    assert "STEP" in run.out and "DURATION" in run.out


def test_show_prints_the_error_with_its_remote_traceback(cli: Cli, seeded: Seeded) -> None:
    """A failed execution: the error type, message and the worker's traceback naming the user's code."""
    run = cli("--storage", seeded.url, "show", seeded.broken)
    assert run.code == 0
    assert "RuntimeError: exploded: no fuel" in run.out
    assert "remote traceback:" in run.out
    assert "cli_workflows.py" in run.out
    assert "2/2" in run.out  # the failing step's two attempts


def test_show_json_has_steps_signals_and_state(cli: Cli, seeded: Seeded) -> None:
    """--json: execution fields, steps in tree order with depth, and an execution's pending signal wait."""
    data = json.loads(cli("--storage", seeded.url, "show", seeded.waiting, "--json").out)
    assert data["execution"]["state"] == "running"
    kinds = [(s["depth"], s["kind"], s["state"]) for s in data["steps"]]
    assert kinds[0][:2] == (0, "call")
    assert (1, "signal", "pending") in kinds
    assert data["signals"] == []
    done = json.loads(cli("--storage", seeded.url, "show", seeded.done, "--json").out)["execution"]
    assert (done["counters"], done["state_values"]) == ({"items": 3}, {"phase": "summed"})
    broken = json.loads(cli("--storage", seeded.url, "show", seeded.broken, "--json").out)
    assert broken["execution"]["error"]["type"] == "RuntimeError"
    assert "exploded" in broken["execution"]["error"]["traceback"]


def test_show_unknown_id_is_not_found(cli: Cli, seeded: Seeded) -> None:
    """An id that does not exist: exit 3 and a hint to list executions."""
    run = cli("--storage", seeded.url, "show", "no-such-id")
    assert run.code == common.NOT_FOUND
    assert "no execution with id 'no-such-id'" in run.err
    assert "stent list" in run.err


def test_stats_counts_states_queues_and_dead_letters(cli: Cli, seeded: Seeded) -> None:
    """Counts by state, the pending queue with its depth and age, and the dead letter."""
    data = json.loads(cli("--storage", seeded.url, "stats", "--json").out)
    assert data["executions"]["completed"] == 2
    assert data["executions"]["failed"] == 1
    assert data["executions"]["pending"] == 1
    assert data["total"] == 5
    slow = next(q for q in data["queues"] if q["queue"] == "slow")
    assert (slow["depth"], slow["ready"], slow["scheduled"]) == (1, 1, 0)
    assert slow["oldest_pending_s"] > 29 * 86400
    assert data["dead_letters"] == 1
    human = cli("--storage", seeded.url, "stats")
    assert human.code == 0
    assert "dead letters: 1" in human.out
    assert "slow" in human.out


@pytest.fixture
async def fanned_out(shared_memory: Callable[..., str]) -> str:
    """A running execution whose three children wait on queue ``batch``, which no worker serves, for 10 minutes;
    its root waits for them, suspended."""
    storage = MemoryStorage()
    h = WorkflowHarness(storage)
    h.clock = FakeClock(datetime.now(UTC) - timedelta(minutes=10))
    h.executor.clock = h.clock
    await h.start_worker("front", queues=["default"])
    await h.executor.dispatch(wf.fan_out, 3, execution_id="fan-1")
    await h.advance(1)
    await h.stop()
    return shared_memory("fanned", storage)


def test_stats_lists_every_queue_with_unfinished_work(cli: Cli, fanned_out: str) -> None:
    """A backlog of child tasks inside a running execution gets its queue's row, with how long it has waited."""
    data = json.loads(cli("--storage", fanned_out, "stats", "--json").out)
    assert data["executions"]["running"] == 1 and data["executions"]["pending"] == 0
    rows = {q["queue"]: q for q in data["queues"]}
    assert list(rows) == ["batch", "default"]
    batch = rows["batch"]
    assert (batch["depth"], batch["ready"], batch["scheduled"], batch["running"], batch["suspended"]) == (
        3,
        3,
        0,
        0,
        0,
    )
    assert 9 * 60 < batch["oldest_pending_s"] < 11 * 60
    assert batch["oldest_ready_at"] is not None
    default = rows["default"]
    assert (default["depth"], default["suspended"], default["oldest_ready_at"]) == (0, 1, None)
    assert data["queue_depth_total"] == 3
    human = cli("--storage", fanned_out, "stats").out.splitlines()
    assert human[human.index("queues (ready or scheduled tasks: 3 in all)") + 1].split() == [
        "QUEUE", "READY", "SCHEDULED", "RUNNING", "SUSPENDED", "OLDEST", "READY"
    ]  # fmt: skip
    batch_line = next(line.split() for line in human if line.startswith("batch"))
    assert batch_line[:5] == ["batch", "3", "0", "0", "0"] and batch_line[5].startswith(("9m", "10m"))
    assert next(line.split() for line in human if line.startswith("default "))[1:] == ["0", "0", "0", "1", "-"]


def test_stats_queue_adds_idle_queues_and_rejects_an_empty_name(cli: Cli, fanned_out: str) -> None:
    """--queue lists idle queues with zero counts, in name order; an empty name is a usage error."""
    data = json.loads(
        cli("--storage", fanned_out, "stats", "--queue", "idle,zzz", "--queue", "batch", "--json").out
    )
    assert [q["queue"] for q in data["queues"]] == ["batch", "default", "idle", "zzz"]
    idle = data["queues"][2]
    assert (idle["depth"], idle["running"], idle["oldest_ready_at"], idle["oldest_pending_s"]) == (0, 0, None, 0.0)
    assert data["queues"][0]["ready"] == 3  # named and busy: listed once, with its counts
    with pytest.raises(SystemExit) as exc:
        cli("--storage", fanned_out, "stats", "--queue", " , ")
    assert exc.value.code == common.USAGE


def test_stats_on_an_empty_storage_says_no_queue_has_work(cli: Cli, shared_memory: Callable[..., str]) -> None:
    """No unfinished task anywhere: no queue rows, a total of 0, and a sentence instead of an empty table."""
    url = shared_memory("empty", MemoryStorage())
    data = json.loads(cli("--storage", url, "stats", "--json").out)
    assert (data["queues"], data["queue_depth_total"]) == ([], 0)
    assert "no queue has unfinished work" in cli("--storage", url, "stats").out


def test_workers_lists_heartbeat_rows(cli: Cli, shared_memory: object) -> None:
    """Worker rows from storage: live ones and stale ones, as a table and as JSON."""
    import asyncio
    from datetime import UTC, datetime, timedelta

    from stent.memory import MemoryStorage
    from stent.model import WorkerInfo

    storage = MemoryStorage()
    now = datetime.now(UTC)

    def row(worker_id: str, seen: datetime) -> WorkerInfo:
        return WorkerInfo(
            worker_id, "host-a", 42, ("default",), None, 8, 3, "ready", now - timedelta(hours=1), seen
        )

    asyncio.run(storage.record_worker(row("w-live", now)))
    asyncio.run(storage.record_worker(row("w-gone", now - timedelta(minutes=10))))
    url = shared_memory("workers", storage)  # type: ignore[operator]
    data = json.loads(cli("--storage", url, "workers", "--json").out)
    by_id = {w["worker_id"]: w for w in data["workers"]}
    assert by_id["w-live"]["stale"] is False and by_id["w-gone"]["stale"] is True
    run = cli("--storage", url, "workers")
    assert "w-live" in run.out and "3/8" in run.out and "(stale)" in run.out
    empty = cli("--storage", shared_memory("nobody"), "workers")  # type: ignore[operator]
    assert empty.code == 0 and "no workers" in empty.out


# -- storage problems, for every read command ----------------------------------------------------------------


@pytest.mark.parametrize("args", READ_COMMANDS, ids=lambda a: "-".join(a[:2]))
def test_a_mistyped_sqlite_path_is_not_found_and_creates_nothing(
    cli: Cli, tmp_path: Path, args: list[str]
) -> None:
    """A read command on a SQLite file that does not exist: exit 3, a message, and no file created."""
    missing = tmp_path / "typo.db"
    run = cli("--storage", f"sqlite:///{missing}", *args)
    assert run.code == common.NOT_FOUND, run.err
    assert "no SQLite database at" in run.err and "stent init" in run.err
    assert not missing.exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args", READ_COMMANDS, ids=lambda a: "-".join(a[:2]))
def test_an_unreachable_server_exits_4_without_a_traceback(cli: Cli, args: list[str]) -> None:
    """PostgreSQL on a closed local port: exit 4 and the storage's message, no traceback."""
    run = cli("--storage", "postgresql://postgres@127.0.0.1:1/test?connect_timeout=2", *args)
    assert run.code == common.UNAVAILABLE, run.err
    assert "unavailable" in run.err.lower()
    assert "Traceback" not in run.err


@pytest.mark.parametrize(
    ("url", "code", "message"),
    [
        ("app.db", common.USAGE, "is not a storage URL"),
        ("nosuch://x", common.USAGE, "unknown storage URL scheme 'nosuch'"),
        ("redis://127.0.0.1:6379", common.USAGE, "names a notifier backend"),
        ("sqlite://host/app.db", common.USAGE, "names a host"),
    ],
    ids=["path", "scheme", "notifier", "sqlite-host"],
)
def test_malformed_storage_urls_are_usage_errors(cli: Cli, url: str, code: int, message: str) -> None:
    """URLs that cannot name a storage: exit 2 with the registry's explanation."""
    run = cli("--storage", url, "list")
    assert run.code == code
    assert message in run.err


def test_no_storage_at_all_is_a_usage_error(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --storage or STENT_STORAGE_URL a read command says how to give one."""
    monkeypatch.delenv("STENT_STORAGE_URL", raising=False)
    run = cli("list")
    assert run.code == common.USAGE
    assert "--storage URL" in run.err and "STENT_STORAGE_URL" in run.err


def test_storage_url_from_the_environment(
    cli: Cli, seeded_sqlite: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    """STENT_STORAGE_URL is used when --storage is not given."""
    monkeypatch.setenv("STENT_STORAGE_URL", seeded_sqlite.url)
    run = cli("list", "--json")
    assert run.code == 0
    assert json.loads(run.out)["total"] == 5


def test_a_file_without_the_schema_or_not_a_database(cli: Cli, tmp_path: Path) -> None:
    """An empty file says the schema is missing (exit 2); a text file is not a database (exit 1)."""
    empty = tmp_path / "empty.db"
    empty.touch()
    run = cli("--storage", f"sqlite:///{empty}", "list")
    assert run.code == common.USAGE
    assert "schema is missing" in run.err
    text = tmp_path / "notes.db"
    text.write_text("not a database at all, just some notes\n" * 100)
    run = cli("--storage", f"sqlite:///{text}", "list")
    assert run.code == common.FAILED
    assert "not a usable SQLite database" in run.err
    folder = tmp_path / "folder.db"
    folder.mkdir()
    assert cli("--storage", f"sqlite:///{folder}", "list").code == common.USAGE


def test_no_command_prints_help_and_exits_2(cli: Cli) -> None:
    """``stent`` alone shows the commands and the exit codes."""
    run = cli()
    assert run.code == common.USAGE
    assert "exit codes" in run.err and "watch" in run.err
