"""The ``sim`` pytest fixture: simulate your workflows in one line of a test.

Enable it in your top-level ``conftest.py`` (it is not loaded automatically)::

    pytest_plugins = ["stent.testing.sim.pytest_plugin"]

then::

    def test_checkout_survives_the_fleet(sim):
        result = sim.run([(checkout, "order-1")], faults="crash,storage", duration="1h")
        assert result.outcome(0).value == "shipped"

    def test_checkout_under_many_seeds(sim):
        sim.sweep([(checkout, "order-1")], seeds=range(50), faults="all")

A run that breaks an invariant fails the test with its seed, options and the command that repeats exactly that
run: ``STENT_SIM_SEED=<seed> pytest '<test id>'`` (or ``--sim-seed <seed>``), which makes every simulation of the
test use that seed.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterable
from typing import Any

import pytest

from stent.testing.sim.api import simulate
from stent.testing.sim.scenario import SimResult, SimulationFailed

SEED_ENV = "STENT_SIM_SEED"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("stent-sim").addoption(
        "--sim-seed",
        type=int,
        default=None,
        help=f"run every simulation of the selected tests with this seed only (also: {SEED_ENV}=N)",
    )


class SimFixture:
    """What the ``sim`` fixture gives a test: :meth:`run` one seed, or :meth:`sweep` many."""

    def __init__(self, nodeid: str, forced_seed: int | None) -> None:
        self.nodeid = nodeid
        self.forced_seed = forced_seed
        #: Every result this test produced, in order.
        self.results: list[SimResult] = []

    def _command(self, seed: int) -> str:
        return f"{SEED_ENV}={seed} pytest {shlex.quote(self.nodeid)}"

    def run(self, dispatches: Any = (), *, seed: int = 0, check: bool = True, **options: Any) -> SimResult:
        """``simulate()`` with this test's reproduction command; fails the test on a broken invariant."""
        if self.forced_seed is not None:
            seed = self.forced_seed
        result = simulate(dispatches, seed=seed, reproduce=self._command(seed), quiet=check, **options)
        self.results.append(result)
        if check and not result.ok:
            raise SimulationFailed(result)
        return result

    def sweep(self, dispatches: Any = (), *, seeds: Iterable[int] = range(20), **options: Any) -> list[SimResult]:
        """Run one simulation per seed; the first seed that breaks an invariant fails the test."""
        chosen = [self.forced_seed] if self.forced_seed is not None else list(seeds)
        return [self.run(dispatches, seed=seed, **options) for seed in chosen]


@pytest.fixture
def sim(request: pytest.FixtureRequest) -> SimFixture:
    """Run deterministic fleet simulations from a test (see :mod:`stent.testing.sim.pytest_plugin`)."""
    forced = None
    try:
        forced = request.config.getoption("sim_seed")
    except ValueError:  # the option exists only when this module was loaded as a plugin
        forced = None
    if forced is None and os.environ.get(SEED_ENV, "").strip():
        forced = int(os.environ[SEED_ENV])
    return SimFixture(request.node.nodeid, forced)
