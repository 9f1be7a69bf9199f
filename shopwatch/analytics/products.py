"""Products and categories: what is viewed, added and bought (``GET /api/v1/products``).

Contract (docs/kpis.md, "Products"): items come from the ``items`` of ``view_item``,
``add_to_cart`` and ``purchase`` events of the period (purchases once per transaction
id). Per product (``item_id``; its name and category from its latest event) or per
``item_category``: ``views`` (item views), ``adds`` (units added), ``units`` (units
bought), ``revenue`` (price x quantity of bought units, in the project's currency;
a missing quantity is 1), ``viewed_sessions`` (sessions that viewed it),
``purchased_sessions`` (of those, the ones that also bought it) and ``view_to_purchase``
(their ratio).
"""

from __future__ import annotations

from typing import Any, Final

from shopwatch.analytics.currency import rate_sql
from shopwatch.analytics.sessions import COLUMNS, TS, sessionized_sql
from shopwatch.analytics.timerange import TimeRange
from shopwatch.errors import BadRequest
from shopwatch.store.base import EventStore
from shopwatch.store.state import Project

GROUPS: Final = {"product": "item_id", "category": "item_category"}


def products(store: EventStore, project: Project, rng: TimeRange, by: str = "product",
             limit: int = 50) -> dict[str, Any]:
    """The ``limit`` most viewed products (or categories) of the period."""
    if by not in GROUPS:
        raise BadRequest("by: product or category")
    key = GROUPS[by]
    # Only product events are read, with their params; only the events without a session
    # id are sessionised (a session id is its own key: no session state is needed).
    names = "name IN ('view_item', 'add_to_cart', 'purchase')"
    cols = ", ".join(COLUMNS)
    window = f"project_id = ? AND ts >= {TS} AND ts < {TS}"
    sql = f"""
WITH {sessionized_sql('params', source=f"SELECT {cols}, params FROM events "
                                       f"WHERE {window} AND session_id IS NULL")},
src AS (
    SELECT sk, name, ts, upper(currency) AS cur, params FROM (
        SELECT 's:' || session_id AS sk, name, ts, id, transaction_id, currency, params
        FROM events WHERE {window} AND session_id IS NOT NULL AND {names}
        UNION ALL
        SELECT sk, name, ts, id, transaction_id, currency, params FROM ev WHERE {names})
    QUALIFY name <> 'purchase' OR transaction_id IS NULL
         OR row_number() OVER (PARTITION BY transaction_id ORDER BY ts, id) = 1
), items AS (
    SELECT sk, name, ts, cur, unnest(CAST(json_extract(params, '$.items') AS JSON[])) AS it
    FROM src WHERE json_extract(params, '$.items') IS NOT NULL
), flat AS (
    SELECT sk, name, ts, cur, it->>'item_id' AS item_id, it->>'item_name' AS item_name,
        COALESCE(it->>'item_category', '(none)') AS item_category,
        COALESCE(TRY_CAST(it->>'quantity' AS DOUBLE), 1) AS qty,
        TRY_CAST(it->>'price' AS DOUBLE) AS price
    FROM items
), totals AS (
    SELECT {key} AS k,
        arg_max(item_name, ts) AS item_name, arg_max(item_category, ts) AS category,
        count(*) FILTER (WHERE name = 'view_item') AS views,
        COALESCE(sum(qty) FILTER (WHERE name = 'add_to_cart'), 0) AS adds,
        COALESCE(sum(qty) FILTER (WHERE name = 'purchase'), 0) AS units,
        COALESCE(sum(qty * price * {rate_sql(project.currency)})
                 FILTER (WHERE name = 'purchase'), 0) AS revenue
    FROM flat WHERE {key} IS NOT NULL GROUP BY 1
), per_session AS (  -- whether each session viewed and bought the product
    SELECT {key} AS k, sk, bool_or(name = 'view_item') AS viewed,
           bool_or(name = 'purchase') AS bought
    FROM flat WHERE {key} IS NOT NULL AND sk IS NOT NULL GROUP BY 1, 2
), sessions AS (
    SELECT k, count(*) FILTER (WHERE viewed) AS viewed,
           count(*) FILTER (WHERE viewed AND bought) AS converted
    FROM per_session GROUP BY 1
)
SELECT t.k, item_name, category, views, adds, units, revenue,
       COALESCE(s.viewed, 0), COALESCE(s.converted, 0)
FROM totals t LEFT JOIN sessions s USING (k)
ORDER BY views DESC, units DESC, t.k LIMIT ?
"""
    window_params = [project.id, rng.start_us, rng.end_us]
    rows = []
    for (value, name, category, views, adds, units, revenue, viewed,
         bought) in store.query(sql, [*window_params, *window_params, limit]):
        row: dict[str, Any] = {by: value}
        if by == "product":
            row.update(name=name, category=category)
        row.update(views=int(views), adds=float(adds), units=float(units),
                   revenue=round(float(revenue), 6), viewed_sessions=int(viewed),
                   purchased_sessions=int(bought),
                   view_to_purchase=bought / viewed if viewed else None)
        rows.append(row)
    return {"range": rng.as_dict(), "currency": project.currency, "by": by, "rows": rows}
