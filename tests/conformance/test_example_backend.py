"""The example backend of docs/guides/writing-a-backend.md is installed (a real install, not editable) and certified
with the very commands the guide gives, and the files the guide shows are the example's files."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
GUIDE = REPO / "docs" / "guides" / "writing-a-backend.md"
EXAMPLE = REPO / "docs" / "examples" / "stent-oplog"
TIMEOUT = 240  # seconds for one command on a loaded machine

SUMMARY = [
    "declared: durable",
    "shared: 4 skipped (not declared)",
    "durable: 2 passed",
    "transactional_notifications: 4 skipped (not declared)",
    "verdict: conforms",
]


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of each fenced block of a Markdown text."""
    fence = re.compile(r"^```(?P<lang>\w*)\n(?P<body>.*?)^```$", re.DOTALL | re.MULTILINE)
    return [(m["lang"], m["body"]) for m in fence.finditer(text)]


def guide_command(program: str) -> list[str]:
    """The guide's one shell command that runs ``program``, as arguments."""
    lines = [
        line.split("  #")[0].strip()
        for lang, body in fenced_blocks(GUIDE.read_text())
        if lang == "bash"
        for line in body.splitlines()
        if line.startswith(program + " ")
    ]
    assert len(lines) == 1, f"the guide should give one `{program}` command, found {lines}"
    return shlex.split(lines[0])


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of a shell where stent-oplog is installed (into a directory of its own, on PYTHONPATH)."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(EXAMPLE)],
        check=True, capture_output=True, timeout=TIMEOUT,
    )  # fmt: skip
    assert (target / "stent_oplog" / "storage.py").exists()
    assert not list(target.glob("__editable__*")), "the example must be installed, not linked"
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")]),
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
        "PYTHONDONTWRITEBYTECODE": "1",  # leave no __pycache__ in the docs tree
    }


def run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False)


def summary_of(output: str) -> list[str]:
    section = output.partition(" stent conformance ")[2]
    return [line.strip() for line in section.splitlines() if line.startswith("  ")]


def test_stent_conformance_certifies_the_installed_example(installed: dict[str, str]) -> None:
    """`stent conformance` with the guide's URL finds oplog:// through the entry point, and the suite passes."""
    command = guide_command("stent conformance")
    assert command[2].startswith("oplog://")
    result = run(command, installed)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "storage suite test_stent_conformance.py::TestStorageConformance (OplogStorage)" in result.stdout
    lines = summary_of(result.stdout)
    assert all(line in lines for line in SUMMARY), lines
    assert re.search(r"required: \d+ passed$", lines[1]), lines


def test_pytest_on_the_examples_own_tests_certifies_it(installed: dict[str, str]) -> None:
    """pytest on the example's test module, as the guide gives it, passes the suite and prints the summary."""
    result = run([*guide_command("pytest"), "-p", "no:cacheprovider"], installed)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "storage suite tests/test_oplog_conformance.py::TestOplogConformance (OplogStorage)" in result.stdout
    lines = summary_of(result.stdout)
    assert all(line in lines for line in SUMMARY), lines


def test_the_guide_shows_the_example_files_as_they_are() -> None:
    """Each block of the guide headed by a file name of the example is that file, byte for byte."""
    shown = {}
    for _, body in fenced_blocks(GUIDE.read_text()):
        first, _, rest = body.partition("\n")
        if first.startswith("# ") and (EXAMPLE / first[2:]).is_file():
            shown[first[2:]] = rest
    expected = {"src/stent_oplog/storage.py", "src/stent_oplog/plugin.py", "pyproject.toml",
                "tests/conftest.py", "tests/test_oplog_conformance.py"}  # fmt: skip
    assert set(shown) == expected
    for name, body in shown.items():
        assert body == (EXAMPLE / name).read_text(), f"the guide's {name} differs from {EXAMPLE / name}"
