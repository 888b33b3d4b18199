"""``stent watch``: frames for people and for scripts, a storage that stops answering, and Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from cli_support import Cli, Seeded

from stent.cli import common, watch


def test_watch_prints_bounded_frames(cli: Cli, seeded_sqlite: Seeded) -> None:
    """--iterations 2: two frames with executions, queues, running and failing work, then exit 0."""
    run = cli("--storage", seeded_sqlite.url, "watch", "--iterations", "2", "--interval", "0.01")
    assert run.code == 0, run.err
    assert run.out.count("stent watch  sqlite:///") == 2
    assert "throughput   completed -" in run.out  # no rate on the first frame
    assert "/min" in run.out  # the second frame has one
    assert "running (1)" in run.out and seeded_sqlite.waiting in run.out
    assert "failing (1)" in run.out and "RuntimeError: exploded: no fuel" in run.out
    lines = [line.split() for line in run.out.splitlines()]
    assert lines.count(["QUEUE", "READY", "SCHEDULED", "RUNNING", "SUSPENDED", "OLDEST", "READY"]) == 2
    assert ["slow", "1", "0", "0", "0"] in [line[:5] for line in lines]


def test_watch_json_is_one_object_per_frame(cli: Cli, seeded_memory: Seeded) -> None:
    """--json prints one JSON object per refresh, with the throughput of the interval."""
    run = cli("--storage", seeded_memory.url, "watch", "--iterations", "3", "--interval", "0.01", "--json")
    frames = [json.loads(line) for line in run.out.splitlines()]
    assert len(frames) == 3
    assert frames[0]["throughput"]["completed_per_min"] is None
    assert frames[2]["throughput"]["completed_per_min"] == 0.0
    assert frames[1]["executions"]["completed"] == 2
    assert frames[1]["failing"][0]["execution_id"] == seeded_memory.broken
    queues = {q["queue"]: q for q in frames[1]["queues"]}
    assert (queues["slow"]["ready"], queues["slow"]["depth"], queues["default"]["suspended"]) == (1, 1, 1)
    assert queues["slow"]["oldest_pending_s"] > 29 * 86400 and frames[1]["queue_depth_total"] == 1


def test_watch_first_look_failing_is_the_commands_error(cli: Cli) -> None:
    """A storage that is down at the start: exit 4 at once, not an endless view of errors."""
    run = cli("--storage", "postgresql://postgres@127.0.0.1:1/test?connect_timeout=2", "watch")
    assert run.code == common.UNAVAILABLE


def test_throughput_never_goes_negative() -> None:
    """Cleanup deleting finished executions between frames shows a rate of 0, not a negative one."""
    before = {"monotonic": 0.0, "executions": {"completed": 10, "failed": 5}}
    after = {"monotonic": 30.0, "executions": {"completed": 4, "failed": 6}}
    assert watch.throughput(before, after) == {"completed_per_min": 0.0, "failed_per_min": 2.0}


def test_ctrl_c_leaves_watch_cleanly(seeded_sqlite: Seeded) -> None:
    """SIGINT while watching (a real process, refreshing forever): exit 0 and no traceback."""
    process = subprocess.Popen(
        [sys.executable, "-m", "stent.cli.main", "--storage", seeded_sqlite.url, "watch", "--interval", "0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        # Ctrl-C as a terminal delivers it: a test runner's worker may have SIGINT ignored, which a child inherits.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline().decode()  # blocks until the first frame is on screen
        assert first.startswith("stent watch")
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err.decode()
    assert b"Traceback" not in err


@pytest.mark.parametrize("value", ["0", "fast", "-2"])
def test_watch_rejects_bad_intervals(cli: Cli, seeded_memory: Seeded, value: str) -> None:
    """An interval that is not a positive duration is a usage error."""
    with pytest.raises(SystemExit) as exc:
        cli("--storage", seeded_memory.url, "watch", "--interval", value)
    assert exc.value.code == common.USAGE


def test_watch_stops_quietly_when_its_reader_goes_away(seeded_sqlite: Seeded) -> None:
    """``stent watch --json | head -1``: the closed pipe ends watch with exit 0 and no error."""
    started = time.monotonic()
    watcher = subprocess.Popen(
        [sys.executable, "-m", "stent.cli.main", "--storage", seeded_sqlite.url, "watch", "--json",
         "--interval", "0.05"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    assert watcher.stdout is not None
    watcher.stdout.readline()
    watcher.stdout.close()  # the reader goes away
    _, err = watcher.communicate(timeout=20)
    assert watcher.returncode == 0, err.decode()
    assert b"Traceback" not in err and b"Broken pipe" not in err
    assert time.monotonic() - started < 20
