"""The conformance suite, and stent's pytest pieces, run on plain pytest: with pytest-asyncio disabled
(``-p no:asyncio``), stent's plugin runs the async tests and fixtures itself; with pytest-asyncio active it steps
aside."""

from __future__ import annotations

import importlib.metadata

import pytest
from conformance_runs import run_pytest

from stent.testing import pytest_plugin

SUITES = """
    import pytest

    from stent.memory import MemoryStorage
    from stent.memory.notifier import MemoryNotifier
    from stent.testing.conformance import NotifierConformance, StorageConformance


    @pytest.fixture
    async def make_storage():
        made = []

        async def make(clock):
            storage = MemoryStorage()
            await storage.init_db()
            made.append(storage)
            return storage

        yield make
        for storage in made:
            await storage.close()


    @pytest.fixture
    async def make_notifier():
        buses = {}

        async def make(*, namespace="main"):
            if namespace not in buses:
                buses[namespace] = MemoryNotifier()
                await buses[namespace].connect()
            return buses[namespace]

        yield make
        for bus in buses.values():
            await bus.close()


    def test_pytest_asyncio_is_not_active(pytestconfig):
        assert not pytestconfig.pluginmanager.hasplugin("asyncio")


    class TestMemoryStorage(StorageConformance):
        pass


    class TestMemoryNotifier(NotifierConformance):
        pass
"""

RUNNER = """
    import asyncio
    import contextvars

    import pytest

    EVENTS = []
    LOOPS = []
    REQUEST = contextvars.ContextVar("request", default=None)


    @pytest.fixture
    async def resource():
        REQUEST.set("set by the fixture")
        EVENTS.append("opened")
        yield asyncio.get_running_loop()
        await asyncio.sleep(0)
        EVENTS.append("closed")


    @pytest.fixture
    async def answer():
        return 42


    async def test_a_coroutine_test_runs_on_its_fixtures_loop(resource, answer):
        assert asyncio.get_running_loop() is resource
        assert answer == 42
        assert REQUEST.get() == "set by the fixture"
        LOOPS.append(resource)
        asyncio.get_running_loop().create_task(asyncio.sleep(3600))  # left running: cancelled with the loop


    def test_async_fixtures_were_torn_down_and_loops_closed(answer):
        assert answer == 42
        assert EVENTS == ["opened", "closed"]
        assert LOOPS[0].is_closed()


    @pytest.mark.asyncio
    async def test_a_test_marked_for_pytest_asyncio_runs_too():
        await asyncio.sleep(0)


    class TestInAClass:
        @pytest.fixture
        async def mine(self):
            return self

        async def test_class_fixtures_are_bound_to_the_test_instance(self, mine):
            assert mine is self


    @pytest.fixture(scope="module")
    async def wide():
        return 1


    async def test_a_module_scoped_async_fixture_is_refused(wide):
        pass
"""


@pytest.fixture(scope="module")
def suites(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return run_pytest(tmp_path_factory.mktemp("plain"), SUITES, "-p", "no:asyncio", "-q")


def test_the_whole_suite_runs_without_pytest_asyncio(suites) -> None:  # type: ignore[no-untyped-def]
    """With pytest-asyncio disabled, every storage and notifier conformance test runs and passes on memory."""
    assert suites.code == 0, suites.output
    assert suites.outcomes["test_generated::test_pytest_asyncio_is_not_active"] == "passed"
    assert list(suites.outcomes.values()).count("passed") > 100
    assert set(suites.outcomes.values()) == {"passed", "skipped"}
    assert suites.block("TestMemoryStorage")[-2:] == ["transactional_notifications: 4 skipped (not declared)",
                                                       "verdict: conforms"]  # fmt: skip
    assert suites.block("TestMemoryNotifier")[-1] == "verdict: conforms"


def test_async_tests_and_fixtures_run_on_a_loop_per_test(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Coroutine tests, plain and yielding async fixtures (torn down on the test's loop), class fixtures,
    context variables and pytest-asyncio's mark all work; a wider-scoped async fixture is refused clearly."""
    run = run_pytest(tmp_path_factory.mktemp("runner"), RUNNER, "-p", "no:asyncio")
    expected = dict.fromkeys(
        [
            "test_generated::test_a_coroutine_test_runs_on_its_fixtures_loop",
            "test_generated::test_async_fixtures_were_torn_down_and_loops_closed",
            "test_generated::test_a_test_marked_for_pytest_asyncio_runs_too",
            "TestInAClass::test_class_fixtures_are_bound_to_the_test_instance",
        ],
        "passed",
    )
    expected["test_generated::test_a_module_scoped_async_fixture_is_refused"] = "error"
    assert run.outcomes == expected, run.output
    assert "'wide' is module-scoped; stent's plain-pytest runner runs function-scoped async fixtures" in run.output
    assert "PytestUnknownMarkWarning" not in run.output


def test_the_runner_steps_aside_when_pytest_asyncio_is_active(pytestconfig: pytest.Config) -> None:
    """This repository's own run has pytest-asyncio (asyncio_mode=auto), so stent's runner leaves it all to it."""
    assert pytestconfig.pluginmanager.hasplugin("asyncio")
    assert pytest_plugin._runs_async(pytestconfig) is False


def test_no_stent_pytest_plugin_is_loaded_automatically() -> None:
    """stent registers no pytest11 entry point: its plugins run only where a conftest asks for them."""
    autoloaded = [ep.value for ep in importlib.metadata.entry_points(group="pytest11")]
    assert not [value for value in autoloaded if value.split(".")[0] == "stent"], autoloaded
