"""Publishing on a connection Redis never answers on (``CLIENT REPLY OFF``).

A hint is worth one write and nothing more: awaiting ``PUBLISH``'s reply (the number of subscribers, which stent
never reads) cost a round trip and redis-py's reply handling per dispatch, a quarter of ``dispatch()``'s time.
With replies off a publish is one write to the socket, and :meth:`QuietPublisher.publish_soon` need not even be
awaited: what a turn of the event loop publishes goes out in one write at its end.  A connection the server closed is noticed by a read
that waits for nothing but the end of the stream, so a hint is not written into a dead connection after an
outage; the next publish then opens a new one.

Servers that do not know ``CLIENT REPLY`` (some Redis-compatible ones) are detected when the connection opens,
and the notifier publishes with ordinary, answered commands instead.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.exceptions import ResponseError

# Hints buffered in the socket's transport beyond this many bytes (a server that stopped reading) are dropped.
_MAX_BUFFERED = 1 << 20
# Nothing ever arrives on the connection: its watcher waits this long for the end of the stream, again and again.
_WATCH = 24 * 3600.0
# Switch replies off, then prove it: with replies off, PING stays silent and the first reply is CLIENT REPLY ON's
# OK; a server that does not know CLIENT REPLY answers the first command with an error instead.  The last command
# switches replies off for good.
_PROBE = (("CLIENT", "REPLY", "OFF"), ("PING",), ("CLIENT", "REPLY", "ON"), ("CLIENT", "REPLY", "OFF"))


class QuietPublisher:
    """One reply-less connection, opened on first use and again after it was lost."""

    def __init__(self, pool: ConnectionPool, timeout: float) -> None:
        self._pool = pool
        self._timeout = timeout
        self._connection: AbstractConnection | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._soon: list[bytes] = []
        #: False once the server turned CLIENT REPLY OFF down: the notifier then publishes the ordinary way.
        self.supported = True

    async def publish(self, channel: str, payloads: Sequence[bytes]) -> None:
        """Write one PUBLISH per payload; raises what the connection raises."""
        connection = self._connection if self._connection is not None else await self._open()
        if connection is None:
            raise ResponseError("CLIENT REPLY is not supported by this server")
        commands = connection.pack_commands([("PUBLISH", channel, payload) for payload in payloads])
        try:
            await asyncio.wait_for(connection.send_packed_command(commands, check_health=False), self._timeout)
        except BaseException:
            await self._drop(connection)
            raise

    def publish_soon(self, commands: Sequence[bytes]) -> bool:
        """Queue packed PUBLISH commands for one write at the end of this turn of the loop; False when the
        connection is not open (or not one this can write to), and the caller should publish the ordinary way."""
        writer = getattr(self._connection, "_writer", None)
        if not isinstance(writer, asyncio.StreamWriter) or writer.is_closing():
            return False
        if not self._soon:
            asyncio.get_running_loop().call_soon(self._write_soon, writer)
        self._soon.extend(commands)
        return True

    def pack(self, channel: str, payloads: Sequence[bytes]) -> list[bytes] | None:
        """PUBLISH commands for ``payloads``, packed for the wire; None when the connection is not open."""
        connection = self._connection
        if connection is None:
            return None
        packed: list[bytes] = connection.pack_commands([("PUBLISH", channel, payload) for payload in payloads])
        return packed

    def _write_soon(self, writer: asyncio.StreamWriter) -> None:
        commands, self._soon = self._soon, []
        if writer.is_closing() or writer.transport.get_write_buffer_size() > _MAX_BUFFERED:
            return  # lost hints: waiters and workers poll
        with contextlib.suppress(Exception):
            writer.writelines(commands)

    async def open(self) -> None:
        """Open the connection now (the first publish would otherwise)."""
        if self._connection is None and self.supported:
            await self._open()

    async def close(self) -> None:
        # Hints queued by publish_soon in this turn go out while the watcher ends (a turn of the loop).
        connection, self._connection = self._connection, None
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.disconnect()

    async def _open(self) -> AbstractConnection | None:
        connection: AbstractConnection = self._pool.make_connection()  # type: ignore[no-untyped-call]
        try:
            await asyncio.wait_for(connection.connect(), self._timeout)  # type: ignore[no-untyped-call]
            await connection.send_packed_command(connection.pack_commands(_PROBE))
            try:
                await connection.read_response(timeout=self._timeout)
            except ResponseError:
                self.supported = False
                await connection.disconnect()
                return None
        except BaseException:
            with contextlib.suppress(Exception):
                await connection.disconnect()
            raise
        self._connection = connection
        self._watcher = asyncio.get_running_loop().create_task(self._watch(connection), name="stent-redis-quiet")
        return connection

    async def _watch(self, connection: AbstractConnection) -> None:
        """Return when the server closes the connection (nothing else ever arrives on it)."""
        with contextlib.suppress(Exception):
            while True:
                await connection.read_response(timeout=_WATCH, disconnect_on_error=False)
        await self._drop(connection)

    async def _drop(self, connection: AbstractConnection) -> None:
        if self._connection is connection:
            self._connection = None
        with contextlib.suppress(Exception):
            await connection.disconnect()
