"""Versioned migrations of stent's schema, applied by ``init_db()``.

Every table lives in one schema of stent's own (``stent`` unless configured), so stent never touches an
application's tables.  ``schema_version`` records which migrations ran.  Migrating takes a transaction-scoped
advisory lock first and reads the version only then, so when many workers start at once exactly one applies
each migration and the others find the work done; a worker that finds the schema current takes no lock at all.
"""

from __future__ import annotations

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information
import attrs

from stent.errors import ConfigurationError
from stent_postgres import ddl
from stent_postgres.config import PostgresSettings


@attrs.frozen
class Migration:
    """One step from ``version - 1`` to ``version``; its statements run in the migrating transaction."""

    version: int
    description: str
    statements: tuple[str, ...]


#: Every migration, in order; a schema at version N has had 1..N applied.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "executions, tasks, steps, signals, dead letters, cache, leaders, workers; claim", ddl.V1),
    Migration(2, "claim: each candidate root's execution looked up by key; its cached plans walk indexes", ddl.V2),
    Migration(3, "claim: the executions it starts updated by key", ddl.V3),
)
LATEST_VERSION = MIGRATIONS[-1].version

_VERSION_TABLE = """CREATE TABLE IF NOT EXISTS {s}.schema_version (
    version integer PRIMARY KEY,
    description text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def current_version(conn: asyncpg.Connection, schema: str) -> int:
    """The schema version recorded, 0 when the schema or its version table does not exist yet."""
    exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f"{quote_ident(schema)}.schema_version")
    if not exists:
        return 0
    value = await conn.fetchval(f"SELECT max(version) FROM {quote_ident(schema)}.schema_version")
    return int(value or 0)


def _too_new(settings: PostgresSettings, version: int) -> ConfigurationError:
    return ConfigurationError(
        f"the stent schema {settings.schema!r} at {settings.where} has version {version}, newer than this"
        f" stent-postgres supports ({LATEST_VERSION}); upgrade stent-postgres on this host"
    )


async def _create_schema(conn: asyncpg.Connection, settings: PostgresSettings) -> None:
    # CREATE SCHEMA checks the database privilege even with IF NOT EXISTS, so a schema an administrator made
    # beforehand must not be created again.
    if await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", settings.schema):
        return
    # Read now: after a failed statement the transaction answers nothing more.
    who = await conn.fetchrow("SELECT current_user AS user, current_database() AS database")
    try:
        await conn.execute(f"CREATE SCHEMA {quote_ident(settings.schema)}")
    except asyncpg.InsufficientPrivilegeError as exc:
        user, database = who["user"], who["database"]
        raise ConfigurationError(
            f"PostgreSQL user {user!r} may not create the schema {settings.schema!r}: it lacks the CREATE"
            f" privilege on database {database!r} ({exc}). Grant it (GRANT CREATE ON DATABASE {database} TO"
            f" {user}), or have an administrator create the schema for it (CREATE SCHEMA {settings.schema}"
            f" AUTHORIZATION {user}), then run init_db() again"
        ) from exc


async def migrate(conn: asyncpg.Connection, settings: PostgresSettings) -> int:
    """Bring the schema to :data:`LATEST_VERSION`; returns how many migrations ran.  ``conn`` is idle."""
    version = await current_version(conn, settings.schema)
    if version > LATEST_VERSION:
        raise _too_new(settings, version)
    if version == LATEST_VERSION:
        return 0
    schema = quote_ident(settings.schema)
    async with conn.transaction():
        # The lock is per schema: deployments in other schemas of the same database migrate independently.
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"stent.migrate:{settings.schema}"
        )
        await _create_schema(conn, settings)
        user = await conn.fetchval("SELECT current_user")
        try:
            await conn.execute(_VERSION_TABLE.replace("{s}", schema))
        except asyncpg.InsufficientPrivilegeError as exc:
            raise ConfigurationError(
                f"PostgreSQL user {user!r} may not create tables in the schema {settings.schema!r} ({exc}); grant"
                f" it (GRANT USAGE, CREATE ON SCHEMA {settings.schema} TO {user}) and run init_db() again"
            ) from exc
        # Read under the lock: a worker that started at the same moment may have migrated already.
        version = await current_version(conn, settings.schema)
        if version > LATEST_VERSION:
            raise _too_new(settings, version)
        pending = [m for m in MIGRATIONS if m.version > version]
        for migration in pending:
            # One round trip per migration: its statements go as one script (simple query protocol).
            script = ";\n".join(migration.statements)
            await conn.execute(script.replace("{s}", schema).replace("{schema_literal}", f"'{settings.schema}'"))
            await conn.execute(
                f"INSERT INTO {schema}.schema_version (version, description) VALUES ($1, $2)",
                migration.version,
                migration.description,
            )
    return len(pending)
