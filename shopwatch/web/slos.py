"""Service level objectives in the JSON API (docs/alerts.md, "SLOs").

- ``GET /api/v1/slos?project=``: every objective of the project, by name, with its SLI
  over its window (``good``, ``total``, ``value``), its error budget (``allowed`` and
  ``consumed`` bad events, ``remaining`` fraction) and ``budget_state``, each burn
  tier's long- and short-window burn rates, whether it fires now and its rule's open
  alert, and the budget's trend (``step_s`` apart, each point the budget of the window
  ending there).
- ``GET /api/v1/slos/{name}?project=``: one objective, the same fields; 404 when the
  project has none of that name.

Figures are computed at the request's time, in whole seconds, with the project's
maintenance windows left out (:mod:`shopwatch.analytics.sli`). Reading takes a session
or the project's secret key.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Final

import msgspec
from fastapi import APIRouter, Request, Response

from shopwatch.alerts.channels import iso
from shopwatch.alerts.objectives import Objective, duration_text, rule_name
from shopwatch.analytics import sli
from shopwatch.errors import PageNotFound
from shopwatch.runtime import Runtime
from shopwatch.store import alerts as alert_store
from shopwatch.store.maintenance import list_windows, spans
from shopwatch.store.slos import get_slo, list_slos
from shopwatch.store.state import Project
from shopwatch.web import access
from shopwatch.web.params import ProjectQuery

router = APIRouter()
_encode = msgspec.json.Encoder().encode

LOW_BUDGET: Final = 0.25  # under this share of the budget left, its state is "low"
SLI_TEXT: Final = {
    "availability": "check runs that passed ÷ check runs",
    "checkout": "orders ÷ sessions that began a checkout",
    "payment": "payments accepted ÷ payments attempted",
    "latency": "page views at or under the threshold ÷ page views",
}


def _json(body: Any, status: int = 200) -> Response:
    return Response(_encode(body), status_code=status, media_type="application/json")


def budget_state(remaining: float | None) -> str:
    """``no_data`` (no traffic over the window), ``exhausted`` (nothing left, or
    overspent), ``low`` (under :data:`LOW_BUDGET` left) or ``healthy``."""
    if remaining is None:
        return "no_data"
    if remaining <= 0:
        return "exhausted"
    return "low" if remaining < LOW_BUDGET else "healthy"


def present(rt: Runtime, project: Project, objective: Objective, now: int) -> dict[str, Any]:
    """One objective and its figures at ``now`` (see the module docstring)."""
    quiet = spans(list_windows(rt.state, project.id), now - 2 * objective.window_s, now)
    status = sli.status(rt.events, project.id, objective, now, quiet)
    budget = status.budget
    tiers = []
    for state in status.tiers:
        tier = state.tier
        name = rule_name(objective.name, tier)
        alert = alert_store.open_alert(rt.state, project.id, name)
        tiers.append({
            "name": tier.name, "severity": tier.severity, "threshold": tier.threshold,
            "long_window": duration_text(tier.long_s),
            "short_window": duration_text(tier.short_s),
            "long_burn": state.long_burn, "short_burn": state.short_burn,
            "firing": state.firing, "rule": name,
            "alert": None if alert is None else {
                "id": alert.id, "phase": alert.phase, "since": iso(alert.since)},
        })
    return {
        "name": objective.name, "sli": objective.sli, "description": SLI_TEXT[objective.sli],
        "filter": objective.filter or {}, "target": objective.ratio,
        "window": duration_text(objective.window_s), "window_s": objective.window_s,
        "severity": objective.severity, "channels": objective.channels or [],
        "enabled": objective.enabled,
        "good": status.good, "total": status.total, "value": status.value,
        "budget": None if budget is None else {
            "allowed": budget.allowed, "consumed": budget.consumed,
            "remaining": budget.remaining},
        "budget_state": budget_state(None if budget is None else budget.remaining),
        "tiers": tiers, "firing": [t["name"] for t in tiers if t["firing"]],
        "trend": {"step_s": status.step_s,
                  "points": [{"t": iso(p.at), "remaining": p.remaining}
                             for p in status.trend]},
    }


def _all(rt: Runtime, project: Project) -> dict[str, Any]:
    now = int(time.time())
    return {"project": project.id, "now": iso(now),
            "slos": [present(rt, project, o, now) for _, o in list_slos(rt.state, project.id)]}


def _one(rt: Runtime, project: Project, name: str) -> dict[str, Any]:
    objective = get_slo(rt.state, project.id, name)
    if objective is None:
        raise PageNotFound(f"no SLO {name!r} in this project")
    now = int(time.time())
    return {"project": project.id, "now": iso(now), **present(rt, project, objective, now)}


@router.get("/api/v1/slos", tags=["alerts"], summary="Service level objectives")
async def get_slos(request: Request, project: ProjectQuery = None) -> Response:
    """Every SLO of the project with its SLI, error budget, burn rates per tier and the
    budget's trend over its window."""
    rt: Runtime = request.app.state.runtime
    chosen = access.project_for(request, access.require_api(request), project)
    return _json(await asyncio.to_thread(_all, rt, chosen))


@router.get("/api/v1/slos/{name}", tags=["alerts"], summary="One service level objective")
async def get_slo_route(request: Request, name: str, project: ProjectQuery = None) -> Response:
    """One SLO, as in the list; 404 when the project has none of that name."""
    rt: Runtime = request.app.state.runtime
    chosen = access.project_for(request, access.require_api(request), project)
    return _json(await asyncio.to_thread(_one, rt, chosen, name))
