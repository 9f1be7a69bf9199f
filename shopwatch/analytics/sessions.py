"""Sessions: which visit each stored event belongs to (the basis of every behaviour KPI).

Contract (docs/kpis.md, "Sessions"):

- An event with a ``session_id`` belongs to session ``s:<session_id>``.
- An event without one but with a visitor (``anonymous_id``, else ``user_id``) belongs to
  that visitor's current session, ``v:<visitor>:<n>``; a new one starts after
  :data:`IDLE_GAP_S` (30 minutes) without an event of that visitor.
- An event with none of them belongs to no session (it still counts as an event).
- Only events of the period are considered: a visit that began before ``from`` counts
  from its first event inside the period.

:func:`sessionized_sql` gives the common table expressions every analytics query
starts from: ``ev`` (the period's events, each with its session key ``sk`` and
``visitor``) for one project.
"""

from __future__ import annotations

from typing import Final

IDLE_GAP_S: Final = 30 * 60
TS: Final = "make_timestamp(?::BIGINT)"
# The columns analytics read. DuckDB materialises a CTE used more than once, so carrying
# every column (params above all, a JSON text per event) would copy the period's events
# whole; the heavy ones come only when asked for.
COLUMNS: Final = ("id", "name", "ts", "session_id", "anonymous_id", "user_id", "page",
                  "referrer", "utm_source", "utm_medium", "utm_campaign", "device_category",
                  "browser", "country", "value", "currency", "transaction_id")


def sessionized_sql(*extra: str, source: str = "") -> str:
    """CTEs ``ev0`` and ``ev`` over the events of one project in ``[from, to)``.

    Parameters, in order: ``project_id, from_us, to_us``. Or, with ``source`` (a query
    giving the :data:`COLUMNS` of some of the events: the parts of the period a rollup
    does not cover), that query's parameters. Columns of ``ev``: :data:`COLUMNS`, the
    ``extra`` columns asked for (e.g. ``params``), ``visitor`` and ``sk`` (NULL: no
    session).
    """
    columns = ", ".join((*COLUMNS, *extra))
    rows = (f"({source})" if source else
            f"events WHERE project_id = ? AND ts >= {TS} AND ts < {TS}")
    # Events with a session id need no window function; only the others are split by
    # idle gaps, so the common case stays a plain scan.
    return f"""
ev0 AS (
    SELECT {columns}, COALESCE(anonymous_id, user_id) AS visitor FROM {rows}
),
ev AS (
    SELECT *, 's:' || session_id AS sk FROM ev0 WHERE session_id IS NOT NULL
    UNION ALL BY NAME
    SELECT * EXCLUDE (new_visit),
        'v:' || visitor || ':' || sum(new_visit) OVER (
            PARTITION BY visitor ORDER BY ts, id ROWS UNBOUNDED PRECEDING)::VARCHAR AS sk
    FROM (
        SELECT *, CASE WHEN lag(ts) OVER w IS NULL
                         OR ts - lag(ts) OVER w > INTERVAL {IDLE_GAP_S} SECOND
                       THEN 1 ELSE 0 END AS new_visit
        FROM ev0 WHERE session_id IS NULL AND visitor IS NOT NULL
        WINDOW w AS (PARTITION BY visitor ORDER BY ts, id)
    )
    UNION ALL BY NAME
    SELECT *, NULL::VARCHAR AS sk FROM ev0 WHERE session_id IS NULL AND visitor IS NULL
)"""
