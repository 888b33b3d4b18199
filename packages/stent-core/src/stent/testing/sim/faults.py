"""Which faults a simulation injects (:class:`FaultMix`), and the seeded decisions that inject them.

A fault mix is written as text wherever a person reads or types it (the reproduction command, the CLI): a comma
separated list of fault kinds, each optionally with its rate, such as ``crash,storage=0.1,notify``.  Kinds:

``crash``    a worker dies between two of its callbacks (at any await point), keeping its leases, and a new
             worker process starts in its place later; rate per callback of a worker
``pause``    a worker freezes (a long GC, a stopped VM) for longer than its lease, then carries on as if nothing
             happened; rate per callback of a worker
``restart``  a worker is drained and replaced by a new process, as in a rolling deploy: it stops claiming,
             suspends what waits, finishes or (after its lease's worth of time) releases what runs; rate per
             callback of a worker
``storage``  a storage call fails with StorageUnavailable, half the time before the operation and half the time
             after it committed, so the caller cannot tell which; rate per storage call of a worker
``notify``   a notification to one receiver is lost, duplicated or late; rate per delivery
``skew``     each worker's clock is off the fleet's true time by up to this many seconds, either way
``user``     a durable function raises an injected error when it starts (or, when it has a ``timeout``, hangs
             past it); rate per call
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import attrs

from stent.errors import ConfigurationError

if TYPE_CHECKING:
    from stent.ports import Notification
    from stent.testing.sim.loop import SimLoop

DEFAULT_RATES: dict[str, float] = {
    "crash": 0.0007,
    "pause": 0.0005,
    "restart": 0.0005,
    "storage": 0.05,
    "notify": 0.3,
    "skew": 5.0,
    "user": 0.05,
}
KINDS = tuple(DEFAULT_RATES)


@attrs.frozen
class FaultMix:
    """How often each kind of fault happens; 0 turns a kind off.  See the module docstring for the kinds."""

    crash: float = 0.0
    pause: float = 0.0
    restart: float = 0.0
    storage: float = 0.0
    notify: float = 0.0
    skew: float = 0.0
    user: float = 0.0
    #: At most this many crashes, pauses and restarts per simulation (so that a run always makes progress).
    max_crashes: int = 4
    max_pauses: int = 3
    max_restarts: int = 3

    @classmethod
    def none(cls) -> FaultMix:
        return cls()

    @classmethod
    def all(cls) -> FaultMix:
        """Every kind of fault at its default rate."""
        return cls(**DEFAULT_RATES)  # type: ignore[arg-type]

    @classmethod
    def parse(cls, spec: str | Iterable[str] | FaultMix | None) -> FaultMix:
        """Read ``"crash,storage=0.1"`` (see the module docstring); ``"none"`` or ``""`` is no faults."""
        if spec is None:
            return cls()
        if isinstance(spec, FaultMix):
            return spec
        parts = spec.split(",") if isinstance(spec, str) else list(spec)
        rates: dict[str, float] = {}
        for raw in parts:
            part = raw.strip()
            if not part or part == "none":
                continue
            if part == "all":
                rates.update(DEFAULT_RATES)
                continue
            name, _, value = part.partition("=")
            name = name.strip()
            if name not in DEFAULT_RATES:
                raise ConfigurationError(f"unknown fault kind {name!r} in {spec!r}; kinds: {', '.join(KINDS)}")
            try:
                rate = float(value) if value else DEFAULT_RATES[name]
            except ValueError:
                raise ConfigurationError(f"the rate of fault {name!r} must be a number, got {value!r}") from None
            if rate < 0:
                raise ConfigurationError(f"the rate of fault {name!r} must not be negative, got {rate}")
            rates[name] = rate
        return cls(**rates)  # type: ignore[arg-type]

    def spec(self) -> str:
        """The text form, which :meth:`parse` reads back to an equal mix."""
        parts = []
        for name in KINDS:
            rate = getattr(self, name)
            if rate:
                parts.append(name if rate == DEFAULT_RATES[name] else f"{name}={rate:g}")
        return ",".join(parts) or "none"

    def __str__(self) -> str:
        return self.spec()


class InjectedFault(Exception):
    """An error the simulator raised inside a durable function (the ``user`` fault)."""


class FaultInjector:
    """Every fault decision of one simulation, drawn from its own seeded random source."""

    def __init__(
        self,
        mix: FaultMix,
        rng: random.Random,
        loop: SimLoop,
        *,
        heal_at: float,
        latency: float,
        record: Callable[[str], None],
    ) -> None:
        self.mix = mix
        self.rng = rng
        self.loop = loop
        self.heal_at = heal_at
        self.latency_max = latency
        self.record = record
        self.counts: dict[str, int] = {}

    @property
    def active(self) -> bool:
        return self.loop.time() < self.heal_at

    def _count(self, kind: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1

    # -- storage ---------------------------------------------------------------------------------------------

    def latency(self) -> float:
        """A storage round trip's extra virtual delay: it lets other nodes' operations slip in between."""
        if self.latency_max <= 0 or self.rng.random() < 0.5:
            return 0.0
        return self.rng.uniform(0.0, self.latency_max)

    def storage_fault(self) -> str | None:
        """``"before"`` (nothing written), ``"after"`` (written, then the reply lost) or ``None``."""
        if not self.mix.storage or not self.active or self.rng.random() >= self.mix.storage:
            return None
        where = "before" if self.rng.random() < 0.5 else "after"
        self._count(f"storage error {where} commit")
        return where

    # -- processes -------------------------------------------------------------------------------------------

    def process_fault(self) -> str | None:
        """``"crash"``, ``"pause"``, ``"restart"`` or ``None``, decided before one callback of a worker runs."""
        mix = self.mix
        if not (mix.crash or mix.pause or mix.restart) or not self.active:
            return None
        roll = self.rng.random()
        for kind, rate, cap in (
            ("crash", mix.crash, mix.max_crashes),
            ("pause", mix.pause, mix.max_pauses),
            ("restart", mix.restart, mix.max_restarts),
        ):
            if roll < rate:
                if self.counts.get(kind, 0) >= cap:
                    return None
                self._count(kind)
                return kind
            roll -= rate
        return None

    def pause_length(self, lease: float) -> float:
        return lease * self.rng.uniform(1.1, 2.5)

    def restart_delay(self, lease: float) -> float:
        return self.rng.uniform(1.0, max(2.0, lease))

    def clock_offset(self) -> float:
        return self.rng.uniform(-self.mix.skew, self.mix.skew) if self.mix.skew else 0.0

    # -- notifications ---------------------------------------------------------------------------------------

    def deliveries(self, sender: str, receiver: str, note: Notification) -> list[float]:
        """The delays after which ``receiver`` gets ``note``: none (lost), one, or two (duplicated)."""
        if not self.mix.notify or not self.active or self.rng.random() >= self.mix.notify:
            return [0.0]
        kind = ("lost", "duplicated", "late")[self.rng.randrange(3)]
        self._count(f"notification {kind}")
        if kind == "lost":
            return []
        if kind == "duplicated":
            return [0.0, self.rng.uniform(0.0, 2.0)]
        return [self.rng.uniform(0.5, 30.0)]

    # -- user code ----------------------------------------------------------------------------------------------

    def user_fault(self, timeout: float | None) -> str | None:
        """``"raise"``, ``"hang"`` (only for a function with a timeout, which ends the hang) or ``None``."""
        if not self.mix.user or not self.active or self.rng.random() >= self.mix.user:
            return None
        kind = "hang" if timeout is not None and self.rng.random() < 0.5 else "raise"
        self._count(f"user code {'hung' if kind == 'hang' else 'raised'}")
        return kind
