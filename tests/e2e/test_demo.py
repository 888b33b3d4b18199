"""`stent demo` through the real command: it finishes the orders, and an interrupted run resumes."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from stent import Stent

pytestmark = pytest.mark.timeout(120)


def demo(db: Path, *extra: str, **kwargs: object) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "stent.cli.main", "demo", "--db", str(db), *extra]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)  # type: ignore[call-overload]


def test_demo_processes_every_order_and_prints_results(tmp_path: Path) -> None:
    """The demo shows progress lines and a result row with a tracking number for each of its five orders."""
    proc = demo(tmp_path / "demo.db", "--work-seconds", "0")
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "order-1: reserved" in out and "charged" in out and "packed" in out
    rows = [line for line in out.splitlines() if line.startswith("order-") and "completed" in line]
    assert len(rows) == 5
    assert all("TRK-ORDER-" in row for row in rows)
    again = demo(tmp_path / "demo.db", "--work-seconds", "0")
    out2, _ = again.communicate(timeout=60)
    assert again.returncode == 0
    assert "already finished" in out2
    assert "reserved" not in out2  # nothing ran again


async def test_interrupted_demo_resumes_unfinished_orders(tmp_path: Path) -> None:
    """Ctrl-C part way, then a second run finishes the rest without journaling any step twice."""
    db = tmp_path / "demo.db"
    proc = demo(db, "--work-seconds", "0.4")
    assert proc.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + 30
    while len([line for line in seen if "reserved" in line]) < 5 and time.monotonic() < deadline:
        seen.append(proc.stdout.readline())
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert "interrupted" in out, out
    backend = Stent.backends.SQLiteBackend(str(db))
    unfinished = [e for e in (await backend.list_executions()).executions if not e.state.terminal]
    assert unfinished, "the interrupt came too late to leave work unfinished"
    await backend.close()

    second = demo(db, "--work-seconds", "0")
    out2, _ = second.communicate(timeout=60)
    assert second.returncode == 0, out2
    assert f"resuming {len(unfinished)} unfinished order(s)" in out2
    assert len([line for line in out2.splitlines() if line.startswith("order-") and "completed" in line]) == 5
    backend = Stent.backends.SQLiteBackend(str(db))
    for execution in (await backend.list_executions()).executions:
        tasks = await backend.list_execution_tasks(execution.execution_id)
        steps = Counter((t.parent_task_id, t.parent_attempt, t.step) for t in tasks if t.step is not None)
        assert all(count == 1 for count in steps.values())
        assert Counter(t.function for t in tasks)["demo.ship"] == 1
    await backend.close()
    await asyncio.sleep(0)
