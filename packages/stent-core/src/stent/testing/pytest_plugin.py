"""stent's pytest plugin: the fixtures for testing your workflows, and a runner for ``async def`` tests and
fixtures with plain pytest, no pytest-asyncio needed.

Enable it in your top-level ``conftest.py`` (it is never loaded automatically)::

    pytest_plugins = ["stent.testing.pytest_plugin"]

(``stent.testing.conformance.plugin`` loads it for you.)  It loads :mod:`stent.testing.fixtures` (``stent_clock``,
``stent_executor``, ``stent_sqlite_executor``, ``stent_worker``, ``stent_simulator``...; see that module), which
also loads the simulator's ``sim`` fixture.

Coroutine test functions run, each on an event loop of its own, and ``async def`` fixtures, plain or yielding, run
on the loop of the test that uses them, so a fixture's connections and the test share one loop.  Only
function-scoped async fixtures are supported.

When pytest-asyncio is active the runner does nothing at all and pytest-asyncio runs everything, as its
configuration says (``asyncio_mode`` and so on).  Disable pytest-asyncio (``-p no:asyncio``) or uninstall it and
this plugin takes over.  In pytest-asyncio's strict mode declare async fixtures with
:func:`stent.testing.async_support.async_fixture`, which is ``pytest_asyncio.fixture`` when pytest-asyncio is
installed and ``pytest.fixture`` otherwise.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Generator
from typing import Any

import pytest

pytest_plugins = ["stent.testing.fixtures"]

_ACTIVE = pytest.StashKey[bool]()
_RUNNER = pytest.StashKey[asyncio.Runner]()


def pytest_configure(config: pytest.Config) -> None:
    if _runs_async(config):
        # Tests written for pytest-asyncio carry this mark; without pytest-asyncio nobody registers it.
        config.addinivalue_line("markers", "asyncio: run this coroutine test on an event loop (stent's runner)")


def _runs_async(config: pytest.Config) -> bool:
    """Whether this plugin runs async tests: only when pytest-asyncio is not active in this run."""
    if _ACTIVE not in config.stash:
        names = {getattr(plugin, "__name__", "") for plugin in config.pluginmanager.get_plugins()}
        config.stash[_ACTIVE] = "pytest_asyncio.plugin" not in names
    return config.stash[_ACTIVE]


def _runner(item: pytest.Item) -> asyncio.Runner:
    """The event loop of ``item``: made on first use, closed after the item's teardown."""
    runner = item.stash.get(_RUNNER, None)
    if runner is None:
        runner = item.stash[_RUNNER] = asyncio.Runner()
    return runner


def _ours(node: pytest.Item | pytest.Collector) -> bool:
    # A test marked for anyio belongs to anyio's own plugin.
    return _runs_async(node.config) and node.get_closest_marker("anyio") is None


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    test = pyfuncitem.obj
    if not inspect.iscoroutinefunction(test) or not _ours(pyfuncitem):
        return None
    wanted = inspect.signature(test).parameters
    arguments = {name: value for name, value in pyfuncitem.funcargs.items() if name in wanted}
    _runner(pyfuncitem).run(test(**arguments))
    return True


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(
    fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
) -> Generator[None, Any, Any]:
    function = fixturedef.func
    asynchronous = inspect.iscoroutinefunction(function) or inspect.isasyncgenfunction(function)
    if not asynchronous or not _ours(request.node):
        return (yield)
    if fixturedef.scope != "function" or not isinstance(request.node, pytest.Item):
        pytest.fail(
            f"async fixture {fixturedef.argname!r} is {fixturedef.scope}-scoped; stent's plain-pytest runner runs"
            " function-scoped async fixtures only (make it function-scoped, or install pytest-asyncio)",
            pytrace=False,
        )
    # pytest calls fixturedef.func with the fixture's arguments; for the duration of this setup it is a plain
    # function that runs the real one on the test's loop.
    fixturedef.func = _synchronous(_bound(function, request), _runner(request.node), request)  # type: ignore[misc]
    try:
        return (yield)
    finally:
        fixturedef.func = function  # type: ignore[misc]


def _bound(function: Callable[..., Any], request: pytest.FixtureRequest) -> Callable[..., Any]:
    """A fixture defined in a test class, bound to the test's instance (as pytest binds sync ones)."""
    owner = getattr(function, "__self__", None)
    instance = request.instance
    if owner is not None and instance is not None and isinstance(instance, type(owner)):
        return function.__func__.__get__(instance)  # type: ignore[attr-defined,no-any-return]
    return function


def _synchronous(
    function: Callable[..., Any], runner: asyncio.Runner, request: pytest.FixtureRequest
) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(function):

        def value(**arguments: Any) -> Any:
            return runner.run(function(**arguments))

        return value

    def first_yield(**arguments: Any) -> Any:
        generator = function(**arguments)
        produced = runner.run(generator.__anext__())

        def finish() -> None:
            try:
                runner.run(generator.__anext__())
            except StopAsyncIteration:
                return
            raise RuntimeError(f"async fixture {request.fixturename!r} yielded more than once")

        request.addfinalizer(finish)
        return produced

    return first_yield


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    try:
        return (yield)
    finally:
        # After every fixture's teardown: close the test's loop (cancelling what the test left running).
        runner = item.stash.get(_RUNNER, None)
        if runner is not None:
            del item.stash[_RUNNER]
            runner.close()
