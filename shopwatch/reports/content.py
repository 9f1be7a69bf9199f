"""What a report holds: its figures for one project, audience and period, with the
previous period beside them.

Contract (docs/reports.md, "What a report holds"):

- Every figure comes from the analytics modules, over the period as a
  :class:`~shopwatch.reports.periods.Period` (half-open, by event time), exactly as the
  dashboard computes it for the same range: availability from
  :func:`~shopwatch.analytics.uptime.monitor_detail` (maintenance windows left out), Web
  Vitals from :func:`~shopwatch.analytics.vitals.vitals`, commerce KPIs from
  :func:`~shopwatch.analytics.kpis.kpis`, products from
  :func:`~shopwatch.analytics.products.products`, orders over time from
  :func:`~shopwatch.analytics.timeseries.timeseries`. This module writes no SQL.
- **technical**: availability per monitor and overall (passed runs ÷ runs of every
  monitor), Web Vitals at p75 with Google's bounds, the incidents of the period with
  time to detect and to resolve (means over those resolved: MTTD, MTTR), and the SLOs
  when the SLO module exists (:func:`slo_section`).
- **business**: orders, revenue, AOV, conversion, cart and checkout abandonment and more
  (:data:`BUSINESS_KPIS`), the top products by revenue, orders and order value per local
  hour (daily) or day (weekly), and the business impact of the period's incidents.
- **Incidents** are the incident store's (:mod:`shopwatch.store.incidents`) touching the
  period, with the impact frozen at resolution (estimated at ``now`` by
  :func:`shopwatch.alerts.incidents.impact` for one still open). Where that module is
  absent, the alerts that fired and touched the period stand in: MTTD is
  ``fired_at - since``, MTTR ``resolved_at - since``, and there is no impact estimate.
- Each comparable figure carries ``previous`` (the previous period's); the page and the
  renderer compute the change. The result is plain JSON (``GET /api/v1/reports/...``).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Final

from shopwatch.analytics.kpis import kpis
from shopwatch.analytics.products import products
from shopwatch.analytics.timerange import EPOCH, iso_utc
from shopwatch.analytics.timeseries import timeseries
from shopwatch.analytics.uptime import monitor_detail
from shopwatch.analytics.vitals import METRICS, vitals
from shopwatch.errors import ConfigError
from shopwatch.reports import AUDIENCES
from shopwatch.reports.periods import Period, local_datetime
from shopwatch.store.alerts import list_alerts
from shopwatch.store.base import EventStore
from shopwatch.store.maintenance import list_windows, spans
from shopwatch.store.monitors import list_monitors
from shopwatch.store.state import Project, StateStore

TITLES: Final = {"technical": "Technical report", "business": "Business report"}
# (key in kpis(), label, format, which way is better)
BUSINESS_KPIS: Final[tuple[tuple[str, str, str, str], ...]] = (
    ("orders", "Orders", "int", "up"),
    ("revenue", "Net revenue", "money", "up"),
    ("aov", "Average order value", "money", "up"),
    ("conversion_rate", "Conversion rate", "pct", "up"),
    ("cart_abandonment_rate", "Cart abandonment", "pct", "down"),
    ("checkout_abandonment_rate", "Checkout abandonment", "pct", "down"),
    ("sessions", "Sessions", "int", "up"),
    ("abandoned_cart_value", "Left in abandoned carts", "money", "down"),
    ("refunds", "Refunded", "money", "down"),
)
TOP_PRODUCTS: Final = 10
# Products are ranked by revenue among this many most viewed (products() ranks by views).
PRODUCTS_READ: Final = 1000
SLOWEST_PAGES: Final = 5
MAX_INCIDENTS: Final = 200
US: Final = 1_000_000


def check_audience(audience: str) -> str:
    if audience not in AUDIENCES:
        raise ConfigError(f"audience: {audience!r} is not one of {', '.join(AUDIENCES)}")
    return audience


def gather(events: EventStore, state: StateStore, project: Project, audience: str,
           period: Period, *, now: float | None = None) -> dict[str, Any]:
    """The report of ``audience`` for ``project`` over ``period`` (module docstring)."""
    check_audience(audience)
    at = time.time() if now is None else now
    previous = period.previous()
    report: dict[str, Any] = {
        "audience": audience, "title": TITLES[audience],
        "project": {"id": project.id, "name": project.name, "currency": project.currency,
                    "timezone": project.timezone},
        "period": period.as_dict(), "previous": previous.as_dict(),
        "generated_at": iso_utc(int(at * US)),
    }
    found = incidents(events, state, project, period, at)
    before = incidents(events, state, project, previous, at, impact=False)
    summary = {"count": len(found["items"]), "resolved": sum(
        1 for i in found["items"] if i["resolved_at"] is not None),
        "mttd_s": _mean(i["mttd_s"] for i in found["items"]),
        "mttr_s": _mean(i["mttr_s"] for i in found["items"]),
        "previous": {"count": len(before["items"]),
                     "mttd_s": _mean(i["mttd_s"] for i in before["items"]),
                     "mttr_s": _mean(i["mttr_s"] for i in before["items"])}}
    found.update(summary)
    if audience == "technical":
        report["availability"] = availability(events, state, project, period, previous)
        report["vitals"] = web_vitals(events, project, period, previous)
        report["incidents"] = found
        slos = slo_section(events, state, project, period)
        if slos is not None:
            report["slos"] = slos
    else:
        current, before_kpis = kpis(events, project, period.range()), kpis(
            events, project, previous.range())
        report["kpis"] = [{"key": key, "label": label, "format": fmt, "better": better,
                           "value": current[key], "previous": before_kpis[key]}
                          for key, label, fmt, better in BUSINESS_KPIS]
        report["unconverted"] = current["unconverted"]
        report["top_products"] = top_products(events, project, period)
        report["orders_over_time"] = orders_over_time(events, project, period, previous)
        report["impact"] = impact_summary(found)
    return report


def _mean(values: Any) -> float | None:
    known = [float(v) for v in values if v is not None]
    return round(statistics.fmean(known), 3) if known else None


# --- technical --------------------------------------------------------------------------------


def _monitor_runs(events: EventStore, project_id: int, name: str, period: Period,
                  windows: Any) -> dict[str, Any]:
    skipped = spans(windows, period.start_us / US, period.end_us / US)
    detail = monitor_detail(events, project_id, name, period.range(), skipped)
    runs = int(detail["runs"])
    passed = round((detail["availability"] or 0.0) * runs)
    return {"runs": runs, "passed": passed, "availability": detail["availability"],
            "outages": len(detail["incidents"])}


def availability(events: EventStore, state: StateStore, project: Project, period: Period,
                 previous: Period) -> dict[str, Any]:
    """Each monitor's availability in the period and the one before, and overall."""
    windows = list_windows(state, project.id)
    monitors = []
    totals = {"runs": 0, "passed": 0, "previous_runs": 0, "previous_passed": 0}
    for stored in list_monitors(state, project.id):
        name = stored.monitor.name
        now = _monitor_runs(events, project.id, name, period, windows)
        before = _monitor_runs(events, project.id, name, previous, windows)
        if not now["runs"] and not before["runs"] and not stored.monitor.enabled:
            continue  # paused all along: nothing to say
        monitors.append({"name": name, "kind": stored.monitor.kind, **now,
                         "failed": now["runs"] - now["passed"],
                         "previous": before["availability"]})
        totals["runs"] += now["runs"]
        totals["passed"] += now["passed"]
        totals["previous_runs"] += before["runs"]
        totals["previous_passed"] += before["passed"]

    def ratio(part: int, whole: int) -> float | None:
        return round(part / whole, 6) if whole else None

    return {"monitors": monitors, "overall": {
        "availability": ratio(totals["passed"], totals["runs"]), "runs": totals["runs"],
        "failed": totals["runs"] - totals["passed"],
        "previous": ratio(totals["previous_passed"], totals["previous_runs"])}}


