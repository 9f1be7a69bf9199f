"""Rollups: per-session, per-hour partial states (and per-hour totals, visitors, narrow
order rows), so a month of events is read as a million small rows, or 720 hourly sums,
instead of ten million events (issue 5's speed bar).

What is stored (``rollup_sessions``): for every hour and every session *with a session
id* that has events in that hour, one row of :data:`STATE` columns computed from that
hour's events alone: counts, first and last times, flags, cart value, the attributes of
its first event, and when it reached each of :data:`STEP_NAMES`. Each column has a
*merge*: the row of several hours of one session is the merge of its hours' rows, equal
to the row computed from all of those events at once (sums add, minima take the
minimum, the first event's attributes come from the earliest hour). That is what makes
the rollup exact, and the tests prove it against the raw computation.

Beside it: ``rollup_hours`` (:data:`TOTALS` of each hour's sessions that have rows in no
other hour, kept in step with the ``spans`` flag of the session rows), ``rollup_visitors``
and ``rollup_first_seen`` (:func:`visitors_sql`), and ``rollup_orders`` (order events up
to the watermark, copied as it moves: :func:`orders_sql`).

Contract of :func:`session_states` (what the analytics modules read):

- It yields one row per session of the period, with the finalised state columns, equal
  to those computed from the period's raw events. Hours fully inside the period whose
  rollup is current are read from ``rollup_sessions``; the rest of the period (the
  partial hours at both ends, hours with events not yet rolled up) and every event
  without a session id (their sessions split on idle gaps, which depends on the period
  start: :mod:`shopwatch.analytics.sessions`) are computed from raw events.
- Sessions present in more than one hour (``spans``) or in both parts are
  merged; the others are taken as they are, without a GROUP BY over all of them. (A
  session in both parts has events in a stale hour: an event of a current hour is in
  that hour's rows, so a session with events in two current hours spans.)
- Every query reading the rollup runs after its prelude (:func:`prelude`), which gives it
  the stale stretch as constants, in the same snapshot: DuckDB then prunes its scans
  with them at planning time, where a subquery would be joined to every row.
- Session keys are the 64-bit ``md5_number_upper`` of the session key string; two
  sessions colliding would merge (probability ~3e-6 for 10 million sessions).

Keeping it current (:func:`refresh`, run by the single writer between commits): every
run marks the hours of the events stored since the watermark (the last ``events`` row
seen: the table is append-only, so row ids only grow) as pending, moves the watermark to
the last row, and recomputes pending hours (newest first) within a time budget, each in
its own transaction. An hour is recomputed whole from its events, so a late or
out-of-order event only makes its hour pending again. Readers treat pending hours, and
hours of rows past the watermark, as not current and read them raw: in one snapshot
(the query's and its prelude's), so the result is exact at any moment. The tables are
derived data: when :data:`VERSION` changes they are dropped and rebuilt from the events.
(Deleting events, e.g. a future retention job, must mark their hours pending and reset
the watermark.)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from shopwatch.analytics.currency import RATES
from shopwatch.analytics.sessions import COLUMNS, TS, sessionized_sql
from shopwatch.store.base import Prelude

VERSION: Final = 11
HOUR_US: Final = 3600 * 1_000_000
# Commerce steps whose times are kept per session (the default funnel's): a funnel made
# of these names only is read from the rollup.
STEP_NAMES: Final = ("view_item", "add_to_cart", "begin_checkout", "add_payment_info",
                     "purchase")
# What makes a session "engaged" (not a bounce), after GA4: a conversion-like event,
# a second page view, or 10 seconds or more between its first and last event.
ENGAGING: Final = ("add_to_cart", "begin_checkout", "add_payment_info", "purchase",
                   "sign_up", "login", "search")
ENGAGED_SECONDS: Final = 10
SOURCE: Final = ("COALESCE(utm_source, regexp_extract(referrer, '^[a-z]+://([^/:]+)', 1), "
                 "'(direct)')")
REFERRER_HOST: Final = "lower(regexp_extract(referrer, '^[a-z]+://([^/:]+)', 1))"


def _eur(expr: str) -> str:
    """``expr`` (an amount in the row's ``currency``) in EUR; NULL for an unknown code."""
    arms = " ".join(f"WHEN '{code}' THEN {1 / rate!r}::DOUBLE" for code, rate in RATES.items())
    return f"({expr}) * (CASE upper(currency) {arms} ELSE NULL END)"


_CART = "CASE WHEN name = 'add_to_cart' THEN value WHEN name = 'remove_from_cart' THEN -value END"


@dataclass(frozen=True)
class Column:
    """One state column: its type, its aggregate over raw events (``ev``: an event per
    row, ``ts``), and its merge over state rows (``first_ts`` orders the hours)."""

    name: str
    type: str
    raw: str
    merge: str


def _step_columns(i: int, name: str) -> list[Column]:
    # First time, and every time only when there are several (usually there is one):
    # reaching a step "at or after the previous one" needs them all only then.
    return [
        Column(f"s{i}", "TIMESTAMP", f"min(ts) FILTER (WHERE name = '{name}')", f"min(s{i})"),
        Column(f"s{i}_all", "TIMESTAMP[]",
               f"CASE WHEN count(*) FILTER (WHERE name = '{name}') > 1 THEN "
               f"list(ts ORDER BY ts) FILTER (WHERE name = '{name}') END",
               f"CASE WHEN count(s{i}) > 1 OR count(s{i}_all) > 0 THEN "
               f"list_sort(flatten(list(COALESCE(s{i}_all, [s{i}])) "
               f"FILTER (WHERE s{i} IS NOT NULL))) END"),
    ]


STATE: Final[tuple[Column, ...]] = (
    Column("events", "BIGINT", "count(*)", "sum(events)"),
    Column("first_ts", "TIMESTAMP", "min(ts)", "min(first_ts)"),
    Column("last_ts", "TIMESTAMP", "max(ts)", "max(last_ts)"),
    Column("pages", "BIGINT", "count(*) FILTER (WHERE name = 'page_view')", "sum(pages)"),
    Column("first_page", "TIMESTAMP", "min(ts) FILTER (WHERE name = 'page_view')",
           "min(first_page)"),
    Column("last_page", "TIMESTAMP", "max(ts) FILTER (WHERE name = 'page_view')",
           "max(last_page)"),
    Column("engaging", "BOOLEAN",
           f"bool_or(name IN ({', '.join(repr(n) for n in ENGAGING)}))", "bool_or(engaging)"),
    Column("carted", "BOOLEAN", "bool_or(name = 'add_to_cart')", "bool_or(carted)"),
    Column("checked_out", "BOOLEAN", "bool_or(name = 'begin_checkout')",
           "bool_or(checked_out)"),
    Column("bought", "BOOLEAN", "bool_or(name = 'purchase')", "bool_or(bought)"),
    # Cart value in EUR, and apart the amounts without a currency (the project's own,
    # whichever it is): the project's rate is applied when reading.
    Column("cart_eur", "DOUBLE", f"sum({_eur(_CART)})", "sum(cart_eur)"),
    Column("cart_own", "DOUBLE", f"sum({_CART}) FILTER (WHERE currency IS NULL)",
           "sum(cart_own)"),
    Column("device", "VARCHAR", "arg_min(device_category, ts)", "arg_min(device, first_ts)"),
    Column("browser", "VARCHAR", "arg_min(browser, ts)", "arg_min(browser, first_ts)"),
    Column("country", "VARCHAR", "arg_min(country, ts)", "arg_min(country, first_ts)"),
    Column("source", "VARCHAR", f"arg_min({SOURCE}, ts)", "arg_min(source, first_ts)"),
    Column("landing_page", "VARCHAR", "arg_min(page, ts)", "arg_min(landing_page, first_ts)"),
    # The last event's name, and the last page seen (carts: where shoppers left).
    Column("exit_step", "VARCHAR", "arg_max(name, ts)", "arg_max(exit_step, last_ts)"),
    Column("exit_page", "VARCHAR", "arg_max(page, ts)", "arg_max(exit_page, last_ts)"),
    # The first event's utm values and referrer host, NULL when it has none (acquisition).
    *[Column(name, "VARCHAR", f"arg_min_null({raw}, ts)", f"arg_min_null({name}, first_ts)")
      for name, raw in (("utm_source", "utm_source"), ("utm_medium", "utm_medium"),
                        ("utm_campaign", "utm_campaign"), ("ref_host", REFERRER_HOST))],
    *[c for i, n in enumerate(STEP_NAMES, start=1) for c in _step_columns(i, n)],
)
STATE_NAMES: Final = tuple(c.name for c in STATE)
# Session and visitor keys are hashed once per group, never per event: md5 costs about
# 0.3 µs a row, a third of a raw day's query.
ROLLUP_KEY: Final = "md5_number_upper({})"  # of a session key string, as rollup rows have it


@dataclass(frozen=True)
class Total:
    """One per-hour total over whole sessions: an aggregate over finalised state rows,
    which adds up across hours (a count or a sum)."""

    name: str
    type: str
    agg: str


_SECONDS = "epoch(last_ts) - epoch(first_ts)"
_ABANDONED = "carted AND NOT bought"
# What the KPIs need of a period's sessions, as sums. A session with rows in a single
# hour is whole there, so its contribution is kept in that hour's totals
# (``rollup_hours``); sessions spanning hours are merged when read and added.
TOTALS: Final[tuple[Total, ...]] = (
    Total("sessions", "BIGINT", "count(*)"),
    Total("events", "BIGINT", "sum(events)"),
    Total("pages", "BIGINT", "sum(pages)"),
    Total("duration_s", "DOUBLE", f"sum({_SECONDS})"),
    Total("bounces", "BIGINT", "count(*) FILTER (WHERE NOT engaging AND pages < 2 "
                               f"AND {_SECONDS} < {ENGAGED_SECONDS})"),
    Total("converted", "BIGINT", "count(*) FILTER (WHERE bought)"),
    Total("carts", "BIGINT", "count(*) FILTER (WHERE carted)"),
    Total("abandoned", "BIGINT", f"count(*) FILTER (WHERE {_ABANDONED})"),
    Total("checkouts", "BIGINT", "count(*) FILTER (WHERE checked_out)"),
    Total("checkouts_abandoned", "BIGINT", "count(*) FILTER (WHERE checked_out AND NOT bought)"),
    # Time on page: the gaps between a session's consecutive page views add up to its
    # last minus first page view.
    Total("page_gaps_s", "DOUBLE",
          "sum(epoch(last_page) - epoch(first_page)) FILTER (WHERE pages > 1)"),
    Total("page_gaps", "BIGINT", "sum(pages - 1) FILTER (WHERE pages > 1)"),
    Total("abandoned_eur", "DOUBLE", f"sum(cart_eur) FILTER (WHERE {_ABANDONED})"),
    Total("abandoned_own", "DOUBLE", f"sum(cart_own) FILTER (WHERE {_ABANDONED})"),
)
TOTAL_NAMES: Final = tuple(t.name for t in TOTALS)

SCHEMA: Final = (
    # spans: the session has rows in other hours too (it is merged when read).
    f"""CREATE TABLE rollup_sessions (project_id INTEGER NOT NULL, hour TIMESTAMP NOT NULL,
        sk UBIGINT NOT NULL, {', '.join(f'{c.name} {c.type}' for c in STATE)},
        spans BOOLEAN NOT NULL)""",
    # The TOTALS of each hour's sessions that have no rows in other hours.
    f"""CREATE TABLE rollup_hours (project_id INTEGER NOT NULL, hour TIMESTAMP NOT NULL,
        {', '.join(f'{t.name} {t.type}' for t in TOTALS)})""",
    # The visitors (key: VISITOR_KEY) with events in each hour, and the first hour of
    # each in the hours rolled up so far.
    "CREATE TABLE rollup_visitors (project_id INTEGER NOT NULL, hour TIMESTAMP NOT NULL, "
    "vk UBIGINT NOT NULL)",
    "CREATE TABLE rollup_first_seen (project_id INTEGER NOT NULL, vk UBIGINT NOT NULL, "
    "hour TIMESTAMP NOT NULL)",
    # Purchases, refunds and cancellations up to the watermark, narrow (ORDER_COLUMNS).
    """CREATE TABLE rollup_orders (project_id INTEGER NOT NULL, name VARCHAR NOT NULL,
        ts TIMESTAMP NOT NULL, id VARCHAR NOT NULL, transaction_id VARCHAR, value DOUBLE,
        cur VARCHAR, items DOUBLE, sk UBIGINT,
        lines STRUCT(item_id VARCHAR, item_name VARCHAR, category VARCHAR, qty DOUBLE,
                     price DOUBLE)[])""",
    # Product views and adds (ITEM_LINES of view_item and add_to_cart events) per hour,
    # item and category: counts, the latest item name and when, the latest line's time.
    """CREATE TABLE rollup_items (project_id INTEGER NOT NULL, hour TIMESTAMP NOT NULL,
        item_id VARCHAR, category VARCHAR NOT NULL, views BIGINT NOT NULL,
        adds DOUBLE NOT NULL, item_name VARCHAR, name_ts TIMESTAMP, last_ts TIMESTAMP)""",
    # The sessions (by session id: ROLLUP_KEY) that viewed each item in each hour;
    # item_first and category_first mark one row per (item_id, sk) and (category, sk) of
    # the hour, and spans is the session's rollup_sessions.spans: a session that does not
    # span hours is counted by counting its marked rows, without a DISTINCT.
    """CREATE TABLE rollup_item_views (project_id INTEGER NOT NULL, hour TIMESTAMP NOT NULL,
        item_id VARCHAR, category VARCHAR NOT NULL, sk UBIGINT NOT NULL,
        item_first BOOLEAN NOT NULL, category_first BOOLEAN NOT NULL,
        spans BOOLEAN NOT NULL)""",
    # Cart lines (CART_LINES of add_to_cart and remove_from_cart events with a session
    # id) per hour, session and item: CART_SUMS, and whether the session spans hours
    # (as rollup_item_views: a session in one hour is taken as it is, without a merge).
    """CREATE TABLE rollup_cart_lines (project_id INTEGER NOT NULL, hour TIMESTAMP NOT NULL,
        sk UBIGINT NOT NULL, item_id VARCHAR, units DOUBLE, amount_eur DOUBLE,
        amount_own DOUBLE, item_name VARCHAR, category VARCHAR, spans BOOLEAN NOT NULL)""",
    "CREATE TABLE rollup_pending (project_id INTEGER NOT NULL, hour TIMESTAMP NOT NULL)",
    # watermark: the last events row (rowid) whose hour has been marked pending.
    "CREATE TABLE rollup_state (version INTEGER NOT NULL, watermark BIGINT NOT NULL)",
)
# Every table a version ever had (rollup_spanning: before version 3), so that a rebuild
# drops them all.
TABLES: Final = ("rollup_sessions", "rollup_spanning", "rollup_hours", "rollup_visitors",
                 "rollup_items", "rollup_item_views", "rollup_cart_lines",
                 "rollup_first_seen", "rollup_orders", "rollup_pending", "rollup_state")
ORDER_NAMES: Final = ("purchase", "refund", "order_cancelled")
# The item lines of product events (``source``: a query of events with ``params``), as
# products and carts read them: one row per element of ``params.items``, with the event's
# columns named in ``columns``.
ITEM_LINES: Final = """SELECT {columns}, it->>'item_id' AS item_id,
    it->>'item_name' AS item_name, COALESCE(it->>'item_category', '(none)') AS category,
    COALESCE(TRY_CAST(it->>'quantity' AS DOUBLE), 1) AS qty,
    TRY_CAST(it->>'price' AS DOUBLE) AS price
FROM (SELECT {columns}, unnest(CAST(json_extract(params, '$.items') AS JSON[])) AS it
      FROM ({source}) WHERE json_extract(params, '$.items') IS NOT NULL)"""
# What rollup_items keeps of view and add lines, per group (also read raw this way).
ITEM_SUMS: Final = """count(*) FILTER (WHERE name = 'view_item') AS views,
    COALESCE(sum(qty) FILTER (WHERE name = 'add_to_cart'), 0) AS adds,
    arg_max(item_name, ts) AS item_name, max(ts) FILTER (WHERE item_name IS NOT NULL) AS name_ts,
    max(ts) AS last_ts"""

# The lines of cart events (``source``: a query with ``sk, currency, name, params``): one
# row per element of ``params.items``, added (+) or removed (-), as carts read them.
CART_LINES: Final = """SELECT sk, upper(currency) AS cur,
    CASE WHEN name = 'add_to_cart' THEN 1 ELSE -1 END
        * COALESCE(TRY_CAST(it->>'quantity' AS DOUBLE), 1) AS units,
    TRY_CAST(it->>'price' AS DOUBLE) AS price, it->>'item_id' AS item_id,
    it->>'item_name' AS item_name, it->>'item_category' AS category
FROM (SELECT *, unnest(CAST(json_extract(params, '$.items') AS JSON[])) AS it
      FROM ({source}) WHERE json_extract(params, '$.items') IS NOT NULL)"""
# What rollup_cart_lines keeps of cart lines, grouped by sk and item_id: the amount in
# EUR (currencies of RATES) and apart in no currency (the project's own, whichever it
# is: the project's rate is applied when reading).
CART_SUMS: Final = f"""sum(units) AS units,
    sum(units * price * (CASE cur {" ".join(f"WHEN '{code}' THEN {1 / rate!r}::DOUBLE"
                                            for code, rate in RATES.items())} END))
        AS amount_eur,
    sum(units * price) FILTER (WHERE cur IS NULL) AS amount_own,
    any_value(item_name) AS item_name, any_value(category) AS category"""


def cart_value_sql(base: str) -> str:
    """A cart line's value in ``base`` from its ``amount_eur`` and ``amount_own`` (NULL
    when neither is known, or the base currency has no rate)."""
    rate = RATES.get(base.upper())
    if rate is None:
        return "NULL::DOUBLE"
    return (f"CASE WHEN amount_eur IS NULL AND amount_own IS NULL THEN NULL ELSE "
            f"COALESCE(amount_eur * {rate!r}, 0) + COALESCE(amount_own, 0) END")

# An order event's columns as the order KPIs read them: the currency upper-cased, a
# purchase's item count (quantities; an item without one counts 1), and the key of its
# session when it has a session id (NULL: the session is a visitor's, split by idle gaps
# within each period).
_ORDER_COLUMNS: Final = """project_id, name, ts, id, transaction_id, value,
    upper(currency) AS cur,
    CASE WHEN name = 'purchase' THEN list_sum(list_transform(
        CAST(COALESCE(json_extract(params, '$.items'), '[]') AS JSON[]),
        lambda x: COALESCE(TRY_CAST(x->>'quantity' AS DOUBLE), 1))) END AS items,
    md5_number_upper('s:' || session_id) AS sk,
    CASE WHEN name = 'purchase' AND json_extract(params, '$.items') IS NOT NULL THEN
        list_transform(CAST(json_extract(params, '$.items') AS JSON[]), lambda it: {
            'item_id': it->>'item_id', 'item_name': it->>'item_name',
            'category': COALESCE(it->>'item_category', '(none)'),
            'qty': COALESCE(TRY_CAST(it->>'quantity' AS DOUBLE), 1),
            'price': TRY_CAST(it->>'price' AS DOUBLE)}) END AS lines"""
_ORDER_FILTER: Final = f"name IN ({', '.join(repr(n) for n in ORDER_NAMES)})"
VISITOR_KEY: Final = "md5_number_upper('v:' || {})"  # of COALESCE(anonymous_id, user_id)

Execute = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]


