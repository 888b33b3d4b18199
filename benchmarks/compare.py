"""Compare two benchmark runs: ``.venv/bin/python benchmarks/compare.py A.json B.json``.

A and B are summaries written by ``./dev bench`` (``.benchmarks/summary-<time>.json``); with no arguments, the two
newest there are compared, older first.  Each figure measured in both runs is shown with its change from A to B,
called better or worse when it moved more than ``--threshold`` percent (10 by default: the machine is shared and
the figures are noisy) in the direction that is good for it.  pytest-benchmark's own JSON files compare with
``pytest-benchmark compare``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the benchmarks package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.report import FORMAT, number, row_order

RESULTS_DIR = Path(__file__).resolve().parents[1] / ".benchmarks"


class CompareError(Exception):
    """A file that cannot be compared, with what to do about it."""


def load(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise CompareError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise CompareError(f"{path}: not JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("rows"), list):
        raise CompareError(
            f'{path}: not a stent benchmark summary (expected "format": "{FORMAT}", as in the'
            " .benchmarks/summary-*.json files ./dev bench writes); compare pytest-benchmark's own JSON files"
            " with `pytest-benchmark compare`"
        )
    return data


def newest_two(folder: Path) -> list[Path]:
    found = sorted(folder.glob("summary-*.json"))
    if len(found) < 2:
        raise CompareError(
            f"{folder} holds {len(found)} summary file(s); run ./dev bench twice, or name two files: compare.py A B"
        )
    return found[-2:]


def verdict(row: dict[str, Any], before: float, after: float, threshold: float) -> tuple[str, str]:
    """The change from ``before`` to ``after`` in percent, and whether it is better, worse or within noise."""
    if before == 0:
        return ("-", "")
    change = 100 * (after - before) / abs(before)
    if abs(change) < threshold:
        return (f"{change:+.1f}%", "")
    improved = change > 0 if row.get("better") == "higher" else change < 0
    return (f"{change:+.1f}%", "better" if improved else "WORSE")


def compare(a: dict[str, Any], b: dict[str, Any], threshold: float) -> list[str]:
    def keyed(data: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
        return {(row["setup"], row["key"]): row for row in data["rows"]}

    rows_a, rows_b = keyed(a), keyed(b)
    table = [["setup", "workload", "A", "B", "change", ""]]
    notes = []
    for key in sorted(rows_a.keys() & rows_b.keys(), key=lambda k: row_order(rows_b[k])):
        ra, rb = rows_a[key], rows_b[key]
        label = rb["label"]
        if ra["label"] != rb["label"]:
            label += " *"
            notes.append(f"* {key[0]} {rb['label']}: A ran {ra['label']!r}")
        change, word = verdict(ra, float(ra["value"]), float(rb["value"]), threshold)
        unit = ra["unit"]
        table.append(
            [key[0], label, f"{number(ra['value'])} {unit}", f"{number(rb['value'])} {unit}", change, word]
        )
    widths = [max(len(line[i]) for line in table) for i in range(6)]

    def cpu(data: dict[str, Any]) -> str:
        reference = data.get("cpu_reference_ms") or {}
        return f", CPU reference {reference.get('start')} ms" if reference else ""

    lines = [
        f"A: {a.get('created')} (scale {a.get('scale')}{cpu(a)})   B: {b.get('created')} (scale {b.get('scale')}{cpu(b)})"
    ]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in table]
    lines += notes
    for name, only in (("A", rows_a.keys() - rows_b.keys()), ("B", rows_b.keys() - rows_a.keys())):
        for setup, figure in sorted(only):
            lines.append(f"only in {name}: {setup} {figure}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="*", type=Path, help="two summary JSON files (default: the newest two)")
    parser.add_argument("--threshold", type=float, default=10.0, help="percent change called noise (10)")
    args = parser.parse_args(argv)
    try:
        if len(args.files) not in (0, 2):
            raise CompareError(
                f"give two summary files (A then B), or none for the newest two; got {len(args.files)}"
            )
        paths = args.files or newest_two(RESULTS_DIR)
        before, after = (load(path) for path in paths)
    except CompareError as exc:
        print(f"compare.py: {exc}", file=sys.stderr)
        return 2
    print("\n".join(compare(before, after, args.threshold)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
