"""A known gap is declared by overriding its test in the adapter's subclass with a strict xfail and a reason: the
run passes while the gap is there, and fails the day the gap is fixed (so the mark cannot outlive it)."""

from __future__ import annotations

import pytest
from conformance_runs import run_pytest

MODULE = '''
    import pytest

    from stent.memory import MemoryStorage
    from stent.testing.conformance import LeaderConformance


    class SharedLeaderLock(MemoryStorage):
        """Hands the leader lock to whoever asks: this backend's known gap."""

        async def acquire_leader(self, name, owner, ttl_seconds, now):
            return True


    def factory(kind):
        async def make(clock):
            return kind()

        return make


    class TestKnownGap(LeaderConformance):
        @pytest.fixture
        def make_storage(self):
            return factory(SharedLeaderLock)

        @pytest.mark.xfail(strict=True, reason="the leader lock is not exclusive yet (issue 42)")
        async def test_the_lock_has_one_owner_at_a_time(self, storage, clock):
            await super().test_the_lock_has_one_owner_at_a_time(storage, clock)


    class TestGapSinceFixed(LeaderConformance):
        @pytest.fixture
        def make_storage(self):
            return factory(MemoryStorage)

        @pytest.mark.xfail(strict=True, reason="the leader lock is not exclusive yet (issue 42)")
        async def test_the_lock_has_one_owner_at_a_time(self, storage, clock):
            await super().test_the_lock_has_one_owner_at_a_time(storage, clock)
'''

TEST = "test_the_lock_has_one_owner_at_a_time"


def test_a_known_gap_declared_as_a_strict_xfail_keeps_the_run_green(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The overridden test fails as expected: the run passes, and the summary counts the gap as a known one."""
    run = run_pytest(tmp_path_factory.mktemp("gap"), MODULE, "-k", f"TestKnownGap and {TEST}")
    assert run.code == 0, run.output
    assert run.outcomes == {f"TestKnownGap::{TEST}": "xfailed"}
    assert "the leader lock is not exclusive yet (issue 42)" in run.output
    assert run.block("TestKnownGap")[2:] == [
        "required: 1 xfailed",
        "verdict: conforms, but for 1 known gap(s) declared as expected failures",
    ]


def test_a_strict_xfail_that_starts_passing_fails_the_run(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Once the backend is fixed, the strict xfail passes, which fails the test, the verdict and the run."""
    run = run_pytest(tmp_path_factory.mktemp("fixed"), MODULE, "-k", TEST)
    assert run.code == 1, run.output
    assert run.outcomes == {f"TestKnownGap::{TEST}": "xfailed", f"TestGapSinceFixed::{TEST}": "failed"}
    assert "[XPASS(strict)] the leader lock is not exclusive yet (issue 42)" in run.output
    assert run.block("TestGapSinceFixed")[2:] == ["required: 1 failed", "verdict: does not conform (1 failed)"]
