"""Figures, the targets of issue 9, the table printed at the end of a run, and the summary JSON.

A workload returns :class:`Figure` values.  ``key`` names what is measured at the issue's size ("drain",
"fan-out 500"); the targets and ``compare.py`` go by it.  ``label`` says what was run ("fan-out 50" when the run
was scaled down): a target is judged only when the figure was measured at full size.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs

from benchmarks.environment import BACKENDS, NOTIFIERS, POLL_ONLY_INTERVAL, Setup

FORMAT = "stent-benchmarks-summary/1"


@attrs.frozen
class Figure:
    """One measured number."""

    key: str  # what is measured, at the size: targets and comparisons go by it
    label: str  # what was run, with the size actually used
    value: float
    unit: str
    better: str  # "higher" or "lower"
    full_size: bool = True
    details: dict[str, Any] = attrs.Factory(dict)


@attrs.frozen
class Target:
    bound: float
    better: str

    def met(self, value: float) -> bool:
        return value >= self.bound if self.better == "higher" else value <= self.bound

    def __str__(self) -> str:
        return f"{'>=' if self.better == 'higher' else '<='} {number(self.bound)}"


def target_for(key: str, setup: Setup) -> Target | None:
    """The issue's target for a figure in a setup, or ``None`` where the issue sets none."""
    notified = not setup.polling
    if key == "drain":
        return Target(2500, "higher")
    if key == "dispatch":
        bound = {"sqlite": 2000, "postgres": 1500}.get(setup.backend)
        return None if bound is None else Target(bound, "higher")
    if key == "dispatch_many":
        return Target(20000, "higher")
    if key == "latency p50":
        return Target(3.0 if notified else POLL_ONLY_INTERVAL * 1000, "lower")
    if key == "latency p99":
        return Target(15.0, "lower") if notified else None
    if key == "sequential 20 steps":
        return Target(100.0, "lower") if notified else None
    if key == "fan-out 500":
        return Target(0.5, "lower")
    if key == "fan-out 1000":
        return Target(1.0, "lower")
    if key == "calls per child":
        return Target(3.0, "lower")
    if key == "idle queries per poll_interval_max":
        return Target(1.0, "lower") if notified else None
    if key == "memory of 10000 suspended":
        return Target(20.0, "lower")
    if key == "claim slowdown 100000/1000":
        return Target(2.0, "lower")
    return None


def number(value: float) -> str:
    if math.isnan(value):
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def row_of(setup: Setup, figure: Figure) -> dict[str, Any]:
    """A figure as a row of the summary: where it was measured, the figure, its target and whether it was met."""
    target = target_for(figure.key, setup)
    if target is None:
        met: bool | str | None = None
    elif not figure.full_size:
        met = "scaled"
    else:
        met = target.met(figure.value)
    return {
        "setup": setup.name,
        "backend": setup.backend,
        "notifier": setup.notifier,
        "key": figure.key,
        "label": figure.label,
        "value": figure.value,
        "unit": figure.unit,
        "better": figure.better,
        "target": None if target is None else str(target),
        "met": met,
        "details": figure.details,
    }


#: The order of the rows in a table: the issue's order of the workloads.
ORDER = (
    "drain",
    "pgbench simple-update",
    "drain share of pgbench",
    "dispatch",
    "dispatch_many",
    "latency p50",
    "latency p99",
    "sequential 20 steps",
    "fan-out 500",
    "fan-out 1000",
    "calls per child",
    "idle queries per poll_interval_max",
    "memory of 10000 suspended",
    "claim with 1000 pending",
    "claim with 100000 pending, stale statistics",
    "claim with 100000 pending",
    "claim slowdown 100000/1000",
)


def row_order(row: dict[str, Any]) -> tuple[int, int, int]:
    """Where a row goes: by backend, then notifier, then the issue's order of the workloads."""

    def index(values: tuple[str, ...], value: str) -> int:
        return values.index(value) if value in values else len(values)

    return (index(BACKENDS, row["backend"]), index(NOTIFIERS, row["notifier"]), index(ORDER, row["key"]))


def table(rows: Iterable[dict[str, Any]]) -> str:
    """The rows as one table per setup (backend, then notifier): workload, figure, target, met?"""
    by_setup: dict[str, list[dict[str, Any]]] = {}
    for row in sorted(rows, key=row_order):
        by_setup.setdefault(row["setup"], []).append(row)
    blocks = []
    for group in by_setup.values():
        backend, notifier = group[0]["backend"], group[0]["notifier"]
        lines = [
            [r["label"], f"{number(r['value'])} {r['unit']}", r["target"] or "-", _met_text(r["met"])]
            for r in group
        ]
        header = ["workload", "figure", "target", "met?"]
        widths = [max(len(str(line[i])) for line in [header, *lines]) for i in range(4)]
        title = f"{backend}, notifier: {notifier}" + (" (polling only)" if notifier == "none" else "")
        out = [title, "  " + "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
        for line in lines:
            cells = [line[0].ljust(widths[0]), line[1].rjust(widths[1]), line[2].ljust(widths[2]), line[3]]
            out.append("  " + "  ".join(cells))
        blocks.append("\n".join(out))
    return "\n\n".join(blocks)


def _met_text(met: bool | str | None) -> str:
    if met is None:
        return ""
    if met == "scaled":
        return "n/a (scaled run)"
    return "yes" if met else "NO"


def cpu_reference_ms() -> float:
    """Milliseconds this interpreter takes for a fixed loop of a million multiply-adds, the best of three: the
    machine's speed at the moment, next to the figures (a virtual machine's speed drifts by a third within an
    hour, and every figure with it)."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        total = 0
        for i in range(1_000_000):
            total += i * i
        best = min(best, time.perf_counter() - started)
    return round(best * 1000, 1)


def summary(
    rows: list[dict[str, Any]],
    *,
    scale: float,
    load: dict[str, Any],
    cpu: dict[str, Any] | None = None,
    loop: str | None = None,
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "scale": scale,
        "machine": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "node": platform.node(),
        },
        "load_average": load,
        "cpu_reference_ms": cpu,
        "event_loop": loop,
        "rows": rows,
    }


def write_summary(data: dict[str, Any], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    path = folder / f"summary-{stamp}.json"
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    return path
