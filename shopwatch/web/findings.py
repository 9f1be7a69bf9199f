"""Security findings in the JSON API (docs/security.md, "Findings").

- ``GET /api/v1/security/findings?project=&status=open|acknowledged|false_positive|
  resolved|all&limit=``: the project's findings, latest activity first, and ``counts``
  (how many in each status).
- ``GET /api/v1/security/findings/{id}?project=``: one finding and its evidence events
  in time order (``events``: id, name, ts, account, session, network, user agent,
  country, value, currency, params); 404 when the project has no such finding.
- ``POST /api/v1/security/findings/{id}?project=`` with ``{"status": ...}``: set its
  status (open, acknowledged, false_positive, resolved), recorded with the admin's
  e-mail or ``secret key``.

Reading takes a session or the project's secret key; changing a status takes the
secret key, or an admin session with its CSRF token.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any, Literal

import msgspec
from fastapi import APIRouter, Query, Request, Response

from shopwatch.alerts.channels import iso
from shopwatch.errors import BadRequest, ConfigError, NotFound, PageNotFound
from shopwatch.runtime import Runtime
from shopwatch.security.detections import TITLES
from shopwatch.store import findings as store
from shopwatch.store.findings import STATUSES, Finding
from shopwatch.web import access
from shopwatch.web.params import ProjectQuery

router = APIRouter()
_encode = msgspec.json.Encoder().encode


def _json(body: Any, status: int = 200) -> Response:
    return Response(_encode(body), status_code=status, media_type="application/json")


def present(finding: Finding) -> dict[str, Any]:
    """A finding as the API shows it (times ISO 8601 UTC)."""
    return {"id": finding.id, "kind": finding.kind,
            "kind_title": TITLES.get(finding.kind, finding.kind),
            "subject": finding.subject, "severity": finding.severity,
            "status": finding.status, "rule": finding.rule, "title": finding.title,
            "first_seen": iso(finding.first_seen), "last_seen": iso(finding.last_seen),
            "created_at": iso(finding.created_at), "updated_at": iso(finding.updated_at),
            "status_at": iso(finding.status_at), "status_by": finding.status_by,
            "notified_at": iso(finding.notified_at), "evidence": finding.evidence}


_EVENT_SQL = ("SELECT id, name, epoch(ts), user_id, session_id, net_prefix, user_agent, "
              "country, value, currency, params FROM events WHERE project_id = ? AND id IN "
              "({holes}) ORDER BY ts, id")


def _events(rt: Runtime, project_id: int, ids: list[str]) -> list[dict[str, Any]]:
    if not ids:
        return []
    rows = rt.events.query(_EVENT_SQL.format(holes=", ".join("?" * len(ids))),
                           (project_id, *ids))
    return [{"id": r[0], "name": r[1], "ts": iso(float(r[2])), "user_id": r[3],
             "session_id": r[4], "net_prefix": r[5], "user_agent": r[6], "country": r[7],
             "value": r[8], "currency": r[9],
             "params": msgspec.json.decode(r[10]) if r[10] else {}} for r in rows]


@router.get("/api/v1/security/findings", tags=["security"], summary="Security findings")
async def get_findings(
    request: Request, project: ProjectQuery = None,
    status: Annotated[Literal["open", "acknowledged", "false_positive", "resolved", "all"],
                      Query(description="one status, or all")] = "all",
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> Response:
    """The project's findings, latest activity first, and how many are in each status."""
    rt: Runtime = request.app.state.runtime
    chosen = access.project_for(request, access.require_api(request), project)

    def read() -> dict[str, Any]:
        found = store.list_findings(rt.state, chosen.id,
                                    status=None if status == "all" else status, limit=limit)
        return {"project": chosen.id, "now": iso(time.time()),
                "findings": [present(f) for f in found],
                "counts": store.count_by_status(rt.state, chosen.id)}

    return _json(await asyncio.to_thread(read))


@router.get("/api/v1/security/findings/{finding_id}", tags=["security"],
            summary="One finding and its evidence events")
async def get_finding(request: Request, finding_id: int,
                      project: ProjectQuery = None) -> Response:
    """One finding, and the events of its evidence in time order."""
    rt: Runtime = request.app.state.runtime
    chosen = access.project_for(request, access.require_api(request), project)

    def read() -> dict[str, Any]:
        try:
            finding = store.get_finding(rt.state, chosen.id, finding_id)
        except NotFound as exc:
            raise PageNotFound(str(exc)) from None
        return {"project": chosen.id, "currency": chosen.currency,
                "finding": present(finding),
                "events": _events(rt, chosen.id, finding.evidence.get("event_ids", []))}

    return _json(await asyncio.to_thread(read))


@router.post("/api/v1/security/findings/{finding_id}", tags=["security"],
             summary="Set a finding's status")
async def post_finding(request: Request, finding_id: int,
                       project: ProjectQuery = None) -> Response:
    """Set the status: ``open``, ``acknowledged``, ``false_positive`` or ``resolved``."""
    rt: Runtime = request.app.state.runtime
    principal = access.require_writer(request, "change findings")
    chosen = access.project_for(request, principal, project)
    data = await access.json_body(request, 4 * 1024)
    if not isinstance(data, dict) or not isinstance(data.get("status"), str):
        raise BadRequest(f"status: required, one of {', '.join(STATUSES)}")
    unknown = sorted(set(data) - {"status"})
    if unknown:
        raise BadRequest(f"{unknown[0]}: not a field (the body takes status)")
    who = principal.user.email if principal.user is not None else "secret key"
    try:
        done = await asyncio.to_thread(store.set_status, rt.state, chosen.id, finding_id,
                                       data["status"], who, time.time())
    except ConfigError as exc:
        raise BadRequest(str(exc)) from None
    except NotFound as exc:
        raise PageNotFound(str(exc)) from None
    return _json({"finding": present(done)})
