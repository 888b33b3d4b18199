"""A PostgresStorage that tells a test when a worker's claim found nothing: the worker is then idle, its runtime
(and notifier subscription) started, and it waits for its next poll or a notification."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from stent.model import ClaimRequest, TaskRecord
from stent_postgres import PostgresStorage


class ObservedStorage(PostgresStorage):
    def __init__(self, dsn: str, **options: Any) -> None:
        super().__init__(dsn, **options)
        self.idle = asyncio.Event()

    async def claim_tasks(self, request: ClaimRequest, now: datetime) -> list[TaskRecord]:
        claimed = await super().claim_tasks(request, now)
        if not claimed:
            self.idle.set()
        return claimed
