"""The tracing hook: carry a trace context from the code that creates a task to the worker that runs it.

Core knows nothing of any tracing library.  A process that wants traces installs a :class:`Tracer` with
:func:`set_tracer` (``stent.observability.otel.install()`` installs the OpenTelemetry one); otherwise every
function here does nothing.  Two places in core call it:

* when a call task is built (a dispatch, or a durable call inside a task), :func:`capture` asks the tracer for
  a carrier (W3C ``traceparent``/``tracestate`` headers), which is stored in the task's options;
* when a worker runs a task, :func:`task_span` opens the tracer's span around the run, parented by that carrier,
  and :func:`task_failed` tells it how an attempt failed.

So one workflow is one trace across every process that touched it.  A tracer that raises never breaks task
processing: its errors are logged and the task runs as if no tracer were installed.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from stent.model import TaskRecord

log = logging.getLogger("stent.tracing")

#: The key of the carrier in a task's stored options (see :class:`stent.engine.tasks.TaskOptions`).
OPTIONS_KEY = "trace"


class Tracer(Protocol):
    """What a tracing integration implements."""

    def inject(self, function: str) -> dict[str, str] | None:
        """The current trace context as text headers, for a task of ``function`` being created; or None."""

    def task_span(
        self, task: TaskRecord, carrier: Mapping[str, str] | None
    ) -> contextlib.AbstractContextManager[Any]:
        """A context manager around one run of ``task``, parented by the ``carrier`` stored at its creation."""

    def task_failed(self, error: BaseException, *, retrying: bool) -> None:
        """The run in progress (inside :meth:`task_span`) failed with ``error``."""


_tracer: Tracer | None = None


def set_tracer(tracer: Tracer | None) -> Tracer | None:
    """Install ``tracer`` for this process (``None`` removes it); returns the one it replaces."""
    global _tracer
    previous, _tracer = _tracer, tracer
    return previous


def get_tracer() -> Tracer | None:
    return _tracer


def capture(function: str) -> dict[str, str] | None:
    """The carrier to store with a new task of ``function``, or None when no tracer is installed."""
    tracer = _tracer
    if tracer is None:
        return None
    try:
        carrier = tracer.inject(function)
    except Exception:
        log.exception("tracer %r failed to capture the trace context; the task is stored without it", tracer)
        return None
    if not carrier:
        return None
    return {str(k): str(v) for k, v in carrier.items()}


def carrier_of(options: str) -> dict[str, str] | None:
    """The carrier stored in a task's options text, if any (tolerant: a bad value means none)."""
    try:
        value = json.loads(options or "{}").get(OPTIONS_KEY)
    except (ValueError, AttributeError):
        return None
    if not isinstance(value, dict):
        return None
    return {str(k): str(v) for k, v in value.items()}


@contextlib.contextmanager
def task_span(task: TaskRecord) -> Iterator[None]:
    """Run the body inside the installed tracer's span for ``task`` (nothing when no tracer is installed)."""
    tracer = _tracer
    if tracer is None:
        yield
        return
    manager: contextlib.AbstractContextManager[Any] | None = None
    try:
        manager = tracer.task_span(task, carrier_of(task.options))
        manager.__enter__()
    except Exception:
        log.exception("tracer %r failed to open a span for task %s; running it untraced", tracer, task.task_id)
        manager = None
    if manager is None:
        yield
        return
    try:
        yield
    except BaseException as exc:
        _exit(manager, type(exc), exc, exc.__traceback__)
        raise
    _exit(manager, None, None, None)


def _exit(manager: contextlib.AbstractContextManager[Any], *exc_info: Any) -> None:
    try:
        manager.__exit__(*exc_info)
    except Exception:
        log.exception("tracer failed to close a task span; ignored")


def task_failed(error: BaseException, *, retrying: bool) -> None:
    """Tell the installed tracer that the running task's attempt failed."""
    tracer = _tracer
    if tracer is None:
        return
    try:
        tracer.task_failed(error, retrying=retrying)
    except Exception:
        log.exception("tracer %r failed to record a task failure; ignored", tracer)
