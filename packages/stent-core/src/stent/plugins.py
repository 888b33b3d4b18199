"""The plugin host: finds adapters, keeps their factories by URL scheme, and builds backends from URLs.

Adapters are pluggy plugins listed under the ``stent`` entry-point group.  Each one implements the hooks of
:mod:`stent.hookspecs`, which hand it a :class:`Registry` to fill with factories keyed by URL scheme.  Resolving
a URL (:func:`make_storage`, :func:`make_notifier`) parses its scheme, finds the factory and calls it as
``factory(url, **options)``.

Loading rules, in the order they matter to a user:

* Nothing is loaded at import.  The first resolve (or :func:`list_plugins`) loads every plugin once, one entry
  point at a time: a plugin that fails to import, or raises in a hook, is recorded with its distribution,
  version and error, logged, rolled back (none of its schemes stay registered), and the others load as usual.
* All plugins are loaded, not only the one a URL needs, so that two plugins claiming one scheme are always
  noticed.  That is cheap because plugin modules import their drivers inside their factories.
* Two plugins claiming one scheme is an error when that scheme is resolved, naming both distributions; other
  schemes keep working.
* ``STENT_DISABLE_PLUGINS`` (comma-separated entry-point or distribution names, or ``all`` / ``*``) skips
  plugins.  Built-in adapters (``memory://``) are part of stent-core, not optional plugins: they register
  through the same hooks but are loaded by module name, so they work with every plugin disabled and from a
  source tree without installed metadata.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, cast

import attrs
import pluggy

from stent import hookspecs
from stent.backends import KNOWN_ADAPTERS, canonical_scheme, parse_scheme
from stent.errors import BackendNotInstalled, ConfigurationError, PluginError

if TYPE_CHECKING:
    from stent.ports import Notifier, Storage

log = logging.getLogger("stent.plugins")

ENTRY_POINT_GROUP = hookspecs.PROJECT_NAME
DISABLE_ENV = "STENT_DISABLE_PLUGINS"

hookimpl = pluggy.HookimplMarker(hookspecs.PROJECT_NAME)

#: Plugins that ship inside stent-core, by entry-point name and module.  stent-core's metadata also lists them
#: as entry points (so any tool that reads the group sees them); the host loads them by module instead.
BUILTIN_PLUGINS: Mapping[str, str] = {"memory": "stent.memory.plugin"}

_HOOKS = ("stent_register_storage", "stent_register_notifier", "stent_register_commands")
_SCHEME_RE = re.compile(r"[a-z][a-z0-9+.\-]*")
_COMMAND_RE = re.compile(r"[a-z][a-z0-9\-]*")

Factory = Callable[..., Any]


class EntryPointLike(Protocol):
    """What the host needs of an :class:`importlib.metadata.EntryPoint` (tests pass look-alikes)."""

    name: str
    value: str

    def load(self) -> Any: ...


@attrs.frozen
class PluginSource:
    """Who registered something: the plugin's (entry-point) name and the distribution that ships it."""

    name: str
    distribution: str
    version: str

    def describe(self) -> str:
        return f"{self.distribution} {self.version} (plugin {self.name!r})"


@attrs.frozen
class Registration:
    """One factory a plugin added."""

    kind: str
    scheme: str
    factory: Factory
    source: PluginSource


@attrs.frozen
class PluginInfo:
    """A plugin that loaded, with what it registered."""

    name: str
    distribution: str
    version: str
    storage: tuple[str, ...]
    notifiers: tuple[str, ...]
    commands: tuple[str, ...]
    builtin: bool


@attrs.frozen
class PluginFailure:
    """A plugin that failed to load; ``error`` is ``"ExceptionType: message"``."""

    name: str
    distribution: str
    version: str
    error: str
    exception: BaseException | None = attrs.field(default=None, eq=False, repr=False)


@attrs.frozen
class SchemeConflict:
    """Several plugins claim one scheme of one kind; resolving it raises :class:`PluginError`."""

    kind: str
    scheme: str
    sources: tuple[PluginSource, ...]


@attrs.frozen
class PluginReport:
    """What :func:`list_plugins` returns: loaded plugins, failures, conflicts and disabled entry points."""

    plugins: tuple[PluginInfo, ...]
    failures: tuple[PluginFailure, ...]
    conflicts: tuple[SchemeConflict, ...]
    disabled: tuple[PluginSource, ...]