def ensure_schema(execute: Execute) -> None:
    """Create the rollup tables, or drop and recreate them if :data:`VERSION` changed
    (they are then rebuilt from the events by :func:`refresh`)."""
    have = {r[0] for r in execute(
        "SELECT table_name FROM duckdb_tables() WHERE table_name LIKE 'rollup_%'", [])}
    if "rollup_state" in have:
        row = execute("SELECT max(version) FROM rollup_state", [])
        if row and row[0][0] == VERSION:
            return
    execute("BEGIN", [])
    for table in TABLES:
        if table in have:
            execute(f"DROP TABLE {table}", [])
    for sql in SCHEMA:
        execute(sql, [])
    execute("INSERT INTO rollup_state VALUES (?, -1)", [VERSION])
    execute("COMMIT", [])


def _hashed(grouped: str) -> str:
    """The rows of ``grouped`` (a query grouped by the session key string ``sk``) with
    ``sk`` hashed to the rollup's key."""
    return f"SELECT {ROLLUP_KEY.format('sk')} AS sk, * EXCLUDE (sk) FROM ({grouped})"


def _raw_states(where: str) -> str:
    """State rows, one per (project, hour, session id), from the events matching
    ``where`` (only events with a session id)."""
    return f"""
SELECT project_id, hour, {ROLLUP_KEY.format("'s:' || session_id")} AS sk,
       * EXCLUDE (project_id, hour, session_id)
FROM (SELECT project_id, date_trunc('hour', ts) AS hour, session_id,
             {', '.join(f'{c.raw} AS {c.name}' for c in STATE)}
      FROM events WHERE session_id IS NOT NULL AND {where}
      GROUP BY ALL)"""


