"""docs/reference/configuration.md names every option of the public API, and says its real default.

The options are read from the code itself (signatures, the adapters' URL settings, the ``stent worker`` parser), so
an option added, removed or given another default fails here until the reference page says the same.
"""

from __future__ import annotations

import inspect
import re
import signal
import sys
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from docs_snippets import REPO
from reference_pages import Row, Section, leading_code, sections

from stent import RetryPolicy, Stent
from stent.cli.main import build_parser
from stent.engine.durable import DurableFunction

PAGE = REPO / "docs" / "reference" / "configuration.md"
_EMPTY = inspect.Parameter.empty
_NAMES_IN_DEFAULTS = {"timedelta": timedelta, "signal": signal, "Exception": Exception}


def options_of(
    fn: Callable[..., Any], skip: set[str] = frozenset(), *, with_default: bool = False
) -> dict[str, Any]:
    """``fn``'s parameters by name, with their defaults (``inspect.Parameter.empty`` when required)."""
    found = {}
    for name, parameter in inspect.signature(fn).parameters.items():
        if name in skip or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        if with_default and parameter.default is _EMPTY:
            continue
        found[name] = parameter.default
    return found


def same_default(text: str, default: Any) -> bool:
    """Whether the page's text for a default (``None``, ``5.0``, ``timedelta(days=7)``, ``stent``) is ``default``."""
    try:
        value = eval(text, {"__builtins__": {}}, _NAMES_IN_DEFAULTS)  # the page's own literals, nothing else
    except Exception:
        return text.strip().lower() == str(default).lower()
    return bool(value == default)


def row_name(row: Row) -> str | None:
    return leading_code(next(iter(row.values()), ""))


def problems(section: Section, options: dict[str, Any]) -> list[str]:
    """What the section gets wrong about ``options``: missing, unknown, or with another default."""
    documented = {row_name(row): row for row in section.rows}
    found = []
    for name in sorted(set(options) - set(documented)):
        found.append(f"{section.title}: option {name!r} is not documented")
    for name in sorted(set(documented) - set(options), key=str):
        found.append(f"{section.title}: documents {name!r}, which is not an option")
    for name in sorted(set(options) & set(documented)):
        default = options[name]
        text = leading_code(documented[name].get("default", ""))
        if default is _EMPTY:
            continue
        if text is None or not same_default(text, default):
            found.append(f"{section.title}: the default of {name!r} is {default!r}, the page says {text!r}")
    return found


@pytest.fixture(scope="module")
def page() -> dict[str, Section]:
    return sections(PAGE)


API = {
    "`Stent(...)`": lambda: options_of(Stent.__init__, {"self"}),
    "`@Stent.durable(...)`": lambda: options_of(DurableFunction.__init__, {"self", "func"}),
    "`dispatch(...)`": lambda: options_of(Stent.dispatch, {"self", "fn"}),
    "`serve(...)`": lambda: options_of(Stent.serve, {"self"}),
    "`RetryPolicy(...)`": lambda: options_of(RetryPolicy),
}


@pytest.mark.parametrize("title", list(API))
def test_every_option_of_the_public_api_is_documented_with_its_default(
    page: dict[str, Section], title: str
) -> None:
    """Each parameter of the constructor, decorator, dispatch, serve and RetryPolicy has a row with its default."""
    assert title in page, f"{PAGE.name} has no section {title!r}"
    assert not problems(page[title], API[title]()), "\n".join(problems(page[title], API[title]()))


# Calls documented in sections of their own, or that take another call's options.
_OWN_SECTIONS = {"__init__", "dispatch", "serve", "durable", "backends", "notifications", "bootstrap"}


def other_calls() -> Iterator[tuple[str, dict[str, Any]]]:
    """Every public method and operation of ``Stent`` with the parameters that have defaults."""
    for name, member in vars(Stent).items():
        if name.startswith("_") or name in _OWN_SECTIONS:
            continue
        function = member.__func__ if isinstance(member, staticmethod | classmethod) else member
        if inspect.isclass(function) or not callable(function):
            continue
        yield name, options_of(function, {"self", "cls"}, with_default=True)


def test_every_option_of_the_other_calls_is_documented(page: dict[str, Section]) -> None:
    """Each optional parameter of every other public method of Stent has a row under "Other calls"."""
    wanted = {(call, option): default for call, options in other_calls() for option, default in options.items()}
    documented = {}
    for row in page["Other calls"].rows:
        call = (leading_code(row["call"]) or "").split("(")[0].removeprefix("Stent.")
        documented[(call, leading_code(row["option"]))] = leading_code(row["default"])
    assert sorted(set(wanted) - set(documented)) == [], "undocumented options"
    assert sorted(set(documented) - set(wanted), key=str) == [], "documented options that do not exist"
    wrong = [key for key, default in wanted.items() if not same_default(documented[key] or "", default)]
    assert wrong == [], f"defaults that differ from the code: {wrong}"


