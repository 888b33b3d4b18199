"""Every program in examples/ runs and prints what its docstring promises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
pytestmark = pytest.mark.timeout(120)


def run(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args], capture_output=True, text=True, timeout=90, cwd=EXAMPLES
    )


def test_order_processing_finishes_every_order(tmp_path: Path) -> None:
    """The order-processing example completes its five orders."""
    done = run("order_processing.py", "--db", str(tmp_path / "o.db"), "--work-seconds", "0")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("completed") == 5


def test_saga_compensates_in_reverse_when_a_booking_fails(tmp_path: Path) -> None:
    """A failing car booking cancels the hotel, then the flight."""
    done = run("saga.py", "--fail-at", "car", "--db", str(tmp_path / "s.db"))
    assert done.returncode == 1, done.stderr
    lines = [line.strip() for line in done.stdout.splitlines()]
    assert lines.index("cancelled hotel-lisbon-2030") < lines.index("cancelled flight-lisbon-2030")
    assert "earlier bookings were cancelled" in done.stdout
    ok = run("saga.py", "--fail-at", "none", "--db", str(tmp_path / "s2.db"))
    assert ok.returncode == 0 and "trip booked: flight-lisbon-2030, hotel-lisbon-2030, car-lisbon-2030" in ok.stdout


def test_batch_processing_reports_partial_failure(tmp_path: Path) -> None:
    """The batch imports the good records and lists the corrupt ones."""
    done = run("batch_processing.py", "--records", "30", "--db", str(tmp_path / "b.db"))
    assert done.returncode == 0, done.stderr
    assert "imported 26 of 30 records; failed: [7, 14, 21, 28]" in done.stdout
    assert "counters: {'failed': 4, 'imported': 26}" in done.stdout


def test_human_approval_passes_the_decision_on(tmp_path: Path) -> None:
    """The manager's signal reaches the waiting workflow."""
    done = run("human_approval.py", "--decision", "reject", "--db", str(tmp_path / "a.db"))
    assert done.returncode == 0, done.stderr
    assert "outcome: rejected" in done.stdout


def test_human_approval_tests_pass() -> None:
    """The example's own fake-clock tests pass, as a user would run them."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_human_approval.py"],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=EXAMPLES,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout


def test_rate_limited_crawler_never_exceeds_its_limit(tmp_path: Path) -> None:
    """The crawler fetches every page with retries and never more than three at once."""
    done = run("rate_limited_crawler.py", "--pages", "25", "--db", str(tmp_path / "c.db"))
    assert done.returncode == 0, done.stderr
    assert "crawled 25 pages" in done.stdout
    peak = int(done.stdout.split("at most ")[1].split()[0])
    assert 1 <= peak <= 3
