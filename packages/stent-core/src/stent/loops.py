"""Which event loop a stent process runs on: asyncio's own, or uvloop when it is installed.

uvloop runs the same asyncio code on libuv, with its event loop and transports written in C.  Measured on the
2-core machine of ``docs/comparison.md``, a worker serving a dispatch-to-result round trip on PostgreSQL spent a
fifth less CPU and answered 5-20 % sooner.  It is optional (``pip install 'stent-core[uvloop]'``; not on
Windows): ``stent worker --loop`` chooses, and ``auto``, the default, takes uvloop when it is importable.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from stent.errors import ConfigurationError

#: The choices of ``stent worker --loop``.
LOOPS = ("auto", "asyncio", "uvloop")

LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def loop_factory(name: str = "auto") -> LoopFactory | None:
    """The ``loop_factory`` for :class:`asyncio.Runner` that ``name`` means; ``None`` is asyncio's own loop.

    ``"auto"`` is uvloop when it is installed, else asyncio's; ``"uvloop"`` raises
    :class:`~stent.errors.ConfigurationError` when it is not installed.
    """
    if name not in LOOPS:
        raise ConfigurationError(f"unknown event loop {name!r}; choose one of {', '.join(LOOPS)}")
    if name == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if name == "uvloop":
            raise ConfigurationError(
                "the uvloop event loop was asked for, but uvloop is not installed: pip install"
                " 'stent-core[uvloop]' (or run on asyncio's own loop: --loop asyncio)"
            ) from None
        return None
    factory: LoopFactory = uvloop.new_event_loop
    return factory


def loop_name(factory: LoopFactory | None) -> str:
    """``"uvloop"`` or ``"asyncio"``: the loop ``factory`` makes, for logs and reports."""
    return "asyncio" if factory is None else "uvloop"


def running_loop_name() -> str:
    """``"uvloop"`` or ``"asyncio"``: the loop this is called on."""
    return "uvloop" if type(asyncio.get_running_loop()).__module__.startswith("uvloop") else "asyncio"
