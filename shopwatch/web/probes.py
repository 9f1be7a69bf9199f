"""The server's side of remote probes (docs/monitors.md, "Locations and probes").

- ``GET /api/v1/probe/assignments?location=NAME``: the enabled monitors, of every
  project, whose ``locations`` include the probe's, each with its project's id and base
  URL. The answer has a ``version`` (also its ``ETag``); a poll with ``If-None-Match``
  of the current version is answered ``304`` with no body.
- ``POST /api/v1/probe/results``: ``{"results": [row, ...]}``, each row a check result
  (:class:`ProbeRow`). Its ``location`` is the token's, whatever the row says. Rows are
  judged one by one: a row that does not decode, is for a monitor not assigned to the
  location, has another kind than the monitor, or a time outside ``max_event_age`` /
  ``max_future_skew`` is rejected with its index and the reason, and the others are
  kept. The answer comes once the kept rows are committed (the ingest path: acknowledged
  means stored). A row already stored (same project, monitor, location and time: a batch
  sent again after a lost answer) is acknowledged and not stored twice. The body is at
  most ``max_body_bytes`` (after gzip) and ``max_events_per_request`` rows: 413 above.

Both take only a probe token, as ``Authorization: Bearer swprb_…`` (401 otherwise; 403
when ``location`` names another location than the token's). Each request marks the
probe as seen.

- ``GET /api/v1/probes``: the probes, when each was last seen, and the monitors
  assigned to each location (a dashboard session; probes are instance-wide, so a
  project's secret key is refused).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import defaultdict
from typing import Annotated, Any, Final

import msgspec
from fastapi import APIRouter, Query, Request, Response
from msgspec import Meta

from shopwatch.checks.monitor import KINDS, MAX_STEPS, Monitor
from shopwatch.checks.record import MAX_FAILURE, CheckRow
from shopwatch.checks.scheduler import runs_at
from shopwatch.errors import BadRequest, Forbidden, PayloadTooLarge, Unauthorized
from shopwatch.ingest.body import read_body
from shopwatch.ingest.routes import commit
from shopwatch.runtime import Runtime
from shopwatch.store.base import EventBatch
from shopwatch.store.monitors import list_monitors
from shopwatch.store.probes import Probe, list_probes, probe_of_token
from shopwatch.web import access

router = APIRouter()
_encode = msgspec.json.Encoder().encode
MAX_NAME: Final = 100

LocationQuery = Annotated[str | None, Query(
    description="The probe's location; must be the token's (403 otherwise).")]


class ProbeRow(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """One result a probe sends: a :class:`~shopwatch.checks.record.CheckRow` and its
    project. ``location`` may be left out: the token's is stored."""

    project_id: int
    ts: float
    monitor: Annotated[str, Meta(min_length=1, max_length=MAX_NAME)]
    kind: str
    ok: bool
    attempts: Annotated[int, Meta(ge=1, le=11)]
    duration_ms: Annotated[float, Meta(ge=0)]
    location: str | None = None
    status: int | None = None
    dns_ms: float | None = None
    connect_ms: float | None = None
    tls_ms: float | None = None
    first_byte_ms: float | None = None
    transfer_ms: float | None = None
    failure: str | None = None
    steps: Annotated[list[dict[str, Any]], Meta(max_length=MAX_STEPS)] | None = None

    def row(self, location: str) -> CheckRow:
        return CheckRow(
            ts=self.ts, monitor=self.monitor, kind=self.kind, location=location, ok=self.ok,
            attempts=self.attempts, duration_ms=self.duration_ms, status=self.status,
            dns_ms=self.dns_ms, connect_ms=self.connect_ms, tls_ms=self.tls_ms,
            first_byte_ms=self.first_byte_ms, transfer_ms=self.transfer_ms,
            failure=self.failure[:MAX_FAILURE] if self.failure else None, steps=self.steps)


class ResultsBody(msgspec.Struct, forbid_unknown_fields=True):
    results: list[msgspec.Raw]


_RESULTS_SCHEMA: dict[str, Any] = {"content": {"application/json": {"schema": {
    "type": "object", "required": ["results"], "properties": {"results": {
        "type": "array", "items": msgspec.json.schema(ProbeRow)}}}}}, "required": True}


