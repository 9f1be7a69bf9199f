"""KPIs over time (``GET /api/v1/timeseries``): per minute, hour or day, with the previous
period and the same weekday last week.

Contract (docs/kpis.md, "Time series"): buckets are aligned to whole minutes, hours or
UTC days; per bucket: ``events``, ``sessions`` (counted in the bucket of their first event
in the period, so buckets add up to the period's sessions), ``converted_sessions``,
``carts`` (sessions with an ``add_to_cart``), ``orders`` (one per transaction id, in the
bucket of the order's first purchase event), ``revenue`` (gross, in the project's
currency), and the ratios ``conversion_rate`` and ``aov``. ``previous`` is the same for
the period just before, bucket by bucket; ``last_week`` for the same period seven days
earlier.
"""

from __future__ import annotations

from typing import Any, Final

from shopwatch.analytics.currency import rate_sql
from shopwatch.analytics.rollup import (
    buckets_ctes,
    buckets_params,
    hour_aligned,
    orders_sql,
    prelude,
    session_states,
    state_params,
)
from shopwatch.analytics.sessions import TS
from shopwatch.analytics.timerange import TimeRange, iso_utc
from shopwatch.errors import BadRequest
from shopwatch.store.base import EventStore
from shopwatch.store.state import Project

INTERVALS: Final = {"minute": 60, "hour": 3600, "day": 86400}
MAX_BUCKETS: Final = 2000
WEEK_US: Final = 7 * 86400 * 1_000_000
FIELDS: Final = ("events", "sessions", "converted_sessions", "carts", "orders", "revenue")


def _sql(base: str, bucket_us: int, rollup: bool) -> str:
    """Parameters: :func:`state_params`, then ``project_id, from_us, to_us`` twice."""
    return f"""
WITH {session_states(rollup=rollup, columns=("bought", "carted"))},
s AS (SELECT epoch_us(first_ts) // {bucket_us} AS b, bought, carted FROM st),
o AS (
    SELECT epoch_us(ts) // {bucket_us} AS b, value, upper(currency) AS cur FROM events
    WHERE project_id = ? AND ts >= {TS} AND ts < {TS} AND name = 'purchase'
    QUALIFY transaction_id IS NULL
         OR row_number() OVER (PARTITION BY transaction_id ORDER BY ts, id) = 1
), e AS (
    SELECT epoch_us(ts) // {bucket_us} AS b, count(*) AS n FROM events
    WHERE project_id = ? AND ts >= {TS} AND ts < {TS} GROUP BY 1
)
SELECT 'e', b, n, NULL, NULL FROM e
UNION ALL SELECT 's', b, count(*), count(*) FILTER (WHERE bought),
                 count(*) FILTER (WHERE carted) FROM s GROUP BY b
UNION ALL SELECT 'o', b, count(*), sum(value * {rate_sql(base)}), NULL FROM o GROUP BY b
"""


def _rolled_sql(base: str, bucket_us: int) -> str:
    """The same rows through the rollup, for buckets of whole hours: sessions and events
    per bucket from :func:`rollup.buckets_ctes`, orders from the order rows. Parameters:
    :func:`rollup.buckets_params`, then ``project_id`` twice, ``from_us, to_us``;
    prelude: :func:`rollup.prelude`."""
    return f"""
WITH {buckets_ctes(bucket_us)}, {orders_sql()},
o AS (
    SELECT epoch_us(ts) // {bucket_us} AS b, value, cur FROM orders
    WHERE name = 'purchase' AND ts >= {TS} AND ts < {TS}
    QUALIFY transaction_id IS NULL
         OR row_number() OVER (PARTITION BY transaction_id ORDER BY ts, id) = 1
)
SELECT 'e', b, events, NULL, NULL FROM buckets
UNION ALL SELECT 's', b, sessions, converted, carted FROM buckets
UNION ALL SELECT 'o', b, count(*), sum(value * {rate_sql(base)}), NULL FROM o GROUP BY b
"""


def timeseries(store: EventStore, project: Project, rng: TimeRange,
               interval: str = "hour", *, rollup: bool = True) -> dict[str, Any]:
    """Per-bucket KPIs of ``rng``, its previous period and the same period last week
    (sessions through the rollup unless ``rollup=False``: the same result)."""
    if interval not in INTERVALS:
        raise BadRequest(f"interval: one of {', '.join(INTERVALS)}")
    bucket_us = INTERVALS[interval] * 1_000_000
    first = rng.start_us // bucket_us
    count = -(-rng.end_us // bucket_us) - first
    if count > MAX_BUCKETS:
        raise BadRequest(f"interval: {count} {interval}s in this period; at most "
                         f"{MAX_BUCKETS} (choose a longer interval or a shorter period)")
    # Buckets of whole hours read the rollup's hourly sums; minutes read session states.
    hourly = rollup and hour_aligned(bucket_us)
    sql = (_rolled_sql(project.currency, bucket_us) if hourly
           else _sql(project.currency, bucket_us, rollup))

    def series(start_us: int, end_us: int, shift_us: int) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = [dict.fromkeys(FIELDS, 0) for _ in range(count)]
        window = [project.id, start_us, end_us]
        params = ([*buckets_params(*window), project.id, project.id, start_us, end_us]
                  if hourly else [*state_params(*window, rollup=rollup), *window, *window])
        for kind, b, a, c, d in store.query(sql, params,
                                            prelude=prelude(project.id) if rollup else None):
            # A shifted period's event lands at the same offset: bucket + shift.
            i = (int(b) * bucket_us + shift_us) // bucket_us - first
            if not 0 <= i < count:
                continue
            row = rows[i]
            if kind == "e":
                row["events"] = int(a)
            elif kind == "s":
                row.update(sessions=int(a), converted_sessions=int(c), carts=int(d))
            else:
                row.update(orders=int(a), revenue=round(float(c or 0), 6))
        for row in rows:
            row["conversion_rate"] = (row["converted_sessions"] / row["sessions"]
                                      if row["sessions"] else None)
            row["aov"] = round(row["revenue"] / row["orders"], 6) if row["orders"] else None
        return rows

    span = rng.end_us - rng.start_us
    # Shifts are whole buckets only when the span is; the previous period's events land
    # in the bucket at the same offset from its start.
    return {
        "range": rng.as_dict(), "interval": interval, "currency": project.currency,
        "buckets": [iso_utc((first + i) * bucket_us) for i in range(count)],
        "current": series(rng.start_us, rng.end_us, 0),
        "previous": series(rng.start_us - span, rng.end_us - span, span),
        "last_week": series(rng.start_us - WEEK_US, rng.end_us - WEEK_US, WEEK_US),
    }
