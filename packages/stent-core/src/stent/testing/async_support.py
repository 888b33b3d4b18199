"""Async tests and fixtures that run under pytest-asyncio or, without it, under :mod:`stent.testing.pytest_plugin`.

Kept apart from the plugin module so that importing these helpers never imports a pytest plugin early (pytest
rewrites a plugin's asserts only when it imports the plugin itself).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

F = TypeVar("F", bound=Callable[..., Any])


def _asyncio_marks() -> list[pytest.MarkDecorator]:
    # pytest-asyncio's strict mode runs only tests that carry its mark; without pytest-asyncio the mark is noise.
    return [pytest.mark.asyncio] if importlib.util.find_spec("pytest_asyncio") is not None else []


#: ``pytestmark`` for a class of async tests that must run under either runner.
ASYNCIO_MARKS = _asyncio_marks()


def async_fixture(function: F | None = None, **options: Any) -> Any:
    """``@pytest.fixture`` for an async fixture that both runners pick up (pytest-asyncio's strict mode, too)."""
    try:
        import pytest_asyncio
    except ImportError:
        decorator: Any = pytest.fixture
    else:
        decorator = pytest_asyncio.fixture
    return decorator(function, **options) if function is not None else decorator(**options)