def probe_of(request: Request, location: str | None) -> Probe:
    """The probe whose token the request carries; 401 without a live probe token, 403
    when ``location`` is not the token's."""
    rt: Runtime = request.app.state.runtime
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("send the probe's token as 'Authorization: Bearer swprb_…' "
                           "(made by `shopwatch probes add LOCATION`)")
    probe = probe_of_token(rt.state, token.strip())
    if probe is None:
        raise Unauthorized("unknown or revoked probe token (see `shopwatch probes list`)")
    if location is not None and location != probe.location:
        raise Forbidden(f"location: this token belongs to location {probe.location!r}, not "
                        f"{location!r}; run the probe with --location {probe.location}")
    return probe


def assignments(rt: Runtime, location: str) -> list[dict[str, Any]]:
    """The enabled monitors of every project that run at ``location``."""
    home = rt.settings.checks_location
    if location == home:
        return []  # the server runs these itself (checks_location was renamed to it)
    projects = {p.id: p for p in rt.state.list_projects()}
    out = []
    for stored in list_monitors(rt.state):
        monitor, project = stored.monitor, projects.get(stored.project_id)
        if project is None or not monitor.enabled or not runs_at(monitor, location, home):
            continue
        out.append({"project_id": project.id, "base_url": project.base_url,
                    "monitor": msgspec.to_builtins(monitor)})
    return out


def _matches(header: str | None, version: str) -> bool:
    if not header:
        return False
    tags = [t.strip().removeprefix("W/").strip('"') for t in header.split(",")]
    return "*" in tags or version in tags


@router.get("/api/v1/probe/assignments", tags=["probes"],
            summary="The monitors a probe runs (probe token)",
            responses={304: {"description": "Unchanged since the version in If-None-Match."},
                       401: {"description": "No live probe token."},
                       403: {"description": "location is not the token's."}})
async def get_assignments(request: Request, location: LocationQuery = None) -> Response:
    """The enabled monitors whose ``locations`` include the probe's, with their project's
    id and base URL, and a ``version`` (the ETag) to poll with ``If-None-Match``."""
    rt: Runtime = request.app.state.runtime
    probe = await asyncio.to_thread(probe_of, request, location)
    items = await asyncio.to_thread(assignments, rt, probe.location)
    version = hashlib.sha256(_encode([probe.location, items])).hexdigest()[:32]
    headers = {"ETag": f'"{version}"', "Cache-Control": "no-cache"}
    if _matches(request.headers.get("if-none-match"), version):
        return Response(status_code=304, headers=headers)
    return Response(_encode({"location": probe.location, "version": version,
                             "assignments": items}),
                    media_type="application/json", headers=headers)


@router.post("/api/v1/probe/results", tags=["probes"],
             summary="Store a probe's check results (probe token)",
             openapi_extra={"requestBody": _RESULTS_SCHEMA},
             responses={200: {"description": "Kept rows are committed; rejected ones are "
                                             "listed with their index and reason."},
                        400: {"description": "Undecodable body, or every row rejected."},
                        401: {"description": "No live probe token."},
                        403: {"description": "location is not the token's."},
                        413: {"description": "Body over max_body_bytes or more rows than "
                                             "max_events_per_request."},
                        503: {"description": "Overloaded; nothing acknowledged; retry."}})
async def post_results(request: Request, location: LocationQuery = None) -> Response:
    """Store check results run by the probe, as the module docstring says."""
    rt: Runtime = request.app.state.runtime
    probe = await asyncio.to_thread(probe_of, request, location)
    body = await read_body(request.stream(), request.headers.get("content-encoding"),
                           request.headers.get("content-length"), rt.settings.max_body_bytes)
    try:
        raw = msgspec.json.decode(body, type=ResultsBody).results
    except msgspec.DecodeError as exc:
        raise BadRequest(f"body: expected {{\"results\": [...]}}: {exc}") from None
    if len(raw) > rt.settings.max_events_per_request:
        raise PayloadTooLarge(f"results: {len(raw)} rows, more than "
                              f"{rt.settings.max_events_per_request} (max_events_per_request)"
                              "; send them in smaller batches")
    kept, rejected = await asyncio.to_thread(_judge, rt, probe.location, raw, time.time())
    stored = duplicates = 0
    for project_id, rows in kept.items():
        fresh = await asyncio.to_thread(_unseen, rt, project_id, probe.location, rows)
        duplicates += len(rows) - len(fresh)
        if fresh:
            batch = EventBatch(project_id, time.time_ns() // 1000, b"[]", 0, [],
                               checks=_encode(fresh), n_checks=len(fresh))
            await commit(rt, project_id, batch)
            stored += len(fresh)
    accepted = stored + duplicates
    payload = {"location": probe.location, "accepted": accepted, "stored": stored,
               "duplicates": duplicates, "rejected": rejected}
    status = 400 if accepted == 0 and rejected else 200
    return Response(_encode(payload), status_code=status, media_type="application/json")


