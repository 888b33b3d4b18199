"""Health endpoints and the Prometheus recorder, in-process: what a probe and a scraper see."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import pytest
from cli_support import wf

from stent import ConfigurationError
from stent.memory import MemoryStorage
from stent.observability.health import health_routes
from stent.observability.http import HttpServer, Response
from stent.testing.harness import WorkflowHarness


async def fetch(port: int, path: str, method: str = "GET", raw: bytes | None = None) -> tuple[int, bytes]:
    """One HTTP request to the local server; returns the status and the body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw if raw is not None else f"{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    data = await reader.read()
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


async def test_probes_follow_the_worker_lifecycle() -> None:
    """/ready is 503 while starting, 200 when ready, 503 while draining; /live is 200 until every worker stops."""
    h = WorkflowHarness()
    async with HttpServer(health_routes(h.executor), "127.0.0.1", 0) as server:
        assert (await fetch(server.port, "/live"))[0] == 503  # no worker at all yet
        lifecycle = h.executor.create_worker_lifecycle("w1")
        assert (await fetch(server.port, "/ready"))[0] == 503
        assert (await fetch(server.port, "/live"))[0] == 200
        serving = asyncio.ensure_future(h.executor.serve(worker_id="w1", lifecycle=lifecycle, poll_interval=0.5))
        await lifecycle.wait_until_ready()
        status, body = await fetch(server.port, "/ready")
        assert status == 200 and json.loads(body) == {"draining": False, "ready": True}
        status, body = await fetch(server.port, "/health")
        health = json.loads(body)
        assert status == 200 and health["status"] == "ready"
        assert health["workers"][0]["worker_id"] == "w1"
        h.executor.request_worker_drain(lifecycle)
        await serving
        assert (await fetch(server.port, "/ready"))[0] == 503
        assert (await fetch(server.port, "/live"))[0] == 503
    await h.executor.close()


async def test_the_http_server_answers_bad_requests_and_survives_a_failing_handler() -> None:
    """Unknown paths 404, POST 405, HEAD has no body, garbage 400, a raising handler 500, and it keeps serving."""

    def broken() -> Response:
        raise RuntimeError("handler bug")

    async def fine() -> Response:
        return Response(200, b"fine\n")

    async with HttpServer({"/broken": broken, "/fine": fine}, "127.0.0.1", 0) as server:
        status, body = await fetch(server.port, "/nope")
        assert status == 404 and b"/fine" in body
        assert (await fetch(server.port, "/fine", "POST"))[0] == 405
        assert await fetch(server.port, "/fine", "HEAD") == (200, b"")
        assert (await fetch(server.port, "", raw=b"nonsense\r\n\r\n"))[0] == 400
        status, body = await fetch(server.port, "/broken")
        assert status == 500 and b"handler bug" in body
        assert await fetch(server.port, "/fine?x=1") == (200, b"fine\n")


# -- Prometheus ---------------------------------------------------------------------------------------------


@pytest.fixture
def prometheus() -> Any:
    pytest.importorskip("prometheus_client")
    from stent.observability.prometheus import PrometheusMetrics

    return PrometheusMetrics()


def value(metrics: Any, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)  # type: ignore[no-any-return]


async def test_recorder_counts_a_real_workflow(prometheus: Any) -> None:
    """Claims, completions with durations, failed attempts, dead letters and renewals, per queue and step."""
    h = WorkflowHarness(metrics=prometheus)
    await h.start_worker(heartbeat_interval=1, lease_duration=3)
    done = await h.executor.dispatch(wf.add_all, 2)
    broken = await h.executor.dispatch(wf.fails, "x")
    await h.finish(done)
    with pytest.raises(RuntimeError):
        await h.finish(broken)
    await h.stop()
    step = {"queue": "default", "step": "cli.double", "kind": "call"}
    assert value(prometheus, "stent_tasks_claimed_total", **step) == 2
    assert value(prometheus, "stent_tasks_completed_total", **step) == 2
    assert value(prometheus, "stent_task_duration_seconds_count", **step) == 2
    explode = {"queue": "default", "step": "cli.explode", "kind": "call"}
    assert value(prometheus, "stent_tasks_failed_total", **explode, retrying="true") == 1
    assert value(prometheus, "stent_tasks_failed_total", **explode, retrying="false") == 1
    assert value(prometheus, "stent_dead_letters_total", **explode, reason="RuntimeError") == 1
    assert (value(prometheus, "stent_lease_renewals_total", result="renewed") or 0) >= 1
    text = prometheus.exposition().decode()
    assert "# TYPE stent_task_duration_seconds histogram" in text


