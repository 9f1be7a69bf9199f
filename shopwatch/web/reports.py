"""Reports and report schedules in the JSON API (docs/reports.md, "API").

- ``GET /api/v1/reports/{audience}?project=&period=daily|weekly|custom&key=&from=&to=
  &format=json|html|pdf``: the ``technical`` or ``business`` report of the latest ended
  day or week (or the one named by ``key``: ``2026-11-21``, ``2026-W47``; or ``custom``
  ``from``/``to``). ``json`` is the report's data; ``html`` and ``pdf`` are downloads
  (``Content-Disposition: attachment``). Without Chromium the HTML has tables instead
  of charts and a PDF answers 503 with the reason.
- ``GET /api/v1/report-schedules?project=``: the project's schedules, each with the
  period it sends next and when, and whether the instance can send e-mail (``smtp``).
- ``POST /api/v1/report-schedules``: ``{"name", "audience", "period", "recipients",
  "hour", "enabled"}``; 201 with the schedule. Errors name the field.
- ``DELETE /api/v1/report-schedules/{schedule_id}``: the schedule (its history with it).

Reading takes a session or the project's secret key; changing schedules takes the secret
key, or an admin session with its CSRF token. A rendered report is kept for
:data:`CACHE_S` seconds (its period has ended: only late events change it), so the page's
previews and the downloads that follow draw it once.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Annotated, Any, Final, Literal
from zoneinfo import ZoneInfo

import msgspec
from fastapi import APIRouter, Query, Request, Response

from shopwatch.alerts.channels import iso
from shopwatch.analytics.timerange import parse_range
from shopwatch.errors import BadRequest, ConfigError, NotFound, PageNotFound, Unavailable
from shopwatch.reports import AUDIENCES, content, mail, render
from shopwatch.reports.periods import Period, by_key, custom, due, latest, next_send
from shopwatch.runtime import Runtime
from shopwatch.store import reports as store
from shopwatch.store.state import Project
from shopwatch.web import access
from shopwatch.web.params import ProjectQuery

router = APIRouter()
_encode = msgspec.json.Encoder().encode
CACHE_S: Final = 600.0
CACHE_ENTRIES: Final = 16
US: Final = 1_000_000


def _json(body: Any, status: int = 200) -> Response:
    return Response(_encode(body), status_code=status, media_type="application/json")


def resolve_period(project: Project, period: str, key: str | None, from_: str | None,
                   to: str | None, now: float) -> Period:
    """The period a request names (module docstring); BadRequest naming the field."""
    tz = ZoneInfo(project.timezone)
    now_us = int(now * US)
    try:
        if period == "custom":
            rng = parse_range("custom", from_, to, now_us)
            return custom(rng.start_us, rng.end_us, tz)
        if not key:
            return latest(period, tz, now_us)
        chosen = by_key(period, key, tz)
    except ConfigError as exc:
        raise BadRequest(str(exc)) from None
    if chosen.end_us > now_us:
        raise BadRequest(f"key: {key} has not ended yet; reports cover ended periods")
    return chosen


class _Cache:
    """Rendered reports by (project, audience, period key), for :data:`CACHE_S`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[tuple[int, str, str], tuple[float, render.Rendered]] = {}

    def get(self, key: tuple[int, str, str]) -> render.Rendered | None:
        with self._lock:
            found = self._items.get(key)
        if found is None or found[0] < time.monotonic():
            return None
        return found[1]

    def put(self, key: tuple[int, str, str], rendered: render.Rendered) -> None:
        with self._lock:
            self._items[key] = (time.monotonic() + CACHE_S, rendered)
            while len(self._items) > CACHE_ENTRIES:
                del self._items[min(self._items, key=lambda k: self._items[k][0])]


def _cache(request: Request) -> _Cache:
    cache: _Cache | None = getattr(request.app.state, "report_cache", None)
    if cache is None:
        cache = request.app.state.report_cache = _Cache()
    return cache


