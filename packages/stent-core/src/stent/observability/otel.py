"""OpenTelemetry tracing: a span per task run, parented by the trace context stored when the task was created.

Install it in every process that dispatches or runs work (``stent worker --otel`` does it for workers)::

    from stent.observability import otel
    otel.install()          # uses the global TracerProvider; configure exporters as usual

A dispatch made inside a span (a web request's, say) stores that span's W3C ``traceparent`` with the root task;
a dispatch made outside any span first records a short ``stent.dispatch <function>`` span so that every run of
the workflow still shares one trace.  Each run of a task, on whichever worker, is a ``stent.run <function>``
span (kind CONSUMER) whose parent is the span that created it: the root task's run for its steps, so the whole
call tree is one trace.  A run that resumes after suspension or a crash is another span under the same parent.

Needs the ``otel`` extra: ``pip install 'stent-core[otel]'``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from stent import tracing
from stent.observability import missing_extra

if TYPE_CHECKING:
    from stent.model import TaskRecord

INSTRUMENTATION_NAME = "stent"


def _otel() -> Any:
    try:
        from opentelemetry import trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
    except ImportError as exc:
        raise missing_extra("otel", "opentelemetry-api", exc) from exc
    return trace, TraceContextTextMapPropagator


class OpenTelemetryTracer:
    """The :class:`stent.tracing.Tracer` on OpenTelemetry; ``tracer_provider`` defaults to the global one."""

    def __init__(self, tracer_provider: Any | None = None) -> None:
        trace, propagator = _otel()
        from stent import __version__

        self._trace = trace
        self._propagator = propagator()
        provider = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
        self.tracer = provider.get_tracer(INSTRUMENTATION_NAME, __version__)

    def inject(self, function: str) -> dict[str, str] | None:
        trace = self._trace
        carrier: dict[str, str] = {}
        if trace.get_current_span().get_span_context().is_valid:
            self._propagator.inject(carrier)
            return carrier or None
        # No span around the dispatch: record one, so that every run of this workflow joins one trace.
        span = self.tracer.start_span(
            f"stent.dispatch {function}", kind=trace.SpanKind.PRODUCER, attributes={"stent.function": function}
        )
        try:
            self._propagator.inject(carrier, context=trace.set_span_in_context(span))
        finally:
            span.end()
        return carrier or None

    @contextlib.contextmanager
    def task_span(self, task: TaskRecord, carrier: Mapping[str, str] | None) -> Iterator[Any]:
        trace = self._trace
        parent = self._propagator.extract(dict(carrier)) if carrier else None
        attributes: dict[str, Any] = {
            "stent.execution_id": task.execution_id,
            "stent.task_id": task.task_id,
            "stent.function": task.function,
            "stent.queue": task.queue,
            "stent.attempt": task.attempt,
            "stent.kind": task.kind.value,
        }
        if task.step is not None:
            attributes["stent.step"] = task.step
        if task.lease_owner:
            attributes["stent.worker_id"] = task.lease_owner
        with self.tracer.start_as_current_span(
            f"stent.run {task.function}",
            context=parent,
            kind=trace.SpanKind.CONSUMER,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                yield span
            except asyncio.CancelledError:
                # Suspended, released by a draining worker, or cancelled: not an error of the task.
                span.set_attribute("stent.stopped", True)
                raise
            except BaseException as exc:
                span.record_exception(exc)
                span.set_status(trace.Status(trace.StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
                raise

    def task_failed(self, error: BaseException, *, retrying: bool) -> None:
        trace = self._trace
        span = trace.get_current_span()
        span.record_exception(error)
        span.set_attribute("stent.retrying", retrying)
        span.set_status(trace.Status(trace.StatusCode.ERROR, f"{type(error).__name__}: {error}"[:500]))


def install(tracer_provider: Any | None = None) -> OpenTelemetryTracer:
    """Trace stent's tasks in this process with OpenTelemetry; returns the installed tracer.

    Raises :class:`~stent.errors.ConfigurationError` naming the extra when opentelemetry-api is missing.
    """
    tracer = OpenTelemetryTracer(tracer_provider)
    tracing.set_tracer(tracer)
    return tracer


def uninstall() -> None:
    """Stop tracing stent's tasks in this process."""
    tracing.set_tracer(None)
