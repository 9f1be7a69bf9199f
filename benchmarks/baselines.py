"""Hand-written DuckDB queries giving a dashboard call's result from raw events.

Issue 5's bar compares each dashboard API call with "the same result computed by one
hand-written DuckDB query". These are those queries: one statement each, written from
the definitions in docs/kpis.md and docs/api.md (not from Shopwatch's code), reading
only the ``events`` table of project 1 whose currency is EUR and time zone UTC (what
``benchmarks/queries.py`` generates). Each ``*_result`` function runs its query and
returns the figures the API call returns, so the benchmark can check that both agree.

Named parameters: ``$from`` and ``$to`` (epoch µs) for the period; the overview also
takes ``$now``, ``$bucket`` (µs) and the start of today and of the same weekday last
week.
"""

from __future__ import annotations

from typing import Any, Final

import duckdb

from shopwatch.analytics.currency import RATES

BASE: Final = "EUR"
# Amount in a currency -> EUR (the documented fixed rates); NULL for an unknown code.
FX: Final = ("(CASE COALESCE(upper(currency), 'EUR') "
             + " ".join(f"WHEN '{c}' THEN {RATES[BASE] / r!r}" for c, r in RATES.items())
             + " END)")
ENGAGING: Final = ("'add_to_cart', 'begin_checkout', 'add_payment_info', 'purchase', "
                   "'sign_up', 'login', 'search'")
STEPS: Final = ("view_item", "add_to_cart", "begin_checkout", "add_payment_info", "purchase")


def sessions(where: str, period: str = "0") -> str:
    """CTEs ``ev0`` (the events matching ``where``, with ``visitor`` and a ``period``
    column) and ``ev`` (those in a session, with its key ``sk``): a session id, else the
    visitor's visits split after 30 idle minutes, within each period."""
    return f"""
ev0 AS (
    SELECT name, ts, id, session_id, COALESCE(anonymous_id, user_id) AS visitor, value,
           currency, transaction_id, {period} AS period
    FROM events WHERE project_id = 1 AND {where}
), ev AS (
    SELECT *, 's:' || session_id AS sk FROM ev0 WHERE session_id IS NOT NULL
    UNION ALL
    SELECT * EXCLUDE (gap), 'v:' || visitor || ':' || sum(gap) OVER (
        PARTITION BY period, visitor ORDER BY ts, id) AS sk
    FROM (SELECT *, (lag(ts) OVER w IS NULL
                     OR ts - lag(ts) OVER w > INTERVAL 30 MINUTE)::INTEGER AS gap
          FROM ev0 WHERE session_id IS NULL AND visitor IS NOT NULL
          WINDOW w AS (PARTITION BY period, visitor ORDER BY ts, id))
)"""


PERIOD: Final = "ts >= make_timestamp($from) AND ts < make_timestamp($to)"

