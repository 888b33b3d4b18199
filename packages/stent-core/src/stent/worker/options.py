"""``serve()`` options: defaults, and validation that fails before anything starts."""

from __future__ import annotations

import math
import os
import socket
import uuid
from collections.abc import Iterable
from typing import Any

import attrs

from stent.durations import parse_duration
from stent.errors import ConfigurationError


def seconds_of(name: str, value: Any, *, allow_zero: bool = False) -> float:
    """A duration option in seconds (number, timedelta or text like ``"5m"``), or a ConfigurationError naming it."""
    return parse_duration(value, allow_zero=allow_zero, name=name)


def names_of(name: str, value: Any) -> frozenset[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        raise ConfigurationError(
            f"{name} must be a list of strings, got the string {value!r}; write {name}=[{value!r}]"
        )
    if not isinstance(value, Iterable):
        raise ConfigurationError(f"{name} must be a list of strings, got {type(value).__name__} {value!r}")
    items = list(value)
    for item in items:
        if not isinstance(item, str) or not item:
            raise ConfigurationError(f"every entry of {name} must be a non-empty string, got {item!r}")
    if not items:
        raise ConfigurationError(f"{name} is empty, so the worker could take nothing; omit it to take everything")
    return frozenset(items)


@attrs.frozen
class ServeOptions:
    worker_id: str
    queues: frozenset[str] | None
    tags: frozenset[str] | None
    max_concurrency: int
    poll_interval: float
    poll_interval_max: float
    poll_backoff_factor: float
    lease_duration: float
    heartbeat_interval: float
    cleanup_interval: float
    retention_period: float
    drain_timeout: float | None

    @classmethod
    def build(
        cls,
        *,
        worker_id: Any,
        queues: Any,
        tags: Any,
        max_concurrency: Any,
        poll_interval: Any,
        poll_interval_max: Any,
        poll_backoff_factor: Any,
        lease_duration: Any,
        heartbeat_interval: Any,
        cleanup_interval: Any,
        retention_period: Any,
        drain_timeout: Any = None,
    ) -> ServeOptions:
        if not isinstance(worker_id, str) or not worker_id:
            raise ConfigurationError(f"worker_id must be a non-empty string, got {worker_id!r}")
        if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int):
            raise ConfigurationError(f"max_concurrency must be an int, got {type(max_concurrency).__name__}")
        if max_concurrency < 1:
            raise ConfigurationError(f"max_concurrency must be at least 1, got {max_concurrency}")
        poll = seconds_of("poll_interval", poll_interval)
        poll_max = seconds_of("poll_interval_max", poll_interval_max)
        if poll_max < poll:
            raise ConfigurationError(
                f"poll_interval_max ({poll_max}s) is shorter than poll_interval ({poll}s); it must be at least as long"
            )
        if isinstance(poll_backoff_factor, bool) or not isinstance(poll_backoff_factor, (int, float)):
            raise ConfigurationError(f"poll_backoff_factor must be a number, got {poll_backoff_factor!r}")
        if not poll_backoff_factor >= 1.0 or math.isinf(poll_backoff_factor):
            raise ConfigurationError(
                f"poll_backoff_factor must be a finite number of at least 1.0, got {poll_backoff_factor!r}"
            )
        lease = seconds_of("lease_duration", lease_duration)
        heartbeat = (
            lease / 2.5 if heartbeat_interval is None else seconds_of("heartbeat_interval", heartbeat_interval)
        )
        if heartbeat >= lease:
            raise ConfigurationError(
                f"heartbeat_interval ({heartbeat}s) must be shorter than lease_duration ({lease}s), or leases"
                " expire between renewals; a third to a half of the lease is a good value"
            )
        return cls(
            worker_id=worker_id,
            queues=names_of("queues", queues),
            tags=names_of("tags", tags),
            max_concurrency=max_concurrency,
            poll_interval=poll,
            poll_interval_max=poll_max,
            poll_backoff_factor=float(poll_backoff_factor),
            lease_duration=lease,
            heartbeat_interval=heartbeat,
            cleanup_interval=seconds_of("cleanup_interval", cleanup_interval),
            retention_period=seconds_of("retention_period", retention_period),
            drain_timeout=None if drain_timeout is None else seconds_of("drain_timeout", drain_timeout),
        )


def default_worker_id() -> str:
    """A worker name unique across hosts and restarts: host, process id and a random suffix (a container's
    process is often pid 1 on every host, so the pid alone is not enough)."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
