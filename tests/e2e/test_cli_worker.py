"""``stent worker`` as a real process: ready line, health and metrics ports, tracing across processes, SIGTERM
drain, and every way a start can go wrong."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stent import Stent

HERE = Path(__file__).parent
APP = HERE / "cli_worker_app.py"
sys.path.insert(0, str(HERE))
import cli_worker_app as app

pytestmark = pytest.mark.timeout(120)

FAST = [
    "--poll-interval",
    "0.05",
    "--poll-interval-max",
    "0.2",
    "--lease-duration",
    "5s",
    "--heartbeat-interval",
    "1s",
]


def stent(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``python -m stent.cli.main ARGS`` to completion."""
    return subprocess.run(
        [sys.executable, "-m", "stent.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


class Worker:
    """A ``stent worker`` process, read line by line until it says it is ready."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "stent.cli.main", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
        assert self.process.stdout is not None
        self.ready = self.process.stdout.readline()  # bounded by the test's timeout
        if "ready" not in self.ready:
            self.process.kill()
            _, err = self.process.communicate(timeout=20)
            raise AssertionError(f"worker did not get ready: {self.ready!r}\n{err}")

    def ports(self) -> dict[str, int]:
        """Path -> port, from the ready line's http://host:port /paths parts."""
        found: dict[str, int] = {}
        for port, paths in re.findall(r"http://[^:]+:(\d+) (\S+?)[;)]", self.ready):
            for path in paths.split(","):
                found[path] = int(port)
        return found

    def stop(self) -> tuple[int, str, str]:
        self.process.send_signal(signal.SIGTERM)
        out, err = self.process.communicate(timeout=30)
        return self.process.returncode, out, err

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate(timeout=20)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[str]:
    path = tmp_path / "worker.db"
    result = stent("--storage", f"sqlite:///{path}", "init")
    assert result.returncode == 0, result.stderr
    yield f"sqlite:///{path}"


async def http_get(port: int, path: str) -> tuple[int, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    data = await reader.read()
    writer.close()
    head, _, body = data.decode().partition("\r\n\r\n")
    return int(head.split()[1]), body


async def test_worker_serves_health_and_metrics_runs_work_and_drains_on_sigterm(db: str) -> None:
    """Ready line with ports; /ready and /live 200; work completes and shows in /metrics; SIGTERM exits 0."""
    pytest.importorskip("prometheus_client")
    worker = Worker(
        "--storage", db, "worker", str(APP), "--worker-id", "w-health", *FAST,
        "--health-port", "0", "--health-host", "127.0.0.1", "--metrics-port", "0", "--metrics-host", "127.0.0.1",
        "--metrics-interval", "0.2",
    )  # fmt: skip
    try:
        assert "stent worker w-health ready" in worker.ready
        assert "loop uvloop" in worker.ready, "with uvloop installed, --loop auto (the default) takes it"
        ports = worker.ports()
        assert {"/live", "/ready", "/health", "/metrics"} <= set(ports)
        assert (await http_get(ports["/ready"], "/ready"))[0] == 200
        assert (await http_get(ports["/live"], "/live"))[0] == 200
        status, body = await http_get(ports["/health"], "/health")
        assert status == 200 and json.loads(body)["workers"][0]["worker_id"] == "w-health"
        executor = Stent(db)
        eid = await executor.dispatch(app.sum_squares, 4)
        assert await executor.wait_for(eid, expiry=30) == 14
        await executor.close()
        deadline = time.monotonic() + 20
        while True:  # the gauges refresh every 0.2 s; the counters are immediate
            status, metrics = await http_get(ports["/metrics"], "/metrics")
            if "stent_queue_depth{queue=" in metrics or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        assert status == 200
        assert 'stent_tasks_completed_total{kind="call",queue="default",step="e2e.cli.square"} 4.0' in metrics
        assert 'stent_queue_depth{queue="*"} 0.0' in metrics
        assert 'stent_worker_ready{worker="w-health"} 1.0' in metrics
        code, out, err = worker.stop()
        assert code == 0, err
        assert "stent worker w-health stopped" in out
    finally:
        worker.kill()


async def test_otel_makes_one_trace_across_the_dispatching_and_the_working_process(
    db: str, tmp_path: Path
) -> None:
    """Dispatched inside a span here, run by a worker process with --otel: every run span joins that trace."""
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.trace import TracerProvider

    from stent.observability import otel

    spans_file = tmp_path / "spans.jsonl"
    worker = Worker(
        "--storage", db, "worker", str(APP), *FAST, "--otel", env={"STENT_TEST_SPANS": str(spans_file)}
    )
    provider = TracerProvider()
    otel.install(provider)
    try:
        executor = Stent(db)
        with provider.get_tracer("test").start_as_current_span("checkout") as checkout:
            eid = await executor.dispatch(app.sum_squares, 3)
        assert await executor.wait_for(eid, expiry=30) == 5
        await executor.close()
        assert worker.stop()[0] == 0
    finally:
        otel.uninstall()
        worker.kill()
    spans = [json.loads(line) for line in spans_file.read_text().splitlines()]
    runs = [s for s in spans if s["name"].startswith("stent.run ")]
    assert {s["name"] for s in runs} == {"stent.run e2e.cli.sum_squares", "stent.run e2e.cli.square"}
    assert {s["trace_id"] for s in runs} == {checkout.get_span_context().trace_id}
    root_ids = {s["span_id"] for s in runs if s["name"] == "stent.run e2e.cli.sum_squares"}
    assert all(s["parent_id"] in root_ids for s in runs if s["name"] == "stent.run e2e.cli.square")


@pytest.mark.parametrize(
    ("source", "shown"),
    [
        ("def broken(:\n", "SyntaxError"),
        ("import module_that_is_not_there\n", "ModuleNotFoundError: No module named 'module_that_is_not_there'"),
        ("raise RuntimeError('config missing')\n", "RuntimeError: config missing"),
    ],
    ids=["syntax", "import", "raises"],
)
def test_a_module_that_does_not_import_shows_why(db: str, tmp_path: Path, source: str, shown: str) -> None:
    """The import error, with the user's file and line, and exit 2; no worker starts."""
    module = tmp_path / "user_app.py"
    module.write_text("x = 1\n" + source)
    result = stent("--storage", db, "worker", str(module))
    assert result.returncode == 2
    assert f"importing {module} failed" in result.stderr
    assert shown in result.stderr
    assert "user_app.py" in result.stderr and "line 2" in result.stderr


def test_module_paths_that_do_not_exist(db: str, tmp_path: Path) -> None:
    """A missing file and a missing dotted module are usage errors that name them."""
    missing = stent("--storage", db, "worker", str(tmp_path / "nope.py"))
    assert missing.returncode == 2 and "no Python file at" in missing.stderr
    dotted = stent("--storage", db, "worker", "no_such_package.workflows")
    assert dotted.returncode == 2 and "No module named 'no_such_package'" in dotted.stderr


def test_a_missing_database_needs_init_db(tmp_path: Path) -> None:
    """Without --init-db a mistyped SQLite path is not found (exit 3) and not created; with it, the worker runs."""
    path = tmp_path / "fresh.db"
    result = stent("--storage", f"sqlite:///{path}", "worker", str(APP))
    assert result.returncode == 3 and "--init-db" in result.stderr
    assert not path.exists()
    worker = Worker("--storage", f"sqlite:///{path}", "worker", str(APP), "--init-db", *FAST)
    try:
        assert worker.stop()[0] == 0
    finally:
        worker.kill()
    assert path.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--lease-duration", "2s", "--heartbeat-interval", "5s"], "must be shorter than lease_duration"),
        (["--lease-duration", "soon"], "duration"),
        (["--max-concurrency", "0"], "must be 1 or more"),
        (["--queues", ","], "at least one name"),
        (["--health-port", "70000"], "a port is 0 to 65535"),
        (["--loop", "trio"], "invalid choice: 'trio'"),
    ],
    ids=["heartbeat", "duration", "concurrency", "queues", "port", "loop"],
)
def test_bad_worker_options_are_usage_errors(db: str, args: list[str], message: str) -> None:
    """Option values serve() would reject fail before anything starts, with exit 2."""
    result = stent("--storage", db, "worker", str(APP), *args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_storage_and_busy_port(db: str) -> None:
    """A storage that does not answer exits 4; a health port already taken exits 2 naming it."""
    down = stent("--storage", "postgresql://postgres@127.0.0.1:1/test?connect_timeout=2", "worker", str(APP))
    assert down.returncode == 4, down.stderr
    assert "unavailable" in down.stderr.lower()
    first = Worker("--storage", db, "worker", str(APP), *FAST, "--health-port", "0", "--health-host", "127.0.0.1")
    try:
        taken = first.ports()["/live"]
        second = stent(
            "--storage", db, "worker", str(APP), "--health-port", str(taken), "--health-host", "127.0.0.1"
        )
        assert second.returncode == 2
        assert f"cannot listen on 127.0.0.1:{taken}" in second.stderr
    finally:
        first.kill()


def test_worker_without_storage_says_how_to_give_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """No --storage and no STENT_STORAGE_URL: exit 2 and the two ways to name one."""
    env = {k: v for k, v in os.environ.items() if k != "STENT_STORAGE_URL"}
    result = subprocess.run(
        [sys.executable, "-m", "stent.cli.main", "worker", str(APP)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "--storage URL" in result.stderr