def mark_pending(execute: Execute) -> int:
    """Mark the hours of events stored since the watermark as pending, copy their order
    events to ``rollup_orders``, and move the watermark to the last stored row, in one
    transaction; return the hours pending. Writer only: no write
    can commit in between, so no event is missed."""
    execute("BEGIN", [])
    execute("""
        INSERT INTO rollup_pending
        SELECT DISTINCT project_id, date_trunc('hour', ts) FROM events
        WHERE rowid > (SELECT max(watermark) FROM rollup_state)
        EXCEPT SELECT project_id, hour FROM rollup_pending""", [])
    execute(f"""
        INSERT INTO rollup_orders SELECT {_ORDER_COLUMNS} FROM events
        WHERE rowid > (SELECT max(watermark) FROM rollup_state) AND {_ORDER_FILTER}""", [])
    execute("UPDATE rollup_state SET watermark = (SELECT COALESCE(max(rowid), -1) FROM events)",
            [])
    execute("COMMIT", [])
    return int(execute("SELECT count(*) FROM rollup_pending", [])[0][0])


def refresh(execute: Execute, *, budget_s: float = 0.5) -> int:
    """Bring the rollup up to date, for at most about ``budget_s`` seconds of work.

    Returns how many hours are still pending (0: current up to the watermark). Must run
    where writes run (the single writer); each step is its own transaction.
    """
    started = time.monotonic()
    mark_pending(execute)
    pending = execute("SELECT project_id, epoch_us(hour) FROM rollup_pending "
                      "ORDER BY hour DESC", [])
    done = 0
    for project_id, hour_us in pending:
        if done and time.monotonic() - started >= budget_s:
            break
        _recompute(execute, int(project_id), int(hour_us))
        done += 1
    return len(pending) - done


