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
from shopwatch.analytics.rollup import (
    IN_STALE,
    ITEM_LINES,
    ITEM_SUMS,
    ROLLUP_KEY,
    STALE_HI,
    STALE_LO,
    orders_sql,
    prelude,
    whole_hours,
)
from shopwatch.analytics.sessions import COLUMNS, TS, sessionized_sql
from shopwatch.analytics.timerange import TimeRange
from shopwatch.errors import BadRequest
from shopwatch.store.base import EventStore
from shopwatch.store.state import Project

GROUPS: Final = {"product": "item_id", "category": "item_category"}


_NAMES: Final = "name IN ('view_item', 'add_to_cart', 'purchase')"
_WINDOW: Final = f"project_id = ? AND ts >= {TS} AND ts < {TS}"
_UNSESSIONED: Final = (f"SELECT {', '.join(COLUMNS)}, params FROM events "
                       f"WHERE {_WINDOW} AND session_id IS NULL")


def _rolled_sql(key: str, rate: str) -> str:
    """The same rows through the rollup: views and adds of current whole hours from
    ``rollup_items``, their viewing sessions from ``rollup_item_views``, purchases from the
    order rows' item lines, the rest raw. Parameters: :func:`_rolled_params`; prelude:
    :func:`rollup.prelude`."""
    key = {"item_id": "item_id", "item_category": "category"}[key]
    rolled = f"project_id = ? AND hour >= {TS} AND hour < {TS} AND NOT {IN_STALE.format('hour')}"
    views = "name IN ('view_item', 'add_to_cart')"
    first = {"item_id": "item_first", "category": "category_first"}[key]
    any_stale = "?::BIGINT < ?::BIGINT"  # constants: folded when planning
    stale_view = "(sk IN (SELECT sk FROM raw_views WHERE stale)) IS TRUE"
    return f"""
WITH {sessionized_sql('params', source=_UNSESSIONED)},
raw_ev AS (  -- views and adds the rollup does not cover: both partial hours, stale hours
    SELECT ts, name, session_id, params FROM events WHERE {_WINDOW} AND {views}
    UNION ALL SELECT ts, name, session_id, params FROM events WHERE {_WINDOW} AND {views}
    UNION ALL SELECT ts, name, session_id, params FROM events WHERE {_WINDOW} AND {views}
        AND {IN_STALE.format('ts')}
), raw_lines AS (
    {ITEM_LINES.format(columns="ts, name, session_id", source="SELECT * FROM raw_ev")}
), ev_lines AS (  -- views of sessions without a session id
    {ITEM_LINES.format(columns="ts, name, sk", source=(
        "SELECT ts, name, sk, params FROM ev WHERE name = 'view_item' AND sk IS NOT NULL"))}
), {orders_sql()},
visits AS (
    SELECT id, {ROLLUP_KEY.format("sk")} AS vsk FROM ev WHERE sk IS NOT NULL AND name = 'purchase'
), firsts AS (  -- purchases once per transaction id: its first, chosen on narrow rows
    SELECT arg_min(id, (ts, id)) AS id FROM orders
    WHERE name = 'purchase' AND ts >= {TS} AND ts < {TS} AND transaction_id IS NOT NULL
    GROUP BY transaction_id
), kept AS (
    SELECT COALESCE(o.sk, v.vsk) AS sk, ts, cur, lines FROM orders o LEFT JOIN visits v USING (id)
    WHERE name = 'purchase' AND ts >= {TS} AND ts < {TS}
      AND (transaction_id IS NULL OR id IN (SELECT id FROM firsts))
), bought AS (
    SELECT sk, ts, cur, l.item_id, l.item_name, l.category, l.qty, l.price
    FROM (SELECT *, unnest(lines) AS l FROM kept)
), parts AS (
    SELECT item_id, category, views, adds, item_name, name_ts, last_ts FROM rollup_items
    WHERE {rolled}
    UNION ALL BY NAME
    SELECT item_id, category, {ITEM_SUMS} FROM raw_lines GROUP BY item_id, category
    UNION ALL BY NAME
    SELECT item_id, category, sum(qty) AS units, sum(qty * price * {rate}) AS revenue,
        arg_max(item_name, ts) AS item_name,
        max(ts) FILTER (WHERE item_name IS NOT NULL) AS name_ts, max(ts) AS last_ts
    FROM bought GROUP BY item_id, category
), totals AS (
    SELECT {key} AS k, arg_max(item_name, name_ts) AS item_name,
        arg_max(category, last_ts) AS category, COALESCE(sum(views), 0) AS views,
        COALESCE(sum(adds), 0) AS adds, COALESCE(sum(units), 0) AS units,
        COALESCE(sum(revenue), 0) AS revenue
    FROM parts WHERE {key} IS NOT NULL GROUP BY 1
), raw_views AS (  -- viewing sessions read raw: with a session id, and without one
    SELECT {key} AS k, {ROLLUP_KEY.format("'s:' || session_id")} AS sk,
           {IN_STALE.format('ts')} AS stale
    FROM raw_lines WHERE name = 'view_item' AND session_id IS NOT NULL AND {key} IS NOT NULL
    UNION ALL
    SELECT {key}, {ROLLUP_KEY.format("sk")}, false FROM ev_lines WHERE {key} IS NOT NULL
), rolled_views AS NOT MATERIALIZED (
    SELECT {key} AS k, sk, spans, {first} AS first FROM rollup_item_views
    WHERE {rolled} AND {key} IS NOT NULL
), viewers AS (
    -- A session in one hour, not also read raw (which only a stale hour can add: an
    -- event of a current hour is in that hour's rows), is counted by its marked rows;
    -- the others are counted distinct.
    SELECT k, count(*) AS n FROM rolled_views
    WHERE NOT spans AND first AND NOT ({any_stale} AND {stale_view})
    GROUP BY k
    UNION ALL
    SELECT k, count(DISTINCT sk) FROM (
        SELECT k, sk FROM rolled_views WHERE spans OR ({any_stale} AND {stale_view})
        UNION ALL SELECT k, sk FROM raw_views)
    GROUP BY k
), buyers AS (
    SELECT DISTINCT {key} AS k, sk FROM bought WHERE {key} IS NOT NULL AND sk IS NOT NULL
), converted AS (  -- of the sessions that viewed it, those that bought it
    SELECT b.k, count(*) AS n FROM buyers b
    SEMI JOIN (SELECT k, sk FROM rolled_views UNION ALL SELECT k, sk FROM raw_views) v
        ON v.k = b.k AND v.sk = b.sk
    GROUP BY b.k
), sessions AS (
    SELECT k, sum(n) AS viewed FROM viewers GROUP BY k
)
SELECT t.k, item_name, category, views, adds, units, revenue,
       COALESCE(s.viewed, 0), COALESCE(c.n, 0)
FROM totals t LEFT JOIN sessions s USING (k) LEFT JOIN converted c USING (k)
ORDER BY views DESC, units DESC, t.k LIMIT ?
"""


