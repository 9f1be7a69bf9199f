"""The push URL of ``heartbeat`` monitors: ``/api/v1/heartbeat/<token>``, called by the
shop's cron jobs and workers (``curl -fsS https://shopwatch.example/api/v1/heartbeat/...``).

Public by design: no session and no key, the token is the secret
(:mod:`shopwatch.checks.heartbeat`). GET, POST and HEAD all count as a ping; ``/fail``
after the token reports a failure. The answer comes once the ping is stored (200);
an unknown token answers 404, and nothing else is told about it.
"""

from __future__ import annotations

import asyncio
import time

import msgspec
from fastapi import APIRouter, Request, Response

from shopwatch.checks import heartbeat
from shopwatch.errors import PageNotFound
from shopwatch.runtime import Runtime

router = APIRouter()
_encode = msgspec.json.Encoder().encode
_METHODS = ["GET", "POST", "HEAD"]


def _store(rt: Runtime, token: str, failed: bool) -> dict[str, object]:
    found = heartbeat.find(rt.state, rt.pipeline.pseudonym_key, token)
    if found is None:
        raise PageNotFound("no heartbeat monitor has this push URL")
    project_id, name = found
    at = time.time()
    heartbeat.record_ping(rt.state, project_id, name, at, failed=failed)
    return {"monitor": name, "recorded": "fail" if failed else "ping", "at": at}


async def _ping(request: Request, token: str, failed: bool) -> Response:
    rt: Runtime = request.app.state.runtime
    body = await asyncio.to_thread(_store, rt, token, failed)
    return Response(_encode(body), media_type="application/json",
                    headers={"Cache-Control": "no-store"})


async def ping(request: Request, token: str) -> Response:
    """Record that the job behind a ``heartbeat`` monitor ran. Answered once stored."""
    return await _ping(request, token, failed=False)


async def ping_fail(request: Request, token: str) -> Response:
    """Record that the job behind a ``heartbeat`` monitor failed: the monitor is down
    until its next ping."""
    return await _ping(request, token, failed=True)


# One route per method, each with its own OpenAPI operation (HEAD is left out of it).
for _method in _METHODS:
    for _path, _endpoint, _summary in (
            ("/api/v1/heartbeat/{token}", ping, "Heartbeat ping"),
            ("/api/v1/heartbeat/{token}/fail", ping_fail, "Heartbeat failure report")):
        router.add_api_route(
            _path, _endpoint, methods=[_method], tags=["uptime"],
            summary=f"{_summary} (public; the token is the secret)",
            operation_id=f"{_endpoint.__name__}_{_method.lower()}",
            include_in_schema=_method != "HEAD",
            responses={404: {"description": "No heartbeat monitor has this token."}})