def _recompute(execute: Execute, project_id: int, hour_us: int) -> None:
    args = [project_id, hour_us]
    this_hour = f"project_id = ? AND hour = {TS}"
    other_hours = f"project_id = ? AND hour <> {TS}"
    execute("BEGIN", [])
    execute(f"DELETE FROM rollup_sessions WHERE {this_hour}", args)
    execute(f"""INSERT INTO rollup_sessions SELECT *,
            sk IN (SELECT sk FROM rollup_sessions WHERE {other_hours})
        FROM ({_raw_states(f"project_id = ? AND ts >= {TS} AND ts < {TS}")})""",
            [*args, project_id, hour_us, hour_us + HOUR_US])
    # Sessions of this hour present in other hours too now span: those hours' totals
    # lose them.
    joined = f"""{other_hours} AND NOT spans
        AND sk IN (SELECT sk FROM rollup_sessions WHERE {this_hour} AND spans)"""
    hours = [hour_us] + [int(r[0]) for r in execute(
        f"SELECT DISTINCT epoch_us(hour) FROM rollup_sessions WHERE {joined}", [*args, *args])]
    execute(f"UPDATE rollup_sessions SET spans = true WHERE {joined}", [*args, *args])
    aggs = ", ".join(t.agg for t in TOTALS)
    for hour in hours:
        execute(f"DELETE FROM rollup_hours WHERE {this_hour}", [project_id, hour])
        execute(f"""INSERT INTO rollup_hours SELECT project_id, hour, {aggs}
            FROM rollup_sessions WHERE {this_hour} AND NOT spans GROUP BY ALL""",
                [project_id, hour])
    _recompute_visitors(execute, project_id, hour_us)
    _recompute_items(execute, project_id, hour_us)
    execute(f"DELETE FROM rollup_pending WHERE {this_hour}", args)
    execute("COMMIT", [])