def _judge(rt: Runtime, location: str, raw: list[msgspec.Raw], now: float,
           ) -> tuple[dict[int, list[CheckRow]], list[dict[str, Any]]]:
    """The rows to keep, per project, and the rejected ones with their index and reason."""
    assigned: dict[tuple[int, str], Monitor] = {
        (a["project_id"], a["monitor"]["name"]): msgspec.convert(a["monitor"], Monitor)
        for a in assignments(rt, location)}
    oldest, newest = now - rt.settings.max_event_age, now + rt.settings.max_future_skew
    kept: dict[int, list[CheckRow]] = defaultdict(list)
    rejected: list[dict[str, Any]] = []
    for index, item in enumerate(raw):
        try:
            row = msgspec.json.decode(item, type=ProbeRow)
        except msgspec.DecodeError as exc:
            rejected.append({"index": index, "error": str(exc).replace("`", "")})
            continue
        monitor = assigned.get((row.project_id, row.monitor))
        error = None
        if monitor is None:
            error = (f"monitor {row.monitor!r} of project {row.project_id} is not assigned "
                     f"to location {location!r}")
        elif row.kind != monitor.kind or row.kind not in KINDS:
            error = f"kind: {row.kind!r}, but the monitor is {monitor.kind!r}"
        elif not oldest <= row.ts <= newest:
            error = (f"ts: {row.ts:.3f} is further than max_future_skew in the future"
                     if row.ts > newest else f"ts: {row.ts:.3f} is older than max_event_age")
        if error is not None:
            rejected.append({"index": index, "error": error})
            continue
        kept[row.project_id].append(row.row(location))
    return dict(kept), rejected


def _unseen(rt: Runtime, project_id: int, location: str,
            rows: list[CheckRow]) -> list[CheckRow]:
    """The rows not stored yet: a probe sends a batch again when it did not get the
    answer, and the first sending may have been committed."""
    stamps = [round(r.ts * 1_000_000) for r in rows]
    found = rt.events.query(
        "SELECT monitor, epoch_us(ts) FROM check_results WHERE project_id = ? "
        "AND location = ? AND ts >= make_timestamp(?) AND ts <= make_timestamp(?)",
        [project_id, location, min(stamps) - 1, max(stamps) + 1])
    have = {(str(m), int(us)) for m, us in found}
    fresh: list[CheckRow] = []
    seen: set[tuple[str, int]] = set()
    for row, us in zip(rows, stamps, strict=True):
        # The store rounds the time to a microsecond as Python may not: allow one.
        if any((row.monitor, us + d) in have or (row.monitor, us + d) in seen
               for d in (-1, 0, 1)):
            continue
        seen.add((row.monitor, us))
        fresh.append(row)
    return fresh


@router.get("/api/v1/probes", tags=["probes"], summary="Remote probes (dashboard session)")
async def get_probes(request: Request) -> Response:
    """The live probes: location, when each was made and last seen, and the monitors
    (of every project) assigned to its location; and the server's own location."""
    rt: Runtime = request.app.state.runtime
    principal = access.require_api(request)
    if principal.session is None:
        raise Forbidden("probes are instance-wide: sign in to the dashboard to see them")
    body = await asyncio.to_thread(_probes, rt)
    return Response(_encode(body), media_type="application/json")


def _probes(rt: Runtime) -> dict[str, Any]:
    names = {p.id: p.name for p in rt.state.list_projects()}
    out = []
    for probe in list_probes(rt.state, revoked=False):
        item = probe.as_dict()
        item["monitors"] = [{"project_id": a["project_id"],
                             "project": names.get(a["project_id"], ""),
                             "name": a["monitor"]["name"]}
                            for a in assignments(rt, probe.location)]
        out.append(item)
    return {"server_location": rt.settings.checks_location, "probes": out}
