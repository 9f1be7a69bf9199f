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

from shopwatch.analytics.acquisition import (
    EMAIL,
    PAID,
    SEARCH_HOSTS,
    SOCIAL_HOSTS,
    SOCIAL_MEDIA,
)
from shopwatch.analytics.currency import RATES

BASE: Final = "EUR"
# Amount in a currency -> EUR (the documented fixed rates); NULL for an unknown code.
FX: Final = ("(CASE COALESCE(upper(currency), 'EUR') "
             + " ".join(f"WHEN '{c}' THEN {RATES[BASE] / r!r}" for c, r in RATES.items())
             + " END)")
ENGAGING: Final = ("'add_to_cart', 'begin_checkout', 'add_payment_info', 'purchase', "
                   "'sign_up', 'login', 'search'")
STEPS: Final = ("view_item", "add_to_cart", "begin_checkout", "add_payment_info", "purchase")


def sessions(where: str, period: str = "0", extra: str = "", table: str = "events") -> str:
    """CTEs ``ev0`` (the events of ``table`` matching ``where``, with ``visitor``, a
    ``period`` column and the ``extra`` columns) and ``ev`` (those in a session, with its
    key ``sk``): a session id, else the visitor's visits split after 30 idle minutes,
    within each period."""
    return f"""
ev0 AS (
    SELECT name, ts, id, session_id, COALESCE(anonymous_id, user_id) AS visitor, value,
           currency, transaction_id, {period} AS period{", " + extra if extra else ""}
    FROM {table} WHERE project_id = 1 AND {where}
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


# Acquisition by channel (docs/kpis.md, "Acquisition"): a session's source is its first
# event's; orders once per transaction id (its first purchase event of the period).
def _any(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _hosts(hosts: tuple[str, ...]) -> str:
    return " OR ".join(f"contains(host, '{h}')" for h in hosts)


ACQUISITION: Final = f"""
WITH {sessions(PERIOD, extra="utm_medium, lower(regexp_extract(referrer, "
                              "'^[a-z]+://([^/:]+)', 1)) AS host")},
first AS (
    SELECT sk, lower(arg_min_null(utm_medium, ts)) AS medium, arg_min_null(host, ts) AS host
    FROM ev GROUP BY sk
), channel AS (
    SELECT sk, CASE
        WHEN {_any("medium", PAID)} THEN 'paid'
        WHEN {_any("medium", EMAIL)} THEN 'email'
        WHEN {_any("medium", SOCIAL_MEDIA)} OR {_hosts(SOCIAL_HOSTS)} THEN 'social'
        WHEN medium = 'organic' OR {_hosts(SEARCH_HOSTS)} THEN 'search'
        WHEN medium = 'referral' OR host <> '' THEN 'referral'
        ELSE 'direct' END AS channel
    FROM first
), paid AS (
    SELECT sk, value * {FX} AS amount FROM ev WHERE name = 'purchase'
    QUALIFY transaction_id IS NULL
         OR row_number() OVER (PARTITION BY transaction_id ORDER BY ts, id) = 1
), per AS (
    SELECT sk, count(*) AS orders, sum(amount) AS revenue FROM paid GROUP BY sk
)
SELECT channel, count(*), count(per.sk), COALESCE(sum(orders), 0), COALESCE(sum(revenue), 0)
FROM channel LEFT JOIN per USING (sk) GROUP BY 1 ORDER BY 2 DESC, 1
"""


def acquisition_result(con: duckdb.DuckDBPyConnection, params: dict[str, Any]) -> dict[str, Any]:
    """Per channel: sessions, converted sessions, orders, revenue, from :data:`ACQUISITION`."""
    return {"rows": [[c, n, k, o, round(r, 6)]
                     for c, n, k, o, r in con.execute(ACQUISITION, params).fetchall()]}


# The period's events with their session key (NULL: no session id and no visitor).
_ALL_EVENTS: Final = """all_ev AS (
    SELECT * FROM ev
    UNION ALL BY NAME SELECT * FROM ev0 WHERE session_id IS NULL AND visitor IS NULL
)"""
_ITEM: Final = """it->>'item_id' AS item_id, it->>'item_name' AS item_name,
    it->>'item_category' AS category, COALESCE(TRY_CAST(it->>'quantity' AS DOUBLE), 1) AS qty,
    TRY_CAST(it->>'price' AS DOUBLE) AS price"""

# Products (docs/kpis.md, "Products"), the 50 most viewed.
PRODUCTS: Final = f"""
WITH {sessions(PERIOD, extra="params")}, {_ALL_EVENTS},
lines AS (
    SELECT sk, name, ts, currency, {_ITEM}
    FROM (SELECT *, unnest(CAST(json_extract(params, '$.items') AS JSON[])) AS it
          FROM all_ev
          WHERE name IN ('view_item', 'add_to_cart', 'purchase')
            AND json_extract(params, '$.items') IS NOT NULL
          QUALIFY name <> 'purchase' OR transaction_id IS NULL
               OR row_number() OVER (PARTITION BY name, transaction_id ORDER BY ts, id) = 1)
), by_session AS (
    SELECT item_id, sk, bool_or(name = 'view_item') AS viewed,
           bool_or(name = 'purchase') AS bought
    FROM lines WHERE sk IS NOT NULL AND item_id IS NOT NULL GROUP BY 1, 2
)
SELECT item_id, arg_max(item_name, ts), arg_max(COALESCE(category, '(none)'), ts),
       count(*) FILTER (WHERE name = 'view_item'),
       COALESCE(sum(qty) FILTER (WHERE name = 'add_to_cart'), 0),
       COALESCE(sum(qty) FILTER (WHERE name = 'purchase'), 0),
       COALESCE(sum(qty * price * {FX}) FILTER (WHERE name = 'purchase'), 0),
       (SELECT count(*) FILTER (WHERE viewed) FROM by_session b WHERE b.item_id = l.item_id),
       (SELECT count(*) FILTER (WHERE viewed AND bought) FROM by_session b
        WHERE b.item_id = l.item_id)
