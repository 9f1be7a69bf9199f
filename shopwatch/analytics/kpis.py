"""The commerce KPIs of a period (``GET /api/v1/kpis``); definitions in docs/kpis.md.

All computed from stored events of one project in ``[from, to)`` by event time, in a few
grouped queries. Sessions as in :mod:`shopwatch.analytics.sessions`. Money is converted
to the project's currency with :mod:`shopwatch.analytics.currency`; amounts in a
currency without a rate are summed apart in ``unconverted`` and left out of revenue.
"""

from __future__ import annotations

from typing import Any, Final

from shopwatch.analytics.currency import RATES, rate_sql
from shopwatch.analytics.rollup import (
    TOTAL_NAMES,
    orders_sql,
    prelude,
    session_totals,
    totals_params,
    visitors_params,
    visitors_sql,
)
from shopwatch.analytics.sessions import TS
from shopwatch.analytics.timerange import TimeRange
from shopwatch.store.base import EventStore
from shopwatch.store.state import Project

# In one statement (one plan, the order rows read once per use): the purchases of the
# period, one per transaction id (the first one), with items, as rows ('order', currency,
# count, value, items, rate); and the refunds and cancellations of the period, as rows
# (name, currency, count, value, NULL, rate). A refund without a value refunds the whole
# order; a cancellation takes back the order's value (its own value if the order is not
# found). Parameters: orders_sql's, then from, to three times (purchases twice, returns),
# the project's currency twice.
_ORDERS_SQL: Final = f"""
WITH {{orders}}, p AS (
    SELECT value, cur, items FROM orders
    WHERE name = 'purchase' AND ts >= {TS} AND ts < {TS} AND transaction_id IS NULL
    UNION ALL
    SELECT UNNEST(arg_min({{{{'value': value, 'cur': cur, 'items': items}}}}, (ts, id)))
    FROM orders
    WHERE name = 'purchase' AND ts >= {TS} AND ts < {TS} AND transaction_id IS NOT NULL
    GROUP BY transaction_id
), r AS (
    SELECT name, transaction_id, value, cur FROM orders
    WHERE name IN ('refund', 'order_cancelled') AND ts >= {TS} AND ts < {TS}
), o AS (
    SELECT transaction_id, arg_min(value, ts) AS value, arg_min(cur, ts) AS cur
    FROM orders
    WHERE name = 'purchase' AND transaction_id IN (SELECT transaction_id FROM r)
    GROUP BY transaction_id
), m AS (
    SELECT r.name,
        CASE WHEN r.name = 'refund' AND r.value IS NOT NULL THEN r.value
             ELSE COALESCE(o.value, r.value) END AS value,
        CASE WHEN r.name = 'refund' AND r.value IS NOT NULL THEN r.cur
             ELSE COALESCE(o.cur, r.cur) END AS cur
    FROM r LEFT JOIN o USING (transaction_id)
)
SELECT 'order', COALESCE(cur, ?) AS cur, count(*), COALESCE(sum(value), 0),
       COALESCE(sum(items), 0), any_value({{rate}})
FROM p GROUP BY 2
UNION ALL
SELECT name, COALESCE(cur, ?) AS cur, count(*), COALESCE(sum(value), 0), NULL,
       any_value({{rate}})
FROM m GROUP BY 1, 2
"""

# Visitors of the period, and whether their first event ever came before it.
_VISITORS_SQL: Final = f"""
WITH v AS (
    SELECT DISTINCT COALESCE(anonymous_id, user_id) AS visitor FROM events
    WHERE project_id = ? AND ts >= {TS} AND ts < {TS}
      AND COALESCE(anonymous_id, user_id) IS NOT NULL
), first AS (
    SELECT COALESCE(anonymous_id, user_id) AS visitor, min(ts) AS first_ts FROM events
    WHERE project_id = ? AND ts < {TS} AND COALESCE(anonymous_id, user_id) IN (
        SELECT visitor FROM v)
    GROUP BY 1
)
SELECT count(*), count(*) FILTER (WHERE first_ts >= {TS}) FROM first
"""


def _ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def _money(value: float) -> float:
    return round(value, 6)