@router.get("/api/v1/reports/{audience}", tags=["reports"], summary="A report")
async def get_report(
    request: Request, audience: str, project: ProjectQuery = None,
    period: Annotated[Literal["daily", "weekly", "custom"], Query(
        description="daily: a local day; weekly: an ISO week; custom: from/to")] = "daily",
    key: Annotated[str | None, Query(
        description="which day (2026-11-21) or week (2026-W47); default the latest ended")
    ] = None,
    from_: Annotated[str | None, Query(alias="from", description="custom: RFC 3339")] = None,
    to: Annotated[str | None, Query(description="custom: RFC 3339")] = None,
    format: Annotated[Literal["json", "html", "pdf"], Query(
        description="json: the data; html, pdf: a download")] = "json",
) -> Response:
    """The ``technical`` or ``business`` report of a period with the previous one beside
    it (docs/reports.md). ``html`` holds static SVG charts and no script (tables and a
    note without Chromium); ``pdf`` is A4, 503 without Chromium."""
    rt: Runtime = request.app.state.runtime
    chosen = access.project_for(request, access.require_api(request), project)
    if audience not in AUDIENCES:
        raise BadRequest(f"audience: {audience!r} is not one of {', '.join(AUDIENCES)}")
    now = time.time()
    span = resolve_period(chosen, period, key, from_, to, now)
    report = await asyncio.to_thread(content.gather, rt.events, rt.state, chosen, audience,
                                     span, now=now)
    if format == "json":
        return _json(report)
    cache, cache_key = _cache(request), (chosen.id, audience, span.key)
    rendered = cache.get(cache_key)
    if rendered is None:
        rendered = await asyncio.to_thread(render.render, report)
        if rendered.pdf is not None:  # without Chromium, try again next time
            cache.put(cache_key, rendered)
    if format == "pdf":
        if rendered.pdf is None:
            raise Unavailable(f"format: no PDF: {rendered.reason}")
        body, media = rendered.pdf, "application/pdf"
    else:
        body, media = rendered.html.encode(), "text/html; charset=utf-8"
    name = mail.filename(report, format)
    return Response(body, media_type=media,
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


def present(schedule: store.Schedule, project: Project, now: float) -> dict[str, Any]:
    """A schedule as the API shows it (times ISO 8601 UTC)."""
    tz = ZoneInfo(project.timezone)
    now_us = int(now * US)
    pending = (due(schedule.period, schedule.hour, tz, now_us, int(schedule.created_at * US),
                   schedule.last_sent_for) if schedule.enabled else None)
    upcoming, at_us = next_send(schedule.period, schedule.hour, tz, now_us)
    return {"id": schedule.id, "name": schedule.name, "audience": schedule.audience,
            "period": schedule.period, "recipients": list(schedule.recipients),
            "hour": schedule.hour, "timezone": project.timezone, "enabled": schedule.enabled,
            "created_at": iso(schedule.created_at), "last_sent_for": schedule.last_sent_for,
            "last_sent_at": iso(schedule.last_sent_at), "last_error": schedule.last_error,
            "due": None if pending is None else pending.key,
            "next": None if not schedule.enabled else {
                "period": upcoming.key, "label": upcoming.label, "at": iso(at_us / US)}}


@router.get("/api/v1/report-schedules", tags=["reports"], summary="Report schedules")
async def get_schedules(request: Request, project: ProjectQuery = None) -> Response:
    rt: Runtime = request.app.state.runtime
    chosen = access.project_for(request, access.require_api(request), project)
    found = await asyncio.to_thread(store.list_schedules, rt.state, chosen.id)
    now = time.time()
    return _json({"project": chosen.id, "timezone": chosen.timezone,
                  "smtp": bool(rt.settings.smtp_host),
                  "sending": rt.settings.reports_interval > 0,
                  "schedules": [present(s, chosen, now) for s in found]})


@router.post("/api/v1/report-schedules", tags=["reports"], summary="Add a report schedule")
async def post_schedule(request: Request, project: ProjectQuery = None) -> Response:
    """``{"name": "weekly business", "audience": "technical" | "business", "period":
    "daily" | "weekly", "recipients": ["ceo@shop.example"], "hour": 8}``: e-mailed at
    ``hour`` (0-23, the project's time zone; weekly on Mondays), from the next such
    time on. Up to 20 recipients. Errors name the field."""
    rt: Runtime = request.app.state.runtime
    principal = access.require_writer(request, "change report schedules")
    chosen = access.project_for(request, principal, project)
    data = await access.json_body(request, 16 * 1024)
    try:
        mail.check_smtp(rt.settings.smtp_host)
        made = await asyncio.to_thread(store.add_schedule, rt.state, chosen.id, data,
                                       time.time())
    except ConfigError as exc:
        raise BadRequest(str(exc)) from None
    return _json(present(made, chosen, time.time()), 201)


@router.delete("/api/v1/report-schedules/{schedule_id}", tags=["reports"],
               summary="Remove a report schedule")
async def delete_schedule(request: Request, schedule_id: int,
                          project: ProjectQuery = None) -> Response:
    rt: Runtime = request.app.state.runtime
    principal = access.require_writer(request, "change report schedules")
    chosen = access.project_for(request, principal, project)
    try:
        gone = await asyncio.to_thread(store.remove_schedule, rt.state, chosen.id, schedule_id)
    except NotFound as exc:
        raise PageNotFound(str(exc)) from None
    return _json(present(gone, chosen, time.time()))
