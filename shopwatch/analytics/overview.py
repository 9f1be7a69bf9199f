"""The overview page's numbers: live sessions, today's orders and revenue, conversion, traffic.

Everything is computed from stored events only, with four grouped queries through
:meth:`EventStore.query` (each filtered on ``project_id``; conversion and traffic read the
rollups of :mod:`shopwatch.analytics.rollup` when the buckets are whole hours, with the
same result); no number is estimated or filled in. Times are event times (``ts``, UTC);
every window is half-open ``[from, to)``.

Definitions (the contract of :func:`overview`):

- **Sessions** as everywhere else (:mod:`shopwatch.analytics.sessions`): by session id,
  else the visitor's (``anonymous_id``, else ``user_id``) visits split after 30 idle
  minutes. Events with none of the three belong to no session: they count as events in
  ``traffic`` but never as sessions.
- **Active sessions**: distinct sessions with an event in ``[now - 5 min, now)``. (No
  visit can have a 30-minute gap inside five minutes, so there a visitor without a
  session id is one session.)
  Its ``series`` has 60 points, one per epoch-aligned minute, oldest first; the last
  point is the minute holding ``now - 1 µs`` (a partial minute unless ``now`` is on a
  minute boundary).
- **Orders today**: ``purchase`` events from local midnight of the project's time zone
  to ``now``, one order per distinct ``transaction_id`` (its first event in the window
  carries the order's value and currency); purchases without a ``transaction_id`` count
  one each. Refunds and cancellations are not subtracted yet (a later issue). Orders in
  every currency count.
- **Revenue today**: the sum of ``value`` over those orders whose currency is the
  project's currency (case-insensitive) or absent. Other currencies are summed apart in
  ``other_currencies`` (code → sum) and never converted (conversion comes later).
- **Previous (today's KPIs)**: the same weekday last week, from its local midnight to the
  same local time of day as ``now``. ``series`` / ``previous_series`` hold 24 values, one
  per local wall-clock hour (index 0 = 00:00-01:00); today's hours after the current one
  are ``None``; on a DST change day the repeated hour holds both and the skipped hour 0.
- **Conversion rate** over ``rng``: sessions with at least one purchase in the range ÷
  sessions with any event in the range (``None`` without sessions). Its ``series`` puts
  each session in the bucket of its first event in the range (so the buckets add up to
  the totals) and is ``None`` for buckets without sessions.
- **Traffic**: per bucket, events and the sessions with an event in the bucket.
- **Previous period** (conversion, traffic): ``rng.previous()``. Its events are shifted
  by the range's length onto ``rng``'s buckets, so ``previous_*[i]`` is the same
  position in the previous period as bucket ``i`` is in ``rng``.

Money sums are rounded to 6 decimals: no currency has more minor units, and it keeps
float noise (``0.30000000000000004``) out of the JSON.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

from shopwatch.analytics.rollup import buckets_params, buckets_sql, hour_aligned, prelude
from shopwatch.analytics.timerange import EPOCH, US, TimeRange, iso_utc
from shopwatch.store.base import EventStore
from shopwatch.store.state import Project

ACTIVE_WINDOW_S: Final = 300
LIVE_MINUTES: Final = 60
MINUTE_US: Final = 60 * US
# Purchases are grouped by UTC quarter hour, then folded into local hours in Python: every
# time zone offset in use is a multiple of 15 minutes (India +5:30, Nepal +5:45), so each
# quarter lies in exactly one local hour, and no SQL time zone support is needed.
QUARTER_US: Final = 900 * US

# Inside five minutes a visitor's events are one visit (see the module docstring).
SESSION_KEY: Final = "COALESCE('s:' || session_id, 'v:' || COALESCE(anonymous_id, user_id))"
TS: Final = "make_timestamp(?::BIGINT)"

# One scan for both numbers: the per-minute grouping gives the series, the grand-total
# grouping set (m IS NULL) gives the active sessions over the last five minutes.
_LIVE_SQL: Final = f"""
SELECT epoch_us(ts) // {MINUTE_US} AS m,
       count(DISTINCT sk),
       count(DISTINCT sk) FILTER (WHERE ts >= {TS})
FROM (SELECT ts, {SESSION_KEY} AS sk FROM events
      WHERE project_id = ? AND ts >= {TS} AND ts < {TS} AND {SESSION_KEY} IS NOT NULL)
