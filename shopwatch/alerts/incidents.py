"""An incident's business impact and timeline, read from the event store.

Contract (docs/alerts.md, "Incidents"; the estimate's arithmetic in docs/kpis.md,
"Alerts: SLOs, burn rates, anomalies, impact"):

- :func:`impact` estimates the orders and revenue lost over the incident, from its first
  breach to its resolution (now while open), with :func:`shopwatch.alerts.impact.
  estimate_impact` against the same minutes of the previous :data:`WEEKS` weeks, in
  buckets of :func:`bucket_for` the incident's length. Marketing spend of the days the
  incident touched (converted to the project's currency, spread evenly over each day's
  hours) gives the spend of the incident and the share of it wasted.
- :func:`timeline` places technical series (failed check runs, JavaScript errors, p75
  LCP, backend errors and p95 from OpenTelemetry spans) next to business ones (sessions,
  add-to-carts, checkouts, orders with their expected value, revenue) for the same
  buckets, from a margin before the first breach to a margin after the end, so the page
  shows what happened before the alert fired.

Both read through :func:`shopwatch.analytics.alert_series.buckets`: the same figures as
the rules and the dashboard.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

from shopwatch.alerts.impact import Impact, Loss, estimate_impact
from shopwatch.analytics import alert_series
from shopwatch.analytics.currency import RATES
from shopwatch.spend import spend_between
from shopwatch.store.base import EventStore
from shopwatch.store.incidents import Incident
from shopwatch.store.state import Project, StateStore

WEEKS: Final = 4
MAX_BUCKETS: Final = 120
# Bucket sizes a timeline or an estimate may use: each divides a week, so that the same
# bucket of each past week starts on a bucket boundary.
_STEPS: Final = (60, 300, 600, 900, 1800, 3600, 3 * 3600, 6 * 3600, 86400)
TIMELINE: Final = (
    # (key, series, filter, group, label)
    ("failed_checks", "failed_checks", None, "technical", "failed check runs"),
    ("js_errors", "js_errors", None, "technical", "JavaScript errors"),
    ("lcp_p75", "lcp_p75", None, "technical", "p75 LCP (ms)"),
    ("backend_errors", "backend_errors", None, "technical", "backend errors"),
    ("backend_p95_ms", "backend_p95_ms", None, "technical", "backend p95 (ms)"),
    ("sessions", "sessions", None, "business", "sessions"),
    ("add_to_cart", "events", {"name": "add_to_cart"}, "business", "add-to-carts"),
    ("begin_checkout", "events", {"name": "begin_checkout"}, "business", "checkouts"),
    ("orders", "orders", None, "business", "orders"),
    ("revenue", "revenue", None, "business", "revenue"),
)


def bucket_for(length_s: float, max_buckets: int = MAX_BUCKETS) -> int:
    """The smallest bucket of :data:`_STEPS` that cuts ``length_s`` into at most
    ``max_buckets`` buckets (a day for anything longer)."""
    for step in _STEPS:
        if length_s / step <= max_buckets:
            return step
    return _STEPS[-1]


def _span(incident: Incident, now: float) -> tuple[float, float]:
    end = incident.resolved_at if incident.resolved_at is not None else now
    return incident.started_at, max(end, incident.started_at + 1)


def _us(ts: float) -> int:
    return int(ts * 1_000_000)


def spend_per_hour(state: StateStore, project: Project, start: float, end: float
                   ) -> float | None:
    """The project's marketing spend per hour over the days ``[start, end)`` touches (in
    its time zone), converted to its currency; ``None`` when no spend was uploaded for
    those days. A cost in a currency without a rate is left out."""
    zone = ZoneInfo(project.timezone)
    first = datetime.fromtimestamp(start, zone).date()
    last = datetime.fromtimestamp(max(start, end - 1e-6), zone).date()
    rows = spend_between(state, project.id, first, last)
    if not rows:
        return None
    base = RATES.get(project.currency.upper())
    total = 0.0
    for row in rows:
        rate = RATES.get(row.currency.upper())
        if rate is not None and base is not None:
            total += row.cost * base / rate
    days = (last - first) / timedelta(days=1) + 1
    return total / (24 * days)


def _loss(loss: Loss) -> dict[str, Any]:
    return {"expected": loss.expected, "observed": loss.observed, "lost": loss.lost,
            "low": loss.low, "high": loss.high, "share": loss.share}


def as_dict(found: Impact, bucket_s: float, weeks: int) -> dict[str, Any]:
    """An estimate as stored with the incident and shown by the API."""
    return {
        "start": found.start, "end": found.end, "bucket_s": bucket_s, "weeks": weeks,
        "orders": _loss(found.orders), "revenue": _loss(found.revenue),
        "spend": found.spend, "wasted_spend": found.wasted_spend,
        "wasted_spend_range": (list(found.wasted_spend_range)
                               if found.wasted_spend_range is not None else None),
        "buckets_without_baseline": found.buckets_without_baseline,
        "buckets": len(found.buckets),
    }


def impact(events: EventStore, state: StateStore, incident: Incident, now: float,
           *, weeks: int = WEEKS) -> dict[str, Any]:
    """The incident's estimated business impact (see the module docstring)."""
    project = state.get_project(incident.project_id)
    start, end = _span(incident, now)
    bucket = bucket_for(end - start)
    # Whole buckets: the last one would otherwise compare a part with a full baseline.
    end = start + math.ceil((end - start) / bucket) * bucket
    orders = alert_series.seasonal_buckets(events, project.id, "orders", None, _us(start),
                                           _us(end), bucket, weeks)
    revenue = alert_series.seasonal_buckets(events, project.id, "revenue", None, _us(start),
                                            _us(end), bucket, weeks,
                                            currency=project.currency)
    found = estimate_impact(orders, revenue, start, end, bucket, weeks,
                            spend_per_hour(state, project, start, end))
    return as_dict(found, bucket, weeks)


