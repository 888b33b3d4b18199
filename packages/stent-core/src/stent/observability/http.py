"""A minimal HTTP/1.1 server on asyncio streams, for health probes and ``/metrics``.

Probes and scrapers send one small GET and read one response, so the server reads the request head, answers,
and closes the connection.  No web framework: a worker must not need one to be observable.  Handlers are plain
functions (or coroutines) from a path to a :class:`Response`; a handler that raises answers 500 and the server
goes on.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Self

import attrs

log = logging.getLogger("stent.observability")

MAX_HEAD_BYTES = 16 * 1024
READ_TIMEOUT = 10.0

_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 500: "Internal Server Error",
            503: "Service Unavailable"}  # fmt: skip


@attrs.frozen
class Response:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"


Handler = Callable[[], "Response | Awaitable[Response]"]


class HttpServer:
    """Serves ``routes`` (path -> handler) on ``host``:``port``; ``port`` 0 picks a free port."""

    def __init__(self, routes: Mapping[str, Handler], host: str = "0.0.0.0", port: int = 0) -> None:
        self.routes = dict(routes)
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        sockets = self._server.sockets
        if sockets:
            self.port = sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
                return
            if len(head) > MAX_HEAD_BYTES:
                await self._send(writer, "GET", Response(400, b"request head too large\n"))
                return
            request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
            parts = request_line.split()
            if len(parts) != 3 or not parts[2].startswith("HTTP/"):
                await self._send(writer, "GET", Response(400, b"bad request line\n"))
                return
            method, target = parts[0].upper(), parts[1]
            path = target.split("?", 1)[0]
            handler = self.routes.get(path)
            if handler is None:
                known = ", ".join(sorted(self.routes))
                response = Response(404, f"no such path {path}; try {known}\n".encode())
            elif method not in ("GET", "HEAD"):
                response = Response(405, b"use GET\n")
            else:
                response = await self._call(handler, path)
            await self._send(writer, method, response)
        except ConnectionError:
            pass
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass

    @staticmethod
    async def _call(handler: Handler, path: str) -> Response:
        try:
            result = handler()
            if inspect.isawaitable(result):
                result = await result
            return result
        except Exception as exc:
            log.exception("handler for %s failed", path)
            return Response(500, f"{type(exc).__name__}: {exc}\n".encode())

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, method: str, response: Response) -> None:
        reason = _REASONS.get(response.status, "Unknown")
        head = (
            f"HTTP/1.1 {response.status} {reason}\r\n"
            f"Content-Type: {response.content_type}\r\n"
            f"Content-Length: {len(response.body)}\r\n"
            "Connection: close\r\n\r\n"
        ).encode("latin-1")
        writer.write(head if method == "HEAD" else head + response.body)
        await writer.drain()