def _recompute_visitors(execute: Execute, project_id: int, hour_us: int) -> None:
    args = [project_id, hour_us]
    this_hour = f"project_id = ? AND hour = {TS}"
    execute(f"DELETE FROM rollup_visitors WHERE {this_hour}", args)
    execute(f"""INSERT INTO rollup_visitors
        SELECT project_id, hour, {VISITOR_KEY.format("visitor")} FROM (
            SELECT DISTINCT project_id, date_trunc('hour', ts) AS hour,
                   COALESCE(anonymous_id, user_id) AS visitor FROM events
            WHERE project_id = ? AND ts >= {TS} AND ts < {TS}
              AND COALESCE(anonymous_id, user_id) IS NOT NULL)""",
            [project_id, hour_us, hour_us + HOUR_US])
    # Events are only ever added, so a visitor's first hour can only move earlier.
    execute(f"""DELETE FROM rollup_first_seen WHERE project_id = ? AND hour > {TS}
        AND vk IN (SELECT vk FROM rollup_visitors WHERE {this_hour})""", [*args, *args])
    execute(f"""INSERT INTO rollup_first_seen
        SELECT project_id, vk, hour FROM rollup_visitors WHERE {this_hour}
          AND vk NOT IN (SELECT vk FROM rollup_first_seen WHERE project_id = ?)""",
            [*args, project_id])


# Stale: the one stretch [lo, hi) of hours holding every hour not current (pending, or
# with rows past the watermark; current hours inside it are read raw too), as epoch µs,
# (0, 0) when there is none. Readers take it as the :data:`STALE_LO` and
# :data:`STALE_HI` parameters, from their query's prelude (:func:`prelude`): constants,
# in the query's snapshot.
_STALE: Final = f"""
SELECT COALESCE(epoch_us(min(hour)), 0), COALESCE(epoch_us(max(hour)) + {HOUR_US}, 0)
FROM (SELECT hour FROM rollup_pending WHERE project_id = ?
      UNION ALL
      SELECT date_trunc('hour', ts) FROM events
      WHERE project_id = ? AND rowid > (SELECT max(watermark) FROM rollup_state))"""
STALE_LO: Final = Prelude(0)
STALE_HI: Final = Prelude(1)
# Whether a time is in the stale stretch; parameters: STALE_LO, STALE_HI.
IN_STALE: Final = "({0} >= " + TS + " AND {0} < " + TS + ")"


def prelude(project_id: int) -> tuple[str, list[Any]]:
    """The prelude of every query reading the rollup (``EventStore.query(...,
    prelude=...)``): the project's stale stretch, in the query's own snapshot."""
    return _STALE, [project_id, project_id]


def _recompute_items(execute: Execute, project_id: int, hour_us: int) -> None:
    args = [project_id, hour_us]
    this_hour = f"project_id = ? AND hour = {TS}"
    hour_events = f"""SELECT project_id, ts, name, session_id, params FROM events
        WHERE project_id = ? AND ts >= {TS} AND ts < {TS}
          AND name IN ('view_item', 'add_to_cart')"""
    lines = ITEM_LINES.format(columns="project_id, ts, name, session_id", source=hour_events)
    window = [project_id, hour_us, hour_us + HOUR_US]
    execute(f"DELETE FROM rollup_items WHERE {this_hour}", args)
    execute(f"""INSERT INTO rollup_items
        SELECT project_id, date_trunc('hour', ts) AS hour, item_id, category, {ITEM_SUMS}
        FROM ({lines}) GROUP BY project_id, hour, item_id, category""", window)
    execute(f"DELETE FROM rollup_item_views WHERE {this_hour}", args)
    execute(f"""INSERT INTO rollup_item_views
        SELECT *,
            row_number() OVER (PARTITION BY item_id, sk ORDER BY category) = 1,
            row_number() OVER (PARTITION BY category, sk ORDER BY item_id NULLS FIRST) = 1,
            sk IN (SELECT sk FROM rollup_sessions WHERE {this_hour} AND spans)
        FROM (SELECT DISTINCT project_id, date_trunc('hour', ts), item_id, category,
                     {ROLLUP_KEY.format("'s:' || session_id")} AS sk
              FROM ({lines}) WHERE name = 'view_item' AND session_id IS NOT NULL)""",
            [*args, *window])
    cart_events = f"""SELECT {ROLLUP_KEY.format("'s:' || session_id")} AS sk, currency, name,
        params FROM events
        WHERE project_id = ? AND ts >= {TS} AND ts < {TS} AND session_id IS NOT NULL
          AND name IN ('add_to_cart', 'remove_from_cart')"""
    execute(f"DELETE FROM rollup_cart_lines WHERE {this_hour}", args)
    execute(f"""INSERT INTO rollup_cart_lines
        SELECT ?, {TS}, sk, item_id, {CART_SUMS},
               sk IN (SELECT sk FROM rollup_sessions WHERE {this_hour} AND spans)
        FROM ({CART_LINES.format(source=cart_events)}) GROUP BY sk, item_id""",
            [project_id, hour_us, *args, *window])
    for table in ("rollup_item_views", "rollup_cart_lines"):
        # Sessions of this hour that now span hours: their rows in other hours span too.
        execute(f"""UPDATE {table} SET spans = true
            WHERE project_id = ? AND hour <> {TS} AND NOT spans
              AND sk IN (SELECT sk FROM rollup_sessions WHERE {this_hour} AND spans)""",
                [*args, *args])


