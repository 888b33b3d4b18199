"""The benchmarks' table, summary files and comparison of two runs, and the choice of sizes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from benchmarks.compare import main as compare_main
from benchmarks.environment import Setup
from benchmarks.report import Figure, row_of, summary, table, write_summary
from benchmarks.sizes import FULL, scale_from_env

SQLITE = Setup("sqlite", "none")
PG_REDIS = Setup("postgres", "redis")


def test_table_says_which_targets_were_missed_and_leaves_untargeted_figures_unjudged() -> None:
    """A drain under 2,500/s is marked NO, a p50 within 3 ms with a notifier yes, and pgbench has no target; the
    rows come in the issue's order whatever order they were measured in."""
    rows = [
        row_of(PG_REDIS, Figure("latency p50", "latency p50 (200 rounds)", 2.5, "ms", "lower")),
        row_of(PG_REDIS, Figure("pgbench simple-update", "pgbench", 1200.0, "tx/s", "higher")),
        row_of(PG_REDIS, Figure("drain", "drain 2000", 900.0, "executions/s", "higher")),
    ]
    text = table(rows)
    assert text.splitlines()[0] == "postgres, notifier: redis"
    drain, pgbench, p50 = text.splitlines()[2:]
    assert drain.split()[-3:] == [">=", "2,500", "NO"]
    assert p50.split()[-3:] == ["<=", "3", "yes"]
    assert pgbench.rstrip().endswith("tx/s  -")


def test_a_figure_measured_at_a_scaled_size_is_not_judged() -> None:
    """A fan-out of 50 standing in for the 500 of the target says so instead of meeting it."""
    row = row_of(SQLITE, Figure("fan-out 500", "fan-out 50", 0.1, "s", "lower", full_size=False))
    assert (row["target"], row["met"]) == ("<= 0.5", "scaled")
    assert "n/a (scaled run)" in table([row])


def test_polling_only_latency_is_held_to_the_poll_interval_and_notified_latency_to_3_ms() -> None:
    """Without a notifier the p50 target is the poll interval (100 ms); with one it is 3 ms."""
    figure = Figure("latency p50", "latency p50", 50.0, "ms", "lower")
    assert row_of(SQLITE, figure)["met"] is True
    assert row_of(PG_REDIS, figure)["met"] is False


def write_run(folder: Path, name: str, drain: float, p50: float) -> Path:
    rows = [
        row_of(SQLITE, Figure("drain", "drain 2000", drain, "executions/s", "higher")),
        row_of(SQLITE, Figure("latency p50", "latency p50 (200 rounds)", p50, "ms", "lower")),
    ]
    path = write_summary(summary(rows, scale=1.0, load={}), folder / name)
    return path


def test_compare_calls_a_throughput_drop_worse_and_a_latency_drop_better(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """From A to B the drain halves (worse) and the p50 halves (better); a 5 % move is within noise."""
    a = write_run(tmp_path, "a", drain=2000, p50=4.0)
    b = write_run(tmp_path, "b", drain=1000, p50=2.0)
    assert compare_main([str(a), str(b)]) == 0
    lines = capsys.readouterr().out.splitlines()
    drain = next(line for line in lines if "drain 2000" in line)
    p50 = next(line for line in lines if "latency p50" in line)
    assert drain.split()[-2:] == ["-50.0%", "WORSE"]
    assert p50.split()[-2:] == ["-50.0%", "better"]
    c = write_run(tmp_path, "c", drain=1050, p50=2.0)
    assert compare_main([str(b), str(c)]) == 0
    drain = next(line for line in capsys.readouterr().out.splitlines() if "drain 2000" in line)
    assert drain.split()[-1] == "+5.0%"


def test_compare_refuses_a_file_that_is_not_a_benchmark_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """pytest-benchmark's own JSON is refused with a message naming the summary files and the right tool."""
    theirs = tmp_path / "pytest-benchmark.json"
    theirs.write_text(json.dumps({"benchmarks": [], "machine_info": {}}))
    ours = write_run(tmp_path, "ours", drain=2000, p50=4.0)
    assert compare_main([str(theirs), str(ours)]) == 2
    error = capsys.readouterr().err
    assert "not a stent benchmark summary" in error and "pytest-benchmark compare" in error
    assert compare_main([str(ours)]) == 2
    assert "give two summary files" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["fast", "0", "-1", "inf"])
def test_bench_scale_must_be_a_positive_number(value: str) -> None:
    """STENT_BENCH_SCALE that is not a positive number is refused with an example of a good one."""
    with pytest.raises(ValueError, match="STENT_BENCH_SCALE must be a positive number, such as 0.1"):
        scale_from_env({"STENT_BENCH_SCALE": value})


def test_bench_scale_shrinks_every_size_but_the_twenty_steps() -> None:
    """A tenth of the sizes: 200 drained, fan-outs of 50 and 100, still twenty sequential steps."""
    sizes = FULL.scaled(scale_from_env({"STENT_BENCH_SCALE": "0.1"}))
    assert (sizes.drain, sizes.fan_out, sizes.sequential_steps) == (200, (50, 100), 20)
    assert scale_from_env({}) == 1.0
