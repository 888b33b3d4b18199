"""A rate-limited crawler: at most three fetches at once across every worker, and retries for a flaky service.

    python examples/rate_limited_crawler.py [--pages 20]

The "web" here is simulated (no network): each page fails on its first try with a seeded chance, and the retry
policy's backoff brings it back. `max_concurrent=3` is enforced by storage when tasks are claimed, so it holds
for any number of worker processes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import tempfile

from stent import RetryPolicy, Stent

FLAKY = random.Random(11)
IN_FLIGHT = {"now": 0, "peak": 0}


class ServiceUnavailable(Exception):
    pass


@Stent.durable(
    max_concurrent=3,
    retry_policy=RetryPolicy(max_attempts=4, initial_delay=0.05, backoff_factor=2, retry_for=(ServiceUnavailable,)),
)
async def fetch(url: str) -> int:
    IN_FLIGHT["now"] += 1
    IN_FLIGHT["peak"] = max(IN_FLIGHT["peak"], IN_FLIGHT["now"])
    try:
        await asyncio.sleep(0.01)  # the request
        if FLAKY.random() < 0.3:
            raise ServiceUnavailable(f"503 from {url}")
        return len(url)
    finally:
        IN_FLIGHT["now"] -= 1


@Stent.durable
async def crawl(pages: int) -> int:
    sizes = await fetch.map(f"https://example.test/page/{n}" for n in range(pages))
    return sum(sizes)


async def main(pages: int, db: str) -> None:
    executor = await Stent.bootstrap(Stent.backends.SQLiteBackend(db))
    lifecycle = executor.create_worker_lifecycle("crawler")
    worker = asyncio.create_task(executor.serve(lifecycle=lifecycle, max_concurrency=20, poll_interval=0.02,
                                                poll_interval_max=0.1))  # fmt: skip
    await lifecycle.wait_until_ready()
    try:
        total = await crawl(pages)
        print(f"crawled {pages} pages, {total} bytes; at most {IN_FLIGHT['peak']} fetches ran at once")
    finally:
        executor.request_worker_drain(lifecycle)
        await worker
        await executor.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pages", type=int, default=20)
    parser.add_argument("--db", default=os.path.join(tempfile.mkdtemp(prefix="stent-crawler-"), "crawler.db"))
    args = parser.parse_args()
    asyncio.run(main(args.pages, args.db))
