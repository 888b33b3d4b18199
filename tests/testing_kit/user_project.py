"""Run pytest in a subprocess on a small user project, as a user of the testing kit runs it.

The project directory gets the files given, a ``conftest.py`` that enables the plugin the way the docs say, and
a ``pytest.ini`` of its own so that this repository's configuration (asyncio mode, timeouts) does not leak in.
Each test's outcome and duration is read back from pytest's JUnit report.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from xml.etree import ElementTree

import attrs

CONFTEST = 'pytest_plugins = ["stent.testing.pytest_plugin"]\n'
TIMEOUT = 240  # seconds of real time a whole run may take on a loaded machine; a passing run takes a few
# A pytest_asyncio package put first on sys.path, which shadows the installed one and cannot be imported: as if
# pytest-asyncio were not installed.  (Blocking it in sys.modules or sys.meta_path trips pytest's plugin and
# assertion-rewriting machinery, which looks at installed plugins' modules itself.)
WITHOUT_PYTEST_ASYNCIO = 'raise ImportError("pytest-asyncio is not installed (hidden by the test)")\n'


@attrs.frozen
class Run:
    """What one pytest run printed, and how long each test (by name) took and how it ended."""

    code: int
    output: str
    outcomes: dict[str, str]
    seconds: dict[str, float]


def run_pytest(
    directory: Path,
    files: dict[str, str],
    *args: str,
    ini: str = "[pytest]\n",
    without_pytest_asyncio: bool = False,
) -> Run:
    """Write ``files`` (dedented) and the conftest into ``directory`` and run pytest there."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in {"conftest.py": CONFTEST, "pytest.ini": ini, **files}.items():
        (directory / name).write_text(textwrap.dedent(text))
    environment = {**os.environ}
    environment.pop("PYTEST_ADDOPTS", None)
    if without_pytest_asyncio:
        shim = directory / "_no_pytest_asyncio"
        (shim / "pytest_asyncio").mkdir(parents=True, exist_ok=True)
        (shim / "pytest_asyncio" / "__init__.py").write_text(WITHOUT_PYTEST_ASYNCIO)
        environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(shim), environment.get("PYTHONPATH")]))
    report = directory / "report.xml"
    command = [
        sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist", "-p", "no:randomly",
        f"--junitxml={report}", "-rA", *args,
    ]  # fmt: skip
    result = subprocess.run(
        command, cwd=directory, capture_output=True, text=True, timeout=TIMEOUT, env=environment, check=False
    )
    outcomes: dict[str, str] = {}
    seconds: dict[str, float] = {}
    if report.exists():
        for case in ElementTree.parse(report).getroot().iter("testcase"):
            name = f"{case.get('classname', '').rsplit('.', 1)[-1]}::{case.get('name')}"
            seconds[name] = float(case.get("time", "0"))
            failed = case.find("failure") is not None or case.find("error") is not None
            outcomes[name] = "failed" if failed else "skipped" if case.find("skipped") is not None else "passed"
    return Run(result.returncode, result.stdout + result.stderr, outcomes, seconds)