KPIS: Final = f"""
WITH {sessions(PERIOD)},
s AS (
    SELECT count(*) FILTER (WHERE name = 'page_view') AS pages,
           epoch(max(ts)) - epoch(min(ts)) AS seconds,
           epoch(max(ts) FILTER (WHERE name = 'page_view'))
             - epoch(min(ts) FILTER (WHERE name = 'page_view')) AS page_span,
           bool_or(name IN ({ENGAGING})) AS engaging,
           bool_or(name = 'add_to_cart') AS carted,
           bool_or(name = 'begin_checkout') AS checked_out,
           bool_or(name = 'purchase') AS bought,
           sum(CASE name WHEN 'add_to_cart' THEN value WHEN 'remove_from_cart' THEN -value
               END * {FX}) AS cart_value
    FROM ev GROUP BY sk
), sk AS (
    SELECT count(*) AS sessions, sum(pages) AS pages, sum(seconds) AS seconds,
           count(*) FILTER (WHERE NOT engaging AND pages < 2 AND seconds < 10) AS bounces,
           sum(page_span) FILTER (WHERE pages > 1) AS gap_seconds,
           sum(pages - 1) FILTER (WHERE pages > 1) AS gaps,
           count(*) FILTER (WHERE bought) AS converted, count(*) FILTER (WHERE carted) AS carts,
           count(*) FILTER (WHERE carted AND NOT bought) AS abandoned,
           sum(cart_value) FILTER (WHERE carted AND NOT bought) AS abandoned_value,
           count(*) FILTER (WHERE checked_out) AS checkouts,
           count(*) FILTER (WHERE checked_out AND NOT bought) AS checkouts_abandoned
    FROM s
), v AS (
    SELECT DISTINCT visitor FROM ev0 WHERE visitor IS NOT NULL
), seen AS (
    SELECT DISTINCT COALESCE(anonymous_id, user_id) AS visitor FROM events
    WHERE project_id = 1 AND ts < make_timestamp($from)
      AND COALESCE(anonymous_id, user_id) IN (SELECT visitor FROM v)
), vk AS (
    SELECT count(*) AS visitors,
           count(*) FILTER (WHERE visitor NOT IN (SELECT visitor FROM seen)) AS new_visitors
    FROM v
), p AS (
    SELECT ts, id, transaction_id, value, currency, params FROM events
    WHERE project_id = 1 AND name = 'purchase' AND {PERIOD}
), o AS (
    SELECT value, currency, params FROM p WHERE transaction_id IS NULL
    UNION ALL
    SELECT arg_min(value, (ts, id)), arg_min(currency, (ts, id)), arg_min(params, (ts, id))
    FROM p WHERE transaction_id IS NOT NULL GROUP BY transaction_id
), ok AS (
    SELECT count(*) AS orders, sum(value * {FX}) AS gross,
           count(*) FILTER (WHERE {FX} IS NOT NULL) AS valued,
           sum(list_sum(list_transform(
               CAST(COALESCE(json_extract(params, '$.items'), '[]') AS JSON[]),
               lambda x: COALESCE(TRY_CAST(x->>'quantity' AS DOUBLE), 1)))) AS items
    FROM o
), r AS (
    SELECT name, transaction_id, value, currency FROM events
    WHERE project_id = 1 AND name IN ('refund', 'order_cancelled') AND {PERIOD}
), ro AS (  -- the orders refunded or cancelled, placed at any time
    SELECT transaction_id, arg_min(value, (ts, id)) AS value,
           arg_min(currency, (ts, id)) AS currency
    FROM events
    WHERE project_id = 1 AND name = 'purchase'
      AND transaction_id IN (SELECT transaction_id FROM r)
    GROUP BY 1
), rk AS (
    SELECT count(*) FILTER (WHERE name = 'refund') AS refund_count,
           sum(amount) FILTER (WHERE name = 'refund') AS refunds,
           count(*) FILTER (WHERE name = 'order_cancelled') AS cancellation_count,
           sum(amount) FILTER (WHERE name = 'order_cancelled') AS cancellations
    FROM (SELECT r.name,
                 CASE WHEN r.name = 'refund' AND r.value IS NOT NULL
                          THEN r.value * {FX.replace("currency", "r.currency")}
                      WHEN ro.transaction_id IS NOT NULL
                          THEN ro.value * {FX.replace("currency", "ro.currency")}
                      ELSE r.value * {FX.replace("currency", "r.currency")} END AS amount
          FROM r LEFT JOIN ro USING (transaction_id))
)
SELECT (SELECT count(*) FROM ev0) AS events, * FROM sk, vk, ok, rk
"""


def kpis_result(con: duckdb.DuckDBPyConnection, params: dict[str, Any]) -> dict[str, Any]:
    """The KPIs (``/api/v1/kpis`` keys) of the period, from :data:`KPIS`."""
    cursor = con.execute(KPIS, params)
    row = dict(zip([d[0] for d in cursor.description], cursor.fetchone() or (), strict=True))

    def ratio(a: Any, b: Any) -> float | None:
        return float(a or 0) / float(b) if b else None

    gross = float(row["gross"] or 0)
    refunds, cancellations = float(row["refunds"] or 0), float(row["cancellations"] or 0)
    sessions_ = row["sessions"]
    return {
        "events": row["events"], "sessions": sessions_, "visitors": row["visitors"],
        "new_visitors": row["new_visitors"],
        "bounce_rate": ratio(row["bounces"], sessions_),
        "pages_per_session": ratio(row["pages"], sessions_),
        "avg_session_duration_s": ratio(row["seconds"], sessions_),
        "avg_time_on_page_s": ratio(row["gap_seconds"], row["gaps"]),
        "orders": row["orders"], "items_per_order": ratio(row["items"], row["orders"]),
        "gross_revenue": gross, "refunds": refunds, "refund_count": row["refund_count"],
        "cancellations": cancellations, "cancellation_count": row["cancellation_count"],
        "revenue": gross - refunds - cancellations, "aov": ratio(gross, row["valued"]),
        "conversion_rate": ratio(row["converted"], sessions_),
        "carts": row["carts"], "abandoned_carts": row["abandoned"],
        "cart_abandonment_rate": ratio(row["abandoned"], row["carts"]),
        "abandoned_cart_value": float(row["abandoned_value"] or 0),
        "checkouts": row["checkouts"],
        "checkout_abandonment_rate": ratio(row["checkouts_abandoned"], row["checkouts"]),
    }


# Step i: the first event of its name at or after step i-1 was reached (docs/kpis.md).
_REACHED: Final = ",\n           ".join(
    ["list_min(a1) AS t1"] + [f"list_min(list_filter(a{i}, lambda x: x >= t{i - 1})) AS t{i}"
                              for i in range(2, len(STEPS) + 1)])
FUNNEL: Final = f"""
WITH {sessions(PERIOD)},
s AS (
    SELECT {", ".join(f"list(ts) FILTER (WHERE name = '{n}') AS a{i}"
                      for i, n in enumerate(STEPS, start=1))}
    FROM ev WHERE name IN ({", ".join(repr(n) for n in STEPS)}) GROUP BY sk
), t AS (
    SELECT {_REACHED} FROM s
)
SELECT {", ".join(f"count(t{i})" for i in range(1, len(STEPS) + 1))},
       {", ".join(f"median(epoch(t{i}) - epoch(t{i - 1}))" for i in range(2, len(STEPS) + 1))}
FROM t
"""


