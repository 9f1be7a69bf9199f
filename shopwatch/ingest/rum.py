"""``POST /api/v1/rum``: beacons from ``/rum.js``, into the ``rum`` table and ``events``.

The key comes in the query string (``?key=<ingest_key>``): ``navigator.sendBeacon``
cannot set headers. Requests are simple CORS requests (``text/plain``), so browsers send
them without a preflight; the answer carries ``Access-Control-Allow-Origin`` with the
request's exact origin when the project lists it in its RUM origins, and no CORS header
otherwise. When a project lists origins, a beacon from any other browser origin is
refused (403) and nothing of it is stored; with none listed, any origin may send.

The rest follows event ingest (:mod:`shopwatch.ingest.routes`): the answer comes after
the commit, invalid records are reported by index and the valid ones kept, the same
rate limit and overload answers apply. Commerce events in the beacon (``event``
records) go through the event pipeline (validation, scrubbing, dedup by id).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import parse_qs

import msgspec
from fastapi import APIRouter, Request, Response

from shopwatch import beacon
from shopwatch.errors import Forbidden, HTTPError, Unauthorized, UnsupportedMediaType
from shopwatch.geoip import client_address
from shopwatch.ingest import pipeline
from shopwatch.ingest.body import read_body
from shopwatch.ingest.routes import commit
from shopwatch.runtime import Runtime
from shopwatch.store.state import KeyInfo, Project
from shopwatch.useragent import parse_agent
from shopwatch.web.auth import key_from_headers

_encode = msgspec.json.Encoder().encode
router = APIRouter()
PREFLIGHT_HEADERS = [
    (b"access-control-allow-methods", b"POST, OPTIONS"),
    (b"access-control-allow-headers", b"content-type"),
    (b"access-control-max-age", b"86400"),
]
_BEACON_TYPES = frozenset({"text/plain", "application/json", ""})


def _key(headers: Mapping[str, str], query: str) -> str | None:
    given = parse_qs(query).get("key")
    return given[0].strip() if given and given[0].strip() else key_from_headers(headers)


def _resolve(rt: Runtime, headers: Mapping[str, str], query: str) -> KeyInfo:
    key = _key(headers, query)
    if not key:
        raise Unauthorized("missing key: the beacon URL needs ?key=<the project's ingest key>")
    info = rt.keys.resolve(key)
    if info is None:
        raise Unauthorized("unknown or revoked key (see `shopwatch project list`)")
    return info


def cors_headers(rt: Runtime, headers: Mapping[str, str], query: str) -> list[tuple[bytes, bytes]]:
    """``Access-Control-Allow-Origin: <origin>`` (and ``Vary``) when the request's origin
    is one of its project's RUM origins; nothing otherwise (unknown key included)."""
    origin = headers.get("origin")
    key = _key(headers, query)
    if not origin or not key:
        return []
    info = rt.keys.resolve(key)
    if info is None or not _allowed(rt.keys.project(info.project_id), origin, listed_only=True):
        return []
    return [(b"access-control-allow-origin", origin.encode("latin-1")), (b"vary", b"Origin")]


def _allowed(project: Project, origin: str | None, *, listed_only: bool = False) -> bool:
    if not project.rum_origins:
        return not listed_only
    return origin is not None and origin.rstrip("/").lower() in project.rum_origins


