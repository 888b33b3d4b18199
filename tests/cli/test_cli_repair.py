"""``stent dlq``, ``cancel`` and ``signal`` through the entry point, with their bad inputs."""

from __future__ import annotations

import io
import json

import pytest
from cli_support import Cli, Seeded

from stent.cli import common


@pytest.fixture(params=["sqlite", "memory"])
def seeded(request: pytest.FixtureRequest) -> Seeded:
    """The seeded storage on SQLite and on (shared) memory."""
    return request.getfixturevalue(f"seeded_{request.param}")


def dead_task(cli: Cli, url: str) -> str:
    letters = json.loads(cli("--storage", url, "dlq", "list", "--json").out)["dead_letters"]
    assert len(letters) == 1
    return str(letters[0]["task_id"])


def test_dlq_list_and_show(cli: Cli, seeded: Seeded) -> None:
    """The dead-lettered step is listed with its reason and shown with its remote traceback."""
    run = cli("--storage", seeded.url, "dlq", "list")
    assert run.code == 0
    assert "cli.explode" in run.out and "RuntimeError: exploded: no fuel" in run.out
    task_id = dead_task(cli, seeded.url)
    shown = cli("--storage", seeded.url, "dlq", "show", task_id)
    assert shown.code == 0
    assert "remote traceback:" in shown.out and "cli_workflows.py" in shown.out
    assert f"stent dlq replay {task_id}" in shown.out
    data = json.loads(cli("--storage", seeded.url, "dlq", "show", task_id, "--json").out)
    assert data["execution_id"] == seeded.broken and data["attempts"] == 2
    assert data["error"]["type"] == "RuntimeError"


def test_dlq_list_filters_by_queue_and_function(cli: Cli, seeded: Seeded) -> None:
    """--queue and --function filter the list."""
    hit = json.loads(cli("--storage", seeded.url, "dlq", "list", "--queue", "default", "--json").out)
    miss = json.loads(cli("--storage", seeded.url, "dlq", "list", "--function", "cli.double", "--json").out)
    assert hit["total"] == 1 and miss["total"] == 0
    assert "no dead letters" in cli("--storage", seeded.url, "dlq", "list", "--queue", "slow").out


def test_dlq_replay_reopens_the_execution_on_another_queue(cli: Cli, seeded: Seeded) -> None:
    """Replay moves the task to --queue, takes it off the list, and the failed execution runs again."""
    task_id = dead_task(cli, seeded.url)
    run = cli("--storage", seeded.url, "dlq", "replay", task_id, "--queue", "repair")
    assert run.code == 0, run.err
    assert f"replayed {task_id}" in run.out and "on queue repair" in run.out
    assert json.loads(cli("--storage", seeded.url, "dlq", "list", "--json").out)["dead_letters"] == []
    state = json.loads(cli("--storage", seeded.url, "show", seeded.broken, "--json").out)["execution"]["state"]
    assert state == "running"
    stats = json.loads(cli("--storage", seeded.url, "stats", "--json").out)
    assert stats["queue_depth_total"] == 2  # queued-1 on slow, and the replayed step


def test_dlq_replay_all_and_discard(cli: Cli, seeded: Seeded) -> None:
    """--all replays every dead letter (--function narrows it); discard forgets one."""
    none = cli("--storage", seeded.url, "dlq", "replay", "--all", "--function", "cli.double", "--json")
    assert json.loads(none.out) == {"replayed": []}
    task_id = dead_task(cli, seeded.url)
    discarded = cli("--storage", seeded.url, "dlq", "discard", task_id)
    assert discarded.code == 0 and f"discarded {task_id}" in discarded.out
    assert cli("--storage", seeded.url, "dlq", "replay", "--all").out.strip() == "no dead letters to replay"


@pytest.mark.parametrize("action", ["show", "replay", "discard"])
def test_dlq_unknown_task_is_not_found(cli: Cli, seeded: Seeded, action: str) -> None:
    """An unknown dead letter id: exit 3, and nothing else happens to the good ids given with it."""
    task_id = dead_task(cli, seeded.url)
    extra = [] if action == "show" else [task_id]
    run = cli("--storage", seeded.url, "dlq", action, *extra, "no-such-task")
    assert run.code == common.NOT_FOUND
    assert "no dead letter with task id 'no-such-task'" in run.err
    assert dead_task(cli, seeded.url) == task_id  # the good id was neither replayed nor discarded


