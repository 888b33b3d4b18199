"""Prometheus metrics: a recorder for the five metric methods, and gauges of every queue's work and workers.

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
``stent_oldest_pending_age_seconds``   gauge      how long the oldest ready task has waited for a worker; ``queue``
``stent_tasks_running``                gauge      tasks holding a live lease (running or waiting); ``queue``
``stent_tasks_suspended``              gauge      tasks suspended on a step, signal or timer not yet due; ``queue``
``stent_worker_running_tasks``         gauge      tasks running on this process's workers; ``worker``
``stent_worker_ready``                 gauge      1 while the worker is ready, else 0; ``worker``
=====================================  =========  ==============================================================

``step`` is the durable function's name.  ``reason`` is the failure's exception type (the text before its first
colon), so the label stays low in cardinality.  The gauges are refreshed from storage by
:meth:`PrometheusMetrics.refresh_gauges`, which the worker command calls every ``--metrics-interval``.  The
queue gauges come from one :meth:`~stent.ports.Storage.queue_overview` read (see
:class:`~stent.model.QueueStats` for what each count holds); queue ``*`` is the sum over queues, and for the
age the greatest.

Needs the ``prometheus`` extra: ``pip install 'stent-core[prometheus]'``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from stent.model import QueueStats
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
            "oldest_pending_age_seconds", "Seconds the oldest ready task has waited for a worker.", ["queue"]
        )
        self.tasks_running = gauge("tasks_running", "Tasks holding a live lease (running or waiting).", ["queue"])
        self.tasks_suspended = gauge(
            "tasks_suspended", "Tasks suspended on a step, a signal or a timer not yet due.", ["queue"]
        )
        self.worker_running = gauge(
            "worker_running_tasks", "Tasks running on a worker of this process.", ["worker"]
        )
        self.worker_ready = gauge("worker_ready", "1 while the worker is ready, else 0.", ["worker"])
        # Every queue reported so far: one whose work is all done then reads 0, not its last value.
        self.reported_queues: set[str] = set()

    # -- the five recorder methods --------------------------------------------------------------------------

    def task_claimed(self, *, queue: str, step_name: str, kind: str) -> None:
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
        """Read every queue's figures from storage in one read; update the worker gauges.

        Every queue with unfinished work is reported, and so are ``queues`` (the worker's own, 0 when idle) and
        every queue reported before; the whole is reported as queue ``*``.
        """
        now = executor.clock.now()
        overview = {q.queue: q for q in await executor.backend.queue_overview(now)}
        self.reported_queues.update(queues or (), overview)
        rows = [overview.get(name) or QueueStats(name) for name in sorted(self.reported_queues)]
        ready_since = [q.oldest_ready_at for q in rows if q.oldest_ready_at is not None]
        total = QueueStats(
            ALL_QUEUES,
            ready=sum(q.ready for q in rows),
            scheduled=sum(q.scheduled for q in rows),
            running=sum(q.running for q in rows),
            suspended=sum(q.suspended for q in rows),
            oldest_ready_at=min(ready_since, default=None),
        )
        for q in (*rows, total):
            self.queue_depth.labels(q.queue).set(q.depth)
            self.oldest_pending.labels(q.queue).set(q.oldest_ready_age(now))
            self.tasks_running.labels(q.queue).set(q.running)
            self.tasks_suspended.labels(q.queue).set(q.suspended)
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
