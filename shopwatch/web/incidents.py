"""Incidents and silences in the JSON API (docs/alerts.md, "Incidents", "Silences").

- ``GET /api/v1/incidents?project=&limit=&weeks=``: the project's incidents, the open one
  first, with time to detect and to resolve and the impact estimate (frozen at
  resolution; ``null`` while open, see the detail), and ``trend``: per ISO week of the
  last ``weeks`` weeks, the incidents that started in it, their mean time to detect and to
  resolve, and the orders and revenue they lost.
- ``GET /api/v1/incidents/{incident_id}?project=``: one incident with its alerts, the
  notifications sent about it (among the project's latest 1,000 deliveries, oldest
  first), its impact (computed now while it is open) and its timeline of technical and
  business signals (:mod:`shopwatch.alerts.incidents`).
- ``GET /api/v1/silences?project=&state=active|all``; ``POST /api/v1/silences`` with
  ``{"matcher": "checkout*", "duration": "2h" | "ends_at": ISO 8601, "starts_at": ISO
  8601 (default now), "comment": "..."}``; ``DELETE /api/v1/silences/{silence_id}`` ends
  one now. Errors name the field.

Reading takes a session or the project's secret key; silencing takes the secret key, or
an admin session with its CSRF token.
"""

from __future__ import annotations

import asyncio
import json
import math
import statistics
import time
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec
from fastapi import APIRouter, Query, Request, Response

from shopwatch.alerts import incidents as signals
from shopwatch.alerts.channels import iso
from shopwatch.errors import BadRequest, ConfigError, NotFound, PageNotFound
from shopwatch.runtime import Runtime
from shopwatch.settings import parse_duration
from shopwatch.store import channels as channel_store
from shopwatch.store import incidents as store
from shopwatch.store import silences
from shopwatch.store.slos import all_rules
from shopwatch.store.state import Project
from shopwatch.web import access
from shopwatch.web.alerts import present
from shopwatch.web.channels import delivery_json
from shopwatch.web.params import ProjectQuery

router = APIRouter()
_encode = msgspec.json.Encoder().encode
WEEK_S = 7 * 86400


def _json(body: Any, status: int = 200) -> Response:
    return Response(_encode(body), status_code=status, media_type="application/json")


def _summary(incident: store.Incident) -> dict[str, Any]:
    return {
        "id": incident.id, "title": incident.title, "severity": incident.severity,
        "status": incident.status, "started_at": iso(incident.started_at),
        "detected_at": iso(incident.detected_at), "resolved_at": iso(incident.resolved_at),
        "mttd_s": round(incident.mttd_s, 3),
        "mttr_s": round(incident.mttr_s, 3) if incident.mttr_s is not None else None,
        "lost_orders": incident.lost_orders, "lost_revenue": incident.lost_revenue,
        "wasted_spend": incident.wasted_spend,
    }


def trend(found: list[store.Incident], now: float, weeks: int) -> list[dict[str, Any]]:
    """Per ISO week (oldest first, the current one last): incidents started in it, mean
    time to detect and to resolve (the resolved ones), orders and revenue lost."""
    today = datetime.fromtimestamp(now, UTC).date()
    monday = today.toordinal() - today.weekday()
    rows = []
    for k in range(weeks - 1, -1, -1):
        start = datetime.fromordinal(monday - 7 * k).replace(tzinfo=UTC).timestamp()
        inside = [i for i in found if start <= i.started_at < start + WEEK_S]
        mttr = [i.mttr_s for i in inside if i.mttr_s is not None]
        rows.append({
            "week": iso(start), "incidents": len(inside),
            "mttd_s": round(statistics.fmean(i.mttd_s for i in inside), 3) if inside else None,
            "mttr_s": round(statistics.fmean(mttr), 3) if mttr else None,
            "lost_orders": sum(i.lost_orders or 0.0 for i in inside),
            "lost_revenue": sum(i.lost_revenue or 0.0 for i in inside),
        })
    return rows