def incident_impact(events: EventStore, state: StateStore
                    ) -> Callable[[Incident, float], dict[str, Any] | None]:
    """The evaluator's ``impact`` over the server's stores."""
    def estimate(incident: Incident, now: float) -> dict[str, Any] | None:
        return impact(events, state, incident, now)
    return estimate


def timeline(events: EventStore, state: StateStore, incident: Incident, now: float,
             *, weeks: int = WEEKS) -> dict[str, Any]:
    """The incident's timeline: ``buckets`` (their start times), and per series of
    :data:`TIMELINE` its values (``None`` where a non-count series has no value), plus
    ``expected_orders``: the seasonal baseline of orders per bucket (``None`` without
    enough history)."""
    project = state.get_project(incident.project_id)
    start, end = _span(incident, now)
    margin = max(900.0, 0.5 * (end - start))
    first = start - margin
    last = min(now, end + margin) if incident.resolved_at is not None else now
    bucket = bucket_for(last - first)
    first = math.floor(first / bucket) * bucket  # round buckets read better
    count = max(1, math.ceil((last - first) / bucket))
    stop = first + count * bucket
    starts = [first + i * bucket for i in range(count)]
    series: dict[str, dict[str, Any]] = {}
    for key, name, filter_, group, label in TIMELINE:
        points = dict(alert_series.buckets(events, project.id, name, filter_, _us(first),
                                           _us(stop), bucket, currency=project.currency))
        series[key] = {"group": group, "label": label,
                       "values": [points.get(s) for s in starts]}
    orders = alert_series.seasonal_buckets(events, project.id, "orders", None, _us(first),
                                           _us(stop), bucket, weeks)
    baseline = estimate_impact(orders, [], first, stop, bucket, weeks)
    series["orders"]["expected"] = [b.expected_orders for b in baseline.buckets]
    return {"bucket_s": bucket, "start": first, "end": stop, "buckets": starts,
            "incident_start": start, "incident_end": incident.resolved_at,
            "detected_at": incident.detected_at, "currency": project.currency,
            "series": series}
