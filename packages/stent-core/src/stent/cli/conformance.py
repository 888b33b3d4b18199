"""``stent conformance URL``: run the storage and notifier conformance suites against any installed backend.

The command writes a temporary test module that subclasses :class:`~stent.testing.conformance.StorageConformance`
and/or :class:`~stent.testing.conformance.notifier.NotifierConformance`, with fixtures that build backends from
the URL, runs pytest on it, and prints a summary (``--json`` for scripts).  Exit 0 when every test passed (skips
of optional capabilities are fine), 1 when any failed, 2 for a bad URL or missing pytest.

Each test needs a fresh, isolated backend, so the URL is a template:

* ``{id}`` anywhere in it is replaced by a fresh token (lower-case letters and digits) for each backend made:
  ``postgresql://localhost/scratch?schema=conf_{id}``, ``redis://localhost:6379?prefix=conf-{id}``.  Peers of
  one backend (second connections, and notifiers of one namespace) get the same token.  Use a scratch database:
  schemas and prefixes made by the run are left behind.
* ``sqlite://`` URLs need no placeholder: each backend is a new file in a temporary directory (the URL's query
  options are kept).
* ``memory://`` needs none either: each storage is a new instance, and notifiers of one namespace share one.
* Any other URL without ``{id}`` is refused unless ``--shared`` says the tests may share one backend (they
  may then see each other's data and fail for that reason).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from typing import Any

from stent.backends import parse_scheme, redact_url
from stent.cli import common
from stent.cli.common import CommandError

PLACEHOLDER = "{id}"


def register(commands: Any) -> None:
    p = commands.add_parser("conformance", help="run stent's conformance suites against a backend URL")
    p.add_argument("url", metavar="URL", help="backend URL; put {id} where a per-test name isolates tests")
    p.add_argument("--kind", choices=["storage", "notifier", "all"], default="all", help="which suite (all)")
    p.add_argument("-k", dest="keyword", help="only tests matching this pytest -k expression")
    p.add_argument("-x", "--exitfirst", action="store_true", help="stop at the first failure")
    p.add_argument("--shared", action="store_true", help="allow a URL without {id}: tests share one backend")
    p.add_argument("--keep", action="store_true", help="keep the generated test directory and print its path")
    p.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print a JSON summary")
    p.set_defaults(handler=run_conformance)


# -- used by the generated module ---------------------------------------------------------------------------


def token(*parts: str) -> str:
    """A name fit for a schema, a prefix or a file: lower-case letters and digits, starting with a letter."""
    return "c" + re.sub(r"[^a-z0-9]", "", "".join(parts).lower())


def concrete_url(template: str, mode: str, directory: str, name: str) -> str:
    """The URL of one backend named ``name``, from the template and the isolation mode."""
    if mode == "template":
        return template.replace(PLACEHOLDER, name)
    if mode == "sqlite":
        query = template.partition("?")[2]
        path = os.path.join(directory, f"{name}.db")
        return f"sqlite:///{path}" + (f"?{query}" if query else "")
    return template  # memory (a new instance per resolve) or shared


# -- the command --------------------------------------------------------------------------------------------


def isolation_mode(url: str, scheme: str, shared: bool) -> str:
    if PLACEHOLDER in url:
        return "template"
    if scheme == "sqlite":
        return "sqlite"
    if scheme == "memory":
        return "memory"
    if shared:
        return "shared"
    raise CommandError(
        f"{redact_url(url)} has no {PLACEHOLDER} placeholder, so every test would share one backend; put {PLACEHOLDER}"
        " where a per-test name isolates them (e.g. ?schema=conf_{id} for PostgreSQL, ?prefix=conf-{id} for Redis"
        " or NATS), or pass --shared",
        common.USAGE,
    )


def kinds_for(url: str, wanted: str) -> tuple[str, list[str]]:
    """The canonical scheme, and which suites apply: the kinds this scheme's installed plugins provide."""
    from stent.plugins import get_plugin_host

    scheme = parse_scheme(url.replace(PLACEHOLDER, "x"), "storage")
    host = get_plugin_host()
    provided = [k for k in ("storage", "notifier") if scheme in host.schemes(k)]
    if not provided:
        from stent.errors import BackendNotInstalled

        host.make("storage", url.replace(PLACEHOLDER, "x"))  # raises the registry's message, naming the package
        raise BackendNotInstalled(f"no storage or notifier plugin serves {scheme}://")
    if wanted == "all":
        return scheme, provided
    if wanted not in provided:
        raise CommandError(f"{scheme}:// provides no {wanted} (it provides: {', '.join(provided)})", common.USAGE)
    return scheme, [wanted]


