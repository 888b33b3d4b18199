"""``python -m stent.testing.sim``: run a scenario of a module again, by seed (the command a failing run prints).

    python -m stent.testing.sim --module tests/sim/sim_workflows.py --scenario MIXED --seed 7 --faults crash
    python -m stent.testing.sim --module tests/sim/sim_workflows.py --scenario MIXED --seeds 0:200 --faults all

Exits with 1 when a run breaks an invariant.  ``--trace`` prints a run's whole event trace.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from stent.testing.sim.faults import FaultMix
from stent.testing.sim.scenario import Scenario


def load_module(spec: str) -> ModuleType:
    """A module by file path (imported under its file name, as pytest does) or by dotted name."""
    if spec.endswith(".py") or "/" in spec or "\\" in spec:
        path = Path(spec).resolve()
        if not path.is_file():
            raise SystemExit(f"no such file: {spec}")
        sys.path.insert(0, str(path.parent))
        return importlib.import_module(path.stem)
    sys.path.insert(0, str(Path.cwd()))
    return importlib.import_module(spec)


def _seeds(args: argparse.Namespace) -> list[int]:
    if args.seeds:
        first, _, last = args.seeds.partition(":")
        return list(range(int(first), int(last)))
    return [args.seed]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stent.testing.sim", description=__doc__.split("\n")[0])
    parser.add_argument("--module", required=True, help="file (or dotted module) that defines the scenario")
    parser.add_argument("--scenario", required=True, help="name of a stent.testing.sim.Scenario in the module")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seeds", help="a range of seeds A:B instead of one (B excluded)")
    parser.add_argument("--faults", default="none", help="fault mix, such as crash,storage=0.1,notify")
    parser.add_argument("--workers", type=int, help="number of workers (default: the scenario's)")
    parser.add_argument("--duration", help="virtual run time (default: the scenario's)")
    parser.add_argument("--heal-at", help="when the faults stop (default: the scenario's, else half the run)")
    parser.add_argument("--trace", action="store_true", help="print the whole event trace of each run")
    args = parser.parse_args(argv)
    module = load_module(args.module)
    scenario = getattr(module, args.scenario, None)
    if not isinstance(scenario, Scenario):
        names = sorted(n for n, v in vars(module).items() if isinstance(v, Scenario))
        raise SystemExit(
            f"{args.module} has no Scenario named {args.scenario!r}; it has: {', '.join(names) or 'none'}"
        )
    overrides: dict[str, Any] = {}
    if args.workers is not None:
        overrides["workers"] = args.workers
    if args.duration is not None:
        overrides["duration"] = args.duration
    if args.heal_at is not None:
        overrides["heal_at"] = args.heal_at
    mix = FaultMix.parse(args.faults)
    failed = []
    for seed in _seeds(args):
        result = scenario.run(seed=seed, faults=mix, quiet=True, **overrides)
        if args.trace:
            print("\n".join(result.trace))
        if not result.ok:
            failed.append(seed)
        if not result.ok or not args.seeds:
            print(result.report())
            print(f"  stats: {dict(result.stats)}")
            for outcome in result.outcomes.values():
                print(f"  {outcome.execution_id[:8]} {outcome.function}: {outcome.state} {outcome.result!r}")
    if args.seeds:
        print(
            f"{len(_seeds(args)) - len(failed)} of {len(_seeds(args))} seeds passed; failing: {failed or 'none'}"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
