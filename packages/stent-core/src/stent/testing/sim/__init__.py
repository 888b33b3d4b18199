"""Deterministic fleet simulation: run your workflows on a virtual clock, with crashes and faults, by seed.

``simulate()`` runs N real stent workers (the real worker state machine, shell and engine, and your own durable
functions) against in-memory storage on a virtual-time event loop with no real I/O.  Every random choice comes
from one seed, so a seed that finds a bug finds it again, and its report carries a command that reproduces it::

    from stent.testing.sim import simulate

    result = simulate([(checkout, "order-1")], workers=3, seed=42, faults="crash,storage,notify", duration="2h")
    assert result.ok, result.report()
    assert result.outcome(0).value == "shipped"

See ``docs/guides/simulation.md``.  DESIGN section 8 is the specification.
"""

from stent.testing.sim.api import check, simulate
from stent.testing.sim.clock import EPOCH, SimClock
from stent.testing.sim.faults import FaultMix, InjectedFault
from stent.testing.sim.invariants import Violation
from stent.testing.sim.loop import SimLoop, SimulationStuck
from stent.testing.sim.scenario import (
    Dispatch,
    Outcome,
    Scenario,
    Signal,
    SimControl,
    SimResult,
    SimulationFailed,
)

__all__ = [
    "EPOCH",
    "Dispatch",
    "FaultMix",
    "InjectedFault",
    "Outcome",
    "Scenario",
    "Signal",
    "SimClock",
    "SimControl",
    "SimLoop",
    "SimResult",
    "SimulationFailed",
    "SimulationStuck",
    "Violation",
    "check",
    "simulate",
]
