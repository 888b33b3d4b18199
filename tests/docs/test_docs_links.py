"""Internal links of docs/, README.md and examples/README.md: every relative link reaches a file, every #anchor a
heading (by GitHub's rules for heading anchors)."""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path
from urllib.parse import unquote

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from docs_snippets import REPO, pages

DOCS = REPO / "docs"
README = REPO / "README.md"
EXAMPLES_README = REPO / "examples" / "README.md"
PAGES = [*pages(DOCS), README, EXAMPLES_README]

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_INLINE_CODE = re.compile(r"`[^`]*`")
_LINK = re.compile(r"(?<!!)\[(?P<text>[^\]]*)\]\((?P<target>[^)\s]+)(?:\s+\"[^\"]*\")?\)")
_HEADING = re.compile(r"^(#{1,6})\s+(?P<title>.+?)\s*#*\s*$")


def prose_lines(path: Path, *, keep_code: bool = False) -> list[tuple[int, str]]:
    """The page's lines outside code fences, numbered from 1; inline code removed unless ``keep_code``."""
    lines: list[tuple[int, str]] = []
    fence: str | None = None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        match = _FENCE.match(line)
        if match:
            marker = match.group(1)
            if fence is None:
                fence = marker
            elif marker.startswith(fence[0]) and len(marker) >= len(fence):
                fence = None
            continue
        if fence is None:
            lines.append((number, line if keep_code else _INLINE_CODE.sub("", line)))
    return lines


def slug(title: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"`([^`]*)`", r"\1", title).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: Counter[str] = Counter()
    found: set[str] = set()
    for _, line in prose_lines(path, keep_code=True):  # a heading's inline code is part of its anchor
        heading = _HEADING.match(line)
        if heading:
            base = slug(heading.group("title"))
            found.add(base if seen[base] == 0 else f"{base}-{seen[base]}")
            seen[base] += 1
    return found


def links(path: Path) -> list[tuple[int, str]]:
    return [(n, m.group("target")) for n, line in prose_lines(path) for m in _LINK.finditer(line)]


def test_slugs_follow_githubs_rules() -> None:
    """Headings become the anchors GitHub renders, so links that work here work there."""
    assert slug("Cluster-wide limits: max_concurrent") == "cluster-wide-limits-max_concurrent"
    assert slug("Lifecycle: readiness and draining") == "lifecycle-readiness-and-draining"
    assert slug("`serve()` options") == "serve-options"
    assert slug("`@Stent.durable(...)`") == "stentdurable"
    assert slug('What "exactly once" means here') == "what-exactly-once-means-here"


def test_anchors_keep_inline_code_and_number_repeated_headings(tmp_path: Path) -> None:
    """A heading made of inline code has its anchor, and a repeated heading gets -1, -2 as on GitHub."""
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n## `serve(...)`\n\n```python\n# not a heading\n```\n\n## Notes\n\n## Notes\n")
    assert anchors(page) == {"title", "serve", "notes", "notes-1"}


def test_a_link_to_a_missing_heading_or_file_is_reported(tmp_path: Path) -> None:
    """The checker names the line, the link and what is missing."""
    (tmp_path / "other.md").write_text("# Other\n")
    page = tmp_path / "page.md"
    page.write_text("# Page\n\nSee [other](other.md#nope), [gone](gone.md) and [here](#page).\n")
    with pytest.raises(AssertionError) as failed:
        test_relative_links_reach_files_and_headings(page)
    report = str(failed.value)
    assert "line 3: other.md#nope -> no heading with anchor #nope in other.md" in report
    assert "line 3: gone.md -> no such file" in report
    assert "#page" not in report


@pytest.mark.parametrize("path", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_reach_files_and_headings(path: Path) -> None:
    """Each relative link of the page names an existing file, and its #anchor a heading of that file."""
    broken = []
    for line, target in links(path):
        if re.match(r"[a-z][a-z0-9+.\-]*:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        destination = (path.parent / unquote(file_part)).resolve() if file_part else path
        if not destination.exists():
            broken.append(f"line {line}: {target} -> no such file {destination}")
            continue
        if anchor and destination.suffix == ".md" and anchor not in anchors(destination):
            broken.append(f"line {line}: {target} -> no heading with anchor #{anchor} in {destination.name}")
    assert not broken, "\n".join(broken)


def test_every_page_is_linked_from_another() -> None:
    """No page of docs/ is an orphan: the entry page or some other page links to it."""
    linked: set[Path] = set()
    for path in PAGES:
        for _, target in links(path):
            file_part = target.partition("#")[0]
            if file_part and not re.match(r"[a-z][a-z0-9+.\-]*:", file_part):
                linked.add((path.parent / unquote(file_part)).resolve())
    orphans = [str(p.relative_to(REPO)) for p in pages(DOCS) if p.resolve() not in linked]
    assert not orphans, f"pages nobody links to: {orphans}"