def web_vitals(events: EventStore, project: Project, period: Period,
               previous: Period) -> dict[str, Any]:
    """p75 of each Web Vital with its rating and Google's bounds, the previous period's
    p75, the LCP and INP trend in local time, and the slowest pages."""
    now = vitals(events, project.id, period.range())
    before = vitals(events, project.id, previous.range())
    metrics = {}
    for name, (_, good, poor, unit) in METRICS.items():
        m = now["total"]["metrics"].get(name) or {}
        n = int(m.get("n") or 0)
        metrics[name] = {"p75": m.get("p75"), "rating": m.get("rating"), "good": good,
                         "poor": poor, "unit": unit, "views": n,
                         "share_good": round(m["good"] / n, 6) if n else None,
                         "previous": (before["total"]["metrics"].get(name) or {}).get("p75")}
    tz = period.tz
    fmt = "%H:%M" if period.kind == "daily" else "%a %H:%M"
    # Buckets are epoch-aligned: the first may start before the period; it is labelled
    # with the period's start, where its page views begin.
    trend = [{"t": row["t"],
              "label": local_datetime(max(_us(row["t"]), period.start_us), tz).strftime(fmt),
              "lcp": row["metrics"]["lcp"]["p75"], "inp": row["metrics"]["inp"]["p75"],
              "views": row["views"]} for row in now["trend"]]
    return {"views": now["total"]["views"], "previous_views": before["total"]["views"],
            "metrics": metrics, "trend": trend,
            "slowest_pages": now["slowest_pages"][:SLOWEST_PAGES]}


