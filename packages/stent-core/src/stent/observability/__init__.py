"""Optional observability for workers: Prometheus metrics, OpenTelemetry tracing and health endpoints.

Each submodule imports its third-party library only when used, so ``import stent.observability`` costs nothing:

* :mod:`stent.observability.prometheus` (extra ``stent-core[prometheus]``): a metrics recorder and queue gauges;
* :mod:`stent.observability.otel` (extra ``stent-core[otel]``): a span per task run, one trace per workflow;
* :mod:`stent.observability.health`: ``/live``, ``/ready`` and ``/health`` from ``worker_status_overview()``;
* :mod:`stent.observability.http`: the small asyncio HTTP server the last two and ``/metrics`` share.
"""

from __future__ import annotations

from stent.errors import ConfigurationError


def missing_extra(extra: str, module: str, exc: ImportError) -> ConfigurationError:
    """The error for an optional dependency that is not installed, naming the extra to install."""
    return ConfigurationError(
        f"{module} is not installed ({exc}); install the {extra} extra: pip install 'stent-core[{extra}]'"
    )