async def test_gauges_read_queue_depth_pending_age_and_workers(prometheus: Any) -> None:
    """refresh_gauges sets depth and oldest pending age per queue and in all, and the worker gauges."""
    h = WorkflowHarness(MemoryStorage())
    await h.executor.dispatch(wf.double, 1, queue="slow")
    await h.executor.dispatch(wf.double, 2, queue="slow")
    h.clock.advance(90)
    lifecycle = await h.start_worker("gauge-worker", queues=["fast"])
    await prometheus.refresh_gauges(h.executor, ["slow", "fast"])
    assert value(prometheus, "stent_queue_depth", queue="slow") == 2
    assert value(prometheus, "stent_queue_depth", queue="fast") == 0
    assert value(prometheus, "stent_queue_depth", queue="*") == 2
    assert value(prometheus, "stent_oldest_pending_age_seconds", queue="slow") == pytest.approx(90)
    assert value(prometheus, "stent_oldest_pending_age_seconds", queue="fast") == 0
    assert value(prometheus, "stent_worker_ready", worker="gauge-worker") == 1
    assert lifecycle.state.value == "ready"
    await h.stop()


async def test_gauges_follow_a_child_backlog_on_a_queue_nobody_named(prometheus: Any) -> None:
    """Children waiting inside a running execution, on a queue no worker serves, show in every queue gauge
    (found without being named), and read 0 once their work is done."""
    h = WorkflowHarness(MemoryStorage())
    await h.start_worker("front", queues=["default"])
    fan = await h.executor.dispatch(wf.fan_out, 3)
    await h.advance(1)
    h.clock.advance(60)
    await prometheus.refresh_gauges(h.executor)
    assert value(prometheus, "stent_queue_depth", queue="batch") == 3
    assert value(prometheus, "stent_oldest_pending_age_seconds", queue="batch") == pytest.approx(61, abs=1)
    assert value(prometheus, "stent_oldest_pending_age_seconds", queue="*") == pytest.approx(61, abs=1)
    assert value(prometheus, "stent_tasks_running", queue="default") == 1  # the parent, waiting on its lease
    assert value(prometheus, "stent_tasks_running", queue="*") == 1
    assert value(prometheus, "stent_queue_depth", queue="*") == 3
    await h.stop()  # the drain suspends the waiting parent
    await prometheus.refresh_gauges(h.executor)
    assert value(prometheus, "stent_tasks_suspended", queue="default") == 1
    assert value(prometheus, "stent_tasks_running", queue="default") == 0
    await h.start_worker("back")
    assert await h.finish(fan) == 3
    await prometheus.refresh_gauges(h.executor)
    for gauge in ("queue_depth", "oldest_pending_age_seconds", "tasks_running", "tasks_suspended"):
        for queue in ("batch", "default", "*"):
            assert value(prometheus, f"stent_{gauge}", queue=queue) == 0, (gauge, queue)
    await h.stop()


def test_a_missing_extra_names_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without prometheus-client (or opentelemetry), the error says which extra to install."""
    from stent.observability import otel
    from stent.observability.prometheus import PrometheusMetrics

    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    with pytest.raises(ConfigurationError, match=r"pip install 'stent-core\[prometheus\]'"):
        PrometheusMetrics()
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    with pytest.raises(ConfigurationError, match=r"pip install 'stent-core\[otel\]'"):
        otel.install()
