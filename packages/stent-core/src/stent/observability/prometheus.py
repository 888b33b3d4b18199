"""Prometheus metrics: a recorder for the five metric methods, and gauges of queue depth and pending age.

Pass a :class:`PrometheusMetrics` to the executor (``Stent(backend, metrics=PrometheusMetrics())``) and expose
its registry, or let ``stent worker --metrics-port PORT`` do both.  Metric names (prefix ``stent_``):

=====================================  =========  ==============================================================
``stent_tasks_claimed_total``          counter    tasks claimed by workers; labels ``queue``, ``step``, ``kind``
``stent_tasks_completed_total``        counter    tasks completed; ``queue``, ``step``, ``kind``
``stent_task_duration_seconds``        histogram  run time of completed tasks; ``queue``, ``step``, ``kind``
``stent_tasks_failed_total``           counter    failed attempts; ``queue``, ``step``, ``kind``, ``retrying``
``stent_dead_letters_total``           counter    tasks dead-lettered; ``queue``, ``step``, ``kind``, ``reason``
``stent_lease_renewals_total``         counter    lease renewals; ``result`` (``renewed`` or ``lost``)
``stent_queue_depth``                  gauge      tasks ready or scheduled to run; ``queue`` (``*`` = all queues)
``stent_oldest_pending_age_seconds``   gauge      age of the oldest execution not yet started; ``queue``
``stent_worker_running_tasks``         gauge      tasks running on this process's workers; ``worker``
``stent_worker_ready``                 gauge      1 while the worker is ready, else 0; ``worker``
=====================================  =========  ==============================================================

``step`` is the durable function's name.  ``reason`` is the failure's exception type (the text before its first
colon), so the label stays low in cardinality.  The gauges are refreshed from storage by
:meth:`PrometheusMetrics.refresh_gauges`, which the worker command calls every ``--metrics-interval``.

Needs the ``prometheus`` extra: ``pip install 'stent-core[prometheus]'``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from stent.observability import missing_extra
from stent.observability.http import Handler, Response

if TYPE_CHECKING:
    from stent.executor import Stent

#: Run times of durable tasks span milliseconds to hours.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, float("inf"))

ALL_QUEUES = "*"


def _client() -> Any:
    try:
        import prometheus_client
    except ImportError as exc:
        raise missing_extra("prometheus", "prometheus-client", exc) from exc
    return prometheus_client


def reason_label(reason: str) -> str:
    """A low-cardinality label for a failure reason: its exception type, not its message."""
    head = reason.split(":", 1)[0].strip()
    return head[:80] or "unknown"


class PrometheusMetrics:
    """A stent metrics recorder on a Prometheus registry (a fresh one unless ``registry`` is given)."""

    def __init__(self, registry: Any | None = None, *, namespace: str = "stent") -> None:
        client = _client()
        self.client = client
        self.registry = registry if registry is not None else client.CollectorRegistry()
        step = ["queue", "step", "kind"]

        def counter(name: str, doc: str, labels: list[str]) -> Any:
            return client.Counter(name, doc, labels, namespace=namespace, registry=self.registry)

        def gauge(name: str, doc: str, labels: list[str]) -> Any:
            return client.Gauge(name, doc, labels, namespace=namespace, registry=self.registry)

        self.claimed = counter("tasks_claimed", "Tasks claimed by workers.", step)
        self.completed = counter("tasks_completed", "Tasks completed.", step)
        self.duration = client.Histogram(
            "task_duration_seconds",
            "Run time of completed tasks, in seconds.",
            step,
            namespace=namespace,
            registry=self.registry,
            buckets=DURATION_BUCKETS,
        )
        self.failed = counter("tasks_failed", "Failed task attempts.", [*step, "retrying"])
        self.dead = counter("dead_letters", "Tasks dead-lettered after their last attempt.", [*step, "reason"])
        self.renewals = counter("lease_renewals", "Lease renewals by result.", ["result"])
        self.queue_depth = gauge("queue_depth", "Tasks ready or scheduled to run.", ["queue"])
        self.oldest_pending = gauge(
            "oldest_pending_age_seconds", "Age of the oldest execution that has not started.", ["queue"]
        )
        self.worker_running = gauge(
            "worker_running_tasks", "Tasks running on a worker of this process.", ["worker"]
        )
        self.worker_ready = gauge("worker_ready", "1 while the worker is ready, else 0.", ["worker"])
        self.seen_queues: set[str] = set()

    # -- the five recorder methods --------------------------------------------------------------------------

    def task_claimed(self, *, queue: str, step_name: str, kind: str) -> None:
        self.seen_queues.add(queue)
        self.claimed.labels(queue, step_name, kind).inc()

    def task_completed(self, *, queue: str, step_name: str, kind: str, duration_s: float) -> None:
        self.completed.labels(queue, step_name, kind).inc()
        self.duration.labels(queue, step_name, kind).observe(max(0.0, duration_s))

    def task_failed(self, *, queue: str, step_name: str, kind: str, reason: str, retrying: bool) -> None:
        self.failed.labels(queue, step_name, kind, "true" if retrying else "false").inc()

    def dead_lettered(self, *, queue: str, step_name: str, kind: str, reason: str) -> None:
        self.dead.labels(queue, step_name, kind, reason_label(reason)).inc()

    def lease_renewed(self, *, task_id: str, success: bool) -> None:
        self.renewals.labels("renewed" if success else "lost").inc()

    # -- gauges ---------------------------------------------------------------------------------------------

    async def refresh_gauges(self, executor: Stent, queues: Iterable[str] | None = None) -> None:
        """Read queue depths and the oldest pending execution from storage; update the worker gauges.

        ``queues`` are reported one by one (with the queues this process has claimed from); the total over all
        queues is reported as queue ``*``.
        """
        now = executor.clock.now()
        storage = executor.backend
        names = sorted({*(queues or ()), *self.seen_queues})
        self.queue_depth.labels(ALL_QUEUES).set(await storage.queue_depth(None, now))
        self.oldest_pending.labels(ALL_QUEUES).set(await oldest_pending_age(executor, None))
        for queue in names:
            self.queue_depth.labels(queue).set(await storage.queue_depth(queue, now))
            self.oldest_pending.labels(queue).set(await oldest_pending_age(executor, queue))
        for worker in executor.worker_status_overview()["workers"]:
            name = worker["worker_id"] or worker["name"]
            self.worker_running.labels(name).set(worker["running_tasks"])
            self.worker_ready.labels(name).set(1 if worker["state"] == "ready" else 0)

    def exposition(self) -> bytes:
        """The registry in Prometheus' text format."""
        return bytes(self.client.generate_latest(self.registry))

    def routes(self) -> dict[str, Handler]:
        """``/metrics`` for an :class:`~stent.observability.http.HttpServer`."""
        content_type = str(self.client.CONTENT_TYPE_LATEST)
        return {"/metrics": lambda: Response(200, self.exposition(), content_type)}


async def oldest_pending_age(executor: Stent, queue: str | None) -> float:
    """Seconds since the oldest pending execution (in ``queue``, or any) was created; 0 when none is pending.

    Executions are listed newest first, so the oldest is the last of the filtered list: one count, one read.
    """
    from stent.model import ExecutionState

    storage = executor.backend
    page = await storage.list_executions(state=ExecutionState.PENDING, queue=queue, limit=1)
    if page.total == 0:
        return 0.0
    if page.total > 1:
        page = await storage.list_executions(
            state=ExecutionState.PENDING, queue=queue, limit=1, offset=page.total - 1
        )
    if not page.executions:
        return 0.0
    age = (executor.clock.now() - page.executions[0].created_at).total_seconds()
    return max(0.0, age)