def _list(rt: Runtime, project: Project, limit: int, weeks: int) -> dict[str, Any]:
    now = time.time()
    shown = store.list_incidents(rt.state, project.id, limit=limit)
    recent = store.list_incidents(rt.state, project.id, since=now - weeks * WEEK_S,
                                  limit=10_000)
    resolved = [i for i in recent if i.mttr_s is not None]
    return {
        "project": project.id, "currency": project.currency, "now": iso(now),
        "incidents": [_summary(i) for i in shown],
        "trend": trend(recent, now, weeks),
        "totals": {
            "incidents": len(recent),
            "mttd_s": round(statistics.fmean(i.mttd_s for i in recent), 3) if recent else None,
            "mttr_s": (round(statistics.fmean(i.mttr_s or 0.0 for i in resolved), 3)
                       if resolved else None),
            "lost_orders": sum(i.lost_orders or 0.0 for i in recent),
            "lost_revenue": sum(i.lost_revenue or 0.0 for i in recent),
            "wasted_spend": sum(i.wasted_spend or 0.0 for i in recent),
        },
    }


@router.get("/api/v1/incidents", tags=["alerts"], summary="Incidents")
async def get_incidents(
    request: Request, project: ProjectQuery = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    weeks: Annotated[int, Query(ge=1, le=52, description="weeks of trend")] = 12,
) -> Response:
    """Incidents (the open one first, then newest first), each with MTTD, MTTR and its
    frozen impact estimate; the weekly trend of MTTD, MTTR and losses; totals over the
    trend's weeks."""
    rt: Runtime = request.app.state.runtime
    chosen = access.project_for(request, access.require_api(request), project)
    return _json(await asyncio.to_thread(_list, rt, chosen, limit, weeks))


def _detail(rt: Runtime, project: Project, incident_id: int) -> dict[str, Any]:
    now = time.time()
    try:
        incident = store.get_incident(rt.state, project.id, incident_id)
    except NotFound as exc:
        raise PageNotFound(str(exc)) from None
    rules = {rule.name: rule for _, rule in all_rules(rt.state, project.id)}
    members = store.alerts_of(rt.state, incident.id)
    impact = incident.impact
    live = impact is None
    if live:
        impact = signals.impact(rt.events, rt.state, incident, now)
    names = {c.id: c.name for c in channel_store.list_channels(rt.state, project.id)}
    told = [delivery_json(d, names) for d in
            channel_store.list_deliveries(rt.state, project.id, limit=1000)
            if json.loads(d.notification).get("incident") == incident.id]
    return {
        "project": project.id, "currency": project.currency, "now": iso(now),
        "incident": _summary(incident) | {"impact_estimated_live": live},
        "notifications": told[::-1],
        "impact": impact,
        "alerts": [present(a, rules.get(a.rule), now) for a in members],
        "timeline": signals.timeline(rt.events, rt.state, incident, now),
    }


@router.get("/api/v1/incidents/{incident_id}", tags=["alerts"], summary="One incident")
async def get_incident(request: Request, incident_id: int,
                       project: ProjectQuery = None) -> Response:
    """The incident, its alerts, its impact (orders and revenue lost against the same
    minutes of the previous weeks, marketing spend wasted) and its timeline: technical
    and business signals per bucket from before its first breach to after its end."""
    rt: Runtime = request.app.state.runtime
    chosen = access.project_for(request, access.require_api(request), project)
    return _json(await asyncio.to_thread(_detail, rt, chosen, incident_id))


# --- silences --------------------------------------------------------------------------------


def _silence(s: silences.Silence, now: float) -> dict[str, Any]:
    return {"id": s.id, "matcher": s.matcher, "starts_at": iso(s.starts_at),
            "ends_at": iso(s.ends_at), "comment": s.comment, "created_by": s.created_by,
            "created_at": iso(s.created_at), "active": s.active(now),
            "state": "active" if s.active(now) else "pending" if now < s.starts_at
            else "expired"}


