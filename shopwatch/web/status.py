"""The public status page of a project: ``/status/<slug>`` (HTML) and
``/api/v1/status/<slug>`` (JSON), opt-in (``shopwatch project update --status-page``).

Public by design: no session, no key. It shows what a shop chooses to show its
customers — each enabled monitor as a component with its current status, 90 daily
availability bars and availability over 30 and 90 days, and the incidents of the last
14 days (the failed stretches of its monitors) — and nothing else: no targets, no
failure details, no response times. A slug that is not enabled answers 404.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Final

import msgspec
from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from shopwatch.analytics.timerange import parse_range
from shopwatch.analytics.uptime import monitor_detail, monitors_status
from shopwatch.errors import PageNotFound
from shopwatch.runtime import Runtime
from shopwatch.store.maintenance import list_windows
from shopwatch.store.maintenance import spans as maintenance_spans
from shopwatch.store.monitors import list_monitors
from shopwatch.store.state import Project

router = APIRouter(include_in_schema=False)
_encode = msgspec.json.Encoder().encode
INCIDENT_DAYS: Final = 14


def _project(rt: Runtime, slug: str) -> Project:
    for project in rt.state.list_projects():
        if project.status_slug and project.status_slug == slug.lower():
            return project
    raise PageNotFound(f"no status page /status/{slug}")


def status_of(rt: Runtime, project: Project) -> dict[str, Any]:
    """What the status page shows (see the module docstring)."""
    now_us = time.time_ns() // 1000
    stored = [s for s in list_monitors(rt.state, project.id) if s.monitor.enabled]
    spans = maintenance_spans(list_windows(rt.state, project.id), now_us / 1e6 - 91 * 86400,
                              now_us / 1e6 + 1)
    rows = monitors_status(rt.events, project.id, stored, now_us, spans,
                           rt.settings.checks_location)
    period = parse_range("custom", str((now_us - INCIDENT_DAYS * 86_400_000_000) // 1000),
                         str(now_us // 1000), now_us)
    incidents = []
    for row in rows:
        detail = monitor_detail(rt.events, project.id, row["name"], period, spans)
        for incident in detail["incidents"]:
            incidents.append({"component": row["name"], "started": incident["started"],
                              "ended": incident["ended"], "duration_s": incident["duration_s"]})
    incidents.sort(key=lambda i: str(i["started"]), reverse=True)
    components = [{"name": r["name"], "status": r["status"],
                   "availability": {"30d": r["availability"]["30d"],
                                    "90d": r["availability"]["90d"]},
                   "bars": r["bars"]} for r in rows]
    down = sum(1 for c in components if c["status"] == "down")
    degraded = sum(1 for c in components if c["status"] == "degraded")
    overall = ("unknown" if not components else "operational" if not down + degraded
               else "outage" if down == len(components) else "degraded")
    return {"name": project.name, "status": overall, "components": components,
            "incidents": incidents[:50], "updated_at": time.strftime(
                "%Y-%m-%dT%H:%M:%SZ", time.gmtime(now_us / 1e6))}


@router.get("/api/v1/status/{slug}")
async def status_json(request: Request, slug: str) -> Response:
    rt: Runtime = request.app.state.runtime
    project = _project(rt, slug)
    body = await asyncio.to_thread(status_of, rt, project)
    return Response(_encode(body), media_type="application/json",
                    headers={"Cache-Control": "public, max-age=30"})


@router.get("/status/{slug}")
async def status_page(request: Request, slug: str) -> HTMLResponse:
    from shopwatch.web.pages import templates

    rt: Runtime = request.app.state.runtime
    project = _project(rt, slug)
    body = await asyncio.to_thread(status_of, rt, project)
    return templates.TemplateResponse(request, "status.html", {"s": body},
                                      headers={"Cache-Control": "public, max-age=30"})
