"""The simulator's tests use its own ``sim`` fixture, the way a user enables it (minus the top-level conftest)."""

from stent.testing.sim.pytest_plugin import sim  # noqa: F401
