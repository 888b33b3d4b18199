"""mypy in strict mode passes on every distribution, and type checkers see durable functions' signatures.

The first test runs ``mypy`` as configured in the root pyproject.toml (``[tool.mypy] files``: the five
distributions and check_public_api.py); the second runs it over misuse_of_public_api.py and expects exactly the
errors that file marks.  mypy keeps its cache in .mypy_cache, so a run after the first takes a fraction of a second.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
MARKER = re.compile(r"#\s*E:\s*(?P<codes>[a-z-]+(?:\s+[a-z-]+)*)\s*$")
ERROR = re.compile(r"^(?P<path>[^:]+):(?P<line>\d+): error: .*\[(?P<code>[a-z-]+)\]$")


def _mypy(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", *args],
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=110,
    )


def test_mypy_strict_passes_on_every_distribution_and_the_public_api_claims() -> None:
    """`mypy --strict` finds no error in stent-core, the four adapters, or check_public_api.py's assertions."""
    result = _mypy()
    report = result.stdout + result.stderr
    assert result.returncode == 0, f"mypy --strict found errors (run `.venv/bin/mypy` to see them):\n{report}"
    assert "Success: no issues found" in report, report


def test_mypy_reports_wrong_arguments_to_durable_functions() -> None:
    """Wrong argument types, a missing argument, a misread result, a sync function or an unknown option: mypy says so."""
    source = HERE / "misuse_of_public_api.py"
    expected = {
        (number, code)
        for number, line in enumerate(source.read_text().splitlines(), start=1)
        if (marker := MARKER.search(line))
        for code in marker["codes"].split()
    }
    assert len(expected) >= 8, "misuse_of_public_api.py lost its # E: markers"

    result = _mypy(str(source.relative_to(ROOT)))
    report = result.stdout + result.stderr
    found = {(int(m["line"]), m["code"]) for line in report.splitlines() if (m := ERROR.match(line))}
    assert result.returncode == 1, f"mypy should report errors and only errors:\n{report}"
    assert found == expected, (
        f"missing (line, code): {sorted(expected - found)}; unexpected: {sorted(found - expected)}\n{report}"
    )
