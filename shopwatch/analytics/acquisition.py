"""Acquisition: where sessions come from, and what each channel, source and campaign
brings in orders and revenue (``GET /api/v1/acquisition``).

Contract (docs/kpis.md, "Acquisition"): a session's traffic source is its first event in
the period. Its **channel** is, in this order: ``paid`` (``utm_medium`` is a paid medium:
cpc, ppc, paid, paid_social, display, cpm…), ``email`` (medium email or newsletter),
``social`` (medium social, or a referrer on a social network), ``search`` (medium
organic, or a referrer on a search engine), ``referral`` (any other referrer, or medium
referral), else ``direct``. ``source`` is ``utm_source``, else the referrer's host, else
``(direct)``; ``medium`` and ``campaign`` are the utm values (``(none)`` when absent).
Per row: sessions, converted sessions (with a purchase), conversion rate, orders (one per
transaction id) and revenue of those orders in the project's currency.
"""

from __future__ import annotations

from typing import Any, Final

from shopwatch.analytics.currency import rate_sql
from shopwatch.analytics.rollup import ROLLUP_KEY, orders_sql, prelude, session_states, state_params
from shopwatch.analytics.sessions import TS, sessionized_sql
from shopwatch.analytics.timerange import TimeRange
from shopwatch.errors import BadRequest
from shopwatch.store.base import EventStore
from shopwatch.store.state import Project

PAID: Final = ("cpc", "ppc", "paid", "paidsearch", "paid_search", "paid_social", "paidsocial",
               "display", "cpm", "cpv", "banner", "affiliate")
EMAIL: Final = ("email", "e-mail", "e_mail", "newsletter")
SOCIAL_MEDIA: Final = ("social", "social-network", "social_network", "sm", "social-media")
SOCIAL_HOSTS: Final = ("facebook.", "instagram.", "t.co", "twitter.", "x.com", "linkedin.",
                       "pinterest.", "tiktok.", "youtube.", "reddit.", "snapchat.")
SEARCH_HOSTS: Final = ("google.", "bing.", "duckduckgo.", "yahoo.", "ecosia.", "qwant.",
                       "baidu.", "yandex.", "startpage.", "search.brave.")
GROUPS: Final = ("channel", "source", "medium", "campaign")


