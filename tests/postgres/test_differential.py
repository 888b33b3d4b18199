"""PostgresStorage against the reference MemoryStorage: the same random scripts of port calls on both, with
every result, every error and the whole stored state compared after each call.

Fencing tokens and signal ids are compared too: both storages hand them out from one counter in call order, so a
difference means a claim took a task the reference did not (or in another order)."""

from __future__ import annotations

import os
import random
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import pytest
from pg_script import Script, snapshot

from stent.memory import MemoryStorage
from stent_postgres import PostgresStorage

# A few seeds by default; STENT_PG_DIFF_SEEDS=200 (say) searches wider, STENT_PG_DIFF_SHOW=1 (with -s) prints
# the fields that differ.
SEEDS = range(int(os.environ.get("STENT_PG_DIFF_SEEDS", "6")))
CALLS = 160


async def outcome(call: Callable[[Any], Awaitable[Any]], storage: Any) -> tuple[str, Any]:
    try:
        return "ok", await call(storage)
    except Exception as exc:
        return "raised", (type(exc).__name__, str(exc))


@pytest.mark.parametrize("seed", SEEDS)
async def test_postgres_matches_the_reference_storage(
    seed: int, open_storage: Callable[..., Awaitable[PostgresStorage]]
) -> None:
    """Random calls of every port method give equal results, errors and stored state on both storages."""
    reference = MemoryStorage()
    pg = await open_storage(notify=seed % 2 == 1)  # odd seeds run the statements that also send NOTIFY
    script = Script(reference, random.Random(seed))
    history: list[str] = []
    for number in range(CALLS):
        name, call = script.next_call()
        expected = await outcome(call, reference)
        got = await outcome(call, pg)
        history.append(f"{number}: {name} -> {expected[0]}")
        if name == "get_tasks" and expected[0] == "ok":
            expected, got = ("ok", sorted(expected[1])), ("ok", sorted(got[1]))
        if got != expected and os.environ.get("STENT_PG_DIFF_SHOW"):  # print what differs, field by field
            for want, have in zip(expected[1], got[1], strict=False):
                if want != have and attrs.has(type(want)) and attrs.has(type(have)):
                    print(
                        "DIFF",
                        {
                            k: (v, attrs.asdict(have)[k])
                            for k, v in attrs.asdict(want).items()
                            if attrs.asdict(have)[k] != v
                        },
                    )
                elif want != have:
                    print("DIFF", want, have)
        assert got == expected, f"seed {seed}, call {number} ({name}) differs; last calls: {history[-8:]}"
        if number % 10 == 9 or name not in ("advance", "list_executions", "queue_depth", "queue_overview"):
            assert await snapshot(pg) == await snapshot(reference), (
                f"seed {seed}: stored state differs after call {number} ({name}); last calls: {history[-8:]}"
            )
