"""A user's own project tested with the kit, in a subprocess: plain pytest without pytest-asyncio, and with
pytest-asyncio in either of its modes; the testing guide's own tests; and the mistakes a user makes."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
from user_project import run_pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "docs"))
from docs_snippets import python_blocks

SHOP = """
    from stent import RetryPolicy, Stent

    ATTEMPTS: dict[str, int] = {}


    @Stent.durable(retry_policy=RetryPolicy(max_attempts=3, initial_delay="1m"))
    async def charge_card(order: str, cents: int) -> str:
        ATTEMPTS[order] = ATTEMPTS.get(order, 0) + 1
        if ATTEMPTS[order] == 1:
            raise ConnectionError("card processor unavailable")
        return f"{order}: charged {cents}"


    @Stent.durable
    async def process_order(order: str, cents: int) -> str:
        receipt = await charge_card(order, cents)
        await Stent.sleep("14d")
        return f"{receipt}, settled"
"""

TEST_SHOP = """
    from datetime import timedelta

    from shop import ATTEMPTS, process_order


    async def test_an_order_settles_after_the_return_window(stent_worker, stent_clock):
        began = stent_clock.now()
        assert await stent_worker.run(process_order, "A-1", 1999) == "A-1: charged 1999, settled"
        assert ATTEMPTS["A-1"] == 2
        assert stent_clock.now() - began == timedelta(days=14, minutes=1)


    async def test_the_steps_show_the_retry_and_the_sleep(stent_worker):
        execution_id = await stent_worker.executor.dispatch(process_order, "A-2", 500)
        await stent_worker.finish(execution_id)
        steps = await stent_worker.steps(execution_id)
        assert [(s.name, s.state, s.attempts) for s in steps] == [
            ("shop:process_order", "completed", 1),
            ("shop:charge_card", "completed", 2),
            ("stent.sleep", "completed", 1),
        ]


    async def test_time_moves_only_when_the_test_moves_it(stent_worker):
        execution_id = await stent_worker.executor.dispatch(process_order, "A-3", 700)
        await stent_worker.advance("13d")
        assert (await stent_worker.executor.state_of(execution_id)).state == "running"
        await stent_worker.advance("1d 1m")  # to the very moment the sleep ends: it ends
        assert (await stent_worker.executor.state_of(execution_id)).state == "completed"


    def test_the_simulator_runs_the_workflow_on_a_crashing_fleet(stent_simulator):
        result = stent_simulator.run([(process_order, "A-4", 100)], workers=2, faults="crash", duration="20d")
        assert result.outcome(0).value == "A-4: charged 100, settled"
"""

NO_PYTEST_ASYNCIO = """
    import pytest


    def test_pytest_asyncio_cannot_be_imported(pytestconfig):
        with pytest.raises(ImportError):
            import pytest_asyncio  # noqa: F401
        assert not pytestconfig.pluginmanager.hasplugin("asyncio")
