"""The core tracing hook (stent.tracing) and the OpenTelemetry tracer built on it."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from stent import RetryPolicy, Stent, tracing
from stent.model import TaskRecord
from stent.testing.harness import WorkflowHarness


@Stent.durable(name="cli.trace.leaf")
async def leaf(x: int) -> int:
    return x * 2


@Stent.durable(name="cli.trace.flaky", retry_policy=RetryPolicy(max_attempts=2, initial_delay=1))
async def flaky(x: int) -> int:
    raise ValueError(f"bad {x}")


@Stent.durable(name="cli.trace.root")
async def root(n: int) -> int:
    total = 0
    for i in range(n):
        total += await leaf(i)
    return total


class RecordingTracer:
    """A tracer that records what core asks of it."""

    def __init__(self) -> None:
        self.injected: list[str] = []
        self.spans: list[tuple[str, dict[str, str] | None]] = []
        self.failures: list[tuple[str, bool]] = []

    def inject(self, function: str) -> dict[str, str] | None:
        self.injected.append(function)
        return {"traceparent": f"made-for-{function}"}

    @contextlib.contextmanager
    def task_span(self, task: TaskRecord, carrier: Mapping[str, str] | None) -> Iterator[None]:
        self.spans.append((task.function, dict(carrier) if carrier else None))
        yield

    def task_failed(self, error: BaseException, *, retrying: bool) -> None:
        self.failures.append((type(error).__name__, retrying))


class BrokenTracer:
    """A tracer whose every method raises."""

    def inject(self, function: str) -> dict[str, str] | None:
        raise RuntimeError("inject broke")

    def task_span(self, task: TaskRecord, carrier: Mapping[str, str] | None) -> Any:
        raise RuntimeError("span broke")

    def task_failed(self, error: BaseException, *, retrying: bool) -> None:
        raise RuntimeError("failed broke")


@pytest.fixture
def installed() -> Iterator[list[Any]]:
    """Install tracers for one test and remove them afterwards."""
    made: list[Any] = []
    yield made
    tracing.set_tracer(None)


async def test_without_a_tracer_nothing_is_stored_with_the_task() -> None:
    """No tracer installed: task options carry no trace key, so nothing changes for untraced deployments."""
    tracing.set_tracer(None)
    h = WorkflowHarness()
    eid = await h.executor.dispatch(leaf, 1)
    execution = await h.storage.get_execution(eid)
    assert execution is not None
    task = await h.storage.get_task(execution.root_task_id)
    assert task is not None and "trace" not in json.loads(task.options)
    await h.stop()


async def test_carrier_is_stored_at_dispatch_and_step_creation_and_read_by_the_runner(
    installed: list[Any],
) -> None:
    """The carrier captured when each task is created reaches the span the worker opens for it."""
    tracer = RecordingTracer()
    tracing.set_tracer(tracer)
    h = WorkflowHarness()
    await h.start_worker()
    eid = await h.executor.dispatch(root, 2)
    assert await h.finish(eid) == 2
    await h.stop()
    assert tracer.injected[0] == "cli.trace.root"
    assert tracer.injected.count("cli.trace.leaf") >= 2
    assert ("cli.trace.root", {"traceparent": "made-for-cli.trace.root"}) in tracer.spans
    assert ("cli.trace.leaf", {"traceparent": "made-for-cli.trace.leaf"}) in tracer.spans


async def test_failures_are_reported_with_whether_they_retry(installed: list[Any]) -> None:
    """task_failed hears of each failed attempt: the first retries, the last does not."""
    tracer = RecordingTracer()
    tracing.set_tracer(tracer)
    h = WorkflowHarness()
    await h.start_worker()
    eid = await h.executor.dispatch(flaky, 3)
    with pytest.raises(ValueError):
        await h.finish(eid)
    await h.stop()
    assert tracer.failures == [("ValueError", True), ("ValueError", False)]


async def test_a_tracer_that_raises_never_breaks_a_workflow(installed: list[Any]) -> None:
    """Every tracer method raising: the workflow still completes, untraced."""
    tracing.set_tracer(BrokenTracer())
    h = WorkflowHarness()
    await h.start_worker()
    eid = await h.executor.dispatch(root, 3)
    assert await h.finish(eid) == 6
    failing = await h.executor.dispatch(flaky, 1)
    with pytest.raises(ValueError):
        await h.finish(failing)
    await h.stop()


def test_carrier_of_tolerates_bad_options() -> None:
    """Options that are not JSON, or hold a trace of the wrong shape, read as no carrier."""
    assert tracing.carrier_of("not json") is None
    assert tracing.carrier_of('{"trace": "text"}') is None
    assert tracing.carrier_of("[]") is None
    assert tracing.carrier_of('{"trace": {"traceparent": "x"}}') == {"traceparent": "x"}


# -- OpenTelemetry -------------------------------------------------------------------------------------------


@pytest.fixture
def otel_spans(installed: list[Any]) -> Iterator[Any]:
    """An OpenTelemetry SDK provider with an in-memory exporter, installed as stent's tracer."""
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from stent.observability import otel

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    otel.install(provider)
    yield exporter, provider
    otel.uninstall()


async def test_one_workflow_is_one_trace(otel_spans: Any) -> None:
    """Dispatched inside a span, the root's run and every step's run share its trace and nest under it."""
    exporter, provider = otel_spans
    h = WorkflowHarness()
    await h.start_worker()
    with provider.get_tracer("test").start_as_current_span("request") as request:
        eid = await h.executor.dispatch(root, 2)
    assert await h.finish(eid) == 2
    await h.stop()
    spans = exporter.get_finished_spans()
    runs = [s for s in spans if s.name.startswith("stent.run ")]
    assert {s.name for s in runs} == {"stent.run cli.trace.root", "stent.run cli.trace.leaf"}
    trace_id = request.get_span_context().trace_id
    assert all(s.context.trace_id == trace_id for s in runs)
    root_runs = [s for s in runs if s.name == "stent.run cli.trace.root"]
    assert all(s.parent.span_id == request.get_span_context().span_id for s in root_runs)
    root_span_ids = {s.context.span_id for s in root_runs}
    for leaf_run in (s for s in runs if s.name == "stent.run cli.trace.leaf"):
        assert leaf_run.parent.span_id in root_span_ids
        assert leaf_run.attributes["stent.execution_id"] == eid


async def test_dispatch_outside_a_span_records_one_and_failures_are_errors(otel_spans: Any) -> None:
    """No span around dispatch: a stent.dispatch span roots the trace; failed attempts are error spans."""
    from opentelemetry.trace import StatusCode

    exporter, _ = otel_spans
    h = WorkflowHarness()
    await h.start_worker()
    eid = await h.executor.dispatch(flaky, 5)
    with pytest.raises(ValueError):
        await h.finish(eid)
    await h.stop()
    spans = exporter.get_finished_spans()
    dispatch = [s for s in spans if s.name == "stent.dispatch cli.trace.flaky"]
    assert len(dispatch) == 1
    runs = [s for s in spans if s.name == "stent.run cli.trace.flaky"]
    assert len(runs) == 2
    assert all(s.parent.span_id == dispatch[0].context.span_id for s in runs)
    assert all(s.status.status_code is StatusCode.ERROR for s in runs)
    assert [s.attributes["stent.retrying"] for s in runs] == [True, False]
    assert all(s.events and s.events[0].name == "exception" for s in runs)