def _us(iso: str) -> int:
    """Epoch µs of an ISO 8601 UTC time as the analytics modules write them."""
    return (datetime.fromisoformat(iso.replace("Z", "+00:00")) - EPOCH) // timedelta(
        microseconds=1)


def slo_section(events: EventStore, state: StateStore, project: Project,
                period: Period) -> dict[str, Any] | None:
    """The project's service level objectives (``shopwatch.alerts.objectives``): each
    one's SLI over the period (``achieved``, ``met`` when at or above the target) and its
    error budget left over its own rolling window at the period's end; maintenance
    windows left out as on the SLO page. ``None`` where SLOs are not built or the
    project has none: no SLO figure is ever made up."""
    try:
        from shopwatch.alerts.slo import error_budget
        from shopwatch.analytics import sli
        from shopwatch.store.slos import list_slos
    except ImportError:  # SLO definitions are built alongside; no section until then
        return None
    objectives = [o for _, o in list_slos(state, project.id) if o.enabled]
    if not objectives:
        return None
    start, end = period.start_us // US, period.end_us // US
    windows = list_windows(state, project.id)
    items = []
    for o in objectives:
        quiet = spans(windows, min(start, end - o.window_s), end)
        now = sli.buckets(events, project.id, o, start, end, end - start, quiet)
        good, total = sum(b[1] for b in now), sum(b[2] for b in now)
        rolling = sli.buckets(events, project.id, o, end - o.window_s, end, o.window_s, quiet)
        budget = error_budget(sum(b[1] for b in rolling), sum(b[2] for b in rolling), o.ratio)
        achieved = good / total if total else None
        items.append({"name": o.name, "sli": o.sli, "target": o.ratio,
                      "window_s": o.window_s, "good": good, "total": total,
                      "achieved": None if achieved is None else round(achieved, 6),
                      "met": None if achieved is None else achieved >= o.ratio,
                      "budget_remaining": None if budget is None
                      else round(budget.remaining, 6)})
    return {"items": items}


# --- incidents --------------------------------------------------------------------------------


def incidents(events: EventStore, state: StateStore, project: Project, period: Period,
              now: float, *, impact: bool = True) -> dict[str, Any]:
    """The incidents touching the period, oldest first (module docstring), with their
    times to detect and resolve and (``impact``) their business impact: as frozen at
    resolution, estimated now for an open one."""
    start, end = period.start_us / US, period.end_us / US
    try:
        from shopwatch.alerts.incidents import impact as estimate
        from shopwatch.store.incidents import list_incidents
    except ImportError:  # the incident store is built alongside; alerts stand in until then
        return {"source": "alerts", "items": _from_alerts(state, project, start, end)}
    items = []
    for i in list_incidents(state, project.id, since=start, until=end, limit=MAX_INCIDENTS):
        lost: dict[str, Any] = {"lost_orders": _round(i.lost_orders),
                                "lost_revenue": _round(i.lost_revenue),
                                "wasted_spend": _round(i.wasted_spend)}
        if impact and i.impact is None:
            found = estimate(events, state, i, now)
            lost = {"lost_orders": _round(found["orders"]["lost"]),
                    "lost_revenue": _round(found["revenue"]["lost"]),
                    "wasted_spend": _round(found["wasted_spend"])}
        items.append({"id": i.id, "title": i.title, "severity": i.severity,
                      "started_at": _iso(i.started_at), "detected_at": _iso(i.detected_at),
                      "resolved_at": _iso(i.resolved_at), "mttd_s": _round(i.mttd_s),
                      "mttr_s": _round(i.mttr_s), **lost})
    items.sort(key=lambda i: (str(i["started_at"]), int(i["id"])))
    return {"source": "incidents", "items": items}


