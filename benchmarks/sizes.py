"""How big each workload is: the sizes of issue 9, scaled by ``STENT_BENCH_SCALE`` (1 by default).

``STENT_BENCH_SCALE=0.1 ./dev bench`` runs every workload at a tenth of its size (a quick look; targets are then
not judged); the step count of the sequential workflow is never scaled, its target being for twenty steps.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import attrs

SCALE_ENV = "STENT_BENCH_SCALE"


@attrs.frozen
class Sizes:
    drain: int = 2000  # executions dispatched before the worker starts
    dispatch: int = 2000  # sequential dispatches per round
    dispatch_many: int = 10000  # executions per batch dispatch call
    dispatch_rounds: int = 3
    latency_rounds: int = 200
    sequential_steps: int = 20
    sequential_rounds: int = 10
    fan_out: tuple[int, int] = (500, 1000)
    fan_out_rounds: int = 3
    cost_children: int = 200  # children of the fan-out whose storage calls are counted
    idle_intervals: int = 20  # poll_interval_max periods an idle worker is watched for
    suspended: int = 10000  # executions waiting on a signal while the worker's memory is read
    claim_pending: tuple[int, int] = (1000, 100000)
    claim_rounds: int = 10

    def scaled(self, scale: float) -> Sizes:
        def n(value: int, least: int) -> int:
            return max(least, round(value * scale))

        return Sizes(
            drain=n(self.drain, 5),
            dispatch=n(self.dispatch, 5),
            dispatch_many=n(self.dispatch_many, 5),
            dispatch_rounds=self.dispatch_rounds,
            latency_rounds=n(self.latency_rounds, 5),
            sequential_steps=self.sequential_steps,
            sequential_rounds=n(self.sequential_rounds, 2),
            fan_out=(n(self.fan_out[0], 5), n(self.fan_out[1], 10)),
            fan_out_rounds=self.fan_out_rounds,
            cost_children=n(self.cost_children, 5),
            idle_intervals=n(self.idle_intervals, 3),
            suspended=n(self.suspended, 10),
            claim_pending=(n(self.claim_pending[0], 30), n(self.claim_pending[1], 60)),
            claim_rounds=n(self.claim_rounds, 2),
        )


#: The issue's sizes: the targets are judged only for figures measured at these.
FULL = Sizes()


def scale_from_env(environ: Mapping[str, str] = os.environ) -> float:
    """``STENT_BENCH_SCALE`` as a number; raises ValueError saying what a good value looks like."""
    text = environ.get(SCALE_ENV, "").strip()
    if not text:
        return 1.0
    try:
        scale = float(text)
    except ValueError:
        scale = float("nan")
    if not scale > 0 or scale == float("inf"):
        raise ValueError(
            f"{SCALE_ENV} must be a positive number, such as 0.1 for a tenth of the benchmark sizes or 1 for the"
            f" full sizes; got {text!r}"
        )
    return scale
