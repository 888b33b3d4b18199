"""Run pytest in a subprocess on a generated conformance test module, as an adapter author would run it.

The module and a ``conftest.py`` that loads ``stent.testing.conformance.plugin`` are written to a directory of
their own, with a ``pytest.ini`` so that this repository's configuration (asyncio mode, timeouts) does not leak
in; each test case's outcome is read back from pytest's JUnit report.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from xml.etree import ElementTree

import attrs

CONFTEST = 'pytest_plugins = ["stent.testing.conformance.plugin"]\n'
TIMEOUT = 240  # seconds; a run takes a few on a loaded machine


@attrs.frozen
class Run:
    """What one pytest run printed and how each test ended (by ``Class::test``)."""

    code: int
    output: str
    outcomes: dict[str, str]

    def summary(self) -> str:
        """The stent conformance section of the output."""
        _, marker, rest = self.output.partition(" stent conformance ")
        assert marker, f"no stent conformance summary in:\n{self.output}"
        return rest

    def block(self, suite_class: str) -> list[str]:
        """The summary lines of one conformance class, without their indentation."""
        lines = self.summary().splitlines()
        start = next(i for i, line in enumerate(lines) if line.startswith(("storage suite", "notifier suite"))
                     and f"::{suite_class}" in line)  # fmt: skip
        block = [lines[start]]
        for line in lines[start + 1 :]:
            if not line.startswith("  "):
                break
            block.append(line.strip())
        return block


def run_pytest(
    directory: Path,
    module: str,
    *args: str,
    conftest: str = CONFTEST,
    ini: str = "[pytest]\n",
    env: dict[str, str] | None = None,
) -> Run:
    """Write ``module`` (dedented) as ``test_generated.py`` into ``directory`` and run pytest on it."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "test_generated.py").write_text(textwrap.dedent(module))
    (directory / "conftest.py").write_text(conftest)
    (directory / "pytest.ini").write_text(ini)
    report = directory / "report.xml"
    command = [
        sys.executable, "-m", "pytest", "test_generated.py", "-p", "no:cacheprovider", "-p", "no:xdist",
        "-p", "no:randomly", f"--junitxml={report}", "-rA", *args,
    ]  # fmt: skip
    environment = {**os.environ, **(env or {})}
    result = subprocess.run(
        command, cwd=directory, capture_output=True, text=True, timeout=TIMEOUT, env=environment, check=False
    )
    return Run(result.returncode, result.stdout + result.stderr, outcomes(report))


def outcomes(report: Path) -> dict[str, str]:
    """``Class::test`` -> passed, failed, error, skipped or xfailed, from a JUnit report."""
    found: dict[str, str] = {}
    if not report.exists():
        return found
    for case in ElementTree.parse(report).getroot().iter("testcase"):
        name = f"{case.get('classname', '').rsplit('.', 1)[-1]}::{case.get('name')}"
        if case.find("failure") is not None:
            found[name] = "failed"
        elif case.find("error") is not None:
            found[name] = "error"
        elif (skipped := case.find("skipped")) is not None:
            found[name] = "xfailed" if skipped.get("type") == "pytest.xfail" else "skipped"
        else:
            found[name] = "passed"
    return found