def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else iso_utc(int(epoch * US))


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 3)


def _from_alerts(state: StateStore, project: Project, start: float, end: float
                 ) -> list[dict[str, Any]]:
    """The alerts that fired and touched ``[start, end)``, as incidents without an
    impact estimate (that needs the incident store)."""
    items: list[dict[str, Any]] = []
    for a in list_alerts(state, project.id, limit=MAX_INCIDENTS * 5):
        if a.fired_at is None or a.fired_at >= end or (
                a.resolved_at is not None and a.resolved_at < start):
            continue
        items.append({"id": a.id, "title": a.rule, "severity": a.severity,
                      "started_at": _iso(a.since), "detected_at": _iso(a.fired_at),
                      "resolved_at": _iso(a.resolved_at),
                      "mttd_s": _round(max(0.0, a.fired_at - a.since)),
                      "mttr_s": None if a.resolved_at is None
                      else _round(max(0.0, a.resolved_at - a.since)),
                      "lost_orders": None, "lost_revenue": None, "wasted_spend": None})
    items.sort(key=lambda i: (str(i["started_at"]), int(i["id"])))
    return items[:MAX_INCIDENTS]


def impact_summary(found: dict[str, Any]) -> dict[str, Any]:
    """The business side of the period's incidents: each one's losses, and their sums
    over the incidents that have an estimate."""
    items = found["items"]

    def total(field: str) -> float | None:
        known = [float(i[field]) for i in items if i[field] is not None]
        return round(sum(known), 3) if known else None

    return {"source": found["source"], "items": items, "count": len(items),
            "lost_orders": total("lost_orders"), "lost_revenue": total("lost_revenue"),
            "wasted_spend": total("wasted_spend")}


# --- business ---------------------------------------------------------------------------------


def top_products(events: EventStore, project: Project, period: Period) -> list[dict[str, Any]]:
    """The products with the most revenue in the period (ties: units), with their views,
    units bought and view-to-purchase rate."""
    rows = products(events, project, period.range(), "product", PRODUCTS_READ)["rows"]
    bought = [r for r in rows if r["units"] > 0]
    bought.sort(key=lambda r: (-r["revenue"], -r["units"], str(r["product"])))
    return bought[:TOP_PRODUCTS]


def _fold(series: Sequence[dict[str, Any]], buckets: Sequence[str], period: Period,
          slots: int) -> list[dict[str, float]]:
    """Hourly rows of :func:`timeseries` summed into the period's local hours (daily) or
    local days (weekly). An hour that starts before the period (a zone offset by a
    fraction of an hour) counts in the period's first slot."""
    out = [{"orders": 0.0, "revenue": 0.0} for _ in range(slots)]
    first_day = local_datetime(period.start_us, period.tz).date()
    for iso, row in zip(buckets, series, strict=True):
        at = local_datetime(max(_us(iso), period.start_us), period.tz)
        slot = at.hour if period.kind == "daily" else (at.date() - first_day).days
        if 0 <= slot < slots:
            out[slot]["orders"] += row["orders"]
            out[slot]["revenue"] += row["revenue"]
    return out


def orders_over_time(events: EventStore, project: Project, period: Period,
                     previous: Period) -> dict[str, Any]:
    """Orders and order value (gross, as :func:`timeseries` counts them) per local hour
    of a day or per local day of a week, beside the previous period's."""
    if period.kind not in ("daily", "weekly"):
        return {"interval": None, "rows": []}
    slots = 24 if period.kind == "daily" else 7
    now = timeseries(events, project, period.range(), "hour")
    before = timeseries(events, project, previous.range(), "hour")
    current = _fold(now["current"], now["buckets"], period, slots)
    past = _fold(before["current"], before["buckets"], previous, slots)
    first = local_datetime(period.start_us, period.tz).date()
    labels = ([f"{h:02d}:00" for h in range(24)] if period.kind == "daily" else
              [f"{first + timedelta(days=d):%a %d %b}" for d in range(7)])
    return {"interval": "hour" if period.kind == "daily" else "day",
            "rows": [{"label": label, "orders": int(c["orders"]),
                      "revenue": round(c["revenue"], 2), "previous_orders": int(p["orders"]),
                      "previous_revenue": round(p["revenue"], 2)}
                     for label, c, p in zip(labels, current, past, strict=True)]}