def _rolled_params(project_id: int, start_us: int, end_us: int, limit: int) -> list[Any]:
    first_full, last_full = whole_hours(start_us, end_us)
    rolled = [project_id, first_full, last_full, STALE_LO, STALE_HI]
    return [project_id, start_us, end_us,  # events without a session id
            project_id, start_us, first_full, project_id, last_full, end_us,  # the ends
            project_id, first_full, last_full, STALE_LO, STALE_HI,  # the stale stretch
            project_id, project_id, start_us, end_us, start_us, end_us,  # orders, kept
            *rolled,  # rollup_items
            STALE_LO, STALE_HI, *rolled,  # raw_views, rollup_item_views
            STALE_LO, STALE_HI, STALE_LO, STALE_HI, limit]  # viewers


def _raw_sql(key: str, rate: str) -> str:
    """The query from raw events alone (parameters: project_id, from, to twice, limit).
    Only product events are read, with their params; only the events without a session
    id are sessionised (a session id is its own key: no session state is needed)."""
    return f"""
WITH {sessionized_sql('params', source=_UNSESSIONED)},
src AS (
    SELECT sk, name, ts, upper(currency) AS cur, params FROM (
        SELECT 's:' || session_id AS sk, name, ts, id, transaction_id, currency, params
        FROM events WHERE {_WINDOW} AND session_id IS NOT NULL AND {_NAMES}
        UNION ALL
        SELECT sk, name, ts, id, transaction_id, currency, params FROM ev WHERE {_NAMES})
    QUALIFY name <> 'purchase' OR transaction_id IS NULL
         OR row_number() OVER (PARTITION BY name, transaction_id ORDER BY ts, id) = 1
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
        COALESCE(sum(qty * price * {rate}) FILTER (WHERE name = 'purchase'), 0) AS revenue
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


def products(store: EventStore, project: Project, rng: TimeRange, by: str = "product",
             limit: int = 50, *, rollup: bool = True) -> dict[str, Any]:
    """The ``limit`` most viewed products (or categories) of the period. ``rollup=False``
    reads raw events only (the same result, slower: for the tests)."""
    if by not in GROUPS:
        raise BadRequest("by: product or category")
    key = GROUPS[by]
    window_params = [project.id, rng.start_us, rng.end_us]
    if rollup:
        found = store.query(_rolled_sql(key, rate_sql(project.currency)),
                            _rolled_params(project.id, rng.start_us, rng.end_us, limit),
                            prelude=prelude(project.id))
    else:
        found = store.query(_raw_sql(key, rate_sql(project.currency)),
                            [*window_params, *window_params, limit])
    rows = []
    for (value, name, category, views, adds, units, revenue, viewed, bought) in found:
        row: dict[str, Any] = {by: value}
        if by == "product":
            row.update(name=name, category=category)
        row.update(views=int(views), adds=float(adds), units=float(units),
                   revenue=round(float(revenue), 6), viewed_sessions=int(viewed),
                   purchased_sessions=int(bought),
                   view_to_purchase=bought / viewed if viewed else None)
        rows.append(row)
    return {"range": rng.as_dict(), "currency": project.currency, "by": by, "rows": rows}
