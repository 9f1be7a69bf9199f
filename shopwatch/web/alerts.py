"""Alerts and rules in the JSON API (docs/alerts.md, "The Alerts page and API").

- ``GET /api/v1/alerts?project=&state=open|all&limit=``: the project's alerts, open ones
  (pending, firing) first, then the latest resolved ones, each with its rule's kind,
  series and condition when the rule still exists; and ``rules``: every rule of the
  project (the files' and its SLOs' burn-rate rules, kind ``slo_burn``) with its current
  state (``ok``, ``pending``, ``firing`` or ``disabled``).
- ``POST /api/v1/alerts/{alert_id}/acknowledge``: acknowledge a firing alert (its
  reminders stop; it still resolves) as the signed-in user's e-mail, or ``secret key``;
  404 when the alert is not firing.

Reading takes a session or the project's secret key; acknowledging takes the secret
key, or an admin session with its CSRF token.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any, Literal

import msgspec
from fastapi import APIRouter, Query, Request, Response

from shopwatch.alerts.channels import iso
from shopwatch.alerts.objectives import burn_condition
from shopwatch.alerts.rules import Rule
from shopwatch.errors import NotFound, PageNotFound
from shopwatch.runtime import Runtime
from shopwatch.store import alerts as store
from shopwatch.store.slos import all_rules
from shopwatch.store.state import Project
from shopwatch.web import access
from shopwatch.web.params import ProjectQuery

router = APIRouter()
_encode = msgspec.json.Encoder().encode


# How a series' values read: the page formats them by this.
_UNITS = {"orders": "count", "sessions": "count", "login_failures": "count", "events": "count",
          "revenue": "money", "conversion": "ratio", "checkout_conversion": "ratio",
          "declined_rate": "ratio", "error_rate": "ratio", "lcp_p75": "ms", "inp_p75": "ms",
          "monitor": "flag", "failed_checks": "count", "js_errors": "count",
          "backend_errors": "count", "backend_p95_ms": "ms"}


def _json(body: Any, status: int = 200) -> Response:
    return Response(_encode(body), status_code=status, media_type="application/json")


def unit(rule: Rule) -> str:
    """What the rule's readings are: ``count``, ``money``, ``ratio``, ``ms``, ``flag``
    (1 down, 0 up), ``change`` (an anomaly's relative change, 0.3 = 30 %) or ``burn``
    (an SLO's burn rate, 14.4 = 14.4 times the sustainable rate)."""
    if rule.kind == "slo_burn":
        return "burn"
    if rule.kind == "anomaly":
        return "change"
    if rule.kind == "monitor_down":
        return "flag"
    return _UNITS.get(rule.series or "", "count")


def condition(rule: Rule) -> str:
    """When the rule breaches, in words (``error_rate > 0.05 over 10m, clears at 0.04``;
    ``burn rate ≥ 14.4x over 1h and 5m`` for an SLO's burn tier)."""
    if rule.kind == "slo_burn":
        return burn_condition(rule)
    if rule.security:  # opens findings on the Security page, not alerts
        from shopwatch.security.detections import TITLES, params_of

        tuned = ", ".join(f"{k} {v:g}" for k, v in params_of(rule.kind, rule.params).items())
        return (f"{TITLES[rule.kind].lower()} over {rule.window_text} ({tuned}); "
                "findings on the Security page")
    where = "".join(f" {k}={v}" for k, v in sorted((rule.filter or {}).items()))
    series = f"{rule.series or 'monitor'}{' (' + where.strip() + ')' if where else ''}"
    if rule.kind == "threshold":
        text = f"{series} {rule.op} {rule.threshold:g} over {rule.window_text}"
        if rule.clear is not None and rule.clear != rule.threshold:
            text += f", clears at {rule.clear:g}"
        return text
    if rule.kind == "anomaly":
        way = {"below": "below", "above": "above", "both": "away from"}[rule.direction]
        return (f"{series} over {rule.window_text} {rule.min_change:.0%} or more {way} the same "
                f"time of the last {rule.weeks} weeks")
    if rule.kind == "no_data":
        return f"no {series} data for {rule.window_text}"
    monitor = (rule.filter or {}).get("monitor")
    return f"monitor {monitor} down" if monitor else "any monitor down"


def _rule_info(rule: Rule) -> dict[str, Any]:
    return {"kind": rule.kind, "series": rule.series or "monitor", "filter": rule.filter or {},
            "condition": condition(rule), "op": rule.op, "threshold": rule.threshold,
            "clear": rule.clear, "window": rule.window_text, "for": rule.for_,
            "resolve_after": rule.resolve_after, "renotify": rule.renotify,
            "channels": rule.channels or [], "enabled": rule.enabled, "unit": unit(rule)}


def present(alert: store.StoredAlert, rule: Rule | None, now: float) -> dict[str, Any]:
    """An alert as the API shows it (times ISO 8601 UTC, durations in seconds)."""
    end = alert.resolved_at if alert.resolved_at is not None else now
    return {
        "id": alert.id, "key": f"{alert.rule}#{alert.id}", "rule": alert.rule,
        "rule_exists": rule is not None, "severity": alert.severity, "phase": alert.phase,
        "since": iso(alert.since), "fired_at": iso(alert.fired_at),
        "resolved_at": iso(alert.resolved_at), "evaluated_at": iso(alert.evaluated_at),
        "duration_s": round(max(0.0, end - alert.since), 3),
        "worst": alert.worst, "last_value": alert.last_value,
        "acknowledged_at": iso(alert.acknowledged_at),
        "acknowledged_by": alert.acknowledged_by,
        **({"kind": None, "series": None, "condition": None, "unit": None}
           if rule is None else {k: v for k, v in _rule_info(rule).items()
                                 if k in ("kind", "series", "filter", "condition", "op",
                                          "threshold", "window", "unit")}),
    }


def _read(rt: Runtime, project: Project, state: str, limit: int) -> dict[str, Any]:
    now = time.time()
    rules = {rule.name: rule for _, rule in all_rules(rt.state, project.id)}
    found = store.list_alerts(rt.state, project.id, limit=limit)
    if state == "open":
        found = [a for a in found if a.phase in ("pending", "firing")]
    shown = []
    for name, rule in rules.items():
        current = store.open_alert(rt.state, project.id, name)
        phase = current.phase if current is not None else "ok"
        shown.append({"name": name, **_rule_info(rule),
                      "state": phase if rule.enabled or current is not None else "disabled",
                      "severity": rule.severity,
                      "alert_id": current.id if current is not None else None,
                      "since": iso(current.since) if current is not None else None,
                      "last_value": current.last_value if current is not None else None,
                      "evaluated_at": iso(current.evaluated_at) if current else None})
    return {"project": project.id, "currency": project.currency, "now": iso(now),
            "alerts": [present(a, rules.get(a.rule), now) for a in found],
            "rules": shown}


@router.get("/api/v1/alerts", tags=["alerts"], summary="Alerts and rules")
async def get_alerts(
    request: Request, project: ProjectQuery = None,
    state: Annotated[Literal["open", "all"], Query(
        description="open: pending and firing only; all: the resolved ones too")] = "all",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    """Alerts, open ones first then the latest resolved ones (``limit`` in all), and every
    rule of the project with its current state. A rule's ``last_value`` is its open
    alert's latest reading (``null`` while it is ok: readings are not kept)."""
    rt: Runtime = request.app.state.runtime
    chosen = access.project_for(request, access.require_api(request), project)
    return _json(await asyncio.to_thread(_read, rt, chosen, state, limit))


@router.post("/api/v1/alerts/{alert_id}/acknowledge", tags=["alerts"],
             summary="Acknowledge a firing alert")
async def acknowledge_alert(request: Request, alert_id: int,
                            project: ProjectQuery = None) -> Response:
    """Acknowledge a firing alert: its reminders stop (it still resolves and notifies
    that). Recorded with the admin's e-mail, or ``secret key``. 404 when the alert is
    not firing (pending, resolved, or not the project's)."""
    rt: Runtime = request.app.state.runtime
    principal = access.require_writer(request, "acknowledge alerts")
    chosen = access.project_for(request, principal, project)
    who = principal.user.email if principal.user is not None else "secret key"
    try:
        done = await asyncio.to_thread(store.acknowledge, rt.state, chosen.id, alert_id, who,
                                       time.time())
    except NotFound as exc:
        raise PageNotFound(str(exc)) from None
    rules = {rule.name: rule for _, rule in all_rules(rt.state, chosen.id)}
    return _json(present(done, rules.get(done.rule), time.time()))
