"""OplogStorage: stent's reference in-memory storage, made durable by a log of its writes.

Every call that may change the store is appended to a log file once it has succeeded, as one pickled record
(method name and arguments).  Opening the store replays the log into a fresh MemoryStorage.  That is enough
because the Storage port is deterministic: every time-dependent call carries ``now``, and the reference storage
draws no random numbers, so the same calls rebuild the same state, fencing tokens included.

Limits, on purpose (this is an example):

* One process at a time.  The log is read once, when the store opens; a second process would not see the
  first one's writes.  So it declares ``durable`` but not ``shared``.
* The log only grows, and opening replays all of it.
* A write is flushed to the operating system, not fsynced: it survives a crash of the process, not of the
  machine.
* The records are pickles: open only logs you wrote yourself.
"""

from __future__ import annotations

import asyncio
import os
import pickle
from typing import IO, Any

from stent import StorageUnavailable
from stent.memory import MemoryStorage

#: The port's calls that only read: answered by the memory store, never logged.
READS = (
    "get_execution", "get_task", "get_tasks", "list_execution_tasks", "list_executions", "queue_depth",
    "queue_overview", "list_signals", "list_dead_letters", "get_dead_letter", "list_workers",
)  # fmt: skip
#: The calls that may change the store: logged once they succeed (cache_get drops an expired entry).
WRITES = (
    "create_execution", "create_executions", "get_or_create_steps", "claim_tasks", "renew_leases",
    "complete_task", "complete_tasks", "fail_task", "release_task", "suspend_task", "cancel_task", "expire_step",
    "send_signal", "cancel_execution", "time_out_executions", "discard_dead_letter", "replay_dead_letter",
    "cache_get", "cache_put", "acquire_leader", "release_leader", "delete_executions_before",
    "delete_dead_letters_before", "record_worker", "remove_worker", "delete_workers_before",
)  # fmt: skip


class OplogStorage:
    """A Storage kept in memory and in an append-only log file at ``path``, for one process."""

    capabilities: frozenset[str] = frozenset({"durable"})

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._memory: MemoryStorage | None = None
        self._log: IO[bytes] | None = None
        self._opening = asyncio.Lock()  # callers that arrive while the log is read wait for it, once

    def __repr__(self) -> str:
        return f"OplogStorage({self.path!r})"

    async def init_db(self) -> None:
        await self._store()

    async def close(self) -> None:
        if self._log is not None:
            self._log.close()
        self._memory, self._log = None, None

    async def _store(self) -> MemoryStorage:
        """The memory store, rebuilt from the log on first use."""
        async with self._opening:
            if self._memory is None:
                try:
                    # File work in a thread: a long log must not stall every other coroutine of the process.
                    records, self._log = await asyncio.to_thread(_open_log, self.path)
                except OSError as exc:
                    raise StorageUnavailable(f"cannot open the log {self.path}: {exc}") from exc
                memory = MemoryStorage()
                for name, args, kwargs in records:
                    await getattr(memory, name)(*args, **kwargs)
                self._memory = memory
            return self._memory

    def _append(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        assert self._log is not None
        try:
            pickle.dump((name, args, kwargs), self._log)
            self._log.flush()
        except OSError as exc:
            # The write changed memory but not the log: forget memory, as a crash would, and let the caller
            # retry against the state the log holds.
            self._memory = None
            self._log.close()
            raise StorageUnavailable(f"cannot append to the log {self.path}: {exc}") from exc


def _open_log(path: str) -> tuple[list[Any], IO[bytes]]:
    """The records of the log at ``path``, and the log opened for appending after the last whole record."""
    records, good = [], 0
    log = open(path, "a+b")  # noqa: SIM115 (the log stays open until close())
    log.seek(0)
    while True:
        try:
            records.append(pickle.load(log))
        except (EOFError, pickle.UnpicklingError):
            break  # the end, or a record cut short by a crash: that write never returned, so it never happened
        good = log.tell()
    log.truncate(good)
    return records, log


def _read(name: str) -> Any:
    async def read(self: OplogStorage, *args: Any, **kwargs: Any) -> Any:
        return await getattr(await self._store(), name)(*args, **kwargs)

    read.__name__ = name
    return read


def _write(name: str) -> Any:
    async def write(self: OplogStorage, *args: Any, **kwargs: Any) -> Any:
        result = await getattr(await self._store(), name)(*args, **kwargs)
        # The memory store never suspends inside a call, so nothing ran between the change and this line:
        # the log holds the calls in the order they took effect.
        self._append(name, args, kwargs)
        return result

    write.__name__ = name
    return write


for _name in READS:
    setattr(OplogStorage, _name, _read(_name))
for _name in WRITES:
    setattr(OplogStorage, _name, _write(_name))
