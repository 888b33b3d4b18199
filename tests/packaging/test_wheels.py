"""The built wheels of stent-core and stent-sqlite install into a clean virtual environment, offline, and work.

No editable install and no source tree: the environment gets the two wheels built from their sdists, and their
runtime dependencies repacked from the dev venv (``wheelhouse.py``), through ``pip install --no-index``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from collections.abc import Callable
from pathlib import Path

import pytest
from building import Built, project_table, source_version
from wheelhouse import repack, runtime_dependencies

TIMEOUT = 180  # seconds for one command on a loaded machine
WORKFLOW = Path(__file__).with_name("wheel_workflow.py")


def clean_environ() -> dict[str, str]:
    """The environment for commands in the clean venv: nothing points back at the dev venv or the source tree."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PIP_", "VIRTUAL_ENV"))}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", PYTHONNOUSERSITE="1")
    return env


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        command, cwd=cwd, env=clean_environ(), capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    assert result.returncode == 0, f"{command} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def clean_venv(built: Callable[[str], Built], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtual environment with the stent-core and stent-sqlite wheels installed, offline."""
    wheels = [built("stent-core").wheel, built("stent-sqlite").wheel]
    wheelhouse = tmp_path_factory.mktemp("wheelhouse")
    requirements = [r for name in ("stent-core", "stent-sqlite") for r in project_table(name)["dependencies"]]
    for name in runtime_dependencies(requirements, skip=["stent-core", "stent-sqlite"]):
        repack(name, wheelhouse)
    for wheel in wheels:
        (wheelhouse / wheel.name).write_bytes(wheel.read_bytes())
    root = tmp_path_factory.mktemp("clean-venv")
    venv.EnvBuilder(with_pip=False, symlinks=os.name != "nt").create(root)
    # The dev venv's pip installs into the new environment (pip --python), which saves bootstrapping its own.
    run(
        [sys.executable, "-m", "pip", "--python", str(root / "bin" / "python"), "install", "--no-index",
         "--find-links", str(wheelhouse), "--only-binary", ":all:", "stent-core", "stent-sqlite"],
        cwd=root,
    )  # fmt: skip
    return root


def test_workflow_runs_to_completion_from_the_installed_wheels(clean_venv: Path, tmp_path: Path) -> None:
    """A durable function with steps, dispatched and run by a worker on a SQLite file, in the clean venv."""
    database = tmp_path / "wheels.db"
    output = run([str(clean_venv / "bin" / "python"), "-I", str(WORKFLOW), str(database)], cwd=tmp_path)
    report = json.loads(output.stdout)
    assert report["result"] == 10
    steps = [(function, step, state) for function, step, state in report["steps"] if step is not None]
    assert [(function, step) for function, step, _ in steps] == [("__main__:add", n) for n in (1, 2, 3, 4)]
    assert {state for _, _, state in steps} == {"completed"}
    site = Path(report["prefix"]).resolve()
    for module in ("stent", "stent_sqlite"):
        location = report[module][1]
        assert Path(location).resolve().is_relative_to(site), (
            f"{module} was imported from {location}, not the venv"
        )
    assert report["stent"][0] == source_version("stent-core")
    assert report["stent_sqlite"][0] == source_version("stent-sqlite")
    # The stored execution outlives the process: the installed `stent` command reads it back through the plugin.
    listed = run(
        [str(clean_venv / "bin" / "stent"), "--storage", f"sqlite:///{database}", "--json", "list"], cwd=tmp_path
    )
    assert report["execution_id"] in listed.stdout


def test_stent_version_names_core_and_the_installed_adapter(clean_venv: Path, tmp_path: Path) -> None:
    """`stent --version` from the wheel prints stent-core's version and stent-sqlite's, the only adapter there."""
    output = run([str(clean_venv / "bin" / "stent"), "--version"], cwd=tmp_path)
    assert output.stdout.splitlines() == [
        f"stent-core {source_version('stent-core')}",
        f"stent-sqlite {source_version('stent-sqlite')}",
    ]
