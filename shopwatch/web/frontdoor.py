"""The ASGI front door: ``POST /api/v1/events`` straight to ingest, the rest to FastAPI.

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

from shopwatch.errors import HTTPError
from shopwatch.ingest.routes import ingest
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


class FrontDoor:
    """An ASGI app: ingest requests to :func:`ingest`, everything else to ``app``."""

    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/api/v1/events" or scope[
                "method"] not in ("POST", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS":  # a browser's CORS preflight
            await send({"type": "http.response.start", "status": 204,
                        "headers": [*CORS_HEADERS, (b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        extra: list[tuple[bytes, bytes]] = []
        try:
            status, body = await ingest(self.runtime, headers, _chunks(receive))
        except HTTPError as exc:
            status = exc.status
            body = _encode(exc.body())
            if exc.retry_after is not None:
                extra.append((b"retry-after", str(exc.retry_after).encode()))
        except Exception:
            log.exception("ingest failed")
            status = 500
            body = _encode({"error": {"code": "internal", "message": "internal error"}})
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()), *extra, *CORS_HEADERS[:1]]})
        await send({"type": "http.response.body", "body": body})


async def _chunks(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return
