"""stent: durable functions for Python asyncio.

Decorate async functions with ``@Stent.durable``; awaiting one from another records a step in a journal kept by
a storage backend, so the whole call tree survives crashes, restarts and deploys.
"""

import importlib.metadata

from stent.engine.context import current_task
from stent.engine.durable import DurableFunction, durable
from stent.errors import (
    ActivityTimeout,
    BackendNotInstalled,
    ConfigurationError,
    ExecutionCancelled,
    ExecutionFailed,
    ExecutionFinished,
    ExecutionNotFound,
    ExecutionTimeout,
    LeaseLost,
    NonDeterminismError,
    PluginError,
    RemoteError,
    SerializationError,
    SignalTimeout,
    StentError,
    StorageCorrupt,
    StorageUnavailable,
    UnregisteredFunctionError,
)
from stent.executor import ExecutionStatus, Stent, StepProgress
from stent.logs import install_structured_logging
from stent.model import ExecutionState, TaskState
from stent.result import Error, Ok, Result
from stent.retry import RetryPolicy
from stent.worker.lifecycle import WorkerLifecycle
from stent.worker.machine import LifecycleState

try:  # the version is written once, in pyproject.toml; an install records it in the metadata read here
    __version__ = importlib.metadata.version("stent-core")
except importlib.metadata.PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "ActivityTimeout",
    "BackendNotInstalled",
    "ConfigurationError",
    "DurableFunction",
    "Error",
    "ExecutionCancelled",
    "ExecutionFailed",
    "ExecutionFinished",
    "ExecutionNotFound",
    "ExecutionState",
    "ExecutionStatus",
    "ExecutionTimeout",
    "LeaseLost",
    "LifecycleState",
    "NonDeterminismError",
    "Ok",
    "PluginError",
    "RemoteError",
    "Result",
    "RetryPolicy",
    "SerializationError",
    "SignalTimeout",
    "Stent",
    "StentError",
    "StepProgress",
    "StorageCorrupt",
    "StorageUnavailable",
    "TaskState",
    "UnregisteredFunctionError",
    "WorkerLifecycle",
    "__version__",
    "current_task",
    "durable",
    "install_structured_logging",
]
