"""docs/reference/cli.md documents every `stent` subcommand and flag as the argument parser defines them.

The parser is built by ``stent.cli.main.build_parser`` (without third-party plugins), so a subcommand or flag
that is added, renamed or given another default fails here until the page follows.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from docs_snippets import REPO
from reference_pages import Section, code_spans, leading_code, sections

from stent.cli import common
from stent.cli.main import BUILTIN, build_parser

PAGE = REPO / "docs" / "reference" / "cli.md"
CLI_SOURCES = REPO / "packages" / "stent-core" / "src" / "stent" / "cli"
SHARED = {"-h", "--help", "--storage", "--json"}  # documented once, under "Global options"
_UNSET = (None, False, [], argparse.SUPPRESS)


def commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every subcommand as ("stent dlq replay", its parser), depth first."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield " ".join(("stent", *path, name)), sub
                yield from commands(sub, (*path, name))


def flags(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [
        a
        for a in parser._actions
        if a.option_strings and not isinstance(a, argparse._HelpAction) and not SHARED & set(a.option_strings)
    ]


def positionals(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if not a.option_strings and not isinstance(a, argparse._SubParsersAction)]


def default_problem(
    command: str, action: argparse.Action, cell: str, monkeypatch: pytest.MonkeyPatch
) -> str | None:
    """Why the page's default for ``action`` of ``command`` ("stent worker") is wrong, or None.

    A cell that starts with plain words ("off", "every queue") documents an unset default. A cell that starts
    with backticked text gives the value as typed on the command line (`5m`, `10`), read with the flag's own
    type, or `$VARIABLE` for a default taken from the environment.
    """
    text = leading_code(cell)
    if text is None:
        return None if action.default in _UNSET else f"defaults to {action.default!r}; the page gives no value"
    if text.startswith("$"):
        variable = text[1:]
        if action.default is argparse.SUPPRESS:  # the command reads the variable when it runs
            sources = "".join(p.read_text(encoding="utf-8") for p in CLI_SOURCES.glob("*.py"))
            return None if f'"{variable}"' in sources else f"no command reads ${variable}"
        monkeypatch.setenv(variable, "sentinel://from-the-environment")
        rebuilt = dict(_all(build_parser(with_plugins=False)))[command]
        monkeypatch.delenv(variable)
        found = [a.default for a in rebuilt._actions if a.option_strings == action.option_strings]
        return None if found == ["sentinel://from-the-environment"] else f"does not default to ${variable}"
    value: Any = action.type(text) if callable(action.type) else text
    return None if value == action.default else f"defaults to {action.default!r}, the page says `{text}`"


def _all(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield "stent", parser
    yield from commands(parser)


@pytest.fixture()
def parser(monkeypatch: pytest.MonkeyPatch) -> argparse.ArgumentParser:
    for variable in (common.STORAGE_ENV, common.NOTIFIER_ENV):
        monkeypatch.delenv(variable, raising=False)
    return build_parser(with_plugins=False)


@pytest.fixture(scope="module")
def page() -> dict[str, Section]:
    return sections(PAGE)


def table_problems(
    section: Section, parser: argparse.ArgumentParser, monkeypatch: pytest.MonkeyPatch
) -> list[str]:
    rows = {tuple(code_spans(row["flag"])): row for row in section.rows if "flag" in row}
    found = []
    for action in flags(parser):
        row = next((r for names, r in rows.items() if set(action.option_strings) <= set(names)), None)
        if row is None:
            found.append(f"{section.title}: {'/'.join(action.option_strings)} is not documented")
            continue
        problem = default_problem(section.title, action, row["default"], monkeypatch)
        if problem:
            found.append(f"{section.title}: {action.option_strings[0]} {problem}")
    known = {o for action in flags(parser) for o in action.option_strings}
    for names in rows:
        for name in names:
            if name.startswith("-") and name not in known:
                found.append(f"{section.title}: documents {name}, which the command does not take")
    return found


def test_every_subcommand_has_a_section_with_each_flag_and_its_default(
    page: dict[str, Section], parser: argparse.ArgumentParser, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each subcommand has a "stent ..." section whose table names each of its flags with the parser's default."""
    found = []
    for title, sub in commands(parser):
        if title not in page:
            found.append(f"no section {title!r}")
            continue
        found += table_problems(page[title], sub, monkeypatch)
        for action in positionals(sub):
            shown = action.metavar or action.dest.upper()
            if not re.search(rf"\b{re.escape(str(shown))}\b", page[title].text):
                found.append(f"{title}: the argument {shown} is not shown")
    assert not found, "\n".join(found)


def test_the_page_documents_no_command_that_does_not_exist(
    page: dict[str, Section], parser: argparse.ArgumentParser
) -> None:
    """Every "stent ..." section is a built-in subcommand, and every built-in command has one."""
    real = {title for title, _ in commands(parser)}
    documented = {title for title in page if title.startswith("stent ")}
    assert documented == real
    assert {f"stent {name}" for name in BUILTIN} <= documented


def test_global_options_are_documented_with_their_defaults(
    page: dict[str, Section], parser: argparse.ArgumentParser, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The options before the subcommand (--version, --storage, --json, --log-level) have rows and defaults."""
    rows = {tuple(code_spans(row["flag"])): row for row in page["Global options"].rows}
    found = []
    for action in parser._actions:
        if not action.option_strings or isinstance(action, argparse._HelpAction):
            continue
        row = next((r for names, r in rows.items() if set(action.option_strings) <= set(names)), None)
        if row is None:
            found.append(f"{action.option_strings[0]} is not documented")
        elif problem := default_problem("stent", action, row["default"], monkeypatch):
            found.append(f"{action.option_strings[0]} {problem}")
    assert not found, "\n".join(found)


def test_exit_codes_are_the_commands_own() -> None:
    """The exit code table lists exactly the codes stent.cli.common defines."""
    table = sections(PAGE)["Exit codes"].rows
    codes = {common.OK, common.FAILED, common.USAGE, common.NOT_FOUND, common.UNAVAILABLE, common.INTERRUPTED}
    assert {int(row["code"]) for row in table} == codes


def test_environment_variables_the_command_reads_are_documented(page: dict[str, Section]) -> None:
    """Each STENT_* variable the CLI or the plugin host reads has a row."""
    sources = [*CLI_SOURCES.glob("*.py"), CLI_SOURCES.parent / "plugins.py"]
    read = set(re.findall(r"[\"'](STENT_[A-Z_]+)[\"']", "".join(p.read_text(encoding="utf-8") for p in sources)))
    documented = {leading_code(row["variable"]) for row in page["Environment variables"].rows}
    assert read == documented


def test_the_checker_reports_a_missing_flag_and_a_wrong_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A table that lacks a flag, gives a wrong default, or names a flag the command lacks is reported."""
    parser = argparse.ArgumentParser(prog="stent demo")
    parser.add_argument("--lease", type=common.duration, default=300.0)
    parser.add_argument("--rows", type=common.positive_int, default=8)
    parser.add_argument("--fresh", action="store_true")
    page = tmp_path / "cli.md"
    page.write_text(
        "### stent demo\n\n| flag | default | meaning |\n|---|---|---|\n"
        "| `--lease` | `5m` | ok |\n| `--rows` | `10` | wrong |\n| `--colour` | off | not a flag |\n",
        encoding="utf-8",
    )
    found = table_problems(sections(page)["stent demo"], parser, monkeypatch)
    assert found == [
        "stent demo: --rows defaults to 8, the page says `10`",
        "stent demo: --fresh is not documented",
        "stent demo: documents --colour, which the command does not take",
    ]
