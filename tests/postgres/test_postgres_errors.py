"""Configuration and bad input: URLs and options, unreachable servers, wrong credentials, missing privileges."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest

from stent import Stent
from stent.errors import ConfigurationError, StentError, StorageUnavailable
from stent.plugins import make_notifier, make_storage
from stent_postgres import PostgresNotifier, PostgresStorage
from stent_postgres.config import parse_settings

# -- URLs and options (no server needed) ---------------------------------------------------------------------


def test_url_options_are_read_and_removed_from_the_dsn() -> None:
    """stent's options come out of the query; the driver's (sslmode, application_name) stay in the DSN."""
    settings = parse_settings(
        "postgresql://u:secret@db.example:6543/app?schema=jobs&min_size=2&max_size=7&sslmode=disable"
        "&connect_timeout=3&notify=true&application_name=mine",
        {},
    )
    assert (settings.schema, settings.min_size, settings.max_size) == ("jobs", 2, 7)
    assert (settings.connect_timeout, settings.notify) == (3.0, True)
    assert (settings.host, settings.port, settings.user, settings.database) == ("db.example", 6543, "u", "app")
    assert settings.dsn == "postgresql://u:secret@db.example:6543/app?sslmode=disable&application_name=mine"
    assert "secret" not in repr(PostgresStorage("postgresql://u:secret@db.example/app"))


def test_keyword_options_win_over_the_url() -> None:
    settings = parse_settings("postgres://h/db?max_size=3&schema=a", {"max_size": 9, "schema": "b"})
    assert (settings.max_size, settings.schema) == (9, "b")


@pytest.mark.parametrize(
    ("url", "options", "message"),
    [
        ("postgresql://h/db?min_size=5&max_size=2", {}, "min_size .5. must not exceed max_size"),
        ("postgresql://h/db?max_size=0", {}, "max_size must be a whole number of at least 1"),
        ("postgresql://h/db?max_size=many", {}, "max_size must be a whole number"),
        ("postgresql://h/db?schema=Bad-Name", {}, "schema must be a plain PostgreSQL name"),
        ("postgresql://h/db?schema=pg_catalog", {}, "schema must be a plain PostgreSQL name"),
        ("postgresql://h/db?connect_timeout=-1", {}, "connect_timeout must be a positive number"),
        ("postgresql://h/db?notify=maybe", {}, "notify must be true or false"),
        ("postgresql://h/db", {"pool_size": 3}, "unknown PostgreSQL option.s. pool_size"),
        ("mysql://h/db", {}, "is not a PostgreSQL URL"),
    ],
)
def test_bad_options_are_configuration_errors(url: str, options: dict[str, object], message: str) -> None:
    """A bad option fails at construction, before any connection, saying which and why."""
    with pytest.raises(ConfigurationError, match=message):
        PostgresStorage(url, **options)


def test_both_schemes_resolve_through_the_plugin_host() -> None:
    """postgresql:// and postgres:// give this adapter's storage and notifier, through every public route."""
    assert isinstance(make_storage("postgresql://h/db"), PostgresStorage)
    assert isinstance(make_storage("postgres://h/db?schema=x"), PostgresStorage)
    assert isinstance(Stent.backends.PostgresBackend("postgresql://h/db", max_size=2), PostgresStorage)
    assert isinstance(make_notifier("postgres://h/db"), PostgresNotifier)
    notifier = Stent.notifications.PostgresBackend("postgresql://h/db?schema=jobs")
    assert isinstance(notifier, PostgresNotifier) and notifier.channel == "stent_jobs"