def kpis(store: EventStore, project: Project, rng: TimeRange, *,
         rollup: bool = True) -> dict[str, Any]:
    """Every KPI of docs/kpis.md for ``project`` over ``rng`` (see the module docstring).

    ``rollup=False`` reads raw events only (the same result, slower: for the tests).
    """
    base = project.currency.upper()
    rate = rate_sql(base)
    window = [project.id, rng.start_us, rng.end_us]
    t = dict(zip(
        (*TOTAL_NAMES, "unsessioned"),
        store.query(session_totals(rollup=rollup),
                    totals_params(project.id, rng.start_us, rng.end_us, rollup=rollup),
                    prelude=prelude(project.id) if rollup else None)[0],
        strict=True))
    sessions = int(t["sessions"] or 0)
    # Cart value is kept in EUR and, apart, in the project's own currency (amounts sent
    # without one); without a rate for the project's currency it cannot be given.
    eur_rate = RATES.get(base)
    abandoned_value = (float(t["abandoned_eur"] or 0) * eur_rate + float(t["abandoned_own"] or 0)
                       if eur_rate is not None else 0.0)

    unconverted: dict[str, float] = {}

    def convert(rows: list[tuple[Any, ...]], amount: int, factor: int) -> float:
        total = 0.0
        for row in rows:
            if row[factor] is None:
                unconverted[row[0]] = _money(unconverted.get(row[0], 0.0) + row[amount])
            else:
                total += row[amount] * row[factor]
        return total

    source = [project.id] * (2 if rollup else 1)
    period = [rng.start_us, rng.end_us]
    rows = store.query(_ORDERS_SQL.format(orders=orders_sql(rollup=rollup), rate=rate),
                       [*source, *period, *period, *period, base, base])
    order_rows = [r[1:] for r in rows if r[0] == "order"]  # cur, count, value, items, rate
    return_rows = [(r[0], r[1], r[2], r[3], r[5]) for r in rows if r[0] != "order"]
    order_count = sum(int(r[1]) for r in order_rows)
    valued_orders = sum(int(r[1]) for r in order_rows if r[4] is not None)
    items = sum(float(r[3]) for r in order_rows)
    gross = convert(order_rows, 2, 4)
    refunds = convert([(r[1], r[3], r[4]) for r in return_rows if r[0] == "refund"], 1, 2)
    cancels = convert([(r[1], r[3], r[4]) for r in return_rows if r[0] != "refund"], 1, 2)
    refund_count = sum(int(r[2]) for r in return_rows if r[0] == "refund")
    cancel_count = sum(int(r[2]) for r in return_rows if r[0] != "refund")
    visitors, new_visitors = (
        store.query(visitors_sql(), visitors_params(project.id, rng.start_us, rng.end_us),
                    prelude=prelude(project.id))
        if rollup else
        store.query(_VISITORS_SQL, [*window, project.id, rng.end_us, rng.start_us]))[0]
    net = gross - refunds - cancels
    return {
        "range": rng.as_dict(), "currency": base,
        "events": int(t["events"] or 0) + int(t["unsessioned"]), "sessions": sessions,
        "visitors": int(visitors), "new_visitors": int(new_visitors),
        "returning_visitors": int(visitors) - int(new_visitors),
        "bounce_rate": _ratio(t["bounces"], sessions),
        "pages_per_session": _ratio(t["pages"], sessions),
        "avg_session_duration_s": _ratio(t["duration_s"], sessions),
        "avg_time_on_page_s": _ratio(t["page_gaps_s"], t["page_gaps"] or 0),
        "orders": order_count, "items_per_order": _ratio(items, order_count),
        "gross_revenue": _money(gross), "refunds": _money(refunds), "refund_count": refund_count,
        "cancellations": _money(cancels), "cancellation_count": cancel_count,
        "revenue": _money(net),
        "aov": _money(gross / valued_orders) if valued_orders else None,
        "conversion_rate": _ratio(t["converted"], sessions),
        "converted_sessions": int(t["converted"]),
        "carts": int(t["carts"]), "abandoned_carts": int(t["abandoned"]),
        "cart_abandonment_rate": _ratio(t["abandoned"], t["carts"]),
        "abandoned_cart_value": _money(abandoned_value),
        "checkouts": int(t["checkouts"]),
        "checkout_abandonment_rate": _ratio(t["checkouts_abandoned"], t["checkouts"]),
        "unconverted": unconverted,
    }
