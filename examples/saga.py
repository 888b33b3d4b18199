"""A saga: book a flight, a hotel and a car; if any booking fails, cancel the ones already made, newest first.

    python examples/saga.py [--fail-at car|hotel|none]

Each booking and each cancellation is a durable step: if the process dies half way through the compensation,
a restarted worker finishes it without cancelling anything twice.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
from datetime import timedelta

from stent import Stent

FAIL_AT = {"service": "none"}


class BookingFailed(Exception):
    pass


@Stent.durable
async def book(service: str, trip: str) -> str:
    if FAIL_AT["service"] == service:
        raise BookingFailed(f"no {service} available for {trip}")
    print(f"  booked {service} for {trip}")
    return f"{service}-{trip}"


@Stent.durable
async def cancel(booking: str) -> None:
    print(f"  cancelled {booking}")


@Stent.durable
async def book_trip(trip: str) -> list[str]:
    done: list[str] = []
    try:
        for service in ("flight", "hotel", "car"):
            done.append(await book(service, trip))
    except BookingFailed:
        for booking in reversed(done):
            await cancel(booking)
        raise
    return done


async def main(fail_at: str, db: str) -> int:
    FAIL_AT["service"] = fail_at
    executor = await Stent.bootstrap(Stent.backends.SQLiteBackend(db))
    lifecycle = executor.create_worker_lifecycle("saga-worker")
    worker = asyncio.create_task(
        executor.serve(lifecycle=lifecycle, poll_interval=0.05, lease_duration=timedelta(seconds=30),
                       heartbeat_interval=timedelta(seconds=10))
    )  # fmt: skip
    await lifecycle.wait_until_ready()
    try:
        bookings = await book_trip("lisbon-2030")  # awaited outside a worker: dispatched, then waited for
        print(f"trip booked: {', '.join(bookings)}")
        return 0
    except BookingFailed as exc:
        print(f"trip not booked ({exc}); earlier bookings were cancelled")
        return 1
    finally:
        executor.request_worker_drain(lifecycle)
        await worker
        await executor.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fail-at", choices=["flight", "hotel", "car", "none"], default="car")
    parser.add_argument("--db", default=os.path.join(tempfile.mkdtemp(prefix="stent-saga-"), "saga.db"))
    args = parser.parse_args()
    raise SystemExit(asyncio.run(main(args.fail_at, args.db)))
