"""Carts: what goes into them, what is left behind, and where shoppers leave
(``GET /api/v1/carts``).

Contract (docs/kpis.md, "Carts"): a session's cart is the items of its ``add_to_cart``
events minus those of its ``remove_from_cart`` events (by ``item_id`` and quantity, a
missing quantity being 1), valued at the items' prices in the project's currency. A cart
is *abandoned* when its session has no ``purchase``. Reported: carts, average cart size
(units) and value, the items and categories most left in abandoned carts, and, for
abandoned carts, the last page and the last step (event name) of the session.
"""

from __future__ import annotations

from typing import Any, Final

from shopwatch.analytics.currency import rate_sql
from shopwatch.analytics.rollup import (
    CART_LINES,
    CART_SUMS,
    IN_STALE,
    ROLLUP_KEY,
    STALE_HI,
    STALE_LO,
    cart_value_sql,
    prelude,
    session_states,
    state_params,
    whole_hours,
)
from shopwatch.analytics.sessions import TS, sessionized_sql
from shopwatch.analytics.timerange import TimeRange
from shopwatch.store.base import EventStore
from shopwatch.store.state import Project

# Only cart events' params are read: carrying every event's JSON through the
# sessionised events would copy the period's params whole.
_CART_PARAMS = ("CASE WHEN name IN ('add_to_cart', 'remove_from_cart') THEN params END "
                "AS params")


_RAW: Final = f"""
WITH {sessionized_sql(_CART_PARAMS)},
s AS (
    SELECT sk, bool_or(name = 'purchase') AS bought,
           arg_max(name, ts) AS last_step, arg_max(page, ts) AS last_page
    FROM ev WHERE sk IS NOT NULL GROUP BY sk HAVING bool_or(name = 'add_to_cart')
), lines AS (
    SELECT sk, upper(currency) AS cur,
           CASE WHEN name = 'add_to_cart' THEN 1 ELSE -1 END AS sign,
           unnest(CAST(json_extract(params, '$.items') AS JSON[])) AS it
    FROM ev
    WHERE sk IN (SELECT sk FROM s) AND name IN ('add_to_cart', 'remove_from_cart')
      AND json_extract(params, '$.items') IS NOT NULL
), items AS (
    SELECT sk, it->>'item_id' AS item_id, any_value(it->>'item_name') AS item_name,
        COALESCE(any_value(it->>'item_category'), '(none)') AS category,
        sum(sign * COALESCE(TRY_CAST(it->>'quantity' AS DOUBLE), 1)) AS units,
        sum(sign * COALESCE(TRY_CAST(it->>'quantity' AS DOUBLE), 1)
            * TRY_CAST(it->>'price' AS DOUBLE) * {{rate}}) AS value
    FROM lines GROUP BY sk, item_id HAVING sum(sign * COALESCE(
        TRY_CAST(it->>'quantity' AS DOUBLE), 1)) > 0
)"""
_CART_NAMES: Final = "name IN ('add_to_cart', 'remove_from_cart')"
_WINDOW: Final = f"project_id = ? AND ts >= {TS} AND ts < {TS}"
_SESSION_KEY: Final = ROLLUP_KEY.format("'s:' || session_id")
_BY_SESSION_ID: Final = (f"SELECT {_SESSION_KEY} AS sk, currency, name, params, "
                         f"{IN_STALE.format('ts')} AS stale FROM events")
_LINE: Final = "sk, item_id, units, amount_eur, amount_own, item_name, category"
_ANY_STALE: Final = "?::BIGINT < ?::BIGINT"  # constants: folded when planning
_STALE_SESSION: Final = "(sk IN (SELECT sk FROM stale_sks)) IS TRUE"
# Through the rollup: the sessions' states; cart lines of whole hours summed per session,
# item and currency (``rollup_cart_lines``), the rest raw: the partial hours at both ends
# and stale hours (events with a session id), and every event without one (its visitor
# session from ``ev``).
_ROLLED: Final = f"""
WITH {session_states(columns=("carted", "bought", "exit_step", "exit_page"))},
s AS (
    SELECT sk, bought, exit_step AS last_step, exit_page AS last_page FROM st WHERE carted
), raw_events AS (
    {_BY_SESSION_ID} WHERE {_WINDOW} AND {_CART_NAMES} AND session_id IS NOT NULL
    UNION ALL {_BY_SESSION_ID} WHERE {_WINDOW} AND {_CART_NAMES} AND session_id IS NOT NULL
    UNION ALL {_BY_SESSION_ID} WHERE {_WINDOW} AND {_CART_NAMES} AND session_id IS NOT NULL
        AND {IN_STALE.format("ts")}
    UNION ALL SELECT {ROLLUP_KEY.format("v.sk")}, e.currency, e.name, e.params, false
        FROM events e JOIN ev v ON v.id = e.id
        WHERE e.project_id = ? AND e.ts >= {TS} AND e.ts < {TS} AND e.session_id IS NULL
          AND e.{_CART_NAMES} AND v.sk IS NOT NULL
), stale_sks AS (  -- sessions with cart events in stale hours: merged, never taken as they are
    SELECT DISTINCT sk FROM raw_events WHERE stale
), rolled AS NOT MATERIALIZED (
    SELECT {_LINE}, spans FROM rollup_cart_lines
    WHERE project_id = ? AND hour >= {TS} AND hour < {TS} AND NOT {IN_STALE.format("hour")}
), merged AS (
    SELECT sk, item_id, sum(units) AS units, sum(amount_eur) AS amount_eur,
           sum(amount_own) AS amount_own, any_value(item_name) AS item_name,
           any_value(category) AS category
    FROM (
        SELECT {_LINE} FROM rolled WHERE spans OR ({_ANY_STALE} AND {_STALE_SESSION})
        UNION ALL
        SELECT sk, item_id, {CART_SUMS}
        FROM ({CART_LINES.format(source="SELECT * FROM raw_events")}) GROUP BY sk, item_id)
    GROUP BY sk, item_id
), items AS (
    SELECT sk, item_id, item_name, COALESCE(category, '(none)') AS category, units,
           {{value}} AS value
    FROM (SELECT {_LINE} FROM rolled WHERE NOT spans AND NOT ({_ANY_STALE} AND {_STALE_SESSION})
          UNION ALL SELECT {_LINE} FROM merged)
    WHERE units > 0 AND sk IN (SELECT sk FROM s)
)"""


