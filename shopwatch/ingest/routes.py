"""``POST /api/v1/events``: the HTTP shell around the pipeline and the writer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import msgspec
from fastapi import APIRouter, Request, Response

from shopwatch import events as ev
from shopwatch.errors import HTTPError, RateLimited, Unavailable
from shopwatch.ingest import pipeline
from shopwatch.ingest.body import body_format, read_body
from shopwatch.runtime import Runtime
from shopwatch.store.base import EventBatch as RowBatch

router = APIRouter()
_encode = msgspec.json.Encoder().encode

_REQUEST_SCHEMA: dict[str, Any] = {
    "content": {
        "application/json": {"schema": msgspec.json.schema(ev.Batch)},
        "application/x-ndjson": {"schema": {"type": "string",
                                            "description": "one event object per line"}},
    },
    "required": True,
}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Accepted events are committed; rejected ones are listed with the "
                         "field and reason."},
    400: {"description": "Undecodable body, or every event was rejected."},
    401: {"description": "Missing or unknown key."},
    413: {"description": "Body over max_body_bytes (after decompression) or too many events."},
    415: {"description": "Unsupported Content-Type or Content-Encoding."},
    429: {"description": "Project over its ingest rate; see Retry-After."},
    503: {"description": "Overloaded or store unavailable; nothing was stored; see Retry-After."},
}


@router.post("/api/v1/events", openapi_extra={"requestBody": _REQUEST_SCHEMA},
             responses=_RESPONSES, tags=["ingest"], summary="Send events")
async def ingest_events(request: Request) -> Response:
    """Store a batch of events. The answer comes after they are committed."""
    status, body = await ingest(request.app.state.runtime, request.headers, request.stream())
    return Response(body, status_code=status, media_type="application/json")


async def ingest(rt: Runtime, headers: Mapping[str, str],
                 chunks: AsyncIterator[bytes]) -> tuple[int, bytes]:
    """Everything ``POST /api/v1/events`` does: ``(status, JSON body)`` of the answer.

    Raises :class:`HTTPError` for a refused request (the caller renders it).
    """
    metrics = rt.metrics
    started = time.perf_counter()
    try:
        info = rt.keys.require(headers, secret=False)
        fmt = body_format(headers.get("content-type"))
        body = await read_body(chunks, headers.get("content-encoding"),
                               headers.get("content-length"), rt.settings.max_body_bytes)
        now_us = time.time_ns() // 1000
        outcome = pipeline.process(body, fmt, info.project_id, now_us, rt.pipeline)
        n = outcome.rows.n
        await commit(rt, info.project_id, outcome.rows)
    except HTTPError as exc:
        metrics.requests.labels(str(exc.status)).inc()
        metrics.request_seconds.observe(time.perf_counter() - started)
        raise
    for reason, count in outcome.drops.items():
        metrics.rejected.labels(reason.value).inc(count)
    metrics.accepted.inc(n)
    status = 400 if n == 0 and outcome.rejected else 200
    metrics.requests.labels(str(status)).inc()
    metrics.request_seconds.observe(time.perf_counter() - started)
    payload = {"accepted": n, "rejected": outcome.rejected, "warnings": outcome.warnings}
    return status, _encode(payload)


async def commit(rt: Runtime, project_id: int, rows: RowBatch) -> None:
    """Take the rows from the project's rate budget, hand them to the writer and return
    once they are committed. Raises 429 (over the rate) or 503 (overload, timeout)."""
    wait = rt.limiter.take(project_id, rows.size)
    if wait:
        raise RateLimited(f"project is over its ingest rate ({rt.settings.ingest_rate_limit} "
                          "events/s); nothing was stored", retry_after=wait)
    if not rows.size:
        return
    future = asyncio.wrap_future(rt.writer.submit(rows))
    try:
        # shield: a timed-out request must not cancel the commit under way.
        await asyncio.wait_for(asyncio.shield(future), rt.settings.commit_timeout)
    except TimeoutError:
        raise Unavailable(
            f"commit took longer than {rt.settings.commit_timeout:g}s; the events may "
            "or may not be stored: retry with the same event ids",
            retry_after=rt.settings.retry_after) from None
