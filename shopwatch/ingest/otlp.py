"""The OTLP/HTTP receiver: ``POST /v1/traces``, ``/v1/metrics`` and ``/v1/logs``.

What an OpenTelemetry SDK's OTLP/HTTP exporter sends, answered as the OTLP
specification says (docs/otlp.md):

- Bodies in binary protobuf (``application/x-protobuf``) or OTLP/JSON
  (``application/json``), plain or ``Content-Encoding: gzip``; any other type is 415.
- The key of event ingest (ingest or secret key) in ``Authorization: Bearer`` or
  ``X-Shopwatch-Key``, which is what ``OTEL_EXPORTER_OTLP_HEADERS`` sets; 401 without.
- 200 with the signal's ``Export*ServiceResponse``, in the request's encoding, once
  the rows are committed (the same writer and durability as event ingest: an
  acknowledged span is never lost). ``partial_success`` carries the number of items
  rejected and the first problems, with their position; it is unset when all were
  stored. An empty request is a success.
- Errors carry a ``google.rpc.Status`` body in the request's encoding (JSON when the
  Content-Type is not one of OTLP's): 400 for a body that does not decode (not to be
  retried), 413 above ``otlp_max_body_bytes`` measured after decompression, 429 over
  the project's ``ingest_rate_limit`` and 503 when the writer is overloaded or the
  store fails, both with ``Retry-After`` (retryable).

The front door (:mod:`shopwatch.web.frontdoor`) calls :func:`ingest_otlp` directly; the
FastAPI routes here serve the same for the OpenAPI description and the bare app.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request, Response

from shopwatch import otlp
from shopwatch.errors import HTTPError, PayloadTooLarge, UnsupportedMediaType
from shopwatch.ingest.body import read_body
from shopwatch.ingest.routes import commit
from shopwatch.runtime import Runtime
from shopwatch.store.base import EventBatch as RowBatch

log = logging.getLogger(__name__)
router = APIRouter()


@dataclass
class Answer:
    """One OTLP answer: status, body, its Content-Type and extra headers."""

    status: int
    body: bytes
    content_type: str
    headers: list[tuple[str, str]] = field(default_factory=list)


async def ingest_otlp(rt: Runtime, signal: otlp.Signal, headers: Mapping[str, str],
                      chunks: AsyncIterator[bytes]) -> Answer:
    """Everything ``POST /v1/<signal>`` does; never raises (errors are answers too)."""
    metrics = rt.metrics
    started = time.perf_counter()
    encoding = otlp.encoding_of(headers.get("content-type"))
    reply = encoding or otlp.Encoding.JSON  # error bodies for an unknown type: JSON
    try:
        try:
            info = rt.keys.require(headers, secret=False)
            if encoding is None:
                raise UnsupportedMediaType(
                    f"Content-Type {headers.get('content-type', '')!r} is not OTLP/HTTP: send "
                    "application/x-protobuf or application/json")
            limit = rt.settings.otlp_max_body_bytes
            try:
                body = await read_body(chunks, headers.get("content-encoding"),
                                       headers.get("content-length"), limit)
            except PayloadTooLarge:
                raise PayloadTooLarge(
                    f"body is larger than {limit} bytes (otlp_max_body_bytes, measured after "
                    "decompression); send smaller batches") from None
            now_us = time.time_ns() // 1000
            decoded = otlp.decode(signal, body, encoding, now_s=now_us / 1e6,
                                  query_allow=rt.pipeline.query_allow,
                                  pseudonym_key=rt.pipeline.pseudonym_key)
            rows = RowBatch(info.project_id, now_us, b"[]", 0, [])
            if decoded.rows:
                setattr(rows, signal.batch_field, decoded.payload())
                setattr(rows, f"n_{signal.batch_field}", len(decoded.rows))
            await commit(rt, info.project_id, rows)
        except HTTPError as exc:
            metrics.requests.labels(str(exc.status)).inc()
            metrics.request_seconds.observe(time.perf_counter() - started)
            extra = [] if exc.retry_after is None else [("retry-after", str(exc.retry_after))]
            return Answer(exc.status, otlp.status_body(exc.status, exc.message, reply,
                                                       exc.retry_after), reply.value, extra)
    except Exception:  # an answer in OTLP's format even for a bug, never a hang
        log.exception("OTLP ingest failed")
        return Answer(500, otlp.status_body(500, "internal error", reply), reply.value)
    metrics.otlp_accepted.labels(signal.name).inc(len(decoded.rows))
    if decoded.rejected:
        metrics.otlp_rejected.labels(signal.name).inc(decoded.rejected)
    metrics.requests.labels("200").inc()
    metrics.request_seconds.observe(time.perf_counter() - started)
    return Answer(200, otlp.response_body(signal, decoded, encoding), encoding.value)


# --- FastAPI routes (OpenAPI; the front door answers first) ----------------------------------

_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Stored (committed). `partial_success` counts rejected items and "
                         "names the first problems; unset when everything was stored."},
    400: {"description": "The body does not decode as an OTLP request; do not retry."},
    401: {"description": "Missing or unknown key."},
    413: {"description": "Body over otlp_max_body_bytes (after decompression)."},
    415: {"description": "Content-Type other than application/x-protobuf or "
                         "application/json, or an unsupported Content-Encoding."},
    429: {"description": "Project over its ingest rate; retry after Retry-After."},
    503: {"description": "Overloaded or store unavailable; nothing was stored; retry after "
                         "Retry-After."},
}


def _route(signal: otlp.Signal) -> None:
    request_name = signal.request.DESCRIPTOR.full_name

    async def receive(request: Request) -> Response:
        answer = await ingest_otlp(request.app.state.runtime, signal, request.headers,
                                   request.stream())
        return Response(answer.body, status_code=answer.status,
                        media_type=answer.content_type, headers=dict(answer.headers))

    receive.__doc__ = (f"OTLP/HTTP {signal.name}: an `{request_name}`, binary protobuf or "
                       "OTLP/JSON, optionally gzip. The answer comes after the commit.")
    router.add_api_route(
        signal.path, receive, methods=["POST"], responses=_RESPONSES, tags=["ingest"],
        summary=f"Receive OpenTelemetry {signal.name} (OTLP/HTTP)",
        name=f"otlp_{signal.name}",
        openapi_extra={"requestBody": {"required": True, "content": {
            "application/x-protobuf": {"schema": {"type": "string", "format": "binary",
                                                  "description": request_name}},
            "application/json": {"schema": {"type": "object",
                                            "description": f"{request_name} (OTLP/JSON)"}},
        }}})


for _signal in otlp.SIGNALS.values():
    _route(_signal)