class Registry:
    """The factories plugins add, by kind and scheme.  Plugins call the ``add_*`` methods from their hooks."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], Registration] = {}
        self._conflicts: dict[tuple[str, str], list[Registration]] = {}
        # A plugin's registrations are staged and land only when all its hooks succeed, so a plugin that
        # raises half-way leaves nothing behind.
        self._staged: list[Registration] | None = None
        self._source: PluginSource | None = None

    def add_storage(self, scheme: str, factory: Factory) -> None:
        """Serve ``scheme://`` storage URLs with ``factory(url, **options)``."""
        self._add("storage", scheme, factory)

    def add_notifier(self, scheme: str, factory: Factory) -> None:
        """Serve ``scheme://`` notifier URLs with ``factory(url, **options)``."""
        self._add("notifier", scheme, factory)

    def add_command(self, name: str, factory: Factory) -> None:
        """Add a ``stent NAME`` CLI subcommand built by ``factory``."""
        self._add("command", name, factory)

    def lookup(self, kind: str, scheme: str) -> Registration | None:
        """The registration for a canonical scheme, or ``None``; raises :class:`PluginError` on a conflict."""
        clash = self._conflicts.get((kind, scheme))
        if clash:
            names = " and ".join(r.source.describe() for r in clash)
            raise PluginError(
                f"the {kind} scheme {scheme!r} is registered by more than one plugin: {names}. Uninstall one of"
                f" those distributions, or skip one with {DISABLE_ENV}=<plugin name>."
            )
        return self._entries.get((kind, scheme))

    def schemes(self, kind: str) -> list[str]:
        """Canonical schemes of one kind that resolve (conflicting ones excluded), sorted."""
        return sorted(s for k, s in self._entries if k == kind)

    def registrations(self, kind: str) -> dict[str, Registration]:
        return {s: r for (k, s), r in sorted(self._entries.items()) if k == kind}

    def conflicts(self) -> list[SchemeConflict]:
        return [
            SchemeConflict(kind, scheme, tuple(r.source for r in regs))
            for (kind, scheme), regs in sorted(self._conflicts.items())
        ]

    # -- staging, driven by the host ----------------------------------------------------------------------------

    def _add(self, kind: str, scheme: str, factory: Factory) -> None:
        if self._staged is None or self._source is None:
            raise PluginError(
                f"Registry.add_{kind} was called outside a plugin hook. Put the call in a function decorated"
                " with stent.plugins.hookimpl and register that module with get_plugin_host().register_plugin(),"
                " or list it under the 'stent' entry-point group."
            )
        what = "command name" if kind == "command" else "URL scheme"
        pattern = _COMMAND_RE if kind == "command" else _SCHEME_RE
        if not isinstance(scheme, str) or not pattern.fullmatch(scheme.lower()):
            raise PluginError(
                f"{self._source.describe()} registered an invalid {what} {scheme!r}: use lower-case letters,"
                f" digits and '-' (e.g. 'sqlite'), without '://'"
            )
        if not callable(factory):
            raise PluginError(
                f"{self._source.describe()} registered {scheme!r} with a {type(factory).__name__}, which is not"
                " callable; pass a function called as factory(url, **options)"
            )
        key = scheme.lower() if kind == "command" else canonical_scheme(scheme)
        for staged in self._staged:
            if (staged.kind, staged.scheme) == (kind, key) and staged.factory is not factory:
                raise PluginError(f"{self._source.describe()} registered the {kind} {key!r} twice")
        self._staged.append(Registration(kind, key, factory, self._source))

    def _begin(self, source: PluginSource) -> None:
        self._staged, self._source = [], source

    def _commit(self) -> list[Registration]:
        staged = self._staged or []
        for reg in staged:
            key = (reg.kind, reg.scheme)
            if key in self._conflicts:
                self._conflicts[key].append(reg)
            elif key in self._entries and self._entries[key].factory is not reg.factory:
                self._conflicts[key] = [self._entries.pop(key), reg]
            else:
                self._entries[key] = reg
        self._staged, self._source = None, None
        return staged

    def _discard(self) -> None:
        self._staged, self._source = None, None


def discover_entry_points() -> Iterable[EntryPointLike]:
    """Entry points of the ``stent`` group in the installed distributions."""
    return importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)


def _installed_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _source_of(entry_point: EntryPointLike) -> PluginSource:
    dist = getattr(entry_point, "dist", None)
    if dist is None:
        return PluginSource(entry_point.name, "<unknown distribution>", "<unknown version>")
    name = getattr(dist, "name", None) or dist.metadata["Name"]
    return PluginSource(entry_point.name, str(name), str(dist.version))


def _normal(name: str) -> str:
    """Names compared the way pip compares distribution names: case and ``_``/``-`` do not matter."""
    return name.strip().lower().replace("_", "-")


