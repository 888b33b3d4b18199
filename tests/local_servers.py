"""Local servers for the notifier and fault tests: refused and silent ports, private server processes, TLS
certificates, and a log watcher (imported by name: tests/ is on sys.path through its conftest.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


def closed_port() -> int:
    """A local port nothing listens on (bound, then released), so connecting to it is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@contextlib.asynccontextmanager
async def silent_server() -> AsyncIterator[int]:
    """A local server that accepts connections and never says a word, for the length of the block; its port."""
    accepted: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for writer in accepted:
            writer.transport.abort()


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


# -- private servers with TLS and a password, started by the tests themselves ---------------------------------


@dataclass(frozen=True)
class Certificates:
    """A throwaway CA, and a server certificate it signed for localhost and 127.0.0.1."""

    ca: Path
    cert: Path
    key: Path


def require_binary(name: str) -> str:
    """The path of ``name``; otherwise skip, or fail under STENT_REQUIRE_SERVICES=1 like a missing service."""
    path = shutil.which(name)
    if path is not None:
        return path
    message = f"{name} is not on PATH; these tests start a private server of their own with it"
    if os.environ.get("STENT_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{message} (required: STENT_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(message)


def make_certificates(directory: Path) -> Certificates:
    """Generate the CA and the server certificate with the openssl command (EC keys, valid one day)."""
    openssl = require_binary("openssl")
    key_options = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    ca, ca_key = directory / "ca.pem", directory / "ca.key"
    cert, key, request = directory / "server.pem", directory / "server.key", directory / "server.csr"
    extensions = directory / "san.ext"
    # Python 3.13 verifies strictly (VERIFY_X509_STRICT): the CA needs a key usage, the server an authority key id.
    extensions.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nauthorityKeyIdentifier=keyid,issuer\n")
    ca_extensions = [
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]
    for argv in (
        ["req", "-x509", *key_options, "-keyout", ca_key, "-out", ca, "-days", "1", "-subj", "/CN=stent-test-ca",
         *ca_extensions],
        ["req", *key_options, "-keyout", key, "-out", request, "-subj", "/CN=localhost"],
        ["x509", "-req", "-in", request, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", cert,
         "-days", "1", "-extfile", extensions],
    ):  # fmt: skip
        subprocess.run([openssl, *map(str, argv)], check=True, capture_output=True, timeout=30)
    return Certificates(ca, cert, key)


@contextlib.contextmanager
def private_server(argv: list[str], port: int) -> Iterator[None]:
    """Run a server process until the block ends, once it accepts TCP connections on ``port`` (within 10 s)."""
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        while True:
            if process.poll() is not None:
                pytest.fail(
                    f"{argv[0]} exited with {process.returncode}: {process.stderr.read() if process.stderr else ''}"
                )
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"{argv[0]} did not listen on port {port} within 10s")
                time.sleep(0.05)  # polling the condition "the port accepts", bounded above
        yield
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        if process.stderr is not None:
            process.stderr.close()
