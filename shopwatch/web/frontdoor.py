"""The ASGI front door: ``POST /api/v1/events``, ``/api/v1/rum`` and the OTLP paths
(``/v1/traces``, ``/v1/metrics``, ``/v1/logs``) straight to ingest, the rest to FastAPI.

Ingest is the one hot route. Going through FastAPI's stack (routing, a dozen
middleware layers, dependency resolution) cost about 0.4 ms per request, a quarter
of the request process under load (docs/benchmarks.md). Here the same
:func:`shopwatch.ingest.routes.ingest` runs directly; its FastAPI route remains, for
the OpenAPI description and for anyone mounting the FastAPI app alone.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

import msgspec

from shopwatch import otlp
from shopwatch.errors import HTTPError
from shopwatch.ingest.otlp import ingest_otlp
from shopwatch.ingest.routes import ingest
from shopwatch.ingest.rum import PREFLIGHT_HEADERS, cors_headers, ingest_rum
from shopwatch.runtime import Runtime

log = logging.getLogger(__name__)
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
_encode = msgspec.json.Encoder().encode
# Shops send events from their own pages, on another origin, with the public ingest key
# (write-only, meant to be embedded): ingest alone answers cross-origin requests. No
# cookies are involved (no Allow-Credentials), so "*" exposes nothing.
CORS_HEADERS = [
    (b"access-control-allow-origin", b"*"),
    (b"access-control-allow-methods", b"POST, OPTIONS"),
    (b"access-control-allow-headers",
     b"authorization, content-type, content-encoding, x-shopwatch-key"),
    (b"access-control-max-age", b"86400"),
]


_ROUTES = frozenset({"/api/v1/events", "/api/v1/rum", *otlp.SIGNALS})


class FrontDoor:
    """An ASGI app: ingest requests to :func:`ingest`, everything else to ``app``."""

    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in _ROUTES or scope[
                "method"] not in ("POST", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        if scope["path"] == "/api/v1/rum":
            await self._rum(scope, receive, send)
            return
        signal = otlp.SIGNALS.get(scope["path"])
        if signal is not None:
            await self._otlp(signal, scope, receive, send)
            return
        if scope["method"] == "OPTIONS":  # a browser's CORS preflight
            await send({"type": "http.response.start", "status": 204,
                        "headers": [*CORS_HEADERS, (b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        status, body, extra = await _answer(ingest(self.runtime, headers, _chunks(receive)))
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()), *extra, *CORS_HEADERS[:1]]})
        await send({"type": "http.response.body", "body": body})


    async def _rum(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        query = scope.get("query_string", b"").decode("latin-1")
        cors = cors_headers(self.runtime, headers, query)
        if scope["method"] == "OPTIONS":
            await send({"type": "http.response.start", "status": 204, "headers": [
                *cors, *(PREFLIGHT_HEADERS if cors else []), (b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
            return
        client = scope.get("client")
        status, body, extra = await _answer(ingest_rum(
            self.runtime, headers, query, client[0] if client else None, _chunks(receive)))
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()), *extra, *cors]})
        await send({"type": "http.response.body", "body": body})


    async def _otlp(self, signal: otlp.Signal, scope: Scope, receive: Receive,
                    send: Send) -> None:
        if scope["method"] != "POST":  # no CORS for OTLP: FastAPI answers 405
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        answer = await ingest_otlp(self.runtime, signal, headers, _chunks(receive))
        await send({"type": "http.response.start", "status": answer.status, "headers": [
            (b"content-type", answer.content_type.encode()),
            (b"content-length", str(len(answer.body)).encode()),
            *((k.encode(), v.encode()) for k, v in answer.headers)]})
        await send({"type": "http.response.body", "body": answer.body})


async def _answer(call: Awaitable[tuple[int, bytes]]
                  ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    """``(status, body, extra headers)`` of an ingest call, errors rendered."""
    try:
        status, body = await call
        return status, body, []
    except HTTPError as exc:
        extra = [] if exc.retry_after is None else [(b"retry-after",
                                                     str(exc.retry_after).encode())]
        return exc.status, _encode(exc.body()), extra
    except Exception:
        log.exception("ingest failed")
        return 500, _encode({"error": {"code": "internal", "message": "internal error"}}), []


async def _chunks(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return