"""

USER_TESTS = [
    "test_shop::test_an_order_settles_after_the_return_window",
    "test_shop::test_the_steps_show_the_retry_and_the_sleep",
    "test_shop::test_time_moves_only_when_the_test_moves_it",
    "test_shop::test_the_simulator_runs_the_workflow_on_a_crashing_fleet",
]


def test_a_users_workflow_tests_pass_quickly_with_plain_pytest(tmp_path: Path) -> None:
    """With pytest-asyncio neither loaded (-p no:asyncio) nor importable, the user's tests of a workflow with a
    retry and a 14-day sleep pass, each in well under a second or two."""
    files = {"shop.py": SHOP, "test_shop.py": TEST_SHOP, "test_environment.py": NO_PYTEST_ASYNCIO}
    run = run_pytest(tmp_path, files, "-p", "no:asyncio", without_pytest_asyncio=True)
    assert run.code == 0, run.output
    assert run.outcomes == {
        **dict.fromkeys(USER_TESTS, "passed"),
        "test_environment::test_pytest_asyncio_cannot_be_imported": "passed",
    }, run.output
    slow = {name: s for name, s in run.seconds.items() if s > 3.0}
    assert not slow, f"tests that took long: {slow}"
    assert "Warning" not in run.output, run.output


@pytest.mark.parametrize(
    ("mode", "header"),
    [("auto", ""), ("strict", "import pytest\npytestmark = pytest.mark.asyncio\n")],
    ids=["auto", "strict"],
)
def test_the_same_tests_pass_under_pytest_asyncio(tmp_path: Path, mode: str, header: str) -> None:
    """With pytest-asyncio active the fixtures work in auto mode, and in strict mode for tests marked asyncio."""
    files = {"shop.py": SHOP, "test_shop.py": header + textwrap.dedent(TEST_SHOP)}
    ini = f"[pytest]\nasyncio_mode = {mode}\nasyncio_default_fixture_loop_scope = function\n"
    run = run_pytest(tmp_path, files, ini=ini)
    assert run.code == 0, run.output
    assert run.outcomes == dict.fromkeys(USER_TESTS, "passed"), run.output


def test_the_testing_guides_tests_pass(tmp_path: Path) -> None:
    """Every test the testing guide shows passes when its blocks are a user's conftest and test module."""
    blocks = python_blocks(REPO / "docs" / "guides" / "testing.md")
    conftest = [b.source for b in blocks if b.source.startswith("pytest_plugins")]
    module = [b.source for b in blocks if b.source not in conftest and "await harness" not in b.source]
    assert conftest and len(module) >= 6
    run_conftest = {"conftest.py": conftest[0]}
    run = run_pytest(tmp_path, {**run_conftest, "test_guide.py": "\n\n".join(module)}, "-p", "no:asyncio")
    assert run.code == 0, run.output
    expected = [name for block in module for name in _test_names(block)]
    assert len(expected) >= 9
    assert sorted(name.rsplit("::", 1)[-1] for name in run.outcomes) == sorted(expected), run.output
    assert set(run.outcomes.values()) == {"passed"}, run.output


def _test_names(source: str) -> list[str]:
    names = []
    for line in source.splitlines():
        words = line.strip().removeprefix("async ").split("(")[0].split()
        if len(words) == 2 and words[0] == "def" and words[1].startswith("test_"):
            names.append(words[1])
    return names


MISTAKES = """
    import pytest

    from stent import Stent


    @Stent.durable
    async def approval(order: str) -> str:
        return await Stent.wait_for_signal("approve")


    async def test_forgets_to_send_the_signal(stent_worker):
        await stent_worker.run(approval, "M-1")


    async def test_moves_time_backwards(stent_worker):
        await stent_worker.advance(-60)


    class TestWithBadOptions:
        @pytest.fixture
        def stent_worker_options(self):
            return ["queues", "reports"]

        async def test_uses_the_worker(self, stent_worker):
            pass
"""


def test_a_users_mistakes_fail_with_messages_that_say_what_to_do(tmp_path: Path) -> None:
    """A forgotten signal, time moved backwards and worker options that are not a dict fail their tests, each
    with a message that names the problem and the fix, without waiting."""
    run = run_pytest(tmp_path, {"test_mistakes.py": MISTAKES}, "-p", "no:asyncio")
    assert run.code == 1, run.output
    assert set(run.outcomes.values()) == {"failed"} and len(run.outcomes) == 3, run.output
    assert "WorkflowStuck: execution" in run.output
    assert (
        "it waits for signal 'approve' (send it with await executor.send_signal(execution_id, 'approve'"
        in run.output
    )
    assert "invalid advance() duration -60: it must not be negative" in run.output
    assert "the stent_worker_options fixture must return a dict of serve() options, got ['queues'" in run.output
    assert max(run.seconds.values()) < 3.0, run.seconds
