"""The exceptions stent raises.

Every error a user can cause or meet derives from :class:`StentError`, and its message says what was wrong and
how to fix it.  Storage adapters map their driver's errors to these types so that core decides what to do
(retry, stop a task, report) without knowing which backend is underneath.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class StentError(Exception):
    """Base class of every error stent raises on purpose."""


class ConfigurationError(StentError, ValueError):
    """An option or argument has a wrong type or an out-of-range value."""


class UnregisteredFunctionError(StentError, LookupError):
    """A task names a durable function that this process has not registered."""

    def __init__(self, name: str, known: Iterable[str] = ()) -> None:
        known = sorted(known)
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        message = f"no durable function named {name!r} is registered in this process"
        if close:
            message += f"; did you mean {', '.join(repr(c) for c in close)}?"
        message += (
            " Import the module that defines it (decorated with @Stent.durable) before the worker starts,"
            " or check the name it was dispatched under."
        )
        super().__init__(message)
        self.name = name
        self.close_matches = close


class SerializationError(StentError, TypeError):
    """A value cannot be serialized or deserialized by the configured serializer."""


class NonDeterminismError(StentError):
    """A replayed workflow called a different function at a step than the journal recorded."""

    def __init__(self, *, task_id: str, step: int, recorded: str, called: str) -> None:
        super().__init__(
            f"non-determinism in task {task_id}: step {step} was recorded as a call to {recorded!r}, but the"
            f" code now calls {called!r}. A workflow must make the same durable calls in the same order when it"
            " is replayed; deploy changed workflow code under a new function name or version instead."
        )
        self.task_id = task_id
        self.step = step
        self.recorded = recorded
        self.called = called


class LeaseLost(StentError):
    """A worker wrote for a task whose lease (fencing token) it no longer holds; the write did not land."""

    def __init__(self, task_id: str, detail: str = "") -> None:
        message = f"lease on task {task_id} is no longer held by this worker; the write was rejected"
        if detail:
            message += f" ({detail})"
        super().__init__(message)
        self.task_id = task_id


class ExecutionNotFound(StentError, LookupError):
    """No execution has the given id."""

    def __init__(self, execution_id: str) -> None:
        super().__init__(
            f"no execution with id {execution_id!r}; check the id (list executions with `stent list`)"
        )
        self.execution_id = execution_id


class TaskNotFound(StentError, LookupError):
    """No task has the given id."""

    def __init__(self, task_id: str) -> None:
        super().__init__(f"no task with id {task_id!r}")
        self.task_id = task_id


class ExecutionFinished(StentError):
    """The execution has already ended, so it cannot take the request (a signal, say)."""

    def __init__(self, execution_id: str, state: str, action: str) -> None:
        super().__init__(f"execution {execution_id} has already ended ({state}); cannot {action}")
        self.execution_id = execution_id
        self.state = state


class ExecutionStopping(StentError):
    """The execution is being cancelled or has ended: a task of it may not start new steps."""

    def __init__(self, execution_id: str, state: str) -> None:
        super().__init__(f"execution {execution_id} is {state}; no new steps may start")
        self.execution_id = execution_id
        self.state = state


class ExecutionTimeout(StentError, TimeoutError):
    """Waiting for an execution ran past its limit, or the execution itself ran past ``max_duration``."""


class SignalTimeout(StentError, TimeoutError):
    """A ``wait_for_signal`` with a timeout saw no signal in time."""


class ActivityTimeout(StentError, TimeoutError):
    """A durable function ran longer than its ``timeout``."""


class ExecutionFailed(StentError):
    """An execution ended failed, cancelled or timed out, and its result was asked for."""


class ExecutionCancelled(ExecutionFailed):
    """The execution was cancelled, so it has no result."""


class StorageUnavailable(StentError, ConnectionError):
    """The storage backend could not be reached or refused the operation; the caller may retry."""


class StorageCorrupt(StentError):
    """A stored row could not be decoded, or a file is not the database stent expected."""


class PluginError(StentError):
    """A plugin failed to load, or two plugins claim the same URL scheme."""


class BackendNotInstalled(PluginError, LookupError):
    """A URL scheme or backend name has no installed adapter."""


class RemoteError(StentError):
    """An exception raised in a task whose original type could not be rebuilt here.

    It carries the original type's qualified name, its message, and the traceback text from the worker that ran
    the task.
    """

    def __init__(self, type_name: str, message: str, remote_traceback: str = "") -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.remote_message = message
        self.remote_traceback = remote_traceback
