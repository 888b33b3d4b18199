"""The user's module for the ``stent worker`` process tests.

With ``STENT_TEST_SPANS`` set to a file path, it configures an OpenTelemetry SDK provider that appends every
finished span to that file as one JSON line, so the test can check the worker's spans from outside.
"""

from __future__ import annotations

import json
import os

from stent import Stent


@Stent.durable(name="e2e.cli.square")
async def square(x: int) -> int:
    return x * x


@Stent.durable(name="e2e.cli.sum_squares")
async def sum_squares(n: int) -> int:
    total = 0
    for i in range(n):
        total += await square(i)
    return total


def _export_spans_to(path: str) -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

    class JsonLines(SpanExporter):
        def export(self, spans):  # type: ignore[no-untyped-def]
            with open(path, "a") as out:
                for span in spans:
                    parent = span.parent.span_id if span.parent else None
                    record = {
                        "name": span.name,
                        "trace_id": span.context.trace_id,
                        "span_id": span.context.span_id,
                        "parent_id": parent,
                    }
                    out.write(json.dumps(record) + "\n")
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(JsonLines()))
    trace.set_tracer_provider(provider)


if os.environ.get("STENT_TEST_SPANS"):
    _export_spans_to(os.environ["STENT_TEST_SPANS"])