GROUP BY GROUPING SETS ((m), ())
"""

# Today (period 0) and last week's whole day (period 1) in one scan. A transaction is
# kept once per period: its first event (then id, for a stable pick among equal times).
_ORDERS_SQL: Final = f"""
WITH p AS (
    SELECT CASE WHEN ts >= {TS} THEN 0 ELSE 1 END AS period,
           epoch_us(ts) AS t, id, value, upper(currency) AS cur, transaction_id
    FROM events
    WHERE project_id = ? AND name = 'purchase'
      AND ((ts >= {TS} AND ts < {TS}) OR (ts >= {TS} AND ts < {TS}))
), orders AS (
    SELECT * FROM p
    QUALIFY transaction_id IS NULL
         OR row_number() OVER (PARTITION BY period, transaction_id ORDER BY t, id) = 1
)
SELECT period, t // {QUARTER_US} AS q, t < ? AS before_cut, COALESCE(cur, ?) AS cur,
       count(*), COALESCE(sum(value), 0)
FROM orders
GROUP BY ALL
"""

def availability_now(monitors: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The overview's availability card from the monitors' status (``monitors_status``):
    ``value`` is the share of judged monitors (up, degraded or down) that are up;
    ``status`` is ``none`` without any judged monitor."""
    judged = [m for m in monitors if m["status"] in ("up", "degraded", "down")]
    down = [m["name"] for m in judged if m["status"] == "down"]
    degraded = [m["name"] for m in judged if m["status"] == "degraded"]
    if not judged:
        return {"status": "none", "monitors": len(monitors),
                "message": "No monitor has run yet: add monitors under Reliability → "
                           "Uptime (docs/monitors.md)."}
    up = len(judged) - len(down) - len(degraded)
    return {"status": "ok", "value": round(up / len(judged), 6), "up": up,
            "judged": len(judged), "down": down, "degraded": degraded}


def open_alerts(alerts: Sequence[Any], rules: int) -> dict[str, Any]:
    """The overview's alerts card from the project's stored alerts: firing and pending
    counts and names; ``status`` is ``none`` when the project has no rule."""
    firing = [a.rule for a in alerts if a.phase == "firing"]
    pending = [a.rule for a in alerts if a.phase == "pending"]
    if rules == 0 and not firing and not pending:
        return {"status": "none", "message": "No alert rules yet: write them next to the "
                                             "monitors (docs/alerts.md)."}
    return {"status": "ok", "value": len(firing), "firing": firing, "pending": pending,
            "rules": rules}


def open_findings(findings: Sequence[Any]) -> dict[str, Any]:
    """The overview's security card from the project's open findings (latest activity
    first): how many, how many critical, and the latest three titles."""
    return {"status": "ok", "value": len(findings),
            "critical": sum(1 for f in findings if f.severity == "critical"),
            "latest": [{"id": f.id, "title": f.title, "severity": f.severity}
                       for f in findings[:3]]}


def overview(store: EventStore, project: Project, rng: TimeRange, now_us: int) -> dict[str, Any]:
    """The overview of ``project`` at ``now_us`` (epoch µs), conversion and traffic over
    ``rng``; definitions in the module docstring. The result is JSON-ready::

        {"range", "previous_range", "currency", "timezone", "generated_at",
         "buckets": [ISO start of each bucket of rng],
         "today": {"date", "from", "to", "previous_date", "previous_from", "previous_to"},
         "active_sessions": {"value", "window_seconds", "series", "series_from",
                             "series_step_seconds"},
         "orders_today": {"value", "previous", "series", "previous_series"},
         "revenue_today": {"value", "previous", "currency", "series", "previous_series",
                           "other_currencies", "previous_other_currencies"},
         "conversion_rate": {"value", "previous", "series", "previous_series",
                             "sessions", "converted_sessions",
                             "previous_sessions", "previous_converted_sessions"},
         "traffic": {"events", "sessions", "previous_events", "previous_sessions",
                     "series": {"events", "sessions", "previous_events",
                                "previous_sessions"}},
         }

    The API adds ``availability`` (:func:`availability_now`), ``open_alerts``
    (:func:`open_alerts`) and ``security_findings`` (:func:`open_findings`), which come
    from the monitors, the alerts and the security findings.

    Every ``series`` under conversion and traffic has one entry per ``buckets`` entry.
    """
    previous = rng.previous()
    today = _Today(ZoneInfo(project.timezone), now_us)
    conversion, traffic = _conversion_and_traffic(store, project.id, rng)
    return {
        "range": rng.as_dict(),
        "previous_range": previous.as_dict(),
        "currency": project.currency,
        "timezone": project.timezone,
        "generated_at": iso_utc(now_us),
        "buckets": [iso_utc(b) for b in rng.buckets()],
        "today": today.as_dict(),
        "active_sessions": _active_sessions(store, project.id, now_us),
        **_orders_and_revenue(store, project, today),
        "conversion_rate": conversion,
        "traffic": traffic,
    }