def _rolled_sql(columns: str, which: str) -> str:
    """Rollup rows of the period's current whole hours: ``whole`` those of sessions
    taken as they are, ``spanning`` those of sessions with rows in other hours, and
    ``stale`` those of single-hour sessions also read raw (these have events in stale
    hours: an event of a current hour is in that hour's rows, so a session with events in
    two current hours spans). Parameters: :func:`_rolled_params` (``which`` alike)."""
    # The stale sessions' keys are looked up in a hash of their own (not the other way
    # round, which DuckDB picks on its estimates: hashing a month of rows), and not at
    # all when nothing is stale (a condition on constants, folded when planning).
    in_stale_raw = "(sk IN (SELECT sk FROM raw_rows WHERE stale)) IS TRUE"
    any_stale = "?::BIGINT < ?::BIGINT"
    cond = {"whole": f"NOT spans AND NOT ({any_stale} AND {in_stale_raw})",
            "spanning": "spans",
            "stale": f"NOT spans AND {any_stale} AND {in_stale_raw}"}[which]
    return f"""SELECT {columns} FROM rollup_sessions
        WHERE project_id = ? AND hour >= {TS} AND hour < {TS}
          AND NOT {IN_STALE.format("hour")} AND {cond}"""


def _rolled_params(project_id: int, start_us: int, end_us: int, which: str) -> list[Any]:
    first_full, last_full = whole_hours(start_us, end_us)
    stale = [STALE_LO, STALE_HI]
    return [project_id, first_full, last_full, *stale, *(stale if which != "spanning" else [])]


def _state_columns(columns: Sequence[str] | None) -> list[Column]:
    """The :data:`STATE` columns named (all for None), with ``first_ts``, which orders
    the merges of first-event attributes (and ``last_ts`` for last-event ones); in
    :data:`STATE` order."""
    wanted = set(STATE_NAMES if columns is None else (*columns, "first_ts"))
    if wanted & {"exit_step", "exit_page"}:
        wanted.add("last_ts")
    unknown = wanted - set(STATE_NAMES)
    if unknown:
        raise ValueError(f"not state columns: {sorted(unknown)}")
    return [c for c in STATE if c.name in wanted]


def _edges_sql(columns: Sequence[str] | None = None) -> str:
    """CTEs ``ev0``, ``ev`` and ``raw_rows`` (with the state ``columns``, all for None,
    and ``stale``: the session has events in stale hours): what the rollup does not
    cover, read raw (parameters: :func:`_edge_params`)."""
    raw = ", ".join(f"{c.raw} AS {c.name}" for c in _state_columns(columns))
    # The events the rollup does not cover, as scans DuckDB can each narrow by time (a
    # filter mixing them with OR would read every event of the period): the partial
    # hours at both ends, the stale stretch, and elsewhere the events without a session
    # id.
    cols = ", ".join(COLUMNS)
    window = f"project_id = ? AND ts >= {TS} AND ts < {TS}"
    in_stale = IN_STALE.format("ts")
    outside = f"""
        SELECT {cols} FROM events WHERE {window}
        UNION ALL SELECT {cols} FROM events WHERE {window}
        UNION ALL SELECT {cols} FROM events WHERE {window} AND {in_stale}
        UNION ALL SELECT {cols} FROM events WHERE {window} AND session_id IS NULL
            AND NOT {in_stale}"""
    return f"""{sessionized_sql(source=outside)},
raw_rows AS ({_hashed(f"SELECT sk, {raw}, bool_or({in_stale}) AS stale FROM ev "
                      "WHERE sk IS NOT NULL GROUP BY sk")})"""


def _merged_sql(columns: Sequence[str] | None = None) -> str:
    """The merged state rows (the state ``columns``, all for None) of the sessions split
    between hours or read raw. Parameters: :func:`_rolled_params` of ``spanning`` and
    ``stale``."""
    merged = ", ".join(f"{c.merge} AS {c.name}" for c in _state_columns(columns))
    names = ", ".join(c.name for c in _state_columns(columns))
    return f"""SELECT sk, {merged} FROM (
        {_rolled_sql(f"sk, {names}", "spanning")}
        UNION ALL {_rolled_sql(f"sk, {names}", "stale")}
        UNION ALL SELECT sk, {names} FROM raw_rows)
    GROUP BY sk"""


def session_states(*, rollup: bool = True, columns: Sequence[str] | None = None) -> str:
    """CTEs ending in ``st``: one row per session of the period with the merged
    :data:`STATE` columns (those named in ``columns`` and ``first_ts``; all for None:
    fewer columns, less to read, merge and plan), plus ``ev`` (see
    :mod:`~shopwatch.analytics.sessions`), which holds at least every event of the
    period that belongs to no session. The key ``sk`` is the 64-bit hash with the
    rollup, the key string without.

    Parameters: :func:`state_params`; with the rollup, the query needs the prelude
    :func:`prelude`. ``rollup=False`` computes every session from raw events in one
    GROUP BY (the reference the rollup is tested against).
    """
    raw = ", ".join(f"{c.raw} AS {c.name}" for c in _state_columns(columns))
    if not rollup:  # keys stay strings: nothing is matched with rollup rows
        return f"""{sessionized_sql()},
st AS (SELECT sk, {raw} FROM ev WHERE sk IS NOT NULL GROUP BY sk)"""
    # The rollup is scanned more than once rather than put in a CTE of its own: DuckDB
    # would materialise a CTE read twice, copying every row.
    names = ", ".join(c.name for c in _state_columns(columns))
    return f"""{_edges_sql(columns)},
st AS (
    {_rolled_sql(f"sk, {names}", "whole")}
    UNION ALL
    {_merged_sql(columns)}
)"""


def state_params(project_id: int, start_us: int, end_us: int, *,
                 rollup: bool = True) -> list[Any]:
    """The parameters of :func:`session_states` for one project and period."""
    if not rollup:
        return [project_id, start_us, end_us]
    return [*_edge_params(project_id, start_us, end_us),
            *_rolled_params(project_id, start_us, end_us, "whole"),
            *_rolled_params(project_id, start_us, end_us, "spanning"),
            *_rolled_params(project_id, start_us, end_us, "stale")]


