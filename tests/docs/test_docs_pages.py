"""Every python snippet of docs/ and of README.md's Documentation section runs and does what its page says.

How a page is run is described in ``docs_snippets.py`` (and tests/docs/README.md): blocks in order, one namespace
per page, top-level ``await`` allowed, ``<!-- test: ... -->`` directives for the few blocks that need them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from docs_snippets import REPO, PageRun, pages, python_blocks

DOCS = REPO / "docs"
README = REPO / "README.md"
PAGES = [*pages(DOCS), README]


def _id(path: Path) -> str:
    return str(path.relative_to(REPO))


def test_every_guide_the_design_asks_for_exists() -> None:
    """The docs have an entry page, a getting-started page and a guide for each area of the engine and workers."""
    wanted = [
        "index.md",
        "getting-started.md",
        "guides/durable-functions.md",
        "guides/orchestration.md",
        "guides/errors-and-retries.md",
        "guides/signals.md",
        "guides/parallel-execution.md",
        "guides/idempotency.md",
        "guides/workers.md",
    ]
    missing = [name for name in wanted if not (DOCS / name).is_file()]
    assert not missing, f"missing pages under docs/: {missing}"


@pytest.mark.parametrize("path", PAGES, ids=_id)
def test_page_snippets_run_and_keep_their_promises(path: Path) -> None:
    """Each python block of the page runs, in order, and its asserts, outputs and expected errors hold."""
    run = PageRun(path)
    if not run.blocks:
        pytest.skip(f"{_id(path)} has no python snippets")
    run.run()
    assert run.ran, f"no block of {_id(path)} ran"


def _xfail_cases() -> list[object]:
    cases = []
    for path in PAGES:
        for block in python_blocks(path):
            reason = block.directive("xfail")
            if reason is not None:
                cases.append(
                    pytest.param(
                        path, block.line, marks=pytest.mark.xfail(strict=True, reason=reason), id=block.where
                    )
                )
    return cases or [pytest.param(None, 0, marks=pytest.mark.skip(reason="no snippet is marked xfail"), id="none")]


@pytest.mark.parametrize("path, line", _xfail_cases())
def test_snippet_marked_xfail_still_fails(path: Path, line: int) -> None:
    """A block documenting a promise the code does not keep yet fails; when the bug is fixed, drop its mark."""
    run = PageRun(path)
    [block] = [b for b in run.blocks if b.line == line]
    run.run(upto=block, include_xfail=True)


def test_readme_keeps_its_two_commands_and_links_the_docs() -> None:
    """README.md still shows `./dev demo` and `./dev test`, and its Documentation section links the docs."""
    text = README.read_text(encoding="utf-8")
    assert "./dev demo" in text and "./dev test" in text
    assert "## Documentation" in text
    section = text.split("## Documentation", 1)[1]
    assert "docs/index.md" in section and "docs/guides/workers.md" in section
    [example] = [b for b in python_blocks(README) if b.heading == "Quick example"]
    code_lines = [line for line in example.source.splitlines() if line.strip()]
    assert len(code_lines) <= 15, f"the README's quick example has {len(code_lines)} lines of code; keep it short"