def test_dlq_usage_errors(cli: Cli, seeded: Seeded) -> None:
    """Replay needs ids or --all (not both); --function only with --all; an action is required."""
    assert cli("--storage", seeded.url, "dlq", "replay").code == common.USAGE
    assert cli("--storage", seeded.url, "dlq", "replay", "x", "--all").code == common.USAGE
    assert cli("--storage", seeded.url, "dlq", "replay", "x", "--function", "f").code == common.USAGE
    with pytest.raises(SystemExit) as exc:
        cli("--storage", seeded.url, "dlq")
    assert exc.value.code == common.USAGE


def test_cancel_a_waiting_execution_then_again(cli: Cli, seeded: Seeded) -> None:
    """Cancelling works once, and cancelling it again reports it was already cancelled (exit 0)."""
    run = cli("--storage", seeded.url, "cancel", seeded.waiting)
    assert run.code == 0, run.err
    assert "cancel" in run.out
    again = cli("--storage", seeded.url, "cancel", seeded.waiting, "--json")
    data = json.loads(again.out)
    assert again.code == 0 and data["changed"] is False and data["state"] in ("cancelled", "cancelling")


def test_cancel_a_finished_or_unknown_execution(cli: Cli, seeded: Seeded) -> None:
    """A completed execution cannot be cancelled (exit 1); an unknown id is not found (exit 3)."""
    run = cli("--storage", seeded.url, "cancel", seeded.done)
    assert run.code == common.FAILED
    assert "already finished (completed)" in run.err
    assert cli("--storage", seeded.url, "cancel", "nope").code == common.NOT_FOUND


def test_signal_is_delivered_with_its_json_payload(cli: Cli, seeded: Seeded) -> None:
    """A waiting execution's signal is stored with the decoded JSON payload."""
    run = cli("--storage", seeded.url, "signal", seeded.waiting, "approve", '{"ok": true, "by": "ops"}')
    assert run.code == 0, run.err
    assert "sent signal 'approve'" in run.out
    data = json.loads(cli("--storage", seeded.url, "show", seeded.waiting, "--json").out)
    assert [s["payload"] for s in data["signals"]] == [{"ok": True, "by": "ops"}]
    assert data["signals"][0]["consumed_by"] is not None  # the waiting step took it at once


def test_signal_payload_from_stdin_and_without_payload(
    cli: Cli, seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    """'-' reads the payload from standard input; no payload sends null."""
    monkeypatch.setattr("sys.stdin", io.StringIO('["from", "stdin"]'))
    assert cli("--storage", seeded.url, "signal", seeded.queued, "note", "-").code == 0
    assert cli("--storage", seeded.url, "signal", seeded.queued, "bare", "--json").code == 0
    signals = json.loads(cli("--storage", seeded.url, "show", seeded.queued, "--json").out)["signals"]
    assert [(s["name"], s["payload"]) for s in signals] == [("note", ["from", "stdin"]), ("bare", None)]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["waiting-1", "approve", "{not json"], common.USAGE, "not valid JSON"),
        (["waiting-1", " ", "1"], common.USAGE, "signal name is empty"),
        (["nope", "approve", "1"], common.NOT_FOUND, "no execution with id 'nope'"),
        (["done-1", "approve", "1"], common.FAILED, "has already ended (completed)"),
    ],
    ids=["payload", "name", "unknown", "finished"],
)
def test_signal_bad_input(cli: Cli, seeded: Seeded, args: list[str], code: int, message: str) -> None:
    """Malformed payloads and names, unknown and finished executions: their exit codes and messages."""
    run = cli("--storage", seeded.url, "signal", *args)
    assert run.code == code
    assert message in run.err
    assert "Traceback" not in run.err


def test_notifier_option_wakes_workers_and_a_down_notifier_is_only_a_warning(cli: Cli, seeded: Seeded) -> None:
    """--notifier publishes the change; an unreachable one still lets the command succeed; a bad URL is exit 2."""
    ok = cli("--storage", seeded.url, "signal", seeded.waiting, "approve", "1", "--notifier", "memory://")
    assert ok.code == 0, ok.err
    down = cli("--storage", seeded.url, "cancel", seeded.queued, "--notifier", "redis://127.0.0.1:1")
    assert down.code == 0, down.err
    bad = cli("--storage", seeded.url, "dlq", "replay", "--all", "--notifier", "not-a-url")
    assert bad.code == common.USAGE and "is not a notifier URL" in bad.err