def test_the_plugin_module_does_not_import_the_driver() -> None:
    """Loading stent's plugins imports stent_postgres.plugin, which must leave asyncpg unimported."""
    code = (
        "import sys, stent.plugins\n"
        "stent.plugins.list_plugins()\n"
        "import stent_postgres.plugin\n"
        "import json; print(json.dumps(['asyncpg' in sys.modules, 'stent_postgres.storage' in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert json.loads(out.stdout.splitlines()[-1]) == [False, False]


# -- servers that are not there ------------------------------------------------------------------------------


async def test_refused_connection_names_host_and_port(closed_port_url: str) -> None:
    """Nothing listening: StorageUnavailable naming host and port, at once."""
    storage = PostgresStorage(closed_port_url, connect_timeout=2)
    started = time.monotonic()
    with pytest.raises(StorageUnavailable, match=r"127\.0\.0\.1:1\b"):
        await storage.init_db()
    assert time.monotonic() - started < 3
    await storage.close()


async def test_unanswered_connection_gives_up_after_the_connect_timeout() -> None:
    """A host that never answers (a black-holed address) fails within the connect timeout, not the OS's."""
    storage = PostgresStorage("postgresql://postgres@10.255.255.1:5432/test", connect_timeout=0.5)
    started = time.monotonic()
    with pytest.raises(StorageUnavailable, match=r"10\.255\.255\.1:5432"):
        await asyncio.wait_for(storage.get_execution("x"), timeout=10)
    assert time.monotonic() - started < 3
    await storage.close()


# -- credentials, databases, privileges ----------------------------------------------------------------------


@pytest.fixture
async def role(admin: asyncpg.Connection) -> AsyncIterator[str]:
    """A login role of this test, with no privileges beyond PUBLIC's (no CREATE on the database)."""
    name = f"stent_role_{uuid.uuid4().hex[:10]}"
    await admin.execute(f"CREATE ROLE {name} LOGIN")
    yield name
    database = await admin.fetchval("SELECT current_database()")
    await admin.execute(f"REVOKE ALL ON DATABASE {database} FROM {name}")
    await admin.execute(f"DROP OWNED BY {name} CASCADE")
    await admin.execute(f"DROP ROLE {name}")


async def test_an_unknown_user_is_a_credentials_error(pg_url: str) -> None:
    storage = PostgresStorage(pg_url.replace("postgres@", "no_such_user_stent@"))
    with pytest.raises(ConfigurationError, match="refused the credentials of user 'no_such_user_stent'"):
        await storage.init_db()
    await storage.close()


async def test_a_missing_database_is_named(pg_url: str) -> None:
    storage = PostgresStorage(pg_url.rsplit("/", 1)[0] + "/no_such_db_stent")
    with pytest.raises(ConfigurationError, match="no database 'no_such_db_stent'"):
        await storage.init_db()
    await storage.close()


async def test_missing_create_privilege_is_named(pg_url: str, role: str, schemas: Callable[[], str]) -> None:
    """A user who may not create schemas is told which privilege is missing, and how to grant it."""
    storage = PostgresStorage(pg_url.replace("postgres@", f"{role}@"), schema=schemas())
    with pytest.raises(ConfigurationError, match=r"lacks the CREATE privilege on database 'test'.*GRANT CREATE"):
        await storage.init_db()
    await storage.close()


async def test_a_schema_created_by_an_administrator_is_used(
    pg_url: str, role: str, schemas: Callable[[], str], admin: asyncpg.Connection
) -> None:
    """With the schema made for it beforehand, a user without CREATE on the database initialises and works."""
    name = schemas()
    await admin.execute(f"CREATE SCHEMA {name} AUTHORIZATION {role}")
    storage = PostgresStorage(pg_url.replace("postgres@", f"{role}@"), schema=name)
    await storage.init_db()
    assert await storage.get_execution("nothing") is None
    await storage.close()


async def test_a_schema_without_tables_asks_for_init_db(
    open_storage: Callable[..., Awaitable[PostgresStorage]],
) -> None:
    storage = await open_storage(init=False)
    with pytest.raises(ConfigurationError, match=r"missing or incomplete.*call init_db\(\)"):
        await storage.get_execution("x")


async def test_errors_are_stent_errors_for_the_cli(closed_port_url: str) -> None:
    """Whatever goes wrong reaching the server surfaces as a StentError, which the CLI prints without a trace."""
    storage = PostgresStorage(closed_port_url, connect_timeout=1)
    with pytest.raises(StentError):
        await storage.list_workers()
    await storage.close()


def test_a_notifier_knows_which_storages_announce_to_it() -> None:
    """hears_storage: only a notifying storage on the same server, database and schema (channel) counts."""
    notifier = PostgresNotifier("postgresql://u@h:5432/app?schema=jobs")
    assert notifier.hears_storage(PostgresStorage("postgresql://u@h:5432/app?schema=jobs&notify=true"))
    assert not notifier.hears_storage(PostgresStorage("postgresql://u@h:5432/app?schema=jobs"))
    assert not notifier.hears_storage(PostgresStorage("postgresql://u@h:5432/app?schema=other&notify=true"))
    assert not notifier.hears_storage(PostgresStorage("postgresql://u@elsewhere:5432/app?schema=jobs&notify=true"))
    assert not notifier.hears_storage(object())
