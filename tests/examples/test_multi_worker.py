"""The multi-worker example deploys for real: `stent worker` processes on a fresh PostgreSQL schema, woken by Redis
or NATS, sharing one batch and draining on SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from stent import Stent

LAUNCH = Path(__file__).resolve().parents[2] / "examples" / "multi_worker" / "launch.py"
pytestmark = pytest.mark.timeout(120)


def launch(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the launcher in a process group of its own, so a hung run takes its workers down with it."""
    command = [sys.executable, str(LAUNCH), *args]
    with subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=LAUNCH.parent,
        start_new_session=True,
    ) as process:
        try:
            out, err = process.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            out, err = process.communicate()
            pytest.fail(f"the launcher did not finish within 90 s\n{out}\n{err}")
    return subprocess.CompletedProcess(command, process.returncode, out, err)


@pytest.fixture
async def storage_url(services) -> AsyncIterator[str]:  # type: ignore[no-untyped-def]
    """A PostgreSQL URL with a schema of its own, dropped after the test."""
    server = services.postgres()
    schema = f"stent_example_{uuid.uuid4().hex[:12]}"
    yield f"{server}?schema={schema}"
    conn = await asyncpg.connect(server)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


@pytest.mark.parametrize("notifier", ["redis", "nats"])
async def test_workers_share_the_batch_and_drain_on_sigterm(services, storage_url: str, notifier: str) -> None:  # type: ignore[no-untyped-def]
    """Every document is processed, by more than one worker process, and every worker drains and exits 0."""
    getattr(services, notifier)()  # skips (or fails under STENT_REQUIRE_SERVICES=1) when the server is down
    done = launch("--storage", storage_url, "--notifier", notifier, "--workers", "3", "--documents", "12",
                  "--concurrency", "2", "--timeout", "20")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "12 of 12 documents processed" in done.stdout
    ran = {
        name: int(count)
        for name, count in re.findall(r"^  (worker-\d) ran (\d+) tasks", done.stdout, re.MULTILINE)
    }
    assert set(ran) == {"worker-1", "worker-2", "worker-3"}
    assert sum(ran.values()) == 12 * 5  # every task of the 12 documents ran in one of our three workers
    assert sum(1 for count in ran.values() if count) >= 2, done.stdout
    for name in ran:
        assert f"{name} drained and stopped (exit 0)" in done.stdout
    executor = Stent(storage_url)  # what the database says, independently of the program's own report
    try:
        page = await executor.list_executions(state="completed", limit=100)
        assert page.total == 12
    finally:
        await executor.close()


def test_an_unreachable_postgresql_is_reported_before_any_worker_starts() -> None:
    """A PostgreSQL that does not answer: exit 4, the storage's own message and where the URL came from."""
    done = launch("--storage", "postgresql://postgres@127.0.0.1:1/test?schema=nowhere&connect_timeout=2")
    assert done.returncode == 4, done.stdout + done.stderr
    assert "PostgreSQL at 127.0.0.1:1" in done.stderr and "unavailable" in done.stderr
    assert "--storage or STENT_STORAGE_URL" in done.stderr
    assert "Traceback" not in done.stderr
    assert "starting" not in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--notifier", "kafka"], "--notifier must be redis, nats or a URL"),
        (["--workers", "0"], "--workers: must be a whole number of at least 1"),
        (["--timeout", "0"], "--timeout: must be a positive number of seconds"),
    ],
    ids=["notifier", "workers", "timeout"],
)
def test_bad_options_exit_2_naming_the_option(args: list[str], message: str) -> None:
    """A notifier that is neither redis, nats nor a URL, and counts below one, are refused before anything runs."""
    done = launch("--storage", "postgresql://postgres@127.0.0.1:1/test?schema=nowhere", *args)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr
