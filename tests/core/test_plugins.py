"""The plugin host: schemes resolve through plugins, and broken, clashing or missing plugins get clear errors."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from stent import plugins
from stent.backends import Backends, Notifications
from stent.errors import BackendNotInstalled, ConfigurationError, PluginError
from stent.memory.storage import MemoryStorage
from stent.plugins import PluginHost, hookimpl


@attrs.frozen
class FakeDist:
    name: str
    version: str


@attrs.define
class FakeEntryPoint:
    """Looks like an importlib.metadata.EntryPoint of a distribution; counts its loads."""

    name: str
    plugin: Callable[[], object]
    dist: FakeDist
    value: str = ""
    loads: int = 0

    def load(self) -> object:
        self.loads += 1
        return self.plugin()


def storage_plugin(*schemes: str, calls: list[str] | None = None) -> types.ModuleType:
    """A plugin module that registers a recording storage factory for each scheme."""
    module = types.ModuleType(f"fake_plugin_{'_'.join(schemes)}")

    def factory(url: str, **options: Any) -> tuple[str, dict[str, Any]]:
        if calls is not None:
            calls.append(url)
        return (url, options)

    @hookimpl
    def stent_register_storage(registry: plugins.Registry) -> None:
        for scheme in schemes:
            registry.add_storage(scheme, factory)

    module.stent_register_storage = stent_register_storage  # type: ignore[attr-defined]
    return module


def entry_point(name: str, plugin: Callable[[], object], dist: str = "fake-dist", version: str = "1.0") -> Any:
    return FakeEntryPoint(name, plugin, FakeDist(dist, version), value=f"{name}_module")


def host_with(*entry_points: Any, environ: dict[str, str] | None = None) -> PluginHost:
    return PluginHost(discover=lambda: list(entry_points), environ=environ or {})


@pytest.fixture(autouse=True)
def _fresh_global_host() -> Iterator[None]:
    plugins.reset_plugin_host()
    yield
    plugins.reset_plugin_host()


# -- resolving ------------------------------------------------------------------------------------------------


def test_memory_scheme_gives_a_fresh_memory_storage() -> None:
    """memory:// resolves through the built-in plugin, and every resolve is a new, separate store."""
    first, second = plugins.make_storage("memory://"), plugins.make_storage("memory://")
    assert isinstance(first, MemoryStorage) and isinstance(second, MemoryStorage)
    assert first is not second


def test_memory_scheme_gives_a_fresh_memory_notifier() -> None:
    """memory:// as a notifier resolves through the same built-in plugin to a new process-local notifier."""
    from stent.memory.notifier import MemoryNotifier

    first, second = plugins.make_notifier("memory://"), Notifications.MemoryBackend()
    assert isinstance(first, MemoryNotifier) and isinstance(second, MemoryNotifier)
    assert first is not second


def test_memory_storage_rejects_options() -> None:
    """Options memory:// does not understand are an error naming them, not silently dropped."""
    with pytest.raises(ConfigurationError, match="takes no options, got path"):
        plugins.make_storage("memory://", path="x")


def test_unknown_scheme_lists_the_installed_schemes() -> None:
    """An unknown scheme names itself and the schemes that would work."""
    with pytest.raises(BackendNotInstalled, match=r"unknown storage URL scheme 'bogus'.*memory://"):
        plugins.make_storage("bogus://somewhere")


@pytest.mark.parametrize(
    ("kind", "url", "package"),
    [
        ("storage", "sqlite:///x.db", "stent-sqlite"),
        ("storage", "postgresql://h/db", "stent-postgres"),
        ("storage", "postgres://h/db", "stent-postgres"),
        ("notifier", "postgresql://h/db", "stent-postgres"),
        ("notifier", "redis://h:6379", "stent-redis"),
        ("notifier", "rediss://h:6379", "stent-redis"),
        ("notifier", "nats://h:4222", "stent-nats"),
    ],
)
def test_missing_adapter_names_the_package_to_install(
    kind: str, url: str, package: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A known scheme whose adapter is not installed says which pip package provides it."""
    monkeypatch.setattr(plugins, "_installed_version", lambda dist: None)
    with pytest.raises(BackendNotInstalled, match=f"install it with: pip install {package}"):
        host_with().make(kind, url)


def test_installed_adapter_without_the_backend_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    """An adapter distribution that is installed but registers nothing is not reported as missing."""
    monkeypatch.setattr(plugins, "_installed_version", lambda dist: "0.1.0")
    with pytest.raises(BackendNotInstalled, match="stent-redis 0.1.0 is installed but provides no redis://"):
        host_with().make("notifier", "redis://localhost")


def test_notifier_url_given_as_storage_is_explained() -> None:
    """A redis:// URL passed where storage is expected says it is a notifier URL."""
    with pytest.raises(BackendNotInstalled, match="redis:// names a notifier backend, not a storage"):
        host_with().make("storage", "redis://localhost")


@pytest.mark.parametrize(
    ("url", "message"),
    [(42, "must be a str"), ("workflow.db", "use 'sqlite:///workflow.db'"), ("", "is not a storage URL")],
)
def test_a_value_that_is_not_a_url_is_a_configuration_error(url: object, message: str) -> None:
    """Non-strings and strings without scheme:// are rejected with an example of a good URL."""
    with pytest.raises(ConfigurationError, match=message):
        plugins.make_storage(url)  # type: ignore[arg-type]


def test_passwords_are_not_echoed_in_errors() -> None:
    """A URL's password is masked in error messages, which end up in logs."""
    with pytest.raises(ConfigurationError) as info:
        Backends.PostgresBackend("mysql://admin:hunter2@db/x")
    assert "hunter2" not in str(info.value) and "admin:***@" in str(info.value)


def test_aliases_reach_one_factory_with_the_url_unchanged() -> None:
    """postgres:// and postgresql:// are one scheme; the factory still receives the URL as written."""
    calls: list[str] = []
    host = host_with(entry_point("pg", lambda: storage_plugin("postgresql", calls=calls), "pg-dist"))
    host.make("storage", "postgres://u@h/db")
    host.make("storage", "POSTGRESQL://u@h/db")
    assert calls == ["postgres://u@h/db", "POSTGRESQL://u@h/db"]


def test_options_are_passed_to_the_factory() -> None:
    """Keyword options given to make_storage reach the factory."""
    host = host_with(entry_point("x", lambda: storage_plugin("x")))
    assert host.make("storage", "x://a", pool_size=3) == ("x://a", {"pool_size": 3})


def test_a_factory_missing_its_driver_names_the_distribution() -> None:
    """A factory whose driver cannot be imported raises BackendNotInstalled naming the adapter to reinstall."""
    module = types.ModuleType("needs_driver")

    def factory(url: str) -> object:
        raise ModuleNotFoundError("No module named 'fancydriver'", name="fancydriver")

    @hookimpl
    def stent_register_storage(registry: plugins.Registry) -> None:
        registry.add_storage("fancy", factory)

    module.stent_register_storage = stent_register_storage  # type: ignore[attr-defined]
    host = host_with(entry_point("fancy", lambda: module, "stent-fancy", "2.0"))
    with pytest.raises(BackendNotInstalled, match=r"'fancydriver'.*pip install --force-reinstall stent-fancy"):
        host.make("storage", "fancy://x")


# -- loading --------------------------------------------------------------------------------------------------


def test_two_plugins_claiming_one_scheme_is_an_error_naming_both() -> None:
    """A scheme claimed twice fails to resolve, naming both distributions; other schemes still work."""
    host = host_with(
        entry_point("one", lambda: storage_plugin("dup", "only-one"), "dist-one", "1.0"),
        entry_point("two", lambda: storage_plugin("dup"), "dist-two", "2.0"),
    )
    with pytest.raises(PluginError, match=r"dist-one 1\.0 .* and dist-two 2\.0"):
        host.make("storage", "dup://x")
    assert host.make("storage", "only-one://x") == ("only-one://x", {})
    assert isinstance(host.make("storage", "memory://"), MemoryStorage)
    [conflict] = host.report().conflicts
    assert (conflict.kind, conflict.scheme) == ("storage", "dup")
    assert [s.distribution for s in conflict.sources] == ["dist-one", "dist-two"]


def test_a_broken_plugin_is_reported_and_the_others_still_load(caplog: pytest.LogCaptureFixture) -> None:
    """Import errors and hook exceptions are recorded with distribution, version and error; others load."""

    def import_fails() -> object:
        raise ImportError("No module named 'stent_broken.plugin'")

    half = types.ModuleType("half_registers")

    @hookimpl
    def stent_register_storage(registry: plugins.Registry) -> None:
        registry.add_storage("half", lambda url: url)

    @hookimpl
    def stent_register_notifier(registry: plugins.Registry) -> None:
        raise RuntimeError("notifier hook exploded")

    half.stent_register_storage = stent_register_storage  # type: ignore[attr-defined]
    half.stent_register_notifier = stent_register_notifier  # type: ignore[attr-defined]
    host = host_with(
        entry_point("broken", import_fails, "stent-broken", "0.3"),
        entry_point("half", lambda: half, "stent-half", "0.4"),
        entry_point("good", lambda: storage_plugin("good"), "stent-good", "1.2"),
    )
    with caplog.at_level(logging.WARNING, logger="stent.plugins"):
        assert host.make("storage", "good://x") == ("good://x", {})
    report = host.report()
    failures = {(f.name, f.distribution, f.version): f.error for f in report.failures}
    assert failures == {
        ("broken", "stent-broken", "0.3"): "ImportError: No module named 'stent_broken.plugin'",
        ("half", "stent-half", "0.4"): "RuntimeError: notifier hook exploded",
    }
    # The plugin that failed half-way left nothing registered.
    with pytest.raises(BackendNotInstalled, match="Plugins that failed to load: stent-broken 0.3"):
        host.make("storage", "half://x")
    assert [p.name for p in report.plugins] == ["memory", "good"]
    assert "stent-broken 0.3" in caplog.text and "stent-half 0.4" in caplog.text


def test_a_hook_with_a_misspelt_name_is_a_failure() -> None:
    """A hookimpl for a hook stent does not define is reported rather than silently ignored."""
    module = types.ModuleType("typo")

    @hookimpl
    def stent_register_storge(registry: plugins.Registry) -> None:  # pragma: no cover - never called
        raise AssertionError

    module.stent_register_storge = stent_register_storge  # type: ignore[attr-defined]
    host = host_with(entry_point("typo", lambda: module, "stent-typo"))
    [failure] = host.report().failures
    assert "unknown hooks stent_register_storge" in failure.error


@pytest.mark.parametrize("setting", ["good", "stent-good", "Stent_Good", " other , good ", "all", "*"])
def test_disabled_plugins_are_not_imported(setting: str) -> None:
    """STENT_DISABLE_PLUGINS names entry points or distributions (or all) to skip without importing them."""
    good = entry_point("good", lambda: storage_plugin("good"), "stent-good")
    host = host_with(good, environ={"STENT_DISABLE_PLUGINS": setting})
    with pytest.raises(BackendNotInstalled):
        host.make("storage", "good://x")
    assert good.loads == 0
    assert [s.name for s in host.report().disabled] == ["good"]


def test_built_in_memory_works_with_every_plugin_disabled() -> None:
    """The built-in memory:// adapters are part of core and survive STENT_DISABLE_PLUGINS=all."""
    host = host_with(environ={"STENT_DISABLE_PLUGINS": "all,memory"})
    assert isinstance(host.make("storage", "memory://"), MemoryStorage)
    assert host.report().plugins[0].builtin


def test_built_in_entry_point_is_not_loaded_twice() -> None:
    """stent-core's own memory entry point is recognised as the built-in, not a second claim on memory://."""
    core = FakeEntryPoint("memory", lambda: None, FakeDist("stent-core", "0.1.0"), value="stent.memory.plugin")
    host = host_with(core)
    assert isinstance(host.make("storage", "memory://"), MemoryStorage)
    assert core.loads == 0 and host.report().conflicts == ()


def test_entry_points_load_on_first_resolve_only_once() -> None:
    """Creating the host loads nothing; the first resolve loads each entry point once."""
    good = entry_point("good", lambda: storage_plugin("good"))
    host = host_with(good)
    assert good.loads == 0
    host.make("storage", "good://1")
    host.make("storage", "good://2")
    assert good.loads == 1


def test_the_process_wide_host_discovers_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    """make_storage uses the process-wide host, which lists entry points through discover_entry_points."""
    good = entry_point("good", lambda: storage_plugin("good"))
    monkeypatch.setattr(plugins, "discover_entry_points", lambda: [good])
    assert plugins.get_plugin_host() is plugins.get_plugin_host()
    assert plugins.get_plugin_host().make("storage", "good://x") == ("good://x", {})
    assert ("good", "fake-dist", "1.0", ("good",)) in [
        (p.name, p.distribution, p.version, p.storage) for p in plugins.list_plugins().plugins
    ]


def test_importing_the_plugin_module_loads_no_plugin() -> None:
    """`import stent.plugins` imports no plugin module (entry points load on the first resolve)."""
    code = (
        "import sys, stent.plugins, stent.backends\n"
        "loaded = [m for m in sys.modules if m.endswith('.plugin') or m.startswith('stent_')]\n"
        "print(loaded)\n"
        "assert not loaded, loaded\n"
        "stent.plugins.list_plugins()\n"
        "assert 'stent.memory.plugin' in sys.modules\n"
    )
    src = Path(__file__).resolve().parents[2] / "packages" / "stent-core" / "src"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(src), os.environ.get("PYTHONPATH")]))}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60)


def test_registry_rejects_registration_outside_a_hook() -> None:
    """Registering directly on the registry is refused with the way to do it instead."""
    with pytest.raises(PluginError, match="outside a plugin hook.*register_plugin"):
        plugins.get_plugin_host().registry.add_storage("x", lambda url: url)


@pytest.mark.parametrize(("scheme", "factory"), [("sqlite://", len), ("Bad Scheme", len), ("ok", "not callable")])
def test_plugin_registering_bad_values_is_refused(scheme: str, factory: object) -> None:
    """A plugin registering a malformed scheme or a non-callable factory gets a PluginError saying which."""
    module = types.ModuleType("bad_values")

    @hookimpl
    def stent_register_storage(registry: plugins.Registry) -> None:
        registry.add_storage(scheme, factory)  # type: ignore[arg-type]

    module.stent_register_storage = stent_register_storage  # type: ignore[attr-defined]
    with pytest.raises(PluginError, match="invalid URL scheme|not callable"):
        plugins.get_plugin_host().register_plugin(module, name="bad")


def test_a_plugin_registered_in_code_resolves_and_adds_commands() -> None:
    """register_plugin adds an in-process plugin; command registrations are listed for the CLI."""
    module = storage_plugin("inproc")

    @hookimpl
    def stent_register_commands(registry: plugins.Registry) -> None:
        registry.add_command("hello", lambda: "hi")

    module.stent_register_commands = stent_register_commands  # type: ignore[attr-defined]
    host = plugins.get_plugin_host()
    info = host.register_plugin(module, name="inproc", distribution="my-app", version="9")
    assert (info.storage, info.commands) == (("inproc",), ("hello",))
    assert host.make("storage", "inproc://z") == ("inproc://z", {})
    assert host.commands()["hello"].source.distribution == "my-app"