def generate_module(url: str, mode: str, directory: str, kinds: list[str]) -> str:
    """The text of the test module for ``url``."""
    lines = [
        '"""Generated by `stent conformance`: the conformance suites against one backend URL."""',
        "",
        "import uuid",
        "",
        "import pytest",
        "",
        "from stent.cli.conformance import concrete_url, token",
        "from stent import plugins",
        "",
        f"URL = {url!r}",
        f"MODE = {mode!r}",
        f"DIRECTORY = {directory!r}",
        "URLS = {}",
        "",
    ]
    if "storage" in kinds:
        lines += [
            "from stent.testing.conformance import StorageConformance",
            "",
            "",
            "@pytest.fixture",
            "async def make_storage():",
            "    made = []",
            "",
            "    async def make(clock):",
            "        url = concrete_url(URL, MODE, DIRECTORY, token(uuid.uuid4().hex[:12]))",
            "        storage = plugins.make_storage(url)",
            "        await storage.init_db()",
            "        made.append(storage)",
            "        URLS[id(storage)] = url  # its peers connect to the same backend",
            "        return storage",
            "",
            "    yield make",
            "    for storage in made:",
            "        await storage.close()",
            "",
            "",
        ]
        if mode != "memory":  # a memory:// URL makes a separate store, not a second client of the same one
            lines += [
                "@pytest.fixture",
                "async def make_peer_storage():",
                "    peers = []",
                "",
                "    async def peer(storage):",
                "        other = plugins.make_storage(URLS[id(storage)])",
                "        peers.append(other)",
                "        return other",
                "",
                "    yield peer",
                "    for other in peers:",
                "        await other.close()",
                "",
                "",
            ]
        lines += [
            "@pytest.fixture",
            "async def make_storage_listener():",
            "    made = []",
            "",
            "    async def listen(storage):  # the scheme's notifier hears what its storage announces",
            "        notifier = plugins.make_notifier(URLS[id(storage)])",
            "        await notifier.connect()",
            "        made.append(notifier)",
            "        return notifier",
            "",
            "    yield listen",
            "    for notifier in made:",
            "        await notifier.close()",
            "",
            "",
            "class TestStorageConformance(StorageConformance):",
            "    pass",
            "",
            "",
        ]
    if "notifier" in kinds:
        lines += [
            "from stent.testing.conformance.notifier import NotifierConformance",
            "",
            "",
            "@pytest.fixture",
            "async def make_notifier():",
            "    run = uuid.uuid4().hex[:10]",
            "    made = []",
            "    shared = {}",
            "",
            "    async def make(*, namespace='main'):",
            "        if MODE == 'memory' and namespace in shared:",
            "            return shared[namespace]  # one memory:// notifier is the whole bus of a namespace",
            "        notifier = plugins.make_notifier(concrete_url(URL, MODE, DIRECTORY, token(run, namespace)))",
            "        await notifier.connect()",
            "        made.append(notifier)",
            "        shared[namespace] = notifier",
            "        return notifier",
            "",
            "    yield make",
            "    for notifier in made:",
            "        await notifier.close()",
            "",
            "",
            "class TestNotifierConformance(NotifierConformance):",
            "    pass",
            "",
        ]
    return "\n".join(lines)


