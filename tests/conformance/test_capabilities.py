"""Optional capabilities: skipped by name when not declared, run when declared, failing when a declared one is
broken or cannot be tested, and reported per suite in the summary at the end of the run.

One pytest run in a subprocess covers every case: each class below is a conformance subclass whose memory
storage declares (and keeps, or breaks) different capabilities.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conformance_runs import Run, run_pytest

from stent.memory import MemoryStorage
from stent.testing.conformance import StorageConformance
from stent.testing.conformance.capabilities import STORAGE_CAPABILITIES, capability_of, requires_capability

MODULE = '''
    import pytest

    from stent.memory import MemoryStorage
    from stent.memory.notifier import MemoryNotifier
    from stent.ports import Notification
    from stent.testing.conformance import StorageConformance


    class Declaring(MemoryStorage):
        def __init__(self, *capabilities):
            super().__init__()
            self.capabilities = frozenset(capabilities)


    class Client:
        """Another client of the same memory store: another object, forwarding every call to the store."""

        def __init__(self, store):
            self.store = store
            self.capabilities = store.capabilities

        def __getattr__(self, name):
            return getattr(self.store, name)


    def factory(*capabilities):
        async def make(clock):
            return Declaring(*capabilities)

        return make


    class TestDeclaresNothing(StorageConformance):
        @pytest.fixture
        def make_storage(self):
            return factory()


    class TestKeepsItsPromises(StorageConformance):
        @pytest.fixture
        def make_storage(self):
            return factory("shared", "durable")

        @pytest.fixture
        def make_peer_storage(self):
            async def peer(storage):
                return Client(storage)

            return peer


    class TestBreaksDurability(StorageConformance):
        @pytest.fixture
        def make_storage(self):
            return factory("durable")

        @pytest.fixture
        def reopen_storage(self):
            return factory("durable")  # an empty store, whatever was written before


    class TestDeclaresSharedWithoutAPeer(StorageConformance):
        @pytest.fixture
        def make_storage(self):
            return factory("shared")


    class TestDeclaresSomethingUnknown(StorageConformance):
        @pytest.fixture
        def make_storage(self):
            return factory("teleportation")


    class Announcing(MemoryStorage):
        """Announces its changes on a memory notifier once they are made."""

        capabilities = frozenset({"transactional_notifications"})
        early = False

        def __init__(self):
            super().__init__()
            self.bus = MemoryNotifier()

        async def create_execution(self, new, now):
            execution, created = await super().create_execution(new, now)
            if created:
                await self.bus.publish([Notification("work", queue=new.root.queue)])
            return execution, created

        async def complete_task(self, fence, result, now, update=None):
            if self.early:  # before the write is checked, as a notifier outside the transaction might
                await self.announce(fence.task_id)
            task = await super().complete_task(fence, result, now, update)
            if not self.early:
                await self.announce(fence.task_id)
            return task

        async def create_executions(self, news, now):
            made = await super().create_executions(news, now)
            for execution, created in made:
                if created:
                    await self.bus.publish([Notification("work", queue=execution.queue)])
            return made

        async def complete_tasks(self, completions, now):
            if self.early:
                for completion in completions:
                    await self.announce(completion.fence.task_id)
            done = await super().complete_tasks(completions, now)
            if not self.early:
                for task in done:
                    if not isinstance(task, Exception):
                        await self.announce(task.task_id)
            return done

        async def announce(self, task_id):
            task = await self.get_task(task_id)
            await self.bus.publish([Notification("finished", task_id=task_id, execution_id=task.execution_id)])


    class AnnouncingTooEarly(Announcing):
        early = True


    async def listen(storage):
        return storage.bus


    class TestAnnouncesWhatItCommits(StorageConformance):
        @pytest.fixture
        def make_storage(self):
            return factory_of(Announcing)

        @pytest.fixture
        def make_storage_listener(self):
            return listen


    class TestAnnouncesWhatItRejects(StorageConformance):
        @pytest.fixture
        def make_storage(self):
            return factory_of(AnnouncingTooEarly)

        @pytest.fixture
        def make_storage_listener(self):
            return listen


    def factory_of(kind):
        async def make(clock):
            return kind()

        return make
'''

# Every capability's tests, and one required test per class (so that each verdict has something to judge).
SELECTION = "stent_capability or test_claim_leases_the_task_with_a_new_token"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return run_pytest(tmp_path_factory.mktemp("capabilities"), MODULE, "-p", "no:asyncio", "-k", SELECTION)


def test_undeclared_capabilities_are_skipped_naming_the_capability(run: Run) -> None:
    """A storage that declares nothing has every capability's tests skipped, each naming its capability."""
    mine = {name: o for name, o in run.outcomes.items() if name.startswith("TestDeclaresNothing::")}
    assert sorted(set(mine.values())) == ["passed", "skipped"]
    for capability in STORAGE_CAPABILITIES:
        assert f"optional capability '{capability}' not declared by Declaring" in run.output
    assert run.block("TestDeclaresNothing") == [
        "storage suite test_generated.py::TestDeclaresNothing (Declaring)",
        "declared: nothing",
        "required: 1 passed",
        "shared: 4 skipped (not declared)",
        "durable: 2 skipped (not declared)",
        "transactional_notifications: 4 skipped (not declared)",
        "verdict: conforms",
    ]