async def ingest_rum(rt: Runtime, headers: Mapping[str, str], query: str, peer: str | None,
                     chunks: AsyncIterator[bytes]) -> tuple[int, bytes]:
    """Everything ``POST /api/v1/rum`` does: ``(status, JSON body)`` of the answer.

    Raises :class:`HTTPError` for a refused request (the caller renders it).
    """
    metrics = rt.metrics
    started = time.perf_counter()
    try:
        info = _resolve(rt, headers, query)
        project = rt.keys.project(info.project_id)
        origin = headers.get("origin")
        if not _allowed(project, origin):
            metrics.rum_dropped.labels("origin").inc()
            raise Forbidden(f"origin: {origin or '(none)'} is not one of the project's RUM "
                            "origins (Settings, or `shopwatch project update --rum-origin`)")
        media = (headers.get("content-type") or "").split(";", 1)[0].strip().lower()
        if media not in _BEACON_TYPES:
            raise UnsupportedMediaType(f"Content-Type {media!r} is not read here; a beacon is "
                                       "JSON sent as text/plain or application/json")
        body = await read_body(chunks, headers.get("content-encoding"),
                               headers.get("content-length"), rt.settings.rum_max_body_bytes)
        now_us = time.time_ns() // 1000
        address = client_address(peer, headers.get("x-forwarded-for"))
        country = rt.geoip.lookup(address) if rt.geoip is not None and address else None
        parsed = beacon.parse(body, now_ms=now_us / 1000,
                              agent=parse_agent(headers.get("user-agent", "")),
                              country=country, sample_rate=project.rum_sample_rate,
                              query_allow=rt.pipeline.query_allow)
        outcome = pipeline.process_events(parsed.events, [], info.project_id, now_us,
                                          rt.pipeline)
        rows = outcome.rows
        rows.rum = _encode(parsed.rows)
        rows.n_rum = len(parsed.rows)
        await commit(rt, info.project_id, rows)
    except HTTPError as exc:
        metrics.requests.labels(str(exc.status)).inc()
        metrics.request_seconds.observe(time.perf_counter() - started)
        raise
    rejected: list[dict[str, Any]] = sorted(parsed.rejected + outcome.rejected,
                                            key=lambda r: int(r["index"]))
    for row in parsed.rows:
        metrics.rum_rows.labels(row.kind).inc()
    if parsed.rejected:
        metrics.rum_dropped.labels("invalid").inc(len(parsed.rejected))
    if parsed.sampled_out:
        metrics.rum_dropped.labels("sampled_out").inc(parsed.sampled_out)
    for reason, count in outcome.drops.items():
        metrics.rejected.labels(reason.value).inc(count)
    metrics.accepted.inc(rows.n)
    stored = rows.n + rows.n_rum
    status = 400 if stored == 0 and rejected else 200
    metrics.requests.labels(str(status)).inc()
    metrics.request_seconds.observe(time.perf_counter() - started)
    return status, _encode({"accepted": stored, "events": rows.n, "sampled_out": parsed.sampled_out,
                            "rejected": rejected,
                            "warnings": sorted(parsed.warnings + outcome.warnings,
                                               key=lambda w: int(w["index"]))})


_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Valid records are committed; invalid ones are listed by index with "
                         "the field and reason; `sampled_out` counts records outside the "
                         "project's sample."},
    400: {"description": "Not a beacon object, or every record was invalid."},
    401: {"description": "Missing or unknown key."},
    403: {"description": "The browser origin is not one of the project's RUM origins."},
    413: {"description": "Body over rum_max_body_bytes, or over 200 records."},
    415: {"description": "Content-Type other than text/plain or application/json."},
    429: {"description": "Project over its ingest rate; see Retry-After."},
    503: {"description": "Overloaded or store unavailable; nothing was stored."},
}


@router.post("/api/v1/rum", responses=_RESPONSES, tags=["ingest"], summary="Send a RUM beacon",
             openapi_extra={"requestBody": {"required": True, "content": {"text/plain": {
                 "schema": msgspec.json.schema(beacon.Beacon)}}}})
async def rum(request: Request, key: str = "") -> Response:
    """Store a beacon from ``/rum.js`` (key in ``?key=``): page views, Web Vitals,
    errors, failed and slow resources, and commerce events (docs/rum.md). The answer
    comes after the commit."""
    client = request.client
    status, body = await ingest_rum(request.app.state.runtime, request.headers,
                                    request.url.query, client.host if client else None,
                                    request.stream())
    return Response(body, status_code=status, media_type="application/json",
                    headers=dict((k.decode(), v.decode()) for k, v in cors_headers(
                        request.app.state.runtime, request.headers, request.url.query)))
