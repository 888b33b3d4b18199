"""PostgreSQL's own write rate on this machine: pgbench's simple-update script, run next to the drain benchmark
so the table can say what share of the database's raw write capacity stent uses.

pgbench gets a database of its own (``stent_bench_pgbench_<random>``), created, initialised (``pgbench -i``,
scale 1) and dropped around the run, so it never touches stent's schemas or anyone's tables.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import uuid
from typing import Any
from urllib.parse import unquote, urlsplit

_TPS = re.compile(rb"^tps = ([0-9.]+)", re.MULTILINE)


async def _pgbench(args: list[str], env: dict[str, str]) -> bytes:
    process = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env
    )
    output, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:3])}... failed ({process.returncode}): {output.decode()[-1500:]}")
    return output


async def simple_update_tps(url: str, *, seconds: int = 5, clients: int = 1) -> dict[str, Any]:
    """Run ``pgbench -N`` (simple-update) for ``seconds`` with ``clients`` connections on the server of ``url``;
    return ``tps`` and the command line."""
    executable = shutil.which("pgbench")
    if executable is None:
        raise RuntimeError("pgbench is not on PATH; install PostgreSQL's client tools (postgresql-client)")
    import asyncpg

    parts = urlsplit(url)
    database = f"stent_bench_pgbench_{uuid.uuid4().hex[:10]}"
    where = ["-h", parts.hostname or "127.0.0.1", "-p", str(parts.port or 5432)]
    if parts.username:
        where += ["-U", unquote(parts.username)]
    env = dict(os.environ)
    if parts.password:
        env["PGPASSWORD"] = unquote(parts.password)
    admin = await asyncpg.connect(url)
    try:
        await admin.execute(f'CREATE DATABASE "{database}"')
        try:
            await _pgbench([executable, "-i", "-q", "-s", "1", *where, database], env)
            run = [
                executable,
                "-n",
                "-N",
                "-c",
                str(clients),
                "-j",
                str(clients),
                "-T",
                str(seconds),
                *where,
                database,
            ]
            output = await _pgbench(run, env)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    finally:
        await admin.close()
    found = _TPS.search(output)
    if found is None:
        raise RuntimeError(f"no tps line in pgbench's output: {output.decode()[-1500:]}")
    return {"tps": float(found.group(1)), "command": " ".join(["pgbench", *run[1:]]), "seconds": seconds}
