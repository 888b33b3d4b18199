"""The conformance suite's pytest plugin: a summary of what each backend declared, passed and skipped.

Load it from your top-level ``conftest.py`` (it is never loaded automatically)::

    pytest_plugins = ["stent.testing.conformance.plugin"]

It also loads :mod:`stent.testing.pytest_plugin`, which runs the suite's async tests when pytest-asyncio is not
installed.  At the end of the run it prints one block per conformance class that ran::

    ========================= stent conformance =========================
    storage suite tests/test_mine.py::TestMyStorageConformance (MyStorage)
      declared: durable, shared
      required: 110 passed
      shared: 4 passed
      durable: 2 passed
      transactional_notifications: 3 skipped (not declared)
      verdict: conforms

The counts come from the tests' ``user_properties``, so the summary is right under pytest-xdist too.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import attrs
import pytest

from stent.testing.conformance._support import StorageCase
from stent.testing.conformance.capabilities import (
    BACKEND,
    CAPABILITY,
    DECLARED,
    NOTIFIER_CAPABILITIES,
    STORAGE_CAPABILITIES,
    SUITE,
    capability_of,
)
from stent.testing.conformance.notifier_support import NotifierCase

pytest_plugins = ["stent.testing.pytest_plugin"]

REQUIRED = "required"
SUMMARY_PLUGIN = "stent-conformance-summary"
_ORDER = ("passed", "failed", "error", "skipped", "xfailed", "xpassed")
_KNOWN = {"storage": STORAGE_CAPABILITIES, "notifier": NOTIFIER_CAPABILITIES}


@attrs.define
class SuiteTally:
    """What one conformance class (one backend) did in this run."""

    kind: str
    backends: set[str] = attrs.field(factory=set)
    declared: set[str] = attrs.field(factory=set)
    #: Outcome counts of the required tests (``REQUIRED``) and of each capability's tests.
    groups: dict[str, Counter[str]] = attrs.field(factory=dict)

    def lines(self) -> list[str]:
        known = _KNOWN[self.kind]
        lines = [f"  declared: {', '.join(sorted(self.declared)) or 'nothing'}"]
        unknown = sorted(self.declared - set(known))
        if unknown:
            lines.append(f"  declared but unknown to this suite (so untested): {', '.join(unknown)}")
        groups = [REQUIRED, *(name for name in known if name in self.groups)]
        for group in groups:
            counts = self.groups.get(group, Counter())
            text = ", ".join(f"{counts[o]} {o}" for o in _ORDER if counts[o]) or "none ran"
            if group != REQUIRED and group not in self.declared:
                text += " (not declared)"
            lines.append(f"  {group}: {text}")
        lines.append(f"  verdict: {self.verdict()}")
        return lines

    def verdict(self) -> str:
        judged = [REQUIRED, *(group for group in self.groups if group in self.declared)]
        broken = sum(self.groups.get(g, Counter())[o] for g in judged for o in ("failed", "error"))
        if broken:
            return f"does not conform ({broken} failed)"
        required = self.groups.get(REQUIRED, Counter())
        if required["skipped"]:
            return f"incomplete ({required['skipped']} required tests skipped)"
        if not required["passed"] + required["xfailed"]:
            return "incomplete (no required test ran)"
        gaps = sum(self.groups.get(g, Counter())["xfailed"] for g in judged)
        return f"conforms, but for {gaps} known gap(s) declared as expected failures" if gaps else "conforms"


@attrs.define
class Tally:
    suites: dict[str, SuiteTally] = attrs.field(factory=dict)
    #: Each test's outcome so far, by node id: the worst of its phases.
    outcomes: dict[str, tuple[str, str, str]] = attrs.field(factory=dict)

    def add(self, report: pytest.TestReport) -> None:
        properties = report.user_properties
        kind = _first(properties, SUITE)
        if kind is None:
            return
        key = report.nodeid.rsplit("::", 1)[0]
        suite = self.suites.setdefault(key, SuiteTally(kind))
        suite.backends.update(str(v) for n, v in properties if n == BACKEND)
        suite.declared.update(d for n, v in properties if n == DECLARED for d in str(v).split(",") if d)
        group = _first(properties, CAPABILITY) or REQUIRED
        outcome = _outcome(report)
        previous = self.outcomes.get(report.nodeid)
        if outcome is None or (previous is not None and previous[2] != "passed"):
            return  # a phase that decides nothing, or the test already ended badly in an earlier phase
        if previous is not None:
            suite.groups[previous[1]][previous[2]] -= 1
        suite.groups.setdefault(group, Counter())[outcome] += 1
        self.outcomes[report.nodeid] = (key, group, outcome)


def _first(properties: Iterable[tuple[str, object]], name: str) -> str | None:
    return next((str(value) for key, value in properties if key == name), None)


def _outcome(report: pytest.TestReport) -> str | None:
    """What this phase of a test says about the test, or ``None`` when it says nothing yet."""
    expected_failure = hasattr(report, "wasxfail")
    if report.when == "call":
        if report.passed:
            return "xpassed" if expected_failure else "passed"
        if report.skipped:
            return "xfailed" if expected_failure else "skipped"
        return "failed"  # a strict xfail that passed is reported failed, and counts so
    if report.failed:
        return "error"
    if report.skipped and report.when == "setup":
        return "xfailed" if expected_failure else "skipped"
    return None


class SummaryReporter:
    """Collects every conformance test's outcome and prints the summary; one per pytest run."""

    def __init__(self) -> None:
        self.tally = Tally()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.tally.add(report)

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.tally.suites:
            return
        terminalreporter.section("stent conformance")
        for key, suite in self.tally.suites.items():
            backends = f" ({', '.join(sorted(suite.backends))})" if suite.backends else ""
            terminalreporter.write_line(f"{suite.kind} suite {key}{backends}")
            for line in suite.lines():
                terminalreporter.write_line(line)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "stent_capability(name): a conformance test of the optional capability `name` (set by stent)"
    )
    # An object plugin, so the hooks that get no config (pytest_runtest_logreport) still find this run's tally.
    if not config.pluginmanager.has_plugin(SUMMARY_PLUGIN):
        config.pluginmanager.register(SummaryReporter(), SUMMARY_PLUGIN)


def _kind(cls: type | None) -> str | None:
    if cls is None:
        return None
    if issubclass(cls, StorageCase):
        return "storage"
    if issubclass(cls, NotifierCase):
        return "notifier"
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        cls = getattr(item, "cls", None)
        kind = _kind(cls)
        if kind is None:
            continue
        item.user_properties.append((SUITE, kind))
        needed = capability_of(cls, getattr(item, "originalname", item.name))
        if needed is not None:
            item.user_properties.append((CAPABILITY, needed))
            item.add_marker(pytest.mark.stent_capability(needed))
