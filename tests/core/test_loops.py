"""Choosing the event loop (stent.loops): uvloop when asked for or, with ``auto``, when installed."""

from __future__ import annotations

import asyncio
import sys

import pytest

from stent.errors import ConfigurationError
from stent.loops import loop_factory, loop_name


def test_asyncio_is_asyncios_own_loop_and_auto_takes_uvloop_when_installed() -> None:
    pytest.importorskip("uvloop")
    assert loop_factory("asyncio") is None
    factory = loop_factory("auto")
    assert factory is not None and loop_name(factory) == "uvloop"
    with asyncio.Runner(loop_factory=factory) as runner:
        assert runner.run(_loop_module()).startswith("uvloop")
    assert loop_name(loop_factory("asyncio")) == "asyncio"


def test_without_uvloop_auto_falls_back_and_uvloop_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop now raises ImportError
    assert loop_factory("auto") is None
    with pytest.raises(ConfigurationError, match=r"pip install 'stent-core\[uvloop\]'.*--loop asyncio"):
        loop_factory("uvloop")


def test_an_unknown_loop_is_refused_with_the_choices() -> None:
    with pytest.raises(ConfigurationError, match="unknown event loop 'trio'; choose one of auto, asyncio, uvloop"):
        loop_factory("trio")


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__