FROM lines l WHERE item_id IS NOT NULL
GROUP BY item_id ORDER BY 4 DESC, 6 DESC, 1 LIMIT 50
"""


def products_result(con: duckdb.DuckDBPyConnection, params: dict[str, Any]) -> dict[str, Any]:
    """The 50 most viewed products with every figure, from :data:`PRODUCTS`."""
    return {"rows": [[i, n, c, v, a, u, round(r, 6), vs, ps]
                     for i, n, c, v, a, u, r, vs, ps in con.execute(PRODUCTS, params).fetchall()]}


# Carts (docs/kpis.md, "Carts"): sessions with an add_to_cart; a cart's items are those
# added minus those removed; abandoned without a purchase.
CARTS: Final = f"""
WITH {sessions(PERIOD, extra="page, params")},
s AS (
    SELECT sk, bool_or(name = 'purchase') AS bought, arg_max(name, ts) AS step,
           arg_max(page, ts) AS page
    FROM ev GROUP BY sk HAVING bool_or(name = 'add_to_cart')
), items AS (
    SELECT sk, item_id, any_value(item_name) AS item_name,
           COALESCE(any_value(category), '(none)') AS category,
           sum(CASE WHEN name = 'add_to_cart' THEN qty ELSE -qty END) AS units,
           sum(CASE WHEN name = 'add_to_cart' THEN qty ELSE -qty END * price * {FX}) AS value
    FROM (SELECT sk, name, currency, {_ITEM}
          FROM (SELECT *, unnest(CAST(json_extract(params, '$.items') AS JSON[])) AS it
                FROM ev WHERE name IN ('add_to_cart', 'remove_from_cart')
                  AND json_extract(params, '$.items') IS NOT NULL))
    WHERE sk IN (SELECT sk FROM s)
    GROUP BY sk, item_id HAVING units > 0
), carts AS (
    SELECT s.*, c.units, c.value
    FROM s LEFT JOIN (SELECT sk, sum(units) AS units, sum(value) AS value FROM items
                      GROUP BY sk) c USING (sk)
), left_behind AS (
    SELECT items.* FROM items JOIN s USING (sk) WHERE NOT bought
)
SELECT 'totals', NULL, NULL, NULL, count(*), count(*) FILTER (WHERE NOT bought), avg(units),
       avg(value), sum(value) FILTER (WHERE NOT bought) FROM carts
UNION ALL (SELECT 'item', item_id, any_value(item_name), any_value(category), count(*),
                  sum(units), sum(value), NULL, NULL
           FROM left_behind GROUP BY item_id ORDER BY 6 DESC, 2 LIMIT 20)
UNION ALL (SELECT 'category', category, NULL, NULL, sum(units), sum(value), NULL, NULL, NULL
           FROM left_behind GROUP BY category ORDER BY 5 DESC, 2 LIMIT 20)
UNION ALL (SELECT 'step', step, NULL, NULL, count(*), NULL, NULL, NULL, NULL
           FROM s WHERE NOT bought GROUP BY 2)
