"""The docs runner itself: blocks share a namespace, and each directive does what tests/docs/README.md says."""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from docs_snippets import PageRun, SnippetError, parse_blocks


def page(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "page.md"
    path.write_text(text, encoding="utf-8")
    return path


def run(tmp_path: Path, text: str) -> PageRun:
    runner = PageRun(page(tmp_path, text))
    runner.run()
    return runner


FENCE = "```"


def test_blocks_share_one_namespace_and_allow_top_level_await(tmp_path: Path) -> None:
    """A later block sees what an earlier one defined; top-level await and asyncio.run both work."""
    runner = run(
        tmp_path,
        f"""
{FENCE}python
import asyncio
value = await asyncio.sleep(0, result=41)
{FENCE}

{FENCE}python
async def main():
    return value + 1

answer = asyncio.run(main())
assert answer == 42
{FENCE}

{FENCE}bash
this is not run
{FENCE}
""",
    )
    assert len(runner.ran) == 2


def test_skip_needs_a_reason_and_skips(tmp_path: Path) -> None:
    """`test: skip` without a reason is refused; with one, the block is not run."""
    with pytest.raises(SnippetError, match="needs an argument"):
        parse_blocks(page(tmp_path, f"<!-- test: skip -->\n{FENCE}python\nraise SystemExit\n{FENCE}\n"))
    runner = run(tmp_path, f"<!-- test: skip needs a server -->\n{FENCE}python\nraise SystemExit\n{FENCE}\n")
    assert [reason for _, reason in runner.skipped] == ["skip: needs a server"]


def test_output_must_match_what_the_block_prints(tmp_path: Path) -> None:
    """An output block equal to the printed text passes; a different one fails naming both."""
    good = f'{FENCE}python\nprint("hello")\n{FENCE}\n\n<!-- test: output -->\n{FENCE}text\nhello\n{FENCE}\n'
    run(tmp_path, good)
    with pytest.raises(SnippetError, match="printed"):
        run(tmp_path, good.replace("text\nhello", "text\ngoodbye"))


def test_raises_requires_that_exact_kind_of_error(tmp_path: Path) -> None:
    """`test: raises NAME` passes when the block raises NAME and fails when it finishes normally."""
    run(
        tmp_path,
        f"<!-- test: raises ConfigurationError -->\n{FENCE}python\nfrom stent import RetryPolicy\n"
        f"RetryPolicy(max_attempts=0)\n{FENCE}\n",
    )
    with pytest.raises(SnippetError, match="should raise KeyError"):
        run(tmp_path, f"<!-- test: raises KeyError -->\n{FENCE}python\nx = 1\n{FENCE}\n")


def test_serve_blocks_are_drained_once_ready(tmp_path: Path) -> None:
    """A block awaiting serve() ends because the runner drains its worker; one that serves nothing is an error."""
    runner = run(
        tmp_path,
        f"""
{FENCE}python
from stent import Stent
executor = Stent(backend=Stent.backends.MemoryBackend())
{FENCE}

<!-- test: serve -->
{FENCE}python
await executor.serve(worker_id="w")
{FENCE}

{FENCE}python
assert executor.worker_status_overview()["workers"][0]["state"] == "stopped"
{FENCE}
""",
    )
    assert len(runner.ran) == 3
    with pytest.raises(SnippetError, match="started no worker"):
        run(tmp_path, f"<!-- test: serve -->\n{FENCE}python\nimport asyncio\nawait asyncio.sleep(0)\n{FENCE}\n")


def test_a_failure_points_at_the_markdown_line(tmp_path: Path) -> None:
    """The traceback of a failing snippet names the page and the line of the failing statement."""
    path = page(tmp_path, f"# Title\n\n{FENCE}python\nx = 1\nassert x == 2\n{FENCE}\n")
    with pytest.raises(AssertionError) as info:
        PageRun(path).run()
    frames = traceback.extract_tb(info.value.__traceback__)
    assert (frames[-1].filename, frames[-1].lineno, frames[-1].line) == (str(path), 5, "assert x == 2")


def test_misplaced_or_unknown_directives_are_refused(tmp_path: Path) -> None:
    """A directive must name a known action and sit right above a fence."""
    with pytest.raises(SnippetError, match="unknown directive"):
        parse_blocks(page(tmp_path, f"<!-- test: maybe -->\n{FENCE}python\n{FENCE}\n"))
    with pytest.raises(SnippetError, match="right above a code fence"):
        parse_blocks(page(tmp_path, f"<!-- test: serve -->\nSome prose.\n{FENCE}python\n{FENCE}\n"))


def test_xfail_blocks_are_left_out_of_the_page_run(tmp_path: Path) -> None:
    """A block marked xfail does not run with the page; run up to it alone, it fails."""
    path = page(tmp_path, f"<!-- test: xfail bug 1 -->\n{FENCE}python\nassert False\n{FENCE}\n")
    runner = PageRun(path)
    runner.run()
    assert runner.ran == [] and runner.skipped[0][1] == "xfail: bug 1"
    alone = PageRun(path)
    with pytest.raises(AssertionError):
        alone.run(upto=alone.blocks[0], include_xfail=True)
