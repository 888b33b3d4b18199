"""A document-processing pipeline: the module every `stent worker` process of this example imports.

    stent worker examples/multi_worker/workflows.py --storage postgresql://... --notifier redis://...

`process_document` is the orchestrator. It extracts a document's text, then renders its thumbnail and classifies
it at the same time, then indexes it. Each of those four calls is a durable step: any worker may run any of them,
a step that finished is never run again, and a step whose worker dies is run again by another one.

The "services" are simulated (no network): each step waits `work_seconds`, as a call to an OCR engine or a
search index would, and the content is derived from the document id. Every step returns the process that ran it
(`host/pid`), so the launcher can show how the work spread over the workers.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
from dataclasses import dataclass

from stent import RetryPolicy, Stent

CATEGORIES = ("invoice", "contract", "receipt", "letter")
WORDS = ("total", "party", "amount", "signed", "dear", "due", "terms", "paid", "item", "regards")


def this_process() -> str:
    """Who is running this step: in a deployment, the host name is the pod or machine."""
    return f"{socket.gethostname()}/{os.getpid()}"


@dataclass(frozen=True)
class Extracted:
    text: str
    words: int
    worker: str


@dataclass(frozen=True)
class Thumbnail:
    path: str
    worker: str


@dataclass(frozen=True)
class Classification:
    category: str
    worker: str


@dataclass(frozen=True)
class Indexed:
    terms: int
    worker: str


@dataclass(frozen=True)
class DocumentReport:
    doc_id: str
    category: str
    words: int
    terms: int
    thumbnail: str
    #: step name -> the process (host/pid) that ran it; "process_document" is the one that finished the pipeline.
    ran_on: dict[str, str]


class ServiceUnavailable(ConnectionError):
    """The OCR service did not answer: worth another try."""


@Stent.durable(
    name="docs.extract_text",
    retry_policy=RetryPolicy(max_attempts=3, initial_delay=0.2, retry_for=(ServiceUnavailable,)),
)
async def extract_text(doc_id: str, work_seconds: float) -> Extracted:
    await asyncio.sleep(work_seconds)  # the OCR call
    digest = hashlib.sha256(doc_id.encode()).digest()
    text = " ".join(WORDS[b % len(WORDS)] for b in digest[: 8 + digest[0] % 24])
    return Extracted(text=text, words=len(text.split()), worker=this_process())


@Stent.durable(name="docs.render_thumbnail")
async def render_thumbnail(doc_id: str, work_seconds: float) -> Thumbnail:
    await asyncio.sleep(work_seconds)  # rasterising the first page
    return Thumbnail(path=f"thumbnails/{doc_id}.png", worker=this_process())


@Stent.durable(name="docs.classify")
async def classify(text: str, work_seconds: float) -> Classification:
    await asyncio.sleep(work_seconds)  # the model call
    category = CATEGORIES[sum(map(ord, text)) % len(CATEGORIES)]
    return Classification(category=category, worker=this_process())


@Stent.durable(name="docs.index_document")
async def index_document(doc_id: str, category: str, text: str, work_seconds: float) -> Indexed:
    await asyncio.sleep(work_seconds)  # the search-index write
    return Indexed(terms=len(set(text.split())) + 1, worker=this_process())


@Stent.durable(name="docs.process_document")
async def process_document(doc_id: str, work_seconds: float = 0.05) -> DocumentReport:
    extracted = await extract_text(doc_id, work_seconds)
    thumbnail, label = await asyncio.gather(  # two steps at once, possibly on two workers
        render_thumbnail(doc_id, work_seconds), classify(extracted.text, work_seconds)
    )
    indexed = await index_document(doc_id, label.category, extracted.text, work_seconds)
    return DocumentReport(
        doc_id=doc_id,
        category=label.category,
        words=extracted.words,
        terms=indexed.terms,
        thumbnail=thumbnail.path,
        ran_on={
            "extract_text": extracted.worker,
            "render_thumbnail": thumbnail.worker,
            "classify": label.worker,
            "index_document": indexed.worker,
            "process_document": this_process(),
        },
    )
