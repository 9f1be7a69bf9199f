"""Read routes of the JSON API (a session, or the project's secret key; see access.py)."""

from __future__ import annotations

import asyncio
import json
import re
import time
from datetime import UTC, date, datetime
from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Query, Request, Response

from shopwatch import spend
from shopwatch.analytics.acquisition import acquisition, add_spend
from shopwatch.analytics.carts import carts
from shopwatch.analytics.counts import event_counts
from shopwatch.analytics.flows import flows
from shopwatch.analytics.funnel import dropped_sessions, funnel, parse_steps, session_events
from shopwatch.analytics.journey import journey, recent_sessions
from shopwatch.analytics.jserrors import error_groups
from shopwatch.analytics.kpis import kpis
from shopwatch.analytics.overview import availability_now, open_alerts, open_findings, overview
from shopwatch.analytics.products import products
from shopwatch.analytics.timerange import TimeRange
from shopwatch.analytics.timeseries import timeseries
from shopwatch.analytics.uptime import monitor_detail, monitors_status
from shopwatch.analytics.vitals import resources, vitals
from shopwatch.checks import browser_flow, heartbeat
from shopwatch.checks.http import Context
from shopwatch.checks.kinds import run_monitor
from shopwatch.checks.monitor import Monitor, parse_monitors
from shopwatch.errors import BadRequest, ConfigError, Forbidden, NotFound, PageNotFound
from shopwatch.runtime import Runtime
from shopwatch.settings import parse_duration
from shopwatch.store.alerts import list_alerts
from shopwatch.store.base import EventQuery
from shopwatch.store.findings import list_findings
from shopwatch.store.maintenance import add_window, list_windows, remove_window
from shopwatch.store.maintenance import spans as maintenance_spans
from shopwatch.store.monitors import delete_monitor, get_monitor, list_monitors, put_monitor
from shopwatch.store.slos import all_rules
from shopwatch.store.state import Project
from shopwatch.web import access, export
from shopwatch.web.params import FromParam, ProjectQuery, RangeParam, ToParam, period

router = APIRouter()
_encode = msgspec.json.Encoder().encode
_DEVICE = ("device_category", "browser", "browser_version", "os", "os_version", "language",
           "country", "screen_width", "screen_height")


def parse_time(value: str, field: str) -> int:
    """Epoch microseconds from RFC 3339 or epoch milliseconds; 400 naming the field."""
    text = value.strip()
    try:
        if text.lstrip("-").isdigit():
            return int(text) * 1000
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise BadRequest(f"{field}: {value!r} is neither RFC 3339 nor epoch milliseconds") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1_000_000)