@router.get("/api/v1/silences", tags=["alerts"], summary="Silences")
async def get_silences(
    request: Request, project: ProjectQuery = None,
    state: Annotated[Literal["active", "all"], Query(
        description="active: not ended yet (active or pending); all: expired too")] = "all",
) -> Response:
    """The project's silences, latest end first (at most 100)."""
    rt: Runtime = request.app.state.runtime
    chosen = access.project_for(request, access.require_api(request), project)
    now = time.time()
    found = await asyncio.to_thread(silences.list_silences, rt.state, chosen.id,
                                    now=now if state == "active" else None)
    return _json({"project": chosen.id, "now": iso(now),
                  "silences": [_silence(s, now) for s in found]})


def _when(data: dict[str, Any], field: str, default: float) -> float:
    raw = data.get(field)
    if raw is None:
        return default
    if not isinstance(raw, str):
        raise BadRequest(f"{field}: an ISO 8601 time such as 2026-11-22T18:00:00Z")
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{field}: {raw!r} is not an ISO 8601 time such as "
                         "2026-11-22T18:00:00Z") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


@router.post("/api/v1/silences", tags=["alerts"], summary="Silence rules")
async def post_silence(request: Request, project: ProjectQuery = None) -> Response:
    """``{"matcher": "checkout*", "duration": "2h", "comment": "deploying"}`` (or
    ``ends_at`` instead of ``duration``; ``starts_at`` defaults to now). Notifications of
    the matching rules wait until it ends; alerts are still evaluated and shown."""
    rt: Runtime = request.app.state.runtime
    principal = access.require_writer(request, "silence alerts")
    chosen = access.project_for(request, principal, project)
    data = await access.json_body(request, 16 * 1024)
    if not isinstance(data, dict):
        raise BadRequest("body: an object with matcher, duration or ends_at, and comment")
    unknown = sorted(set(data) - {"matcher", "duration", "starts_at", "ends_at", "comment"})
    if unknown:
        raise BadRequest(f"{unknown[0]}: not a field (matcher, duration, starts_at, ends_at,"
                         " comment)")
    matcher, comment = data.get("matcher"), data.get("comment", "")
    if not isinstance(matcher, str):
        raise BadRequest("matcher: required (a rule name, a pattern such as checkout*, or *)")
    if not isinstance(comment, str):
        raise BadRequest("comment: a string")
    now = time.time()
    starts = _when(data, "starts_at", now)
    if ("duration" in data) == ("ends_at" in data):
        raise BadRequest("duration: give either duration (such as 2h) or ends_at")
    if "duration" in data:
        raw = str(data["duration"])
        try:
            length = parse_duration(raw)
        except ValueError:
            length = math.nan
        if not math.isfinite(length) or length <= 0:
            raise BadRequest(f"duration: {raw!r} is not a duration such as 30m, 2h or 1d")
        ends = starts + length
    else:
        ends = _when(data, "ends_at", now)
    who = principal.user.email if principal.user is not None else "secret key"
    try:
        made = await asyncio.to_thread(silences.add_silence, rt.state, chosen.id, matcher,
                                       starts, ends, comment, who, now)
    except ConfigError as exc:
        raise BadRequest(str(exc)) from None
    return _json(_silence(made, now), 201)


@router.delete("/api/v1/silences/{silence_id}", tags=["alerts"], summary="End a silence")
async def delete_silence(request: Request, silence_id: int,
                         project: ProjectQuery = None) -> Response:
    """End the silence now (it stays listed as expired). 404 when it is not the
    project's."""
    rt: Runtime = request.app.state.runtime
    principal = access.require_writer(request, "end silences")
    chosen = access.project_for(request, principal, project)
    now = time.time()
    try:
        done = await asyncio.to_thread(silences.expire, rt.state, chosen.id, silence_id, now)
    except NotFound as exc:
        raise PageNotFound(str(exc)) from None
    return _json(_silence(done, now))
