"""Core takes time and randomness only from the Clock port and an injected random.Random (DESIGN section 4).

The scan reads stent-core's sources as syntax trees, resolves import aliases (``from time import monotonic as
m`` is still ``time.monotonic``) and flags every call of a wall-clock, monotonic-clock, real-sleep or
module-level random function, and every such function handed to a call (``field(factory=time.monotonic)``).
``stent/clocks.py`` is where SystemClock reads the real clock and FakeClock yields to the loop, so it is the one
file allowed to.  Elsewhere a line may opt out with a comment ``# noqa: STENT-CLOCK (reason)`` when it is not
core logic (the demo's workflow simulating work, say); the reason in parentheses is required, so that a reviewer
sees why.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

CORE_SOURCE = Path(__file__).resolve().parents[2] / "packages" / "stent-core" / "src" / "stent"

#: Files allowed to touch the real clock, relative to the ``stent`` package, with the reason.
ALLOWED_FILES = {"clocks.py": "SystemClock is the real clock; FakeClock yields with asyncio.sleep(0)"}

FORBIDDEN = {
    "time.time", "time.time_ns", "time.monotonic", "time.monotonic_ns", "time.perf_counter", "time.sleep",
    "datetime.datetime.now", "datetime.datetime.utcnow", "datetime.datetime.today", "datetime.date.today",
    "asyncio.sleep",
}  # fmt: skip

#: Names in the random module that are not its shared hidden generator: constructing an injected one is the point.
RANDOM_ALLOWED = {"random.Random", "random.SystemRandom"}


def _qualified_names(tree: ast.AST) -> dict[str, str]:
    """Local name -> what it was imported as (``dt`` -> ``datetime.datetime``), for the modules that matter."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    names[alias.asname] = alias.name
                else:
                    top = alias.name.split(".")[0]
                    names[top] = top
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return names


def _dotted(node: ast.expr, names: dict[str, str]) -> str | None:
    """``a.b.c`` for a chain of attributes on an imported name, resolved through the imports."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name) or node.id not in names:
        return None
    return ".".join([names[node.id], *reversed(parts)])


_OPT_OUT = re.compile(r"#\s*noqa:\s*STENT-CLOCK\s*\(\S[^)]*\)")


def _opted_out_lines(source: str) -> set[int]:
    """Lines whose comment opts out with ``# noqa: STENT-CLOCK (reason)``."""
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    return {t.start[0] for t in tokens if t.type == tokenize.COMMENT and _OPT_OUT.search(t.string)}


def _is_zero_sleep(call: ast.Call) -> bool:
    """``asyncio.sleep(0)`` only yields to the event loop; it does not depend on time."""
    return len(call.args) == 1 and isinstance(call.args[0], ast.Constant) and call.args[0].value == 0


def violations_in(source: str, filename: str) -> list[str]:
    """``file:line: name`` for each forbidden call (or function passed to a call) in ``source``."""
    tree = ast.parse(source, filename=filename)
    names = _qualified_names(tree)
    opted_out = _opted_out_lines(source)
    found: list[str] = []
    for call in ast.walk(tree):
        if not isinstance(call, ast.Call):
            continue
        # The called function, and functions handed to a call (default_factory=time.monotonic, partial(sleep, 1)).
        arguments = [a.value if isinstance(a, ast.Starred) else a for a in call.args]
        for node in [call.func, *arguments, *(k.value for k in call.keywords)]:
            name = _dotted(node, names)
            if name is None or node.lineno in opted_out:
                continue
            if node is call.func and name == "asyncio.sleep" and _is_zero_sleep(call):
                continue
            random_function = name.startswith("random.") and name.count(".") == 1 and name not in RANDOM_ALLOWED
            if name in FORBIDDEN or random_function:
                found.append(f"{filename}:{node.lineno}: {name}")
    return found


def core_sources() -> list[Path]:
    return sorted(
        p for p in CORE_SOURCE.rglob("*.py") if p.relative_to(CORE_SOURCE).as_posix() not in ALLOWED_FILES
    )


def test_core_takes_time_and_randomness_only_from_its_ports() -> None:
    """No stent-core module outside clocks.py reads the real clock, sleeps for real or uses module-level random."""
    sources = core_sources()
    assert len(sources) >= 5, f"expected stent-core's sources under {CORE_SOURCE}"
    found = [v for path in sources for v in violations_in(path.read_text(encoding="utf-8"), str(path))]
    assert not found, (
        "stent-core must take time from the Clock port (clock.now(), clock.monotonic(), await clock.sleep())"
        " and randomness from an injected random.Random, so that tests and the simulator control both;"
        " a line that is not core logic may say why with '# noqa: STENT-CLOCK (reason)'. Direct uses found:\n  "
        + "\n  ".join(found)
    )


@pytest.mark.parametrize(
    "source",
    [
        "import time\ntime.time()",
        "import attrs, time\nattrs.field(factory=time.monotonic)",
        "import functools, asyncio\nfunctools.partial(asyncio.sleep, 5)",
        "from time import monotonic as m\nm()",
        "import datetime\ndatetime.datetime.now()",
        "from datetime import datetime\ndatetime.utcnow()",
        "import datetime as dt\ndt.date.today()",
        "import asyncio\nasync def f():\n    await asyncio.sleep(1)",
        "from asyncio import sleep\nasync def f(d):\n    await sleep(d)",
        "import random\nrandom.random()",
        "import random\nrandom.choice([1, 2])",
        "from random import uniform\nuniform(0, 1)",
        "import time\ntime.time()  # noqa: STENT-CLOCK",
    ],
)
def test_each_forbidden_use_is_caught(source: str) -> None:
    """The scanner flags direct and aliased uses of each forbidden function."""
    assert violations_in(source, "example.py"), source


@pytest.mark.parametrize(
    "source",
    [
        "import random\nrng = random.Random(7)\nrng.random()",
        "import asyncio\nasync def f():\n    await asyncio.sleep(0)",
        "async def f(clock):\n    await clock.sleep(1)\n    clock.now()",
        "from datetime import datetime, timezone\ndatetime.fromtimestamp(0, timezone.utc)",
        "def time():\n    return 1\ntime()",
        "import asyncio\nasync def f():\n    await asyncio.sleep(2)  # noqa: STENT-CLOCK (simulated work)",
    ],
)
def test_port_based_code_is_not_flagged(source: str) -> None:
    """Using the clock, an injected Random, a zero sleep or unrelated names passes."""
    assert violations_in(source, "example.py") == []


def test_a_violation_names_file_and_line() -> None:
    """Each finding says where it is, so the message leads straight to the line to change."""
    assert violations_in("import time\n\nx = time.time()\n", "stent/x.py") == ["stent/x.py:3: time.time"]