def _disabled_names(environ: Mapping[str, str]) -> set[str]:
    raw = environ.get(DISABLE_ENV, "")
    return {_normal(part) for part in raw.split(",") if part.strip()}


class PluginHost:
    """Loads plugins once, lazily, and builds backends from URLs.  One per process: :func:`get_plugin_host`."""

    def __init__(
        self,
        *,
        discover: Callable[[], Iterable[EntryPointLike]] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.plugin_manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.plugin_manager.add_hookspecs(hookspecs)
        self.registry = Registry()
        self._discover = discover
        self._environ = environ
        # Re-entrant: a plugin's hook may resolve a URL of another plugin while loading.
        self._lock = threading.RLock()
        self._loaded = False
        self._plugins: list[PluginInfo] = []
        self._failures: list[PluginFailure] = []
        self._disabled: list[PluginSource] = []

    # -- loading ---------------------------------------------------------------------------------------------

    def load(self) -> None:
        """Load the built-in plugins and every entry point of the group, once; later calls do nothing."""
        with self._lock:
            if self._loaded:
                return
            self._loaded = True
            core_version = _installed_version("stent-core") or "<source tree>"
            for name, module in BUILTIN_PLUGINS.items():
                source = PluginSource(name, "stent-core", core_version)
                self._load_one(source, functools.partial(importlib.import_module, module), builtin=True)
            environ = os.environ if self._environ is None else self._environ
            disabled = _disabled_names(environ)
            # Looked up at call time so that tests can replace the module-level discovery function.
            discover = self._discover or discover_entry_points
            try:
                entry_points = list(discover())
            except Exception as exc:  # a broken distribution's metadata must not stop the built-ins
                log.warning(
                    "could not list the installed stent plugins; only built-ins are loaded: %s", exc, exc_info=exc
                )
                entry_points = []
            for entry_point in entry_points:
                if entry_point.value in BUILTIN_PLUGINS.values():
                    continue
                source = _source_of(entry_point)
                if disabled & {"all", "*", _normal(source.name), _normal(source.distribution)}:
                    log.info("stent plugin %s skipped: listed in %s", source.describe(), DISABLE_ENV)
                    self._disabled.append(source)
                    continue
                self._load_one(source, entry_point.load, builtin=False)

    def register_plugin(
        self,
        plugin: object,
        *,
        name: str | None = None,
        distribution: str = "<registered in code>",
        version: str = "-",
    ) -> PluginInfo:
        """Register a plugin (a module or object with ``@hookimpl`` functions) from code, after the installed ones.

        Errors are raised to the caller rather than recorded, since the caller is the one who can fix them.
        """
        self.load()
        label = name or str(getattr(plugin, "__name__", type(plugin).__name__))
        source = PluginSource(label, distribution, version)
        with self._lock:
            info = self._register(plugin, source, builtin=False)
            self._plugins.append(info)
            return info

    def _load_one(self, source: PluginSource, load: Callable[[], object], *, builtin: bool) -> None:
        try:
            info = self._register(load(), source, builtin=builtin)
        except Exception as exc:
            self._failures.append(
                PluginFailure(
                    source.name, source.distribution, source.version, f"{type(exc).__name__}: {exc}", exc
                )
            )
            log.warning("stent plugin %s failed to load and was skipped: %s", source.describe(), exc, exc_info=exc)
        else:
            self._plugins.append(info)

    def _register(self, plugin: object, source: PluginSource, *, builtin: bool) -> PluginInfo:
        pm = self.plugin_manager
        # pluggy checks each hookimpl's arguments against its spec here.
        pm.register(plugin, name=f"{source.distribution}:{source.name}")
        try:
            unknown = sorted(c.name for c in pm.get_hookcallers(plugin) or [] if not c.has_spec())
            if unknown:
                raise PluginError(
                    f"{source.describe()} implements unknown hooks {', '.join(unknown)}; stent's hooks are"
                    f" {', '.join(_HOOKS)}"
                )
            self.registry._begin(source)
            arguments = {"registry": self.registry}
            # Each hook is called for this plugin alone, so a registration is attributed to the plugin that
            # made it and a failure is this plugin's only.
            for hook in _HOOKS:
                for impl in getattr(pm.hook, hook).get_hookimpls():
                    if impl.plugin is plugin:
                        impl.function(*(arguments[arg] for arg in impl.argnames))
            registered = self.registry._commit()
        except BaseException:
            self.registry._discard()
            pm.unregister(plugin)
            raise

        def schemes(kind: str) -> tuple[str, ...]:
            return tuple(sorted(r.scheme for r in registered if r.kind == kind))

        return PluginInfo(
            source.name,
            source.distribution,
            source.version,
            storage=schemes("storage"),
            notifiers=schemes("notifier"),
            commands=schemes("command"),
            builtin=builtin,
        )

    # -- reading ---------------------------------------------------------------------------------------------

    def report(self) -> PluginReport:
        """Loaded plugins, failures, scheme conflicts and disabled entry points."""
        self.load()
        with self._lock:
            return PluginReport(
                tuple(self._plugins),
                tuple(self._failures),
                tuple(self.registry.conflicts()),
                tuple(self._disabled),
            )

    def schemes(self, kind: str) -> list[str]:
        """The schemes (or command names) of one kind that resolve."""
        self.load()
        return self.registry.schemes(kind)

    def commands(self) -> dict[str, Registration]:
        """CLI subcommands added by plugins, by name."""
        self.load()
        return self.registry.registrations("command")

    # -- resolving -------------------------------------------------------------------------------------------

    def make(self, kind: str, url: str, **options: Any) -> Any:
        """Build a ``kind`` backend (``"storage"`` or ``"notifier"``) for ``url`` with its plugin's factory."""
        if kind not in ("storage", "notifier"):
            raise ConfigurationError(f"kind must be 'storage' or 'notifier', not {kind!r}")
        scheme = parse_scheme(url, kind)
        self.load()
        registration = self.registry.lookup(kind, scheme)
        if registration is None:
            raise BackendNotInstalled(self._missing_message(kind, scheme))
        source = registration.source
        try:
            backend = registration.factory(url, **options)
        except ModuleNotFoundError as exc:
            raise BackendNotInstalled(
                f"the {scheme}:// {kind} from {source.describe()} needs the module {exc.name!r}, which cannot be"
                f" imported; reinstall the adapter with its dependencies: pip install --force-reinstall"
                f" {source.distribution}"
            ) from exc
        if backend is None:
            raise PluginError(f"the {scheme}:// {kind} factory of {source.describe()} returned None")
        return backend

    def _missing_message(self, kind: str, scheme: str) -> str:
        installed = ", ".join(f"{s}://" for s in self.registry.schemes(kind)) or "none"
        other = "notifier" if kind == "storage" else "storage"
        package = KNOWN_ADAPTERS[kind].get(scheme)
        if package is not None:
            version = _installed_version(package)
            if version is None:
                head = f"no {kind} adapter for {scheme}:// is installed; install it with: pip install {package}"
            else:
                head = f"{package} {version} is installed but provides no {scheme}:// {kind}: {self._why(package)}"
        elif scheme in KNOWN_ADAPTERS[other] or scheme in self.registry.schemes(other):
            argument = "notification_backend" if other == "notifier" else "backend"
            head = f"{scheme}:// names a {other} backend, not a {kind}; pass it as {argument}= instead"
        else:
            head = f"unknown {kind} URL scheme {scheme!r}"
        message = f"{head}. Installed {kind} schemes: {installed}."
        if self._failures:
            failed = "; ".join(f"{f.distribution} {f.version} ({f.name}): {f.error}" for f in self._failures)
            message += f" Plugins that failed to load: {failed}."
        return message

    def _why(self, package: str) -> str:
        def same(distribution: str) -> bool:
            return _normal(distribution) == package

        for failure in self._failures:
            if same(failure.distribution):
                return f"its plugin failed to load ({failure.error})"
        if any(same(source.distribution) for source in self._disabled):
            return f"its plugin is disabled by {DISABLE_ENV}"
        return "this version does not implement it yet"


_host: PluginHost | None = None
_host_lock = threading.Lock()


def get_plugin_host() -> PluginHost:
    """The process-wide plugin host (created on first use; plugins load on the first resolve)."""
    global _host
    with _host_lock:
        if _host is None:
            _host = PluginHost()
        return _host


def reset_plugin_host(host: PluginHost | None = None) -> None:
    """Replace the process-wide host (for tests): the next use loads plugins again, or uses ``host``."""
    global _host
    with _host_lock:
        _host = host


def make_storage(url: str, **options: Any) -> Storage:
    """A Storage for ``url`` (``sqlite:///path``, ``postgresql://...``, ``memory://``) from its plugin."""
    return cast("Storage", get_plugin_host().make("storage", url, **options))


def make_notifier(url: str, **options: Any) -> Notifier:
    """A Notifier for ``url`` (``redis://...``, ``nats://...``, ``postgresql://...``, ``memory://``)."""
    return cast("Notifier", get_plugin_host().make("notifier", url, **options))


def list_plugins() -> PluginReport:
    """What is installed: loaded plugins with their schemes, failures, conflicts and disabled entry points."""
    return get_plugin_host().report()
