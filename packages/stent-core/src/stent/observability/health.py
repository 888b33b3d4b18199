"""Health endpoints from ``worker_status_overview()``: ``/live``, ``/ready`` and ``/health``.

* ``/live`` answers 200 while some worker of the executor is not stopped (the process's event loop answering is
  most of the proof), and 503 once every worker stopped: an orchestrator may then restart the process.
* ``/ready`` answers 200 when some worker is ready and none drains, else 503: a draining worker (SIGTERM
  received) stops receiving traffic before it exits.
* ``/health`` answers 200 with the overview as JSON, for people and dashboards.

Serve them with :func:`health_routes` on an :class:`~stent.observability.http.HttpServer`, or with
``stent worker --health-port PORT``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from stent.observability.http import Handler, Response

if TYPE_CHECKING:
    from stent.executor import Stent

_JSON = "application/json"


def _json(status: int, body: dict[str, Any]) -> Response:
    return Response(status, (json.dumps(body, sort_keys=True) + "\n").encode(), _JSON)


def health_routes(executor: Stent) -> dict[str, Handler]:
    """Handlers for ``/live``, ``/ready`` and ``/health`` reporting ``executor``'s workers."""

    def overview() -> dict[str, Any]:
        return executor.worker_status_overview()

    def live() -> Response:
        status = overview()
        alive = any(w["state"] != "stopped" for w in status["workers"])
        return _json(200 if alive else 503, {"live": alive})

    def ready() -> Response:
        status = overview()
        ok = bool(status["ready"]) and not status["draining"]
        return _json(200 if ok else 503, {"ready": ok, "draining": status["draining"]})

    def health() -> Response:
        status = overview()
        status["status"] = (
            "ready"
            if status["ready"] and not status["draining"]
            else ("draining" if status["draining"] else "not ready")
        )
        return _json(200, status)

    return {"/live": live, "/ready": ready, "/health": health}
