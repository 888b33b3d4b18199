"""What a simulation runs (dispatches, signals, a script, the fleet) and what it reports back.

These are plain values: a :class:`Scenario` can live at module level in a test file, so that the command printed
for a failing seed (``python -m stent.testing.sim --module FILE --scenario NAME --seed N ...``) can rebuild it.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import attrs

from stent.durations import parse_duration
from stent.errors import ConfigurationError
from stent.result import Result
from stent.testing.sim.faults import FaultMix
from stent.testing.sim.invariants import Violation

if TYPE_CHECKING:
    from stent.engine.durable import DurableFunction
    from stent.executor import Stent


class Dispatch:
    """Dispatch ``fn(*args, **kwargs)`` at virtual time ``at`` (seconds or text such as ``"2h"``).

    ``options`` are ``dispatch()`` options (``execution_id``, ``queue``, ``priority``, ``delay``...).
    """

    def __init__(
        self,
        fn: DurableFunction[..., Any] | str,
        *args: Any,
        at: float | str | timedelta = 0.0,
        options: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.at = parse_duration(at, allow_zero=True, name="Dispatch at")
        self.options = dict(options or {})

    @classmethod
    def of(cls, item: Dispatch | Sequence[Any]) -> Dispatch:
        """A ``Dispatch``, or a tuple ``(fn, *args)`` read as one."""
        if isinstance(item, Dispatch):
            return item
        if isinstance(item, Sequence) and not isinstance(item, str) and item:
            return cls(item[0], *item[1:])
        raise ConfigurationError(f"a dispatch is Dispatch(fn, *args) or a tuple (fn, *args), got {item!r}")

    def __repr__(self) -> str:
        name = getattr(self.fn, "__name__", self.fn)
        return f"Dispatch({name}, *{self.args!r}, at={self.at:g})"


def _signal_at(value: float | str | timedelta) -> float:
    return parse_duration(value, allow_zero=True, name="Signal at")


@attrs.frozen
class Signal:
    """Send signal ``name`` with ``payload`` at virtual time ``at`` to an execution.

    ``to`` is the index of a dispatch in the scenario's list, or an execution id.
    """

    name: str
    payload: Any = None
    to: int | str = 0
    at: float = attrs.field(default=0.0, converter=_signal_at)


class SimControl:
    """What a scenario's ``script`` gets: a client executor on the simulated fleet, and virtual time."""

    def __init__(
        self,
        client: Stent,
        rng: random.Random,
        sleep: Callable[[float], Awaitable[None]],
        now: Callable[[], float],
    ):
        self.client = client
        #: A random source for the script's own choices, derived from the seed.
        self.rng = rng
        #: Every execution dispatched so far (by the scenario and the script), in order.
        self.executions: list[str] = []
        self._sleep = sleep
        self._now = now

    def now(self) -> float:
        """Virtual seconds since the simulation started."""
        return self._now()

    async def sleep(self, duration: float | str | timedelta) -> None:
        """Let ``duration`` of virtual time pass."""
        await self._sleep(parse_duration(duration, allow_zero=True, name="sleep duration"))

    async def dispatch(self, fn: DurableFunction[..., Any] | str, *args: Any, **kwargs: Any) -> str:
        """Dispatch like ``Stent.dispatch``; the simulation tracks the execution and checks that it finishes."""
        execution_id = await self.client.dispatch(fn, *args, **kwargs)
        if execution_id not in self.executions:
            self.executions.append(execution_id)
        return execution_id

    async def send_signal(self, execution_id: str, name: str, payload: Any = None) -> None:
        await self.client.send_signal(execution_id, name, payload)


Script = Callable[[SimControl], Awaitable[None]]


@attrs.frozen
class Scenario:
    """A reusable description of a simulation; :meth:`run` simulates it under one seed and fault mix."""

    dispatches: Sequence[Dispatch | Sequence[Any]] = ()
    signals: Sequence[Signal] = ()
    script: Script | None = None
    workers: int | Sequence[Mapping[str, Any]] = 3
    duration: float | str | timedelta = "1d"
    heal_at: float | str | timedelta | None = None
    serve_options: Mapping[str, Any] | None = None
    executor_options: Mapping[str, Any] | None = None

    def run(self, *, seed: int = 0, faults: FaultMix | str | None = None, **overrides: Any) -> SimResult:
        from stent.testing.sim.api import simulate

        settings: dict[str, Any] = {f.name: getattr(self, f.name) for f in attrs.fields(Scenario)}
        settings.update(overrides)
        return simulate(seed=seed, faults=faults, scenario=self, **settings)


@attrs.frozen
class Outcome:
    """How one execution ended (or where it stood when the run ended)."""

    execution_id: str
    function: str
    state: str
    #: ``Ok(value)`` or ``Error(exception)`` once finished; ``None`` if it never finished.
    result: Result[Any] | None
    #: Virtual seconds at which it finished.
    finished_at: float | None

    @property
    def value(self) -> Any:
        """The execution's return value; raises its error (or an AssertionError if it never finished)."""
        if self.result is None:
            raise AssertionError(f"execution {self.execution_id} never finished (it is {self.state})")
        return self.result.unwrap()


class SimulationFailed(AssertionError):
    """A simulation broke an invariant; the message has the seed, options and a command that reproduces it."""

    def __init__(self, result: SimResult) -> None:
        super().__init__(result.report())
        self.result = result


@attrs.frozen
class SimResult:
    """Everything one simulation found: outcomes per execution, the event trace and the invariant report."""

    seed: int
    faults: FaultMix
    #: The settings of the run, as text (for the report).
    settings: Mapping[str, str]
    outcomes: Mapping[str, Outcome]
    trace: Sequence[str]
    violations: Sequence[Violation]
    stats: Mapping[str, Any]
    #: A shell command that runs this seed again (when the run can be rebuilt from a command line).
    reproduce: str

    @property
    def ok(self) -> bool:
        return not self.violations

    def check(self) -> SimResult:
        """Return self when every invariant held; raise :class:`SimulationFailed` otherwise."""
        if self.violations:
            raise SimulationFailed(self)
        return self

    def outcome(self, index_or_id: int | str) -> Outcome:
        """The outcome of the n-th dispatched execution, or of the execution with that id."""
        if isinstance(index_or_id, int):
            return list(self.outcomes.values())[index_or_id]
        return self.outcomes[index_or_id]

    def report(self, *, trace_lines: int = 40) -> str:
        """A readable summary: verdict, seed, options, reproduction command, violations, and the trace lines
        that led to the first violation."""
        verdict = "passed" if self.ok else f"FAILED: {len(self.violations)} invariant violation(s)"
        lines = [f"stent simulation {verdict}", f"  seed: {self.seed}", f"  faults: {self.faults.spec()}"]
        lines += [f"  {key}: {value}" for key, value in self.settings.items()]
        lines.append(f"  reproduce: {self.reproduce}")
        lines += [f"  {violation}" for violation in self.violations[:20]]
        if len(self.violations) > 20:
            lines.append(f"  ... and {len(self.violations) - 20} more")
        if not self.ok and trace_lines:
            # The lines leading up to the first violation, where the story of the bug is.
            first = next((i for i, line in enumerate(self.trace) if " VIOLATION " in line), len(self.trace) - 1)
            start = max(0, first + 1 - trace_lines)
            lines.append(
                f"  trace lines {start + 1}-{first + 1} of {len(self.trace)} (result.trace has them all):"
            )
            lines += [f"    {line}" for line in self.trace[start : first + 1]]
        return "\n".join(lines)
