"""Workers: the sans-IO state machine (``machine``), its async shell (``shell``), options and lifecycle."""

from stent.worker.lifecycle import WorkerLifecycle
from stent.worker.machine import LifecycleState

__all__ = ["LifecycleState", "WorkerLifecycle"]
