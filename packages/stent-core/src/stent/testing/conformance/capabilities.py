"""Optional capabilities: what an adapter may promise beyond the required port, and how the suite gates their tests.

A **storage** declares its capabilities in its ``capabilities`` attribute (a frozenset of names).  A test of an
optional capability carries :func:`requires_capability`; it is skipped, naming the capability, when the storage
does not declare it, and it runs (a failure is a failure) when it does.

A **notifier**'s optional tests need something only the adapter's test module can provide, such as a way to cut a
notifier's connection; the adapter declares such a capability by defining the fixture of that name.

Every gated test records what its backend declared in pytest's ``user_properties`` (so the JUnit XML report and
pytest-xdist carry it too); :mod:`stent.testing.conformance.plugin` prints the summary from them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import pytest

T = TypeVar("T", bound=Callable[..., Any])

#: The capabilities a Storage may declare, and what each one promises.
STORAGE_CAPABILITIES: Mapping[str, str] = {
    "shared": (
        "several clients (connections, processes) use one store at once: each sees the others' writes and"
        " the store, not the client, enforces leases, fencing and locks; the test module's make_peer_storage"
        " opens another client"
    ),
    "durable": (
        "what was written survives close(): a client opened afterwards on the same backend (reopen_storage,"
        " or make_peer_storage) finds every record, and fencing tokens never repeat"
    ),
    "transactional_notifications": (
        "the store announces its own changes (work ready, task finished) from inside the transaction that"
        " makes them, so a committed change is announced and a rejected one never is; the test module's"
        " make_storage_listener returns a notifier that hears the store"
    ),
}

#: The notifier suite's optional capabilities: each is declared by defining the fixture of that name.
NOTIFIER_CAPABILITIES: Mapping[str, str] = {
    "break_connection": "await break_connection(notifier) cuts its connections, to test reconnection",
    "make_unreachable_notifier": "make_unreachable_notifier() returns a notifier for a server that is down",
}

#: ``user_properties`` names recorded on each conformance test (also read by the summary plugin).
SUITE = "stent_suite"
CAPABILITY = "stent_capability"
DECLARED = "stent_declared"
BACKEND = "stent_backend"

_ATTRIBUTE = "__stent_capability__"


def requires_capability(name: str) -> Callable[[T], T]:
    """Mark a conformance test as the test of optional capability ``name``."""
    if name not in STORAGE_CAPABILITIES and name not in NOTIFIER_CAPABILITIES:
        raise ValueError(f"unknown capability {name!r}")

    def mark(test: T) -> T:
        setattr(test, _ATTRIBUTE, name)
        return test

    return mark


def capability_of(cls: type | None, test_name: str) -> str | None:
    """The capability test ``test_name`` of ``cls`` needs, or ``None`` for a required test.

    Looked up through the class's bases, so an adapter that overrides a capability's test (to mark it as an
    expected failure, say) keeps it gated by the capability.
    """
    for klass in cls.__mro__ if cls is not None else ():
        found = getattr(klass.__dict__.get(test_name), _ATTRIBUTE, None)
        if found is not None:
            return str(found)
    return None


def _needed(request: pytest.FixtureRequest) -> str | None:
    node = request.node
    return capability_of(request.cls, getattr(node, "originalname", node.name))


def _record(request: pytest.FixtureRequest, name: str, value: str) -> None:
    properties = request.node.user_properties
    if (name, value) not in properties:
        properties.append((name, value))


def gate_storage_test(request: pytest.FixtureRequest, storage: object) -> None:
    """Record what ``storage`` declares, and skip the test when it needs a capability the storage lacks."""
    declared = sorted(str(name) for name in getattr(storage, "capabilities", ()))
    backend = type(storage).__name__
    _record(request, BACKEND, backend)
    _record(request, DECLARED, ",".join(declared))
    needed = _needed(request)
    if needed is not None and needed not in declared:
        pytest.skip(f"optional capability '{needed}' not declared by {backend}")


def gate_notifier_test(request: pytest.FixtureRequest) -> None:
    """Skip the test when it needs a capability whose fixture the adapter's test module does not define."""
    needed = _needed(request)
    if needed is None:
        return
    try:
        request.getfixturevalue(needed)
    except pytest.FixtureLookupError:
        pytest.skip(
            f"optional capability '{needed}' not declared: define a {needed} fixture"
            f" ({NOTIFIER_CAPABILITIES[needed]})"
        )
    _record(request, DECLARED, needed)


def adapter_fixture(request: pytest.FixtureRequest, capability: str, *fixtures: str) -> Any:
    """The first of ``fixtures`` the adapter defines; a failure naming them when a declared capability needs one."""
    for name in fixtures:
        try:
            return request.getfixturevalue(name)
        except pytest.FixtureLookupError:
            continue
    pytest.fail(
        f"the backend declares '{capability}', which the suite tests through a {' or '.join(fixtures)} fixture,"
        f" and the test module defines none ({capability}: {STORAGE_CAPABILITIES[capability]})",
        pytrace=False,
    )