def _rolled_params(project_id: int, start_us: int, end_us: int) -> list[Any]:
    first_full, last_full = whole_hours(start_us, end_us)
    stale = [STALE_LO, STALE_HI]
    return [*state_params(project_id, start_us, end_us),
            *stale, project_id, start_us, first_full,  # the ends
            *stale, project_id, last_full, end_us,
            *stale, project_id, first_full, last_full, *stale,  # stale hours
            project_id, start_us, end_us,  # events without a session id
            project_id, first_full, last_full, *stale,  # rollup_cart_lines
            *stale, *stale]  # merged or taken as they are


def carts(store: EventStore, project: Project, rng: TimeRange, limit: int = 20, *,
          rollup: bool = True) -> dict[str, Any]:
    """Cart composition and abandonment of the period (see the module docstring).
    ``rollup=False`` reads raw events only (the same result, slower: for the tests)."""
    # One statement: the sessions and cart lines are computed once for every part of
    # the answer (rows tagged by ``kind``, ordered within each part).
    sql = f"""{(_ROLLED if rollup else _RAW).format(rate=rate_sql(project.currency),
                                                  value=cart_value_sql(project.currency))},
left_items AS (
    SELECT * FROM items JOIN s USING (sk) WHERE NOT bought
)
SELECT 'totals' AS kind, NULL::VARCHAR, NULL::VARCHAR, NULL::VARCHAR,
       count(*)::DOUBLE, count(*) FILTER (WHERE NOT bought)::DOUBLE,
       avg(units), avg(value), sum(value) FILTER (WHERE NOT bought)
FROM s LEFT JOIN (SELECT sk, sum(units) AS units, sum(value) AS value FROM items GROUP BY sk)
    USING (sk)
UNION ALL (
    SELECT 'item', item_id, any_value(item_name), any_value(category), count(*),
           sum(units), sum(value), NULL, NULL
    FROM left_items GROUP BY item_id ORDER BY 6 DESC, 2 LIMIT ?)
UNION ALL (
    SELECT 'category', category, NULL, NULL, sum(units), sum(value), NULL, NULL, NULL
    FROM left_items GROUP BY category ORDER BY 5 DESC, 2 LIMIT ?)
UNION ALL (
    SELECT 'step', last_step, NULL, NULL, count(*), NULL, NULL, NULL, NULL
    FROM s WHERE NOT bought GROUP BY last_step ORDER BY 5 DESC, 2)
UNION ALL (
    SELECT 'page', last_page, NULL, NULL, count(*), NULL, NULL, NULL, NULL
    FROM s WHERE NOT bought GROUP BY last_page ORDER BY 5 DESC, 2)"""
    window = [project.id, rng.start_us, rng.end_us]
    found = (store.query(sql, [*_rolled_params(*window), limit, limit],
                         prelude=prelude(project.id))
             if rollup else store.query(sql, [*window, limit, limit]))
    parts: dict[str, list[tuple[Any, ...]]] = {}
    for kind, *row in found:
        parts.setdefault(kind, []).append(tuple(row))
    _, _, _, count_f, abandoned_f, size, value, lost = parts["totals"][0]
    count, abandoned = int(count_f), int(abandoned_f)
    # UNION ALL keeps no order between its parts: each part is sorted again here.
    left_items = sorted(((i, n, c, k, u, v) for i, n, c, k, u, v, _, _ in parts.get("item", [])),
                        key=lambda r: (-r[4], r[0] is None, r[0] or ""))
    left_categories = sorted(((c, u, v) for c, _, _, u, v, *_ in parts.get("category", [])),
                             key=lambda r: (-r[1], r[0]))
    exits = [(kind, v, k) for kind in ("step", "page")
             for v, _, _, k, *_ in sorted(parts.get(kind, []),
                                         key=lambda r: (-r[3], r[0] is None, r[0] or ""))]

    def money(x: Any) -> float | None:
        return round(float(x), 6) if x is not None else None

    return {
        "range": rng.as_dict(), "currency": project.currency,
        "carts": int(count), "abandoned_carts": int(abandoned),
        "cart_abandonment_rate": abandoned / count if count else None,
        "avg_cart_units": float(size) if size is not None else None,
        "avg_cart_value": money(value), "abandoned_cart_value": money(lost) or 0.0,
        "abandoned_items": [{"item_id": i, "item_name": n, "category": c, "carts": int(k),
                             "units": float(u), "value": money(v)}
                            for i, n, c, k, u, v in left_items],
        "abandoned_categories": [{"category": c, "units": float(u), "value": money(v)}
                                 for c, u, v in left_categories],
        "last_steps": [{"step": v, "carts": int(k)} for kind, v, k in exits if kind == "step"],
        "last_pages": [{"page": v, "carts": int(k)} for kind, v, k in exits if kind == "page"],
    }
