"""Reading the tables of the reference pages (docs/reference/*.md), for the tests that compare them with the code.

A page is split into sections by its headings; each section keeps its Markdown tables (outside code fences) as
lists of rows, each row a dict from the header's text to the cell's text, and its whole text for other checks.
"""

from __future__ import annotations

import re
from pathlib import Path

import attrs

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_HEADING = re.compile(r"^(#{1,6})\s+(?P<title>.+?)\s*#*\s*$")
_SEPARATOR = re.compile(r"^\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")
_CODE = re.compile(r"`([^`]*)`")

Row = dict[str, str]


@attrs.define
class Section:
    title: str
    text: str = ""
    tables: list[list[Row]] = attrs.Factory(list)

    @property
    def rows(self) -> list[Row]:
        return [row for table in self.tables for row in table]


def split_cells(line: str) -> list[str]:
    """The cells of a table line; a ``|`` inside backticks belongs to its cell."""
    cells, current, in_code = [], [], False
    for char in line.strip().strip("|"):
        if char == "`":
            in_code = not in_code
        if char == "|" and not in_code:
            cells.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    cells.append("".join(current).strip())
    return cells


def sections(path: Path) -> dict[str, Section]:
    """The page's sections by heading title (the text after the ``#``s)."""
    found: dict[str, Section] = {}
    section = found.setdefault("", Section(""))
    fence: str | None = None
    header: list[str] | None = None
    table: list[Row] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for index, line in enumerate(lines):
        section.text += line + "\n"
        match = _FENCE.match(line)
        if match:
            marker = match.group(1)
            if fence is None:
                fence = marker
            elif marker.startswith(fence[0]) and len(marker) >= len(fence):
                fence = None
            continue
        if fence is not None:
            continue
        heading = _HEADING.match(line)
        if heading:
            section = found.setdefault(heading.group("title"), Section(heading.group("title")))
            continue
        if line.lstrip().startswith("|"):
            following = lines[index + 1] if index + 1 < len(lines) else ""
            if header is None and _SEPARATOR.match(following):
                header, table = split_cells(line), []
                section.tables.append(table)
            elif header is not None and not _SEPARATOR.match(line):
                table.append(dict(zip(header, split_cells(line))))
        else:
            header = None
    return found


def code_spans(cell: str) -> list[str]:
    """The texts inside backticks, in order."""
    return _CODE.findall(cell)


def leading_code(cell: str) -> str | None:
    """The backticked text a cell starts with, or None when it starts with plain words."""
    cell = cell.strip()
    if not cell.startswith("`"):
        return None
    spans = code_spans(cell)
    return spans[0] if spans else None