# -- Stent.backends and Stent.notifications -------------------------------------------------------------------


@pytest.fixture
def recorded_urls() -> list[str]:
    """Installs a host whose sqlite/postgresql/redis/nats factories record the URL they are given."""
    calls: list[str] = []
    module = storage_plugin("sqlite", "postgresql", calls=calls)

    def notifier(url: str, **options: Any) -> str:
        calls.append(url)
        return url

    @hookimpl
    def stent_register_notifier(registry: plugins.Registry) -> None:
        for scheme in ("redis", "nats", "postgresql"):
            registry.add_notifier(scheme, notifier)

    module.stent_register_notifier = stent_register_notifier  # type: ignore[attr-defined]
    plugins.reset_plugin_host(host_with(entry_point("all", lambda: module)))
    return calls


def test_sqlite_backend_turns_a_path_into_a_sqlite_url(recorded_urls: list[str], tmp_path: Path) -> None:
    """Relative paths give sqlite:///rel, absolute ones sqlite:////abs; PathLike works too."""
    Backends.SQLiteBackend("workflow.db")
    Backends.SQLiteBackend(tmp_path / "a.db")
    assert recorded_urls == ["sqlite:///workflow.db", f"sqlite:///{tmp_path}/a.db"]
    assert recorded_urls[1].startswith("sqlite:////")


@pytest.mark.parametrize(
    ("path", "message"),
    [(42, "str or os.PathLike"), (b"x.db", "str or os.PathLike"), ("", "empty"), ("sqlite:///x", "from_url")],
)
def test_sqlite_backend_rejects_what_is_not_a_path(path: object, message: str, recorded_urls: list[str]) -> None:
    """Wrong types, empty paths and URLs get a ConfigurationError saying what to pass instead."""
    with pytest.raises(ConfigurationError, match=message):
        Backends.SQLiteBackend(path)  # type: ignore[arg-type]
    assert recorded_urls == []


def test_named_constructors_resolve_through_the_registry(recorded_urls: list[str]) -> None:
    """Each named constructor reaches its scheme's factory with the URL as given."""
    Backends.PostgresBackend("postgres://u@h/db")
    Backends.from_url("sqlite:///f.db")
    Notifications.RedisBackend("rediss://h:6380")
    Notifications.NatsBackend("nats://h:4222")
    Notifications.PostgresBackend("postgresql://u@h/db")
    Notifications.from_url("redis://h")
    assert recorded_urls == [
        "postgres://u@h/db", "sqlite:///f.db", "rediss://h:6380", "nats://h:4222", "postgresql://u@h/db", "redis://h",
    ]  # fmt: skip
    assert isinstance(Backends.MemoryBackend(), MemoryStorage)


@pytest.mark.parametrize(
    ("constructor", "value", "message"),
    [
        (Backends.PostgresBackend, "redis://h", "PostgresBackend takes a URL such as 'postgresql://"),
        (Backends.PostgresBackend, "host=h dbname=x", "PostgresBackend takes a URL"),
        (Notifications.RedisBackend, "nats://h", "use NatsBackend"),
        (Notifications.NatsBackend, "redis://h", "use RedisBackend"),
        (Notifications.RedisBackend, None, "not NoneType"),
    ],
)
def test_named_constructors_reject_other_schemes(constructor: Any, value: object, message: str) -> None:
    """A URL of the wrong scheme for a named constructor says which constructor fits."""
    with pytest.raises(ConfigurationError, match=message):
        constructor(value)