def funnel_result(con: duckdb.DuckDBPyConnection, params: dict[str, Any]) -> dict[str, Any]:
    """Per step: ``count`` and ``median_seconds`` (the default steps), from :data:`FUNNEL`."""
    row = con.execute(FUNNEL, params).fetchone() or ()
    n = len(STEPS)
    return {"counts": list(row[:n]), "median_seconds": [None, *row[n:]]}


# Live (last hour per minute, last 5 minutes), orders today and the same weekday last week
# per hour, and conversion and traffic per bucket of the period and the previous one
# (shifted by the span onto the period's buckets), as rows (part, period, bucket, a, b).
OVERVIEW: Final = f"""
WITH {sessions("ts >= make_timestamp($from - ($to - $from)) AND ts < make_timestamp($to)",
               "ts < make_timestamp($from)")},
parts AS (
    SELECT period, sk,
           (epoch_us(ts) + CASE WHEN period THEN $to - $from ELSE 0 END) // $bucket AS b,
           count(*) AS n, min(ts) AS first, bool_or(name = 'purchase') AS bought
    FROM ev GROUP BY ALL
), live AS (
    SELECT COALESCE('s:' || session_id, 'v:' || COALESCE(anonymous_id, user_id)) AS sk,
           ts, epoch_us(ts) // 60000000 AS m
    FROM events
    WHERE project_id = 1 AND ts >= make_timestamp(($now - 1) // 60000000 * 60000000 - 3540000000)
      AND ts < make_timestamp($now)
      AND COALESCE(session_id, anonymous_id, user_id) IS NOT NULL
), buys AS (
    SELECT ts >= make_timestamp($today) AS today, ts, id, transaction_id, value, currency
    FROM events
    WHERE project_id = 1 AND name = 'purchase'
      AND ((ts >= make_timestamp($today) AND ts < make_timestamp($now))
           OR (ts >= make_timestamp($last_week) AND ts < make_timestamp($last_week + 86400000000)))
), orders AS (
    SELECT * FROM buys
    QUALIFY transaction_id IS NULL
         OR row_number() OVER (PARTITION BY today, transaction_id ORDER BY ts, id) = 1
)
SELECT 'events', period, (epoch_us(ts) + CASE WHEN period THEN $to - $from ELSE 0 END)
       // $bucket, count(*), NULL FROM ev0 GROUP BY 2, 3
UNION ALL SELECT 'active', period, b, count(DISTINCT sk), NULL FROM parts GROUP BY 2, 3
UNION ALL SELECT 'sessions', period, b, count(*), count(*) FILTER (WHERE bought) FROM (
    SELECT period, arg_min(b, first) AS b, bool_or(bought) AS bought FROM parts GROUP BY 1, sk)
    GROUP BY 2, 3
UNION ALL SELECT 'live', false, m, count(DISTINCT sk), NULL FROM live GROUP BY 3
UNION ALL SELECT 'active_now', false, NULL, count(DISTINCT sk), NULL FROM live
    WHERE ts >= make_timestamp($now - 300000000)
UNION ALL SELECT 'orders', NOT today, epoch_us(ts) // 3600000000, count(*),
    sum(value) FILTER (WHERE COALESCE(upper(currency), 'EUR') = 'EUR')
    FROM orders GROUP BY 2, 3
"""


def overview_result(con: duckdb.DuckDBPyConnection, params: dict[str, Any],
                    buckets: int) -> dict[str, Any]:
    """The overview's conversion and traffic over the period (what depends on the
    period alone, not on the moment of the call), from :data:`OVERVIEW`."""
    origin = params["from"] // params["bucket"]
    series: dict[tuple[str, bool], list[int]] = {}
    converted: dict[bool, list[int]] = {False: [0] * buckets, True: [0] * buckets}
    for part, period, b, a, c in con.execute(OVERVIEW, params).fetchall():
        if part in ("events", "active", "sessions"):
            series.setdefault((part, period), [0] * buckets)[b - origin] = a
            if part == "sessions":
                converted[period][b - origin] = c
    empty = [0] * buckets

    def rates(period: bool) -> list[float | None]:
        return [c / s if s else None for c, s in zip(
            converted[period], series.get(("sessions", period), empty), strict=True)]

    return {
        "sessions": sum(series.get(("sessions", False), empty)),
        "converted_sessions": sum(converted[False]),
        "previous_sessions": sum(series.get(("sessions", True), empty)),
        "previous_converted_sessions": sum(converted[True]),
        "series": rates(False), "previous_series": rates(True),
        "traffic": {"events": series.get(("events", False), empty),
                    "sessions": series.get(("active", False), empty),
                    "previous_events": series.get(("events", True), empty),
                    "previous_sessions": series.get(("active", True), empty)},
    }
