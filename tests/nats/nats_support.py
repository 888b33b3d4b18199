"""Helpers for the NATS notifier tests (imported by name, as pytest puts this folder on sys.path)."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable

import pytest


def closed_port() -> int:
    """A local port nothing listens on (bound, then released), so connecting to it is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class LogWatch(logging.Handler):
    """Keeps the records of one logger and lets a test wait, bounded, for a condition on them."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._changed = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self._changed.set()

    def at(self, level: int) -> list[str]:
        return [r.getMessage() for r in self.records if r.levelno == level]

    async def until(self, done: Callable[[LogWatch], bool], timeout: float) -> None:
        async def satisfied() -> None:
            while not done(self):
                self._changed.clear()
                await self._changed.wait()

        try:
            await asyncio.wait_for(satisfied(), timeout)
        except TimeoutError:
            pytest.fail(
                f"log condition not met within {timeout:g}s; records: {[r.getMessage() for r in self.records]}"
            )
