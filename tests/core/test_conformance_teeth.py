"""The conformance suite has teeth: run against deliberately broken storages, it fails, naming what broke.

For each variant in :mod:`broken_storage`, a test module is generated that subclasses the relevant conformance
classes twice, once with the broken storage and once with the reference storage, and pytest runs it in a
subprocess.  The reference run must pass whole (so a failure is the variant's fault, not the harness's), and the
broken run must fail at least the tests that name the broken guarantee.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from xml.etree import ElementTree

import attrs
import pytest

HERE = Path(__file__).parent


@attrs.frozen
class Variant:
    storage: str  # a class of broken_storage
    classes: tuple[str, ...]  # the conformance classes that cover the broken guarantee
    must_fail: frozenset[str]  # tests that must fail, by name


VARIANTS = {
    "claims ignore max_concurrent": Variant(
        "IgnoresMaxConcurrent",
        ("ClaimConformance", "ConcurrencyConformance"),
        frozenset(
            {
                "test_max_concurrent_caps_running_tasks_of_a_function",
                "test_max_concurrent_holds_under_contention",
                "test_a_reclaimed_running_task_keeps_its_slot",
            }
        ),
    ),
    "writes skip the fencing check": Variant(
        "SkipsFencing",
        ("FencingConformance", "SuspensionConformance", "ContextConformance"),
        frozenset(
            {
                "test_stale_token_cannot_complete",
                "test_stale_token_cannot_fail",
                "test_stale_token_cannot_release",
                "test_stale_token_cannot_create_steps",
                "test_writes_to_an_unleased_task_are_rejected",
                "test_suspend_is_fenced",
                "test_a_rejected_completion_applies_no_update",
            }
        ),
    ),
    "a claim hands one task to two workers": Variant(
        "RacyClaim",
        ("ConcurrencyConformance",),
        frozenset({"test_concurrent_claimers_never_share_a_task"}),
    ),
    "completion does not wake the parent": Variant(
        "CompletionWakesNobody",
        ("FinishConformance", "SuspensionConformance", "DeadLetterConformance"),
        frozenset(
            {
                "test_completing_a_child_wakes_its_waiting_parent",
                "test_a_finishing_step_makes_a_suspended_parent_claimable",
            }
        ),
    ),
    "cleanup deletes running executions": Variant(
        "CleanupDeletesRunning",
        ("CleanupConformance",),
        frozenset({"test_cleanup_never_touches_unfinished_executions"}),
    ),
    "suspension loses a wake-up that already happened": Variant(
        "SuspendLosesWakeUps",
        ("SuspensionConformance",),
        frozenset(
            {
                "test_suspending_after_the_step_finished_leaves_the_task_pending",
                "test_suspending_with_a_past_wake_time_leaves_the_task_pending",
            }
        ),
    ),
    "a buffered signal is consumed twice": Variant(
        "SignalsConsumedTwice",
        ("SignalConformance",),
        frozenset({"test_a_new_wait_consumes_the_oldest_buffered_signal"}),
    ),
    "a late completion overwrites a cancellation": Variant(
        "CompletionOverwritesCancellation",
        ("CancellationConformance",),
        frozenset({"test_a_cancelling_execution_ends_cancelled_whatever_its_root_does"}),
    ),
}

_MODULE = """
from __future__ import annotations

import pytest

from stent.memory import MemoryStorage
from stent.testing.conformance import {classes}
from broken_storage import {storage}


def _factory(cls):
    async def make(clock):
        storage = cls()
        await storage.init_db()
        return storage

    return make


class TestBroken({classes}):
    @pytest.fixture
    def make_storage(self):
        return _factory({storage})


class TestReference({classes}):
    @pytest.fixture
    def make_storage(self):
        return _factory(MemoryStorage)
"""

_INI = """[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
timeout = 300
"""


def run_suite(variant: Variant, where: Path) -> tuple[dict[str, dict[str, str]], str]:
    """Run the variant's module; outcomes by class ("TestBroken", "TestReference") and test name, and the output."""
    classes = ", ".join(variant.classes)
    (where / "test_generated.py").write_text(
        textwrap.dedent(_MODULE.format(classes=classes, storage=variant.storage))
    )
    (where / "pytest.ini").write_text(_INI)
    report = where / "report.xml"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "test_generated.py", "-q", "-p", "no:randomly", "-p", "no:xdist"]
        + ["-p", "no:cacheprovider", f"--junitxml={report}", "--rootdir", str(where)],
        check=False,  # a failing suite is the expected outcome; the report says which tests failed
        cwd=where,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    outcomes: dict[str, dict[str, str]] = {"TestBroken": {}, "TestReference": {}}
    if report.exists():
        for case in ElementTree.parse(report).getroot().iter("testcase"):
            kind = "passed"
            for child in case:
                if child.tag in ("failure", "error", "skipped"):
                    kind = child.tag
            outcomes.setdefault(case.get("classname", "").rsplit(".", 1)[-1], {})[case.get("name", "")] = kind
    return outcomes, done.stdout[-4000:] + done.stderr[-2000:]


@pytest.mark.parametrize("broken", list(VARIANTS))
def test_the_suite_fails_a_broken_storage(broken: str, tmp_path: Path) -> None:
    """The suite fails each broken storage in the tests of the guarantee it breaks, and passes the reference."""
    variant = VARIANTS[broken]
    outcomes, output = run_suite(variant, tmp_path)
    reference, tried = outcomes["TestReference"], outcomes["TestBroken"]
    assert reference and set(reference.values()) == {"passed"}, f"the reference storage must pass:\n{output}"
    assert set(tried) == set(reference), f"both runs collect the same tests:\n{output}"
    failed = {name for name, kind in tried.items() if kind == "failure"}
    missed = variant.must_fail - failed
    assert not missed, f"the suite let '{broken}' pass {sorted(missed)}; it failed only {sorted(failed)}\n{output}"
    assert "error" not in tried.values(), f"failures must be assertions, not fixture errors:\n{output}"