def _list(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


def _host_match(column: str, hosts: tuple[str, ...]) -> str:
    return " OR ".join(f"contains({column}, '{h}')" for h in hosts)


_HOST = "lower(regexp_extract(referrer, '^[a-z]+://([^/:]+)', 1))"
_CHANNEL = f"""CASE
    WHEN lower(utm_medium) IN ({_list(PAID)}) THEN 'paid'
    WHEN lower(utm_medium) IN ({_list(EMAIL)}) THEN 'email'
    WHEN lower(utm_medium) IN ({_list(SOCIAL_MEDIA)}) OR {_host_match('host', SOCIAL_HOSTS)}
         THEN 'social'
    WHEN lower(utm_medium) = 'organic' OR {_host_match('host', SEARCH_HOSTS)} THEN 'search'
    WHEN lower(utm_medium) = 'referral' OR (host IS NOT NULL AND host <> '') THEN 'referral'
    ELSE 'direct' END"""


_SOURCES = f"""src AS (
    SELECT sk, {_CHANNEL} AS channel,
        COALESCE(utm_source, NULLIF(host, ''), '(direct)') AS source,
        COALESCE(utm_medium, '(none)') AS medium, COALESCE(utm_campaign, '(none)') AS campaign
    FROM (SELECT *, {{host}} AS host FROM {{first}})
)"""


def _per_source(key: str, rate: str, orders: str) -> str:
    """The end of both queries: orders and revenue per session from ``orders`` (rows of
    ``sk, value, cur``), then sessions, converted sessions, orders and revenue per
    ``key`` of ``src``."""
    return f"""per_session AS (
    SELECT sk, count(*) AS orders, sum(value * {rate}) AS revenue
    FROM {orders} GROUP BY sk
)
SELECT {key}, count(*), count(o.sk), COALESCE(sum(o.orders), 0), COALESCE(sum(o.revenue), 0)
FROM src LEFT JOIN per_session o USING (sk)
GROUP BY 1 ORDER BY 2 DESC, 1
"""


def _raw_sql(key: str, rate: str) -> str:
    """The query from raw events alone (parameters: project_id, from, to)."""
    return f"""
WITH {sessionized_sql()},
first AS (  -- arg_min_null: a first event without utm values means no campaign
    SELECT sk, arg_min_null(utm_source, ts) AS utm_source,
           arg_min_null(utm_medium, ts) AS utm_medium,
           arg_min_null(utm_campaign, ts) AS utm_campaign,
           arg_min_null(referrer, ts) AS referrer
    FROM ev WHERE sk IS NOT NULL GROUP BY sk
), {_SOURCES.format(host=_HOST, first="first")}, orders AS (
    SELECT sk, value, upper(currency) AS cur FROM ev
    WHERE sk IS NOT NULL AND name = 'purchase'
    QUALIFY transaction_id IS NULL
         OR row_number() OVER (PARTITION BY transaction_id ORDER BY ts, id) = 1
), {_per_source(key, rate, "orders")}"""


def _rolled_sql(key: str, rate: str) -> str:
    """The same rows, sessions read through the rollup and orders from its order rows
    (parameters: :func:`rollup.state_params`, project_id twice, from, to; prelude
    :func:`rollup.prelude`). An order's session is its session id's, or for an event
    without one the visitor's session it falls in (from ``ev``, as the sessions)."""
    columns = ("utm_source", "utm_medium", "utm_campaign", "ref_host")
    return f"""
WITH {session_states(columns=columns)},
{_SOURCES.format(host="ref_host", first="st")}, {orders_sql()},
visits AS (  -- purchases without a session id: their visitor session's key
    SELECT id, {ROLLUP_KEY.format("sk")} AS vsk FROM ev
    WHERE session_id IS NULL AND sk IS NOT NULL AND name = 'purchase'
), bought AS (
    SELECT COALESCE(o.sk, v.vsk) AS sk, value, cur
    FROM orders o LEFT JOIN visits v ON v.id = o.id
    WHERE name = 'purchase' AND ts >= {TS} AND ts < {TS} AND COALESCE(o.sk, v.vsk) IS NOT NULL
    QUALIFY transaction_id IS NULL
         OR row_number() OVER (PARTITION BY transaction_id ORDER BY ts, o.id) = 1
), {_per_source(key, rate, "bought")}"""


def acquisition(store: EventStore, project: Project, rng: TimeRange,
                group: str = "channel", *, rollup: bool = True) -> dict[str, Any]:
    """Rows of traffic and sales per ``group`` (channel, source, medium or campaign),
    largest first, with a total. ``rollup=False`` reads raw events only (the same
    result, slower: for the tests)."""
    if group not in GROUPS:
        raise BadRequest(f"by: one of {', '.join(GROUPS)}")
    rate = rate_sql(project.currency)
    window = [project.id, rng.start_us, rng.end_us]
    if rollup:
        found = store.query(_rolled_sql(group, rate),
                            [*state_params(*window), project.id, project.id,
                             rng.start_us, rng.end_us], prelude=prelude(project.id))
    else:
        found = store.query(_raw_sql(group, rate), window)
    rows = []
    totals = {"sessions": 0, "converted_sessions": 0, "orders": 0, "revenue": 0.0}
    for value, sessions, converted, orders, revenue in found:
        row = {group: value, "sessions": int(sessions), "converted_sessions": int(converted),
               "conversion_rate": converted / sessions if sessions else None,
               "orders": int(orders), "revenue": round(float(revenue), 6)}
        rows.append(row)
        for k in totals:
            totals[k] += row[k]
    totals["revenue"] = round(totals["revenue"], 6)
    return {"range": rng.as_dict(), "currency": project.currency, "by": group, "rows": rows,
            "total": {**totals, "conversion_rate": (totals["converted_sessions"]
                                                    / totals["sessions"])
                      if totals["sessions"] else None}}


def add_spend(result: dict[str, Any], spend: list[Any], currency: str) -> dict[str, Any]:
    """Join uploaded marketing spend (:mod:`shopwatch.spend` rows of the period's days) to
    an acquisition result by campaign (``utm_campaign``) or source (the spend's channel,
    matched to ``utm_source``): per row ``cost``, ``cost_per_order`` and ``roas``
    (revenue ÷ cost); in ``total`` the whole spend, its ROAS and ``wasted_spend`` — what
    was spent on campaigns that brought no order in the period. Costs are converted to
    ``currency`` with the documented rates; a cost in a currency without a rate is left
    out and listed in ``unconverted_spend``."""
    from shopwatch.analytics.currency import RATES

    base_rate = RATES.get(currency.upper())
    by = result["by"]
    per_key: dict[str, float] = {}
    per_campaign: dict[str, float] = {}
    unconverted: dict[str, float] = {}
    for row in spend:
        rate = RATES.get(row.currency)
        if rate is None or base_rate is None:
            unconverted[row.currency] = unconverted.get(row.currency, 0.0) + row.cost
            continue
        cost = row.cost * base_rate / rate
        per_campaign[row.campaign] = per_campaign.get(row.campaign, 0.0) + cost
        key = {"campaign": row.campaign, "source": row.channel}.get(by)
        if key is not None:
            per_key[key] = per_key.get(key, 0.0) + cost
    orders_by_campaign: dict[str, int] = {}
    if by == "campaign":
        orders_by_campaign = {r["campaign"]: r["orders"] for r in result["rows"]}
    if by in ("campaign", "source"):
        seen = {str(r[by]).lower() if by == "source" else r[by] for r in result["rows"]}
        for key in per_key:
            if key not in seen:  # spend without a single visit: still worth showing
                result["rows"].append({by: key, "sessions": 0, "converted_sessions": 0,
                                       "conversion_rate": None, "orders": 0, "revenue": 0.0})
        for r in result["rows"]:
            key = str(r[by]).lower() if by == "source" else r[by]
            cost = per_key.get(key)
            r["cost"] = round(cost, 6) if cost is not None else None
            r["cost_per_order"] = round(cost / r["orders"], 6) if cost and r["orders"] else None
            r["roas"] = round(r["revenue"] / cost, 6) if cost else None
    total_cost = sum(per_campaign.values())
    if not orders_by_campaign:
        # Orders per campaign are needed for wasted spend whatever the grouping.
        orders_by_campaign = result.get("_orders_by_campaign", {})
    wasted = sum(c for k, c in per_campaign.items() if orders_by_campaign.get(k, 0) == 0)
    total = result["total"]
    total["cost"] = round(total_cost, 6)
    total["roas"] = round(total["revenue"] / total_cost, 6) if total_cost else None
    total["cost_per_order"] = (round(total_cost / total["orders"], 6)
                               if total_cost and total["orders"] else None)
    total["wasted_spend"] = round(wasted, 6)
    if unconverted:
        result["unconverted_spend"] = unconverted
    result.pop("_orders_by_campaign", None)
    return result