# --- live ------------------------------------------------------------------------------------


def _active_sessions(store: EventStore, project_id: int, now_us: int) -> dict[str, Any]:
    last_minute = (now_us - 1) // MINUTE_US
    first_minute = last_minute - LIVE_MINUTES + 1
    rows = store.query(_LIVE_SQL, [now_us - ACTIVE_WINDOW_S * US, project_id,
                                   first_minute * MINUTE_US, now_us])
    series = [0] * LIVE_MINUTES
    active = 0
    for minute, sessions, recent in rows:
        if minute is None:
            active = int(recent)
        else:
            series[int(minute) - first_minute] = int(sessions)
    return {"value": active, "window_seconds": ACTIVE_WINDOW_S, "series": series,
            "series_from": iso_utc(first_minute * MINUTE_US),
            "series_step_seconds": MINUTE_US // US}


# --- today: orders and revenue ---------------------------------------------------------------


class _Today:
    """Today's and last week's same-weekday windows in the project's time zone."""

    def __init__(self, tz: ZoneInfo, now_us: int) -> None:
        now_local = (EPOCH + timedelta(microseconds=now_us)).astimezone(tz)
        self.tz = tz
        self.now_us = now_us
        self.date = now_local.date()
        self.hour = now_local.hour
        self.previous_date = self.date - timedelta(days=7)
        self.start_us = _local_us(self.date, time(0), tz)
        # "The same local time of day", not "the same elapsed time": on a DST change day
        # the two windows differ by an hour, as a shop owner comparing clocks expects.
        self.previous_start_us = _local_us(self.previous_date, time(0), tz)
        self.previous_cut_us = _local_us(self.previous_date, now_local.timetz(), tz)
        # Last week's whole day: previous_series shows what the rest of today may bring.
        self.previous_end_us = _local_us(self.previous_date + timedelta(days=1), time(0), tz)

    def local_hour(self, us: int) -> int:
        return (EPOCH + timedelta(microseconds=us)).astimezone(self.tz).hour

    def as_dict(self) -> dict[str, Any]:
        return {"date": self.date.isoformat(), "from": iso_utc(self.start_us),
                "to": iso_utc(self.now_us),
                "previous_date": self.previous_date.isoformat(),
                "previous_from": iso_utc(self.previous_start_us),
                "previous_to": iso_utc(self.previous_cut_us),
                # Where each of the 24 local hours of the hourly series starts (UTC): on a
                # DST change day they are not one hour apart everywhere.
                "hours": [iso_utc(_local_us(self.date, time(h), self.tz)) for h in range(24)]}


def _local_us(day: date, at: time, tz: ZoneInfo) -> int:
    """Epoch µs of the local wall-clock time ``at`` on ``day`` in ``tz``.

    A time skipped by a DST change (02:30 on a spring-forward day) resolves with the
    offset before the change, per zoneinfo's ``fold=0`` rule.
    """
    local = datetime.combine(day, at.replace(tzinfo=None), tzinfo=tz).replace(fold=at.fold)
    return (local.astimezone(UTC) - EPOCH) // timedelta(microseconds=1)


def _orders_and_revenue(store: EventStore, project: Project, today: _Today) -> dict[str, Any]:
    home = project.currency.upper()
    rows = store.query(_ORDERS_SQL, [
        today.start_us, project.id,
        today.start_us, today.now_us, today.previous_start_us, today.previous_end_us,
        today.previous_cut_us, home])
    orders = [[0] * 24, [0] * 24]  # [period][local hour]
    revenue = [[0.0] * 24, [0.0] * 24]
    totals = [[0, 0.0], [0, 0.0]]  # [period][orders, revenue] up to the cut
    others: list[defaultdict[str, float]] = [defaultdict(float), defaultdict(float)]
    for period, quarter, before_cut, currency, n, value in rows:
        hour = today.local_hour(int(quarter) * QUARTER_US)
        in_home = currency == home
        orders[period][hour] += int(n)
        if in_home:
            revenue[period][hour] += float(value)
        # Today's window already ends at now; last week's totals stop at the same time
        # of day while its series covers the whole day.
        if period == 0 or before_cut:
            totals[period][0] += int(n)
            if in_home:
                totals[period][1] += float(value)
            else:
                others[period][currency] += float(value)
    # Hours still to come today are unknown, not zero.
    future = range(today.hour + 1, 24)
    today_orders: list[int | None] = list(orders[0])
    today_revenue: list[float | None] = [_money(v) for v in revenue[0]]
    for hour in future:
        today_orders[hour] = None
        today_revenue[hour] = None
    return {
        "orders_today": {"value": totals[0][0], "previous": totals[1][0],
                         "series": today_orders, "previous_series": orders[1]},
        "revenue_today": {
            "value": _money(totals[0][1]), "previous": _money(totals[1][1]), "currency": home,
            "series": today_revenue, "previous_series": [_money(v) for v in revenue[1]],
            "other_currencies": {c: _money(v) for c, v in sorted(others[0].items())},
            "previous_other_currencies": {c: _money(v) for c, v in sorted(others[1].items())},
        },
    }


def _money(value: float) -> float:
    return round(value, 6) + 0.0  # + 0.0 turns -0.0 into 0.0


# --- range: conversion and traffic -----------------------------------------------------------


def _conversion_and_traffic(store: EventStore, project_id: int,
                            rng: TimeRange) -> tuple[dict[str, Any], dict[str, Any]]:
    n = len(rng.buckets())
    origin = rng.first_bucket_us() // rng.bucket_us  # bucket number of index 0
    # [period][field][bucket]; period 0 is rng, 1 the previous period shifted onto rng.
    fields = ("events", "active", "sessions", "converted")
    series = [{f: [0] * n for f in fields} for _ in range(2)]
    # Both periods in one statement (one plan, one round trip: ~10 ms less for a day).
    parts, params = [], []
    for period, (start_us, shift_us) in enumerate(((rng.start_us, 0),
                                                   (rng.start_us - rng.span_us, rng.span_us))):
        rollup = hour_aligned(rng.bucket_us, shift_us)
        parts.append(f"SELECT {period} AS period, * FROM "
                     f"({buckets_sql(rng.bucket_us, shift_us, rollup=rollup)})")
        params += buckets_params(project_id, start_us, start_us + rng.span_us, rollup=rollup)
    rows = store.query(" UNION ALL ".join(parts), params, prelude=prelude(project_id))
    for period, b, *counts in rows:
        for field, count in zip(fields, counts[:4], strict=True):
            series[period][field][int(b) - origin] = int(count)
    now, before = series
    # Each session is counted once, in the bucket of its first event: the sums are the
    # period's sessions.
    totals = [{f: sum(p[f]) for f in ("events", "sessions", "converted")} for p in series]
    conversion = {
        "value": _rate(totals[0]["converted"], totals[0]["sessions"]),
        "previous": _rate(totals[1]["converted"], totals[1]["sessions"]),
        "series": [_rate(c, s) for c, s in zip(now["converted"], now["sessions"], strict=True)],
        "previous_series": [_rate(c, s) for c, s in zip(before["converted"],
                                                        before["sessions"], strict=True)],
        "sessions": totals[0]["sessions"],
        "converted_sessions": totals[0]["converted"],
        "previous_sessions": totals[1]["sessions"],
        "previous_converted_sessions": totals[1]["converted"],
    }
    traffic = {
        "events": totals[0]["events"],
        "sessions": totals[0]["sessions"],
        "previous_events": totals[1]["events"],
        "previous_sessions": totals[1]["sessions"],
        "series": {"events": now["events"], "sessions": now["active"],
                   "previous_events": before["events"], "previous_sessions": before["active"]},
    }
    return conversion, traffic


def _rate(part: int, whole: int) -> float | None:
    """``part / whole``, or ``None`` when there is nothing to divide (no sessions)."""
    return part / whole if whole else None