PYTEST_INI = """[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
"""


def run_conformance(args: argparse.Namespace) -> int:
    json_out = bool(getattr(args, "json", False))
    try:
        scheme, kinds = kinds_for(args.url, args.kind)
        mode = isolation_mode(args.url, scheme, args.shared)
        try:
            __import__("pytest")
        except ImportError:
            raise CommandError(
                "the conformance suites run on pytest; install it: pip install 'stent-core[testing]'", common.USAGE
            ) from None
    except Exception as exc:
        print(f"stent conformance: {common.describe(exc)}", file=sys.stderr)
        return common.exit_code_of(exc)
    directory = tempfile.mkdtemp(prefix="stent-conformance-")
    try:
        return _run(args, kinds, mode, directory, json_out)
    except KeyboardInterrupt:
        print("\nstent conformance: interrupted", file=sys.stderr)
        return common.INTERRUPTED
    finally:
        if args.keep:
            print(f"generated tests kept in {directory}", file=sys.stderr)
        else:
            import shutil

            shutil.rmtree(directory, ignore_errors=True)


def _run(args: argparse.Namespace, kinds: list[str], mode: str, directory: str, json_out: bool) -> int:
    module = os.path.join(directory, "test_stent_conformance.py")
    with open(module, "w") as f:
        f.write(generate_module(args.url, mode, directory, kinds))
    with open(os.path.join(directory, "pytest.ini"), "w") as f:
        f.write(PYTEST_INI)
    report = os.path.join(directory, "report.xml")
    command = [
        sys.executable, "-m", "pytest", module, "-c", os.path.join(directory, "pytest.ini"),
        "--rootdir", directory, "--confcutdir", directory, "-p", "no:cacheprovider",
        "-p", "stent.testing.conformance.plugin",  # async tests without pytest-asyncio; the capabilities summary
        f"--junitxml={report}", "-q", "-rfEs",
    ]  # fmt: skip
    if args.keyword:
        command += ["-k", args.keyword]
    if args.exitfirst:
        command.append("-x")
    if not json_out:
        print(f"stent conformance: {', '.join(kinds)} suite(s) against {redact_url(args.url)}", flush=True)
    # pytest's progress goes to the terminal as it runs; with --json it goes to stderr, keeping stdout for JSON.
    result = subprocess.run(command, cwd=directory, stdout=sys.stderr if json_out else None, check=False)
    if result.returncode == 5:
        print("stent conformance: no test matched (check -k)", file=sys.stderr)
        return common.USAGE
    summary = read_report(report)
    summary.update({"url": redact_url(args.url), "suites": kinds})
    if summary["tests"] == 0 and result.returncode not in (0, 1):
        print(f"stent conformance: pytest failed to run (exit {result.returncode})", file=sys.stderr)
        return common.FAILED
    if json_out:
        common.print_json(summary)
    else:
        print(
            f"\nconformance of {summary['url']}: {summary['passed']} passed, {summary['failed']} failed,"
            f" {summary['skipped']} skipped (optional capabilities not declared or not testable from a URL)"
        )
        for name in summary["failures"]:
            print(f"  FAILED {name}")
    return common.OK if result.returncode == 0 and summary["failed"] == 0 else common.FAILED


def read_report(path: str) -> dict[str, Any]:
    """Counts and failed test names from pytest's JUnit XML report."""
    summary: dict[str, Any] = {"tests": 0, "passed": 0, "failed": 0, "skipped": 0, "failures": []}
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return summary
    for case in root.iter("testcase"):
        summary["tests"] += 1
        name = f"{case.get('classname', '').rsplit('.', 1)[-1]}::{case.get('name')}"
        if case.find("failure") is not None or case.find("error") is not None:
            summary["failed"] += 1
            summary["failures"].append(name)
        elif case.find("skipped") is not None:
            summary["skipped"] += 1
        else:
            summary["passed"] += 1
    return summary
