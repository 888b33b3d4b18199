"""A small order-processing workflow: reserve stock, charge, pack every item in parallel, ship.

Each activity takes a moment so that an interrupted demo leaves work half done; run it again and the unfinished
orders resume where they stopped instead of starting over.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from stent.engine.durable import durable

#: Called with one line of progress for every activity that finishes.
progress: Callable[[str], None] = lambda line: None
#: Seconds each activity "works"; the demo's --speed option scales it.
work_seconds = 0.15

CATALOGUE: dict[str, int] = {"kettle": 3499, "mug": 899, "teapot": 2450, "tea": 1299, "strainer": 599}


def demo_orders() -> list[dict[str, Any]]:
    """The orders the demo dispatches; fixed, so a second run finds the same executions."""
    names = list(CATALOGUE)
    return [
        {"order_id": f"order-{n}", "customer": f"customer-{n}", "items": names[n % 3 : n % 3 + 2 + n % 2]}
        for n in range(1, 6)
    ]


async def _work() -> None:
    await asyncio.sleep(work_seconds)  # noqa: STENT-CLOCK (simulated work, not a durable timer)


@durable(name="demo.reserve_stock")
async def reserve_stock(order_id: str, items: list[str]) -> list[str]:
    await _work()
    progress(f"{order_id}: reserved {', '.join(items)}")
    return items


@durable(name="demo.charge_payment")
async def charge_payment(order_id: str, customer: str, amount_cents: int) -> str:
    await _work()
    progress(f"{order_id}: charged {customer} ${amount_cents / 100:.2f}")
    return f"pay-{order_id}"


@durable(name="demo.pack_item")
async def pack_item(order_id: str, item: str) -> str:
    await _work()
    progress(f"{order_id}: packed {item}")
    return f"box-{item}"


@durable(name="demo.ship")
async def ship(order_id: str, boxes: list[str]) -> str:
    await _work()
    tracking = f"TRK-{order_id.upper()}"
    progress(f"{order_id}: shipped {len(boxes)} box(es), tracking {tracking}")
    return tracking


@durable(name="demo.process_order")
async def process_order(order: dict[str, Any]) -> dict[str, Any]:
    order_id = order["order_id"]
    items = await reserve_stock(order_id, order["items"])
    amount = sum(CATALOGUE[item] for item in items)
    payment = await charge_payment(order_id, order["customer"], amount)
    boxes = await asyncio.gather(*(pack_item(order_id, item) for item in items))
    tracking = await ship(order_id, list(boxes))
    return {"order_id": order_id, "amount_cents": amount, "payment": payment, "tracking": tracking}