UNION ALL (SELECT 'page', page, NULL, NULL, count(*), NULL, NULL, NULL, NULL
           FROM s WHERE NOT bought GROUP BY 2)
"""


def carts_result(con: duckdb.DuckDBPyConnection, params: dict[str, Any]) -> dict[str, Any]:
    """The cart figures, from :data:`CARTS` (parts sorted as the API sorts them)."""
    rows = con.execute(CARTS, params).fetchall()
    part = {k: [r[1:] for r in rows if r[0] == k] for k in ("totals", "item", "category",
                                                             "step", "page")}
    _, _, _, carts, abandoned, units, value, lost = part["totals"][0]

    def money(x: Any) -> float | None:
        return round(float(x), 6) if x is not None else None

    def exits(kind: str) -> list[list[Any]]:
        return [[v, k] for v, _, _, k, *_ in sorted(
            part[kind], key=lambda r: (-r[3], r[0] is None, r[0] or ""))]

    return {
        "carts": carts, "abandoned_carts": abandoned, "avg_cart_units": units,
        "avg_cart_value": money(value), "abandoned_cart_value": money(lost) or 0.0,
        "abandoned_items": [[i, n, c, k, u, money(v)] for i, n, c, k, u, v, _, _ in sorted(
            part["item"], key=lambda r: (-r[4], r[0] is None, r[0] or ""))],
        "abandoned_categories": [[c, u, money(v)] for c, _, _, u, v, *_ in sorted(
            part["category"], key=lambda r: (-r[3], r[0]))],
        "last_steps": exits("step"), "last_pages": exits("page"),
    }


# Time series by day (docs/kpis.md, "Time series"): the period, the previous one and the
# same period last week, each shifted onto the period's buckets.
_WEEK_US: Final = 7 * 86400 * 1_000_000
TIMESERIES: Final = f"""
WITH periods AS (
    SELECT *, 0 AS p, 0 AS shift FROM events WHERE project_id = 1 AND {PERIOD}
    UNION ALL
    SELECT *, 1, $to - $from FROM events WHERE project_id = 1
        AND ts >= make_timestamp(2 * $from - $to) AND ts < make_timestamp($from)
    UNION ALL
    SELECT *, 2, {_WEEK_US} FROM events WHERE project_id = 1
        AND ts >= make_timestamp($from - {_WEEK_US}) AND ts < make_timestamp($to - {_WEEK_US})
), {sessions("true", period="p", extra="shift", table="periods")},
s AS (
    SELECT period, min(ts) AS first, any_value(shift) AS shift,
           bool_or(name = 'purchase') AS bought, bool_or(name = 'add_to_cart') AS carted
    FROM ev GROUP BY period, sk
), o AS (
    SELECT period, ts, shift, value * {FX} AS amount FROM ev0 WHERE name = 'purchase'
    QUALIFY transaction_id IS NULL
         OR row_number() OVER (PARTITION BY period, transaction_id ORDER BY ts, id) = 1
)
SELECT 'e', period, (epoch_us(ts) + shift) // $bucket, count(*), NULL, NULL
FROM ev0 GROUP BY 2, 3
UNION ALL
SELECT 's', period, (epoch_us(first) + shift) // $bucket, count(*),
       count(*) FILTER (WHERE bought), count(*) FILTER (WHERE carted)
FROM s GROUP BY 2, 3
UNION ALL
SELECT 'o', period, (epoch_us(ts) + shift) // $bucket, count(*), sum(amount), NULL
FROM o GROUP BY 2, 3
"""


def timeseries_result(con: duckdb.DuckDBPyConnection, params: dict[str, Any],
                      buckets: int) -> dict[str, Any]:
    """Per period (current, previous, last_week) and bucket: events, sessions, converted
    sessions, carts, orders and revenue, from :data:`TIMESERIES`."""
    first = params["from"] // params["bucket"]
    out = {name: [[0, 0, 0, 0, 0, 0.0] for _ in range(buckets)]
           for name in ("current", "previous", "last_week")}
    names = ("current", "previous", "last_week")
    for kind, period, b, a, c, d in con.execute(TIMESERIES, params).fetchall():
        i = b - first
        if not 0 <= i < buckets:
            continue
        row = out[names[period]][i]
        if kind == "e":
            row[0] = a
        elif kind == "s":
            row[1:4] = [a, c, d]
        else:
            row[4:6] = [a, round(c or 0, 6)]
    return out
