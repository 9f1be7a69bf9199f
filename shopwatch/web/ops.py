"""Operational routes: ``/healthz`` (public) and ``/metrics`` (token or loopback)."""

from __future__ import annotations

import hmac
import ipaddress

import msgspec
from fastapi import APIRouter, Request, Response

from shopwatch.errors import Forbidden, Unauthorized
from shopwatch.runtime import Runtime
from shopwatch.web.auth import key_from_headers

router = APIRouter()


@router.get("/healthz", tags=["ops"], summary="Liveness and store versions",
            responses={503: {"description": "The event store is not running."}})
async def healthz(request: Request) -> Response:
    """``200`` with the store versions, or ``503`` when the event store cannot write."""
    rt: Runtime = request.app.state.runtime
    healthy = rt.events.healthy()
    body = {"status": "ok" if healthy else "event store down",
            "writer_queue_events": rt.writer.queued_events,
            "event_store_schema": rt.events.schema_version,
            "state_store_schema": rt.state.schema_version}
    return Response(msgspec.json.encode(body), status_code=200 if healthy else 503,
                    media_type="application/json")


def _is_loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@router.get("/metrics", tags=["ops"], summary="Prometheus metrics")
async def metrics(request: Request) -> Response:
    """Shopwatch's own figures. With ``metrics_token`` set it is required as a bearer
    token; without it only loopback clients are answered."""
    rt: Runtime = request.app.state.runtime
    token = rt.settings.metrics_token
    if token:
        given = key_from_headers(request.headers) or ""
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise Unauthorized("/metrics needs 'Authorization: Bearer <metrics_token>'")
    elif not _is_loopback(request.client.host if request.client else None):
        raise Forbidden("/metrics answers loopback clients only unless metrics_token is set")
    return Response(rt.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