def iso(us: int) -> str:
    return datetime.fromtimestamp(us / 1_000_000, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def present(row: dict[str, Any]) -> dict[str, Any]:
    """A stored row as the API shows it."""
    out: dict[str, Any] = {"id": row["id"], "name": row["name"], "ts": iso(row["ts_us"]),
                           "received_at": iso(row["received_at_us"])}
    for key in ("session_id", "anonymous_id", "user_id", "page", "referrer", "utm_source",
                "utm_medium", "utm_campaign", "utm_term", "utm_content"):
        out[key] = row[key]
    device = {k.removeprefix("device_"): row[k] for k in _DEVICE if row[k] is not None}
    out["device"] = device
    out["params"] = row["params"] or {}
    out["flags"] = row["flags"] or []
    for key in ("net_prefix", "net_hash", "user_agent"):  # the shopper's, on server events
        out[key] = row[key]
    return out


@router.get("/api/v1/events", tags=["events"], summary="Read stored events")
async def list_events(
    request: Request,
    from_: Annotated[str | None, Query(alias="from", description="RFC 3339 or epoch ms")] = None,
    to: Annotated[str | None, Query(description="RFC 3339 or epoch ms (exclusive)")] = None,
    name: Annotated[list[str] | None, Query(description="event name; repeat or comma-separate")]
    = None,
    limit: Annotated[int, Query(ge=1)] = 100,
    order: Annotated[str, Query(pattern="^(asc|desc)$")] = "desc",
    sort: Annotated[str, Query(pattern="^(ts|received_at)$",
                               description="order by event time or by receive time")] = "ts",
    received_from: Annotated[str | None, Query(
        description="only events received at or after this time (RFC 3339 or epoch ms); "
                    "with sort=received_at&order=asc, a way to follow new events")] = None,
    project: Annotated[str | None, Query(
        description="project id (sessions; a secret key reads its own project)")] = None,
) -> Response:
    """Events of a project, newest first by default, each with its ``id``."""
    rt: Runtime = request.app.state.runtime
    principal = access.require_api(request)
    chosen = access.project_for(request, principal, project)
    if limit > rt.settings.read_limit_max:
        raise BadRequest(f"limit: at most {rt.settings.read_limit_max}")
    names = [n.strip() for part in (name or []) for n in part.split(",") if n.strip()]
    query = EventQuery(
        project_id=chosen.id,
        since_us=parse_time(from_, "from") if from_ else None,
        until_us=parse_time(to, "to") if to else None,
        names=names, limit=limit, newest_first=order == "desc",
        received_since_us=parse_time(received_from, "received_from") if received_from else None,
        by_received=sort == "received_at",
    )
    rows = await asyncio.to_thread(rt.events.query_events, query)
    events = [present(r) for r in rows]
    return export.respond(request, {"events": events}, events, "events")


# --- dashboard figures -----------------------------------------------------------------------

RangeQuery = Annotated[str, Query(description="1h, 24h, 7d, 30d or custom (with from and to)")]


@router.get("/api/v1/overview", tags=["dashboard"], summary="The overview page's figures")
async def get_overview(
    request: Request, project: ProjectQuery = None,
    range_: Annotated[str | None, Query(alias="range", description="1h, 24h, 7d, 30d or custom")]
    = None,
    from_: Annotated[str | None, Query(alias="from")] = None,
    to: Annotated[str | None, Query()] = None,
) -> Response:
    """Availability, active sessions, orders and revenue today against the same day last
    week, conversion rate and traffic over the range against the previous period."""
    rt: Runtime = request.app.state.runtime
    chosen = access.project_for(request, access.require_api(request), project)
    rng = period(range_, from_, to)
    now_us = time.time_ns() // 1000
    body = await asyncio.to_thread(overview, rt.events, chosen, rng, now_us)

    def reliability() -> dict[str, Any]:
        stored = list_monitors(rt.state, chosen.id)
        spans = maintenance_spans(list_windows(rt.state, chosen.id),
                                  now_us / 1e6 - 90 * 86400, now_us / 1e6 + 1)
        monitors = monitors_status(rt.events, chosen.id, stored, now_us, spans)
        alerts = [a for a in list_alerts(rt.state, chosen.id, limit=200)
                  if a.phase in ("pending", "firing")]
        found = list_findings(rt.state, chosen.id, status="open", limit=1000)
        return {"availability": availability_now(monitors),
                "open_alerts": open_alerts(alerts, len(all_rules(rt.state, chosen.id))),
                "security_findings": open_findings(found)}

    body.update(await asyncio.to_thread(reliability))
    return Response(_encode(body), media_type="application/json")


@router.get("/api/v1/event-counts", tags=["dashboard"], summary="Events per name in a range")
async def get_event_counts(
    request: Request, project: ProjectQuery = None,
    name: Annotated[list[str] | None, Query(description="event name; repeat")] = None,
    range_: Annotated[str | None, Query(alias="range")] = None,
    from_: Annotated[str | None, Query(alias="from")] = None,
    to: Annotated[str | None, Query()] = None,
) -> Response:
    """How many events of each name the project sent in the range and the one before."""
    rt: Runtime = request.app.state.runtime
    chosen = access.project_for(request, access.require_api(request), project)
    names = [n.strip() for part in (name or []) for n in part.split(",") if n.strip()]
    if len(names) > 50:
        raise BadRequest("name: at most 50 names")
    body = await asyncio.to_thread(event_counts, rt.events, chosen.id,
                                   period(range_, from_, to), names)
    return export.respond(request, body, body["counts"], "event-counts")


@router.get("/api/v1/projects", tags=["settings"], summary="Projects")
async def list_projects(request: Request) -> Response:
    """The projects the caller may read. Keys are shown to admins only; a secret key
    sees its own project."""
    rt: Runtime = request.app.state.runtime
    principal = access.require_api(request)
    projects = rt.state.list_projects()
    if principal.key_project_id is not None:
        projects = [p for p in projects if p.id == principal.key_project_id]
    out = []
    for p in projects:
        item: dict[str, Any] = {"id": p.id, "name": p.name, "currency": p.currency,
                                "timezone": p.timezone}
        if principal.is_admin:
            item.update(ingest_key=p.ingest_key, secret_key=p.secret_key)
        out.append(item)
    return Response(_encode({"projects": out}), media_type="application/json")


@router.get("/api/v1/me", tags=["settings"], summary="Who is calling")
async def me(request: Request) -> Response:
    """The signed-in user, or the project of the secret key used."""
    principal = access.require_api(request)
    if principal.user is not None:
        u = principal.user
        body: dict[str, Any] = {"user": {"id": u.id, "email": u.email, "role": u.role}}
    else:
        body = {"project_id": principal.key_project_id}
    return Response(_encode(body), media_type="application/json")


@router.get("/api/v1/users", tags=["settings"], summary="Users (admins only)")
async def list_users(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    principal = access.require_api(request)
    if not principal.is_admin:
        raise Forbidden("only an admin session can list users")
    users = [{"id": u.id, "email": u.email, "role": u.role,
              "created_at": u.created_at.isoformat()} for u in rt.users.list()]
    return Response(_encode({"users": users}), media_type="application/json")


# --- commerce analytics ----------------------------------------------------------------------


@router.get("/api/v1/kpis", tags=["commerce"], summary="Commerce KPIs of a period")
async def get_kpis(
    request: Request, project: ProjectQuery = None, range_: RangeParam = None,
    from_: FromParam = None, to: ToParam = None,
    compare: Annotated[bool, Query(description="also the previous period, as `previous`")]
    = False,
) -> Response:
    """Sessions, visitors, bounce, orders, gross and net revenue, AOV, conversion, carts
    and abandonment; every key is defined in docs/kpis.md."""
    rt: Runtime = request.app.state.runtime
    chosen = access.project_for(request, access.require_api(request), project)
    rng = period(range_, from_, to)
    body = await asyncio.to_thread(kpis, rt.events, chosen, rng)
    if compare:
        body["previous"] = await asyncio.to_thread(kpis, rt.events, chosen, rng.previous())
    row = {k: v for k, v in body.items() if k not in ("previous", "range")}
    return export.respond(request, body, [{"from": body["range"]["from"],
                                           "to": body["range"]["to"], **row}], "kpis")


@router.get("/api/v1/funnel", tags=["commerce"], summary="A funnel of event names")
async def get_funnel(
    request: Request, project: ProjectQuery = None,
    steps: Annotated[str | None, Query(description="comma-separated event names")] = None,
    within: Annotated[str | None, Query(description=(
        "session (default) or a duration such as 1h: steps by the same visitor within it"))]
    = None,
    by: Annotated[str | None, Query(description="device, browser, country, source or "
                                                "landing_page")] = None,
    range_: RangeParam = None, from_: FromParam = None, to: ToParam = None,
    compare: Annotated[bool, Query(description="also the previous period, as `previous` "
                                               "(false: skip it)")] = True,
) -> Response:
    """Count, conversion, drop-off and median time per step, the previous period (unless
    ``compare=false``), and an optional breakdown."""
    rt: Runtime = request.app.state.runtime
    chosen = access.project_for(request, access.require_api(request), project)
    window = _within(within)
    body = await asyncio.to_thread(funnel, rt.events, chosen.id, period(range_, from_, to),
                                   parse_steps(steps), window_s=window, by=by,
                                   compare=compare)
    rows = body["steps"]
    if "breakdown" in body:
        rows = [{body["breakdown"]["by"]: r["value"], **step}
                for r in body["breakdown"]["rows"] for step in r["steps"]]
    return export.respond(request, body, rows, "funnel")


def _within(within: str | None) -> float | None:
    if within in (None, "", "session"):
        return None
    assert within is not None
    try:
        seconds = parse_duration(within)
    except ValueError:
        raise BadRequest(f"within: {within!r} is neither 'session' nor a duration like 30m, "
                         "2h or 7d") from None
    if not 0 < seconds <= 90 * 86400:
        raise BadRequest("within: between 1 second and 90 days")
    return seconds


@router.get("/api/v1/funnel/dropped", tags=["commerce"],
            summary="Sessions that stopped at a funnel step")
async def get_funnel_dropped(
    request: Request,
    step: Annotated[int | None, Query(description="1-based step index (required)")] = None,
    project: ProjectQuery = None, steps: Annotated[str | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    range_: RangeParam = None, from_: FromParam = None, to: ToParam = None,
) -> Response:
    """The latest sessions that reached ``step`` and not the next one."""
    rt: Runtime = request.app.state.runtime
    chosen = access.project_for(request, access.require_api(request), project)
    # Checked here, not by FastAPI, so that anonymous callers get 401 before any 400.
    if step is None:
        raise BadRequest("step: required (1 for the first step)")
    rows = await asyncio.to_thread(dropped_sessions, rt.events, chosen.id,
                                   period(range_, from_, to), parse_steps(steps), step,
                                   limit=limit)
    return export.respond(request, {"sessions": rows}, rows, "dropped-sessions")


@router.get("/api/v1/session-events", tags=["commerce"], summary="One session's events")
async def get_session_events(
    request: Request,
    session: Annotated[str | None, Query(description="a session key (s:… or v:…), required")]
    = None,
    project: ProjectQuery = None, range_: RangeParam = None, from_: FromParam = None,
    to: ToParam = None,
) -> Response:
    """The session's events of the period, in order."""
    rt: Runtime = request.app.state.runtime
    chosen = access.project_for(request, access.require_api(request), project)
    if not session:
        raise BadRequest("session: required")
    if len(session) > 400:
        raise BadRequest("session: at most 400 characters")
    rows = await asyncio.to_thread(session_events, rt.events, chosen.id,
                                   period(range_, from_, to), session)
    return export.respond(request, {"session": session, "events": rows}, rows,
                          "session-events")


@router.get("/api/v1/acquisition", tags=["commerce"], summary="Traffic and sales by source")
async def get_acquisition(
    request: Request, project: ProjectQuery = None,
    by: Annotated[str, Query(description="channel, source, medium or campaign")] = "channel",
    range_: RangeParam = None, from_: FromParam = None, to: ToParam = None,
) -> Response:
    """Sessions, conversion, orders and revenue per channel, source, medium or campaign."""
    rt: Runtime = request.app.state.runtime
    chosen = access.project_for(request, access.require_api(request), project)
    rng = period(range_, from_, to)
    body = await asyncio.to_thread(acquisition, rt.events, chosen, rng, by)
    first, last = _days(rng)
    rows = spend.spend_between(rt.state, chosen.id, first, last)
    if rows:
        if by != "campaign":
            by_campaign = await asyncio.to_thread(acquisition, rt.events, chosen, rng,
                                                  "campaign")
            body["_orders_by_campaign"] = {r["campaign"]: r["orders"]
                                           for r in by_campaign["rows"]}
        body = add_spend(body, rows, chosen.currency)
    return export.respond(request, body, body["rows"], f"acquisition-by-{by}")


def _days(rng: TimeRange) -> tuple[date, date]:
    """The UTC days a period touches (spend is per day; a partial day counts whole)."""
    first = datetime.fromtimestamp(rng.start_us / 1e6, UTC).date()
    last = datetime.fromtimestamp((rng.end_us - 1) / 1e6, UTC).date()
    return first, last


@router.post("/api/v1/spend", tags=["commerce"], summary="Upload marketing spend",
             openapi_extra={"requestBody": {"content": {
                 "text/csv": {"schema": {"type": "string"}},
                 "application/json": {"schema": {"type": "object"}}}}})
async def post_spend(request: Request, project: ProjectQuery = None) -> Response:
    """CSV (``date,channel,campaign,cost[,currency]``) or JSON ``{"rows": [...]}``. Rows
    replace earlier ones of the same day, channel and campaign. Answers
    ``{"accepted": N, "rejected": [{"line"|"index", "error"}]}``; a body that cannot be
    read at all is 400. Secret key, or an admin session with its CSRF token."""
    rt: Runtime = request.app.state.runtime
    principal = access.require_writer(request, "upload spend")
    chosen = access.project_for(request, principal, project)
    body = await request.body()
    if len(body) > rt.settings.max_body_bytes:
        raise BadRequest(f"body: larger than {rt.settings.max_body_bytes} bytes")
    try:
        rows, errors = spend.parse(body, request.headers.get("content-type", ""),
                                   chosen.currency)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    accepted = await asyncio.to_thread(spend.store_rows, rt.state, chosen.id, rows)
    return Response(_encode({"accepted": accepted, "rejected": errors}),
                    media_type="application/json")


@router.get("/api/v1/spend", tags=["commerce"], summary="Uploaded marketing spend")
async def get_spend(request: Request, project: ProjectQuery = None, range_: RangeParam = None,
                    from_: FromParam = None, to: ToParam = None) -> Response:
    """The spend rows of the period's days."""
    rt: Runtime = request.app.state.runtime
    chosen = access.project_for(request, access.require_api(request), project)
    first, last = _days(period(range_, from_, to))
    rows = [{"date": r.day.isoformat(), "channel": r.channel, "campaign": r.campaign,
             "cost": r.cost, "currency": r.currency}
            for r in spend.spend_between(rt.state, chosen.id, first, last)]
    return export.respond(request, {"rows": rows}, rows, "spend")


@router.get("/api/v1/products", tags=["commerce"], summary="Products or categories")
async def get_products(
    request: Request, project: ProjectQuery = None,
    by: Annotated[str, Query(description="product or category")] = "product",
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    range_: RangeParam = None, from_: FromParam = None, to: ToParam = None,
) -> Response:
    """Views, units added and bought, revenue and view-to-purchase rate per product or
    category, most viewed first."""
    rt: Runtime = request.app.state.runtime
    chosen = access.project_for(request, access.require_api(request), project)
    body = await asyncio.to_thread(products, rt.events, chosen, period(range_, from_, to), by,
                                   limit)
    return export.respond(request, body, body["rows"], f"products-by-{by}")


@router.get("/api/v1/carts", tags=["commerce"], summary="Cart composition and abandonment")
async def get_carts(
    request: Request, project: ProjectQuery = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    range_: RangeParam = None, from_: FromParam = None, to: ToParam = None,
) -> Response:
    """Carts, average size and value, what abandoned carts held, and where their
    sessions ended."""
    rt: Runtime = request.app.state.runtime
    chosen = access.project_for(request, access.require_api(request), project)
    body = await asyncio.to_thread(carts, rt.events, chosen, period(range_, from_, to), limit)
    return export.respond(request, body, body["abandoned_items"], "abandoned-items")


@router.get("/api/v1/timeseries", tags=["commerce"], summary="KPIs per minute, hour or day")
async def get_timeseries(
    request: Request, project: ProjectQuery = None,
    interval: Annotated[str, Query(description="minute, hour or day")] = "hour",
    range_: RangeParam = None, from_: FromParam = None, to: ToParam = None,
) -> Response:
    """Events, sessions, conversion, carts, orders, revenue and AOV per bucket, with the
    previous period and the same period last week."""
    rt: Runtime = request.app.state.runtime
    chosen = access.project_for(request, access.require_api(request), project)
    body = await asyncio.to_thread(timeseries, rt.events, chosen, period(range_, from_, to),
                                   interval)
    rows = [{"bucket": b, **row} for b, row in zip(body["buckets"], body["current"],
                                                    strict=True)]
    return export.respond(request, body, rows, f"timeseries-{interval}")


# --- real users ------------------------------------------------------------------------------


@router.get("/api/v1/vitals", tags=["real users"], summary="Web Vitals and page speed")
async def get_vitals(
    request: Request, project: ProjectQuery = None,
    by: Annotated[str, Query(description="group, page, device, browser or country")] = "group",
    page: Annotated[str | None, Query(
        description="only this page path, or page group (ending in /*)")] = None,
    range_: RangeParam = None, from_: FromParam = None, to: ToParam = None,
) -> Response:
    """p75 of LCP, INP, CLS, FCP and TTFB with Google's ratings, overall, per breakdown
    and per bucket; the slowest pages; slow resources and failed loads by host."""
    rt: Runtime = request.app.state.runtime
    chosen = access.project_for(request, access.require_api(request), project)
    body = await asyncio.to_thread(vitals, rt.events, chosen.id, period(range_, from_, to), by,
                                   page)
    rows = [{"key": r["key"], "views": r["views"],
             **{f"{m}_p75": v["p75"] for m, v in r["metrics"].items()}}
            for r in body["breakdown"]]
    return export.respond(request, body, rows, f"vitals-by-{by}")


@router.get("/api/v1/errors", tags=["real users"], summary="JavaScript errors, grouped")
async def get_errors(
    request: Request, project: ProjectQuery = None,
    fingerprint: Annotated[str | None, Query(description="one group, with its sessions")] = None,
    range_: RangeParam = None, from_: FromParam = None, to: ToParam = None,
) -> Response:
    """Error groups by fingerprint: occurrences, page views and sessions affected, pages,
    browsers, first and last seen, a recent stack; errors per bucket."""
    rt: Runtime = request.app.state.runtime
    chosen = access.project_for(request, access.require_api(request), project)
    body = await asyncio.to_thread(error_groups, rt.events, chosen.id,
                                   period(range_, from_, to), fingerprint)
    return export.respond(request, body, body["groups"], "errors")


@router.get("/api/v1/journey", tags=["real users"], summary="One session, step by step")
async def get_journey(
    request: Request,
    session: Annotated[str | None, Query(description="the session id (required)")] = None,
    project: ProjectQuery = None,
) -> Response:
    """A session's page views (with timings), Web Vitals, actions, errors and failed
    resources, in order: the customer journey."""
    rt: Runtime = request.app.state.runtime
    chosen = access.project_for(request, access.require_api(request), project)
    try:
        body = await asyncio.to_thread(journey, rt.events, chosen.id, session or "")
    except NotFound as exc:
        raise PageNotFound(str(exc)) from None
    return export.respond(request, body, body["steps"], "journey")


@router.get("/api/v1/resources", tags=["real users"], summary="Slow and failed resources")
async def get_resources(request: Request, project: ProjectQuery = None,
                        range_: RangeParam = None, from_: FromParam = None,
                        to: ToParam = None) -> Response:
    """Failed resource loads by host (payment provider, CDN, maps...) with the page views
    and sessions affected, and the slowest resources by p75 duration."""
    rt: Runtime = request.app.state.runtime
    chosen = access.project_for(request, access.require_api(request), project)
    rng = period(range_, from_, to)
    body = await asyncio.to_thread(resources, rt.events, [chosen.id, rng.start_us, rng.end_us])
    return export.respond(request, {"range": rng.as_dict(), **body}, body["failed_hosts"],
                          "failed-resources")


@router.get("/api/v1/rum-sessions", tags=["real users"], summary="Recent sessions")
async def get_rum_sessions(
    request: Request, project: ProjectQuery = None,
    errors: Annotated[bool, Query(description="only sessions with a JavaScript error")] = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    range_: RangeParam = None, from_: FromParam = None, to: ToParam = None,
) -> Response:
    """The latest sessions with real-user data: page views, errors, events and orders,
    device and landing page; each opens with ``/api/v1/journey``."""
    rt: Runtime = request.app.state.runtime
    chosen = access.project_for(request, access.require_api(request), project)
    rng = period(range_, from_, to)
    rows = await asyncio.to_thread(recent_sessions, rt.events, chosen.id, rng.start_us,
                                   rng.end_us, with_errors=errors, limit=limit)
    return export.respond(request, {"range": rng.as_dict(), "sessions": rows}, rows, "sessions")


# --- uptime ----------------------------------------------------------------------------------


@router.get("/api/v1/monitors", tags=["uptime"], summary="Monitors and their status")
async def get_monitors(request: Request, project: ProjectQuery = None) -> Response:
    """Every monitor of the project: status, last run, availability over 24 hours, 30
    and 90 days, response-time p50 and p95 over 24 hours, and 90 daily bars."""
    rt: Runtime = request.app.state.runtime
    principal = access.require_api(request)
    chosen = access.project_for(request, principal, project)
    stored = await asyncio.to_thread(list_monitors, rt.state, chosen.id)
    now = time.time()
    spans = maintenance_spans(list_windows(rt.state, chosen.id), now - 91 * 86400, now + 1)
    rows = await asyncio.to_thread(monitors_status, rt.events, chosen.id, stored,
                                   int(now * 1_000_000), spans, rt.settings.checks_location)
    own = str(request.base_url).rstrip("/")
    for row in rows:
        # Where the shop's job pings: the URL is its secret, for admins and the secret key.
        if row["kind"] == "heartbeat" and (principal.session is None or principal.is_admin):
            row["push_url"] = own + heartbeat.push_path(rt.pipeline.pseudonym_key, chosen.id,
                                                        row["name"])
    flat = [{k: v for k, v in r.items() if k != "bars"} for r in rows]
    return export.respond(request, {"monitors": rows}, flat, "monitors")


@router.get("/api/v1/monitors/{name}", tags=["uptime"], summary="One monitor over time")
async def get_monitor_detail(
    request: Request, name: str, project: ProjectQuery = None,
    range_: RangeParam = None, from_: FromParam = None, to: ToParam = None,
) -> Response:
    """Response-time percentiles per bucket and location, availability, incidents and the
    latest runs of one monitor."""
    rt: Runtime = request.app.state.runtime
    chosen = access.project_for(request, access.require_api(request), project)
    try:
        stored = await asyncio.to_thread(get_monitor, rt.state, chosen.id, name)
    except NotFound as exc:
        raise PageNotFound(str(exc)) from None
    rng = period(range_, from_, to)
    spans = maintenance_spans(list_windows(rt.state, chosen.id), rng.start_us / 1e6,
                              rng.end_us / 1e6)
    body = await asyncio.to_thread(monitor_detail, rt.events, chosen.id, name, rng, spans)
    body["monitor"] = msgspec.to_builtins(stored.monitor)
    return export.respond(request, body, body["latest"], f"monitor-{name}")


@router.get("/api/v1/checks", tags=["uptime"], summary="Flows step by step")
async def get_checks(
    request: Request, project: ProjectQuery = None,
    range_: RangeParam = None, from_: FromParam = None, to: ToParam = None,
) -> Response:
    """Every ``api_flow`` and ``browser_flow`` monitor over the range: its last run, pass
    rate and duration percentiles; per step runs, failures, p50/p95 duration, the most
    frequent failure reason and (browser flows) Web Vitals, console errors and failed
    requests; step durations per bucket; the latest failure with its screenshot."""
    rt: Runtime = request.app.state.runtime
    chosen = access.project_for(request, access.require_api(request), project)
    stored = await asyncio.to_thread(list_monitors, rt.state, chosen.id)
    rng = period(range_, from_, to)
    spans = maintenance_spans(list_windows(rt.state, chosen.id), rng.start_us / 1e6,
                              rng.end_us / 1e6)
    body = await asyncio.to_thread(flows, rt.events, chosen.id, stored, rng, spans)
    rows = [{"flow": f["name"], "kind": f["kind"], **{k: v for k, v in step.items()
                                                    if k != "top_failure"},
             "top_failure": (step["top_failure"] or {}).get("reason")}
            for f in body["flows"] for step in f["steps"]]
    return export.respond(request, body, rows, "checks")


def _monitor_writer(request: Request, project: str | None) -> Project:
    """The project a monitor change is for: secret key, or an admin session with CSRF."""
    principal = access.require_writer(request, "change monitors")
    return access.project_for(request, principal, project)


def parse_monitor(data: Any, name: str) -> Monitor:
    """One monitor from a request body (the YAML format's fields, as JSON), validated as
    a monitor file is; its name is the URL's."""
    if not isinstance(data, dict):
        raise BadRequest("body: a monitor object, as in docs/monitors.md")
    data = {**data, "name": data.get("name", name)}
    if data["name"] != name:
        raise BadRequest(f"name: {data['name']!r} differs from the URL's {name!r}")
    try:
        (monitor,) = parse_monitors(json.dumps({"monitors": [data]}), "body")
    except ConfigError as exc:
        raise BadRequest(str(exc).replace("body: monitors[0].", "").replace(
            "body: monitors[0]", "monitor")) from None
    return monitor


@router.put("/api/v1/monitors/{name}", tags=["uptime"], summary="Create or replace a monitor")
async def put_monitor_route(request: Request, name: str, project: ProjectQuery = None,
                            ) -> Response:
    """The monitor as JSON (the fields of docs/monitors.md). Stored as managed in the
    dashboard: a later ``shopwatch monitors apply`` that names it takes it back.
    Secret key, or an admin session with its CSRF token."""
    rt: Runtime = request.app.state.runtime
    chosen = _monitor_writer(request, project)
    data = await access.json_body(request, 256 * 1024)
    monitor = parse_monitor(data, name)
    stored = await asyncio.to_thread(put_monitor, rt.state, chosen.id, monitor, "ui")
    return Response(_encode({"name": stored.monitor.name, "managed_in": "dashboard",
                             "monitor": msgspec.to_builtins(stored.monitor)}),
                    media_type="application/json")


@router.delete("/api/v1/monitors/{name}", tags=["uptime"], summary="Delete a monitor")
async def delete_monitor_route(request: Request, name: str, project: ProjectQuery = None,
                               ) -> Response:
    """Remove the monitor (its past results stay). Secret key, or an admin session."""
    rt: Runtime = request.app.state.runtime
    chosen = _monitor_writer(request, project)
    try:
        await asyncio.to_thread(delete_monitor, rt.state, chosen.id, name)
    except NotFound as exc:
        raise PageNotFound(str(exc)) from None
    return Response(_encode({"deleted": name}), media_type="application/json")


@router.post("/api/v1/monitors/{name}/run", tags=["uptime"], summary="Run a monitor now")
async def run_monitor_route(request: Request, name: str, project: ProjectQuery = None,
                            ) -> Response:
    """Run the stored monitor once, now, as the scheduler would (same address policy),
    and answer its result; the result is not stored. Secret key, or an admin session."""
    rt: Runtime = request.app.state.runtime
    chosen = _monitor_writer(request, project)
    try:
        stored = await asyncio.to_thread(get_monitor, rt.state, chosen.id, name)
    except NotFound as exc:
        raise PageNotFound(str(exc)) from None
    if stored.monitor.kind == "heartbeat":  # nothing to probe: judge its pings now
        judged = await asyncio.to_thread(heartbeat.evaluate, rt.state, chosen.id,
                                         stored.monitor, time.time())
        if judged is None:
            return Response(_encode({"monitor": name, "kind": "heartbeat", "ok": None,
                                     "failure": "waiting for the first ping",
                                     "duration_ms": 0, "steps": []}),
                            media_type="application/json")
        return Response(_encode(judged.as_dict()), media_type="application/json")
    context = Context(base_url=chosen.base_url or None, policy=rt.checks_policy,
                      artifacts=rt.artifacts / str(chosen.id))
    result = await asyncio.to_thread(run_monitor, stored.monitor, context)
    return Response(_encode(result.as_dict()), media_type="application/json")


_ARTIFACT_RE = re.compile(r"\d{8}T\d{6}Z-[A-Za-z0-9_.-]{1,60}\.(png|html)")


@router.get("/api/v1/monitors/{name}/artifacts/{file}", tags=["uptime"],
            summary="A browser flow's failure screenshot or HTML")
async def get_artifact(request: Request, name: str, file: str,
                       project: ProjectQuery = None) -> Response:
    """The screenshot (PNG) or page HTML a failing ``browser_flow`` step kept, by the file
    name its run's step names (``details.screenshot``/``details.html``). The HTML is the
    shop's page, served as plain text so it never runs here."""
    rt: Runtime = request.app.state.runtime
    chosen = access.project_for(request, access.require_api(request), project)
    match = _ARTIFACT_RE.fullmatch(file)
    if match is None or ".." in file:
        raise PageNotFound(f"no artifact {file!r}")
    path = rt.artifacts / str(chosen.id) / browser_flow.slug(name) / file
    try:
        content = await asyncio.to_thread(path.read_bytes)
    except OSError:
        raise PageNotFound(f"no artifact {file!r} for monitor {name!r} (only the newest "
                           f"{browser_flow.KEEP_ARTIFACTS} files are kept)") from None
    media = "image/png" if match.group(1) == "png" else "text/plain; charset=utf-8"
    return Response(content, media_type=media, headers={
        "X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox",
        "Cache-Control": "private, max-age=3600"})


@router.get("/api/v1/maintenance", tags=["uptime"], summary="Maintenance windows")
async def get_maintenance(request: Request, project: ProjectQuery = None) -> Response:
    """The project's maintenance windows: runs during them count in no availability."""
    rt: Runtime = request.app.state.runtime
    chosen = access.project_for(request, access.require_api(request), project)
    windows = [w.as_dict() for w in list_windows(rt.state, chosen.id)]
    return Response(_encode({"windows": windows}), media_type="application/json")


class WindowBody(msgspec.Struct, forbid_unknown_fields=True):
    starts_at: str
    duration: str
    every: str = ""
    note: str = ""


@router.post("/api/v1/maintenance", tags=["uptime"], summary="Add a maintenance window")
async def post_maintenance(request: Request, project: ProjectQuery = None) -> Response:
    """``{"starts_at": RFC 3339, "duration": "1h", "every": "" | "day" | "week", "note"}``.
    Secret key, or an admin session with its CSRF token."""
    rt: Runtime = request.app.state.runtime
    chosen = _monitor_writer(request, project)
    try:
        body = msgspec.json.decode(await request.body(), type=WindowBody)
    except msgspec.DecodeError as exc:
        raise BadRequest(f"body: {exc}") from None
    try:
        starts = parse_time(body.starts_at, "starts_at") / 1_000_000
        window = add_window(rt.state, chosen.id, starts, parse_duration(body.duration),
                            body.every, body.note)
    except (ConfigError, ValueError) as exc:
        raise BadRequest(str(exc)) from None
    return Response(_encode(window.as_dict()), media_type="application/json")


@router.delete("/api/v1/maintenance/{window_id}", tags=["uptime"],
               summary="Remove a maintenance window")
async def delete_maintenance(request: Request, window_id: int,
                             project: ProjectQuery = None) -> Response:
    rt: Runtime = request.app.state.runtime
    chosen = _monitor_writer(request, project)
    try:
        remove_window(rt.state, chosen.id, window_id)
    except NotFound as exc:
        raise PageNotFound(str(exc)) from None
    return Response(_encode({"deleted": window_id}), media_type="application/json")