def test_stent_worker_flags_have_the_defaults_of_serve(
    page: dict[str, Section], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each serve() option names its `stent worker` flag, and the flag's default is the option's (in seconds)."""
    monkeypatch.delenv("STENT_NOTIFIER_URL", raising=False)
    parser = build_parser(with_plugins=False)
    worker = next(a for a in parser._subparsers._group_actions).choices["worker"]  # type: ignore[union-attr]
    flags = {option: action for action in worker._actions for option in action.option_strings}
    defaults = options_of(Stent.serve, {"self"})
    section = page["`serve(...)`"]
    for row in section.rows:
        name, flag = row_name(row), leading_code(row["`stent worker` flag"])
        if name == "lifecycle":
            assert flag is None  # the command makes the lifecycle itself
            continue
        assert flag in flags, f"serve option {name!r}: the page names {flag!r}, which `stent worker` does not take"
        if name == "worker_id":  # the command names its worker itself; the page says how
            assert "<host>-<pid>-<random>" in section.text
            continue
        default = defaults[name]
        seconds = default.total_seconds() if isinstance(default, timedelta) else default
        assert flags[flag].default == seconds, (
            f"{flag} defaults to {flags[flag].default!r}, serve({name}) to {default!r}"
        )


def _postgres_settings() -> dict[str, Any]:
    from stent_postgres.config import OPTIONS, parse_settings

    settings = parse_settings("postgresql://localhost/db", {})
    return {name: getattr(settings, name) for name in OPTIONS}


def _redis_settings() -> dict[str, Any]:
    from stent_redis.settings import parse_settings

    settings = parse_settings("redis://localhost")
    keywords = [n for n, p in inspect.signature(parse_settings).parameters.items() if p.kind is p.KEYWORD_ONLY]
    return {name: getattr(settings, name) for name in keywords}


def _nats_settings() -> dict[str, Any]:
    from stent_nats.settings import _OPTIONS, parse_settings

    settings = parse_settings("nats://localhost")
    return {name: getattr(settings, name) for name in _OPTIONS}


def _sqlite_settings() -> dict[str, Any]:
    from stent_sqlite import SQLiteStorage

    return options_of(SQLiteStorage.__init__, {"self", "path"})


def _postgres_notifier_settings() -> dict[str, Any]:
    from stent_postgres import PostgresNotifier

    return options_of(PostgresNotifier.__init__, {"self", "dsn"})


URL_OPTIONS = {
    "SQLite options": _sqlite_settings,
    "PostgreSQL options": _postgres_settings,
    "Redis options": _redis_settings,
    "NATS options": _nats_settings,
    "PostgreSQL notifier options": _postgres_notifier_settings,
}


@pytest.mark.parametrize("title", list(URL_OPTIONS))
def test_every_url_option_of_the_adapters_is_documented_with_its_default(
    page: dict[str, Section], title: str
) -> None:
    """Each option an adapter reads from its URL (or keywords) has a row with the default it really applies."""
    assert not problems(page[title], URL_OPTIONS[title]()), "\n".join(problems(page[title], URL_OPTIONS[title]()))


def test_every_environment_variable_stent_reads_is_documented(page: dict[str, Section]) -> None:
    """Each STENT_* variable named in the distributions' sources has a row, and each row names a real one."""
    sources = "".join(p.read_text(encoding="utf-8") for p in (REPO / "packages").glob("*/src/**/*.py"))
    read = set(re.findall(r"[\"'](STENT_[A-Z_]+)[\"']", sources))
    documented = {
        name
        for row in page["Environment variables"].rows
        for name in re.findall(r"`(STENT_[A-Z_]+)`", row["variable"])
    }
    assert read == documented


def test_the_checker_reports_a_missing_option_and_a_wrong_default(tmp_path: Path) -> None:
    """A section that lacks an option, names one that does not exist, or gives a wrong default is reported."""
    page = tmp_path / "page.md"
    page.write_text(
        "## `f(...)`\n\n| option | default | meaning |\n|---|---|---|\n"
        "| `lease` | `timedelta(minutes=5)` | ok |\n| `size` | `10` | wrong default |\n| `gone` | `1` | no such option |\n",
        encoding="utf-8",
    )

    def f(lease: timedelta = timedelta(minutes=5), size: int = 20, colour: str = "red") -> None: ...

    found = problems(sections(page)["`f(...)`"], options_of(f))
    assert found == [
        "`f(...)`: option 'colour' is not documented",
        "`f(...)`: documents 'gone', which is not an option",
        "`f(...)`: the default of 'size' is 20, the page says '10'",
    ]
