"""A PostgreSQL server of one test's own, which the test may stop and start (never the shared one on 5432).

``private_postgres()`` runs ``initdb`` into a temporary directory and starts the server on a free port with its
unix socket in that directory and trust authentication; it stops the server and removes the directory however
the test ends.  PostgreSQL refuses to run as root, so under root every command runs as the ``postgres`` OS user
(``runuser -u postgres --``).  Missing binaries skip the test, or fail it under ``STENT_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

sys.path.insert(0, str(Path(__file__).parents[1]))
from local_servers import closed_port


def postgres_binaries() -> Path:
    """The directory holding initdb and pg_ctl (the newest installed major version)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    on_path = shutil.which("initdb")
    if found or on_path:
        return Path(found[-1] if found else str(on_path)).parent
    message = "PostgreSQL's initdb and pg_ctl are not installed; this test starts a private server with them"
    if os.environ.get("STENT_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{message} (required: STENT_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(message)


@attrs.define
class PrivatePostgres:
    """One initialised cluster in ``base``; ``start()`` and ``stop()`` as often as the test likes."""

    bindir: Path
    base: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, program: str, *args: str, timeout: float = 60) -> None:
        as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        done = subprocess.run(
            [*as_postgres, str(self.bindir / program), *args],
            check=False,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            log = self.base / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise AssertionError(f"{program} {' '.join(args)} failed: {done.stdout}{done.stderr}{tail}")

    def init(self) -> None:
        self._run(
            "initdb", "-D", str(self.base / "data"), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"
        )

    def start(self) -> None:
        """Start the server and return once it accepts connections."""
        options = f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=60"
        data, log = str(self.base / "data"), str(self.base / "server.log")
        self._run("pg_ctl", "-D", data, "-l", log, "-o", options, "-w", "-t", "30", "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: disconnect every client, as a restart does) and return once it is down."""
        self._run("pg_ctl", "-D", str(self.base / "data"), "-m", mode, "-w", "-t", "30", "stop")


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A running private server; stopped and its directory removed afterwards, whatever happened."""
    bindir = postgres_binaries()
    base = Path(tempfile.mkdtemp(prefix="stent-pg-"))  # short: the socket path must fit in 107 bytes
    try:
        if os.geteuid() == 0:
            shutil.chown(base, "postgres", "postgres")
        server = PrivatePostgres(bindir, base, closed_port())
        server.init()
        server.start()
        try:
            yield server
        finally:
            if (base / "data" / "postmaster.pid").exists():
                server.stop("immediate")
    finally:
        shutil.rmtree(base, ignore_errors=True)