def whole_hours(start_us: int, end_us: int) -> tuple[int, int]:
    """The period's whole hours ``[first, last)``, as the rollup readers take them (both
    ``end_us`` when there is none)."""
    first_full = -(-start_us // HOUR_US) * HOUR_US
    last_full = end_us // HOUR_US * HOUR_US
    if first_full >= last_full:  # no whole hour: all raw
        return end_us, end_us
    return first_full, last_full


def _edge_params(project_id: int, start_us: int, end_us: int) -> list[Any]:
    first_full, last_full = whole_hours(start_us, end_us)
    middle = [project_id, first_full, last_full, STALE_LO, STALE_HI]
    return [project_id, start_us, first_full, project_id, last_full, end_us,  # the ends
            *middle, *middle,  # stale hours, events without a session id
            STALE_LO, STALE_HI]  # raw_rows.stale


def session_totals(*, rollup: bool = True) -> str:
    """A query of one row: the :data:`TOTALS` of the period's sessions (by name), and
    ``unsessioned``, the period's events that belong to no session. Equal to the totals
    over :func:`session_states`' rows; with the rollup, whole sessions of current whole
    hours come summed from ``rollup_hours``, and only the others are merged.

    Parameters: :func:`totals_params`; with the rollup, the prelude :func:`prelude`.
    """
    aggs = ", ".join(f"{t.agg} AS {t.name}" for t in TOTALS)
    unsessioned = "(SELECT count(*) FROM ev WHERE sk IS NULL) AS unsessioned"
    if not rollup:
        return f"WITH {session_states(rollup=False)} SELECT {aggs}, {unsessioned} FROM st"
    sums = ", ".join(f"sum({t.name}) AS {t.name}" for t in TOTALS)
    # Hours' totals, minus the single-hour sessions also read raw (their other part is
    # in a stale hour), plus every merged session.
    combined = ", ".join(
        f"COALESCE(h.{n}, 0) - COALESCE(o.{n}, 0) + COALESCE(m.{n}, 0) AS {n}"
        for n in TOTAL_NAMES)
    names = ", ".join(STATE_NAMES)
    return f"""WITH {_edges_sql()},
h AS (SELECT {sums} FROM rollup_hours
      WHERE project_id = ? AND hour >= {TS} AND hour < {TS}
        AND NOT {IN_STALE.format("hour")}),
o AS (SELECT {aggs} FROM ({_rolled_sql(names, "stale")})),
m AS (SELECT {aggs} FROM ({_merged_sql()}))
SELECT {combined}, {unsessioned} FROM h, o, m"""


def totals_params(project_id: int, start_us: int, end_us: int, *,
                  rollup: bool = True) -> list[Any]:
    """The parameters of :func:`session_totals` for one project and period (the hour
    totals take the same as a rollup scan)."""
    if not rollup:
        return [project_id, start_us, end_us]
    return [*_edge_params(project_id, start_us, end_us),
            *_rolled_params(project_id, start_us, end_us, "spanning"),  # the hours' totals
            *_rolled_params(project_id, start_us, end_us, "stale"),
            *_rolled_params(project_id, start_us, end_us, "spanning"),
            *_rolled_params(project_id, start_us, end_us, "stale")]


def visitors_sql() -> str:
    """A query of one row: the visitors (``COALESCE(anonymous_id, user_id)``) with events
    in the period, and how many of them have none before it (new).

    Equal to the raw count: visitors of current whole hours come from
    ``rollup_visitors``, the rest of the period raw. A visitor has an event before the
    period when its first rolled-up hour is before the period's first hour (events are
    only added, so that stays true), or it has one in what is read raw before the
    period: the part of that first hour before ``from``, and stale hours. Parameters:
    :func:`visitors_params`, and the prelude :func:`prelude`.
    """
    def raw(in_stale: bool = False) -> str:
        stale = f"AND {IN_STALE.format('ts')}" if in_stale else ""
        return f"""SELECT {VISITOR_KEY.format("visitor")} AS vk FROM (
            SELECT DISTINCT COALESCE(anonymous_id, user_id) AS visitor FROM events
            WHERE project_id = ? AND ts >= {TS} AND ts < {TS} {stale}
              AND COALESCE(anonymous_id, user_id) IS NOT NULL)"""
    return f"""WITH vis AS (
    SELECT DISTINCT vk FROM (
        SELECT vk FROM rollup_visitors
        WHERE project_id = ? AND hour >= {TS} AND hour < {TS}
          AND NOT {IN_STALE.format("hour")}
        UNION ALL {raw()}
        UNION ALL {raw()}
        UNION ALL {raw(in_stale=True)})
), before AS (
    SELECT vk FROM rollup_first_seen WHERE project_id = ? AND hour < {TS}
    UNION ALL {raw()}
    UNION ALL {raw(in_stale=True)}
)
SELECT count(*), count(*) FILTER (WHERE vk NOT IN (SELECT vk FROM before)) FROM vis"""


def visitors_params(project_id: int, start_us: int, end_us: int) -> list[Any]:
    """The parameters of :func:`visitors_sql` for one project and period."""
    first_full, last_full = whole_hours(start_us, end_us)
    floor = start_us // HOUR_US * HOUR_US
    stale = [STALE_LO, STALE_HI]
    return [project_id, first_full, last_full, *stale,  # rolled-up hours
            project_id, start_us, first_full, project_id, last_full, end_us,  # the ends
            project_id, first_full, last_full, *stale,  # stale hours of the period
            project_id, floor,  # first seen before the period's first hour
            project_id, floor, start_us,  # that hour before the period
            project_id, -(2**53), start_us, *stale]  # stale hours before the period


def orders_sql(*, rollup: bool = True) -> str:
    """A CTE ``orders``: the purchase, refund and cancellation events of one project
    (parameter: ``project_id``; with the rollup, twice), with the columns ``name, ts, id,
    transaction_id, value, cur, items, sk, lines`` (see ``_ORDER_COLUMNS``; ``lines``: a
    purchase's :data:`ITEM_LINES` fields). With the rollup, rows
    up to the watermark come from ``rollup_orders`` and later ones from ``events``, in
    one snapshot: the same rows as from ``events`` alone."""
    columns = "name, ts, id, transaction_id, value, cur, items, sk, lines"
    raw = f"SELECT {_ORDER_COLUMNS} FROM events WHERE project_id = ? AND {_ORDER_FILTER}"
    if not rollup:
        return f"orders AS (SELECT {columns} FROM ({raw}))"
    # Not materialised: each reader's filters then reach both scans.
    return f"""orders AS NOT MATERIALIZED (
    SELECT {columns} FROM rollup_orders WHERE project_id = ?
    UNION ALL
    SELECT {columns} FROM ({raw} AND rowid > (SELECT max(watermark) FROM rollup_state))
)"""


def buckets_sql(bucket_us: int, shift_us: int = 0, *, rollup: bool = True) -> str:
    """The query of :func:`buckets_ctes`' rows."""
    return f"WITH {buckets_ctes(bucket_us, shift_us, rollup=rollup)} SELECT * FROM buckets"


def buckets_ctes(bucket_us: int, shift_us: int = 0, *, rollup: bool = True) -> str:
    """CTEs ending in ``buckets``: the period's sessions and events per time bucket.
    Rows ``(b, events, active, sessions, converted, carted)``, one per bucket with any:
    ``b`` is the bucket number ``(t + shift_us) // bucket_us`` of a time ``t`` (epoch
    µs) of the period, ``events`` its events (with a session or not), ``active`` the
    sessions with an event in it, ``sessions``, ``converted`` and ``carted`` those whose
    first event in the period is in it, and of them those with a purchase, and with an
    ``add_to_cart``, in the period. So ``sessions`` adds up to the period's sessions,
    equal to :func:`session_states`' rows.

    With the rollup, ``bucket_us`` and ``shift_us`` must be whole hours (see
    :func:`hour_aligned`): each rolled-up hour then lies in one bucket. Whole sessions of
    current hours come counted from ``rollup_hours``; sessions spanning hours or also read
    raw are placed from their parts. Parameters: :func:`buckets_params`; prelude with
    the rollup: :func:`prelude`.
    """
    def bucket(column: str) -> str:
        return f"(epoch_us({column}) + {int(shift_us)}) // {int(bucket_us)}"

    raw_parts = f"""SELECT sk, {bucket("ts")} AS b, count(*) AS events,
        min(ts) AS first_ts, bool_or(name = 'purchase') AS bought,
        bool_or(name = 'add_to_cart') AS carted
        FROM ev WHERE sk IS NOT NULL GROUP BY 1, 2"""
    counted = f"""
a AS (SELECT b, count(DISTINCT sk) AS active, sum(events) AS events FROM parts GROUP BY b),
f AS (SELECT {bucket("min(first_ts)")} AS b, bool_or(bought) AS bought,
      bool_or(carted) AS carted FROM parts GROUP BY sk),
u AS (SELECT {bucket("ts")} AS b, count(*) AS events FROM ev0
      WHERE session_id IS NULL AND visitor IS NULL GROUP BY 1)"""  # sk IS NULL, not via ev
    sums = """
    UNION ALL SELECT b, events, active, 0, 0, 0 FROM a
    UNION ALL SELECT b, 0, 0, count(*), count(*) FILTER (WHERE bought),
                     count(*) FILTER (WHERE carted) FROM f GROUP BY b
    UNION ALL SELECT b, events, 0, 0, 0, 0 FROM u
) GROUP BY b"""
    columns = ("b, sum(events) AS events, sum(active) AS active, sum(sessions) AS sessions, "
               "sum(converted) AS converted, sum(carted) AS carted")
    if not rollup:  # keys need no hashing: nothing is matched with rollup rows
        return f"""{sessionized_sql()},
parts AS ({raw_parts}),{counted},
buckets AS (SELECT {columns} FROM (
    SELECT NULL::BIGINT AS b, 0 AS events, 0 AS active, 0 AS sessions, 0 AS converted,
           0 AS carted
    WHERE false{sums})"""
    if bucket_us % HOUR_US or shift_us % HOUR_US:
        raise ValueError("rolled-up buckets and shifts must be whole hours")
    # Whole sessions of current hours are summed per hour; the single-hour sessions also
    # read raw are taken out of those sums and placed again from their parts, with the
    # sessions spanning hours.
    rolled = "sk, hour, events, first_ts, bought, carted, spans"
    return f"""{_edges_sql(columns=())},
split AS ({_rolled_sql(rolled, "spanning")} UNION ALL {_rolled_sql(rolled, "stale")}),
parts AS (
    SELECT sk, {bucket("hour")} AS b, events, first_ts, bought, carted FROM split
    UNION ALL {_hashed(raw_parts)}
),{counted},
buckets AS (SELECT {columns} FROM (
    SELECT {bucket("hour")} AS b, events, sessions AS active, sessions, converted,
           carts AS carted
    FROM rollup_hours
    WHERE project_id = ? AND hour >= {TS} AND hour < {TS} AND NOT {IN_STALE.format("hour")}
    UNION ALL SELECT {bucket("hour")}, -events, -1, -1, -bought::INTEGER, -carted::INTEGER
    FROM split WHERE NOT spans{sums})"""


def hour_aligned(bucket_us: int, shift_us: int = 0) -> bool:
    """Whether :func:`buckets_sql` can read the rollup for these buckets and shift."""
    return bucket_us % HOUR_US == 0 and shift_us % HOUR_US == 0


def buckets_params(project_id: int, start_us: int, end_us: int, *,
                   rollup: bool = True) -> list[Any]:
    """The parameters of :func:`buckets_sql` for one project and period."""
    if not rollup:
        return [project_id, start_us, end_us]
    return [*_edge_params(project_id, start_us, end_us),
            *_rolled_params(project_id, start_us, end_us, "spanning"),
            *_rolled_params(project_id, start_us, end_us, "stale"),
            *_rolled_params(project_id, start_us, end_us, "spanning")]  # the hours' sums
