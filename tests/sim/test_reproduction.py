"""Reproducing a run: the regression seeds, the printed command, and the pytest fixture's seed override.

Each seed of ``regression_seeds.json`` made the simulator report a bug before the commit it names fixed it
(checked by running that seed on the commit before).  A change to how the simulator schedules or injects faults
changes what a seed explores: then find, on the buggy commit, seeds that fail again, and replace them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sim_workflows

from stent.testing.sim import FaultMix, Scenario

HERE = Path(__file__).parent
REGRESSIONS = json.loads((HERE / "regression_seeds.json").read_text())


@pytest.mark.parametrize("case", REGRESSIONS, ids=lambda c: f"{c['scenario']}-{c['seed']}-{c['faults'][:20]}")
def test_regression_seed_keeps_every_invariant(case: dict[str, Any]) -> None:
    """A seed that once exposed a bug runs clean: every invariant holds and no workflow fails from an outage."""
    scenario: Scenario = getattr(sim_workflows, case["scenario"])
    result = scenario.run(seed=case["seed"], faults=case["faults"])
    assert result.ok, f"{case['found']}\n{result.report()}"


@pytest.mark.parametrize("text", ["none", "crash", "crash,storage=0.1,notify", "all", "skew=12.5,user"])
def test_fault_mix_text_reads_back_to_the_same_mix(text: str) -> None:
    """The fault mix printed in a reproduction command parses back to an equal mix."""
    mix = FaultMix.parse(text)
    assert FaultMix.parse(mix.spec()) == mix


def test_unknown_fault_kind_is_refused_with_the_known_ones() -> None:
    """A misspelt fault kind names the kinds there are."""
    with pytest.raises(ValueError, match="crash, pause, restart, storage, notify, skew, user"):
        FaultMix.parse("crashes")


CLI_MODULE = """
from stent import Stent
from stent.testing.sim import Scenario, check

@Stent.durable
async def promise_kept(n: int) -> int:
    check(n < 3, f"order {n} was charged twice")
    return n

BROKEN = Scenario(dispatches=[(promise_kept, n) for n in range(5)], workers=2, duration="1h")
"""


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "stent.testing.sim", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def test_failing_run_prints_a_command_that_reproduces_it(tmp_path: Path) -> None:
    """A failing scenario's report names its seed and options and a command; running that command fails alike."""
    (tmp_path / "user_flows.py").write_text(CLI_MODULE)
    first = _cli(
        "--module", "user_flows.py", "--scenario", "BROKEN", "--seed", "9", "--faults", "crash", cwd=tmp_path
    )
    assert first.returncode == 1, first.stdout + first.stderr
    assert "seed: 9" in first.stdout and "faults: crash" in first.stdout
    assert "user check: order 3 was charged twice" in first.stdout
    [command] = [line.split("reproduce: ", 1)[1] for line in first.stdout.splitlines() if "reproduce: " in line]
    assert (
        command == "python -m stent.testing.sim --module user_flows.py --scenario BROKEN --seed 9 --faults crash"
    )
    again = _cli(*command.split()[3:], cwd=tmp_path)
    assert again.returncode == 1
    assert again.stdout.replace(_wall(again.stdout), "") == first.stdout.replace(_wall(first.stdout), "")


def _wall(text: str) -> str:
    return next(line for line in text.splitlines() if "wall_seconds" in line)


def test_cli_sweeps_a_range_of_seeds_and_lists_the_failures(tmp_path: Path) -> None:
    """``--seeds A:B`` runs each seed and ends with the failing ones, exit status 1."""
    (tmp_path / "user_flows.py").write_text(CLI_MODULE)
    done = _cli("--module", "user_flows.py", "--scenario", "BROKEN", "--seeds", "0:3", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stdout.rstrip().endswith("0 of 3 seeds passed; failing: [0, 1, 2]")


PLUGIN_TEST = """
from stent import Stent
from stent.testing.sim import check

@Stent.durable
async def fragile(n: int) -> int:
    check(n != 2, "fragile(2) misbehaved")
    return n

def test_sweep_finds_the_bad_seed(sim):
    sim.sweep([(fragile, n) for n in range(3)], seeds=range(3), workers=1, duration="1m")

def test_single_run_passes(sim):
    result = sim.run([(fragile, 1)], workers=2, duration="1m", faults="crash")
    assert result.outcome(0).value == 1
"""


def test_pytest_plugin_fails_with_a_seed_command_that_reruns_only_that_seed(tmp_path: Path) -> None:
    """The ``sim`` fixture (enabled by pytest_plugins) fails a test with ``STENT_SIM_SEED=n pytest <id>``."""
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["stent.testing.sim.pytest_plugin"]\n')
    (tmp_path / "test_flows.py").write_text(PLUGIN_TEST)
    env = {k: v for k, v in os.environ.items() if k != "STENT_SIM_SEED"}
    base = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"]
    first = subprocess.run(
        [*base, "test_flows.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert "1 failed, 1 passed" in first.stdout, first.stdout + first.stderr
    assert "STENT_SIM_SEED=0 pytest test_flows.py::test_sweep_finds_the_bad_seed" in first.stdout
    assert "user check: fragile(2) misbehaved" in first.stdout
    rerun = subprocess.run(
        [*base, "test_flows.py::test_sweep_finds_the_bad_seed", "--sim-seed", "0", "-v"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert "1 failed" in rerun.stdout and "seed: 0" in rerun.stdout
    by_env = subprocess.run(
        [*base, "test_flows.py::test_single_run_passes"],
        cwd=tmp_path, env={**env, "STENT_SIM_SEED": "5"}, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert "1 passed" in by_env.stdout, by_env.stdout


def test_scenario_knows_where_it_lives_for_the_command() -> None:
    """A module-level scenario's reproduction command names its file and variable."""
    result = sim_workflows.MIXED.run(seed=1)
    assert result.reproduce.startswith("python -m stent.testing.sim --module ")
    assert result.reproduce.endswith("sim_workflows.py --scenario MIXED --seed 1 --faults none")