def test_declared_capabilities_that_hold_run_and_pass(run: Run) -> None:
    """A store that declares shared and durable and keeps both runs their tests, and they pass."""
    assert run.outcomes["TestKeepsItsPromises::test_each_client_sees_the_others_writes"] == "passed"
    assert run.outcomes["TestKeepsItsPromises::test_every_record_survives_close_and_reopen"] == "passed"
    assert run.block("TestKeepsItsPromises")[1:] == [
        "declared: durable, shared",
        "required: 1 passed",
        "shared: 4 passed",
        "durable: 2 passed",
        "transactional_notifications: 4 skipped (not declared)",
        "verdict: conforms",
    ]


def test_a_declared_capability_that_is_broken_fails_the_run(run: Run) -> None:
    """A store that declares durable but forgets everything on reopen fails the durability tests, and the run."""
    assert run.code == 1
    assert run.outcomes["TestBreaksDurability::test_every_record_survives_close_and_reopen"] == "failed"
    assert run.outcomes["TestBreaksDurability::test_leases_and_fencing_tokens_outlive_a_reopen"] == "failed"
    block = run.block("TestBreaksDurability")
    assert "durable: 2 failed" in block
    assert block[-1] == "verdict: does not conform (2 failed)"


def test_a_declared_capability_without_its_fixture_fails_naming_the_fixture(run: Run) -> None:
    """Declaring shared without a make_peer_storage fixture is a failure that says which fixture is missing,
    never a pass or a silent skip."""
    mine = {n: o for n, o in run.outcomes.items() if n.startswith("TestDeclaresSharedWithoutAPeer::")}
    # shared's 4 tests error out; the required one passes; the other capabilities' 6 are skipped.
    assert sorted(mine.values()) == ["error"] * 4 + ["passed"] + ["skipped"] * 6
    assert "declares 'shared', which the suite tests through a make_peer_storage fixture" in run.output
    assert "shared: 4 error" in run.block("TestDeclaresSharedWithoutAPeer")


def test_announcements_are_tested_for_what_was_committed_and_only_that(run: Run) -> None:
    """A store that announces its committed changes passes transactional_notifications; one that announces a
    completion before checking its token fails the test of rejected writes, and only that one."""
    assert "transactional_notifications: 4 passed" in run.block("TestAnnouncesWhatItCommits")
    early = {n.split("::")[1]: o for n, o in run.outcomes.items() if n.startswith("TestAnnouncesWhatItRejects::")}
    assert early["test_a_rejected_write_announces_nothing"] == "failed"
    assert (
        early["test_a_finished_task_is_announced"] == early["test_new_work_is_announced_on_its_queue"] == "passed"
    )
    assert "a refused completion was announced" in run.output


def test_a_capability_unknown_to_the_suite_is_reported_untested(run: Run) -> None:
    """A declared name the suite has no tests for is listed as such, so a typo cannot pass for a feature."""
    assert "declared but unknown to this suite (so untested): teleportation" in run.block(
        "TestDeclaresSomethingUnknown"
    )


class _Base(StorageConformance):
    @requires_capability("durable")
    async def test_gated(self) -> None:
        """Gated by durable."""


class _Override(_Base):
    @pytest.mark.xfail(strict=True, reason="known gap")
    async def test_gated(self) -> None:
        """The override of a gated test."""


def test_an_overridden_capability_test_keeps_its_capability() -> None:
    """A subclass that overrides a capability's test (to mark it xfail, say) is still gated by the capability;
    required tests have none."""
    assert capability_of(_Override, "test_gated") == "durable"
    assert capability_of(_Override, "test_claim_leases_the_task_with_a_new_token") is None
    assert capability_of(None, "test_gated") is None


def test_only_known_capabilities_can_be_required() -> None:
    """A typo in a capability's name is caught where the test is written."""
    with pytest.raises(ValueError, match="unknown capability"):
        requires_capability("durible")


def test_the_adapters_declare_what_they_are() -> None:
    """SQLite files and PostgreSQL are shared and durable (PostgreSQL announces in its transactions only when
    notify is on); memory storage and an in-memory SQLite database are neither."""
    from stent_postgres import PostgresStorage
    from stent_sqlite import SQLiteStorage

    assert MemoryStorage().capabilities == frozenset()
    assert SQLiteStorage(Path("x.db")).capabilities == {"shared", "durable"}
    assert SQLiteStorage(":memory:").capabilities == frozenset()
    url = "postgresql://postgres@127.0.0.1/test"
    assert PostgresStorage(url).capabilities == {"shared", "durable"}
    assert PostgresStorage(url, notify=True).capabilities == {"shared", "durable", "transactional_notifications"}
