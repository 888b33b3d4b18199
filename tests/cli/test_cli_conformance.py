"""``stent conformance URL``: the generated suite runs against installed backends and reports a summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stent.cli import common
from stent.cli.conformance import concrete_url, read_report, token
from stent.cli.main import main


def run(capfd: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capfd.readouterr()
    code = main(list(args))
    out, err = capfd.readouterr()
    return code, out, err


def test_memory_storage_and_notifier_suites_pass(capfd: pytest.CaptureFixture[str]) -> None:
    """memory:// provides both kinds: a slice of each suite runs and passes, with a summary line."""
    code, out, err = run(capfd, "conformance", "memory://", "-k", "claim or delivers")
    assert code == 0, out + err
    assert "storage, notifier suite(s) against memory://" in out
    assert "0 failed" in out


def test_sqlite_storage_suite_passes_with_a_json_summary(
    capfd: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """sqlite:// gets a temporary file per backend; --json prints counts and no failures."""
    code, out, err = run(capfd, "conformance", "sqlite://", "--json", "-k", "stale_token or never_share")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["suites"] == ["storage"]
    assert summary["passed"] > 0 and summary["failed"] == 0


def test_a_server_url_without_a_placeholder_is_refused(capfd: pytest.CaptureFixture[str]) -> None:
    """Tests sharing one PostgreSQL schema would see each other's rows: {id} or --shared is required."""
    code, _, err = run(capfd, "conformance", "postgresql://postgres@127.0.0.1/test")
    assert code == common.USAGE
    assert "{id}" in err and "--shared" in err


@pytest.mark.parametrize(
    ("url", "extra", "message"),
    [
        ("nosuch://x", [], "unknown storage URL scheme"),
        ("not a url", [], "is not a storage URL"),
        ("redis://127.0.0.1:6379?prefix=p{id}", ["--kind", "storage"], "provides no storage"),
        ("memory://", ["-k", "no_test_has_this_name"], "no test matched"),
    ],
    ids=["scheme", "malformed", "kind", "nothing-selected"],
)
def test_bad_urls_and_selections_are_usage_errors(
    capfd: pytest.CaptureFixture[str], url: str, extra: list[str], message: str
) -> None:
    """Unknown schemes, malformed URLs, a kind the scheme lacks, and a -k that selects nothing: exit 2."""
    code, _, err = run(capfd, "conformance", url, *extra)
    assert code == common.USAGE
    assert message in err


def test_urls_are_made_per_backend() -> None:
    """{id} is replaced by a token; SQLite gets a file in the run's directory and keeps its options."""
    name = token("ab12", "Main-NS")
    assert name == "cab12mainns"
    assert concrete_url("postgresql://h/db?schema=conf_{id}", "template", "/tmp/x", name).endswith(
        "schema=conf_cab12mainns"
    )
    assert concrete_url("sqlite:///ignored.db?busy_timeout=9", "sqlite", "/tmp/x", name) == (
        "sqlite:////tmp/x/cab12mainns.db?busy_timeout=9"
    )
    assert concrete_url("memory://", "memory", "/tmp/x", name) == "memory://"


def test_report_counts_failures_errors_and_skips(tmp_path: Path) -> None:
    """The JUnit report is read into counts and the names of failed tests."""
    report = tmp_path / "report.xml"
    report.write_text(
        '<testsuites><testsuite name="pytest">'
        '<testcase classname="test_stent_conformance.TestStorageConformance" name="test_ok"/>'
        '<testcase classname="test_stent_conformance.TestStorageConformance" name="test_bad">'
        '<failure message="boom"/></testcase>'
        '<testcase classname="test_stent_conformance.TestNotifierConformance" name="test_err"><error/></testcase>'
        '<testcase classname="test_stent_conformance.TestNotifierConformance" name="test_opt"><skipped/></testcase>'
        "</testsuite></testsuites>"
    )
    summary = read_report(str(report))
    assert (summary["passed"], summary["failed"], summary["skipped"]) == (1, 2, 1)
    assert summary["failures"] == ["TestStorageConformance::test_bad", "TestNotifierConformance::test_err"]
    assert read_report(str(tmp_path / "missing.xml"))["tests"] == 0
