"""The values alert rules read: each series of :data:`shopwatch.alerts.rules.SERIES`.

Contract (docs/alerts.md, "Series"; the KPIs' own definitions in docs/kpis.md):

- :func:`value` is a series' value over ``[start_us, end_us)`` by event time, with the
  rule's ``filter`` applied; the same figure the dashboard shows for that range
  (``orders``, ``revenue`` and ``conversion`` as :func:`shopwatch.analytics.kpis.kpis`,
  ``lcp_p75`` and ``inp_p75`` as :func:`shopwatch.analytics.vitals.vitals`,
  ``backend_errors`` and ``backend_p95_ms`` as :func:`shopwatch.analytics.apm.backend`).
- **Counts** (``orders``, ``revenue``, ``sessions``, ``login_failures``, ``events``,
  ``failed_checks``, ``js_errors``, ``backend_errors``) are
  ``0.0`` over a measured window without data: a ``no_data`` rule relies on that.
  **Ratios, percentiles and ``monitor``** are ``None`` when there is nothing to judge (a
  zero denominator, no sample, no run).
- :func:`buckets` cuts the range into buckets of ``bucket_s`` from ``start_us`` (the last
  one may be shorter) and gives ``(bucket start in epoch seconds, value)``, where each
  value is :func:`value` over that bucket alone. Counts list every bucket, zeros
  included (a measured quiet period); the other series leave out the buckets whose
  value is ``None`` (unknown, as :mod:`shopwatch.alerts.anomaly` wants). Sums of count
  buckets add up to the range's value, except ``sessions``: a session with events in
  two buckets counts in each (as it would in each window alone); for sessions and the
  ratios, read buckets as long as the rule's window.
- One parametrised query per call, whatever the series and the number of buckets
  (:func:`seasonal_buckets`: one per week).

A filter key the series does not take, or an unknown series, is a ``ValueError`` (the
rules loader refuses such rules first, so this is a programming error).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Self

from shopwatch.alerts.rules import SERIES
from shopwatch.analytics.apm import IN_ERROR, ROUTE
from shopwatch.analytics.currency import rate_sql
from shopwatch.analytics.sessions import TS, sessionized_sql
from shopwatch.analytics.vitals import GROUP_SQL
from shopwatch.store.base import EventStore

COUNTS: Final = frozenset({"orders", "revenue", "sessions", "login_failures", "events",
                           "failed_checks", "js_errors", "backend_errors"})
PERCENTILES: Final = frozenset({"lcp_p75", "inp_p75", "backend_p95_ms"})

# The bucket of a row: its offset from the range's start in whole buckets (parameters:
# start_us, bucket_us). ``value`` reads one bucket as long as the range.
BUCKET: Final = "((epoch_us(ts) - ?::BIGINT) // ?::BIGINT)"
IN_RANGE: Final = f"project_id = ? AND ts >= {TS} AND ts < {TS}"
# The path of an event's ``page`` (a URL or a path): without scheme, host, query and
# fragment; "/" for a bare host. Its page group is vitals.GROUP_SQL's.
_PATH: Final = ("CASE WHEN page IS NULL THEN NULL ELSE COALESCE(NULLIF(regexp_replace("
                "regexp_replace(page, '^[a-zA-Z][a-zA-Z0-9+.-]*://[^/?#]*', ''), "
                "'[?#].*$', ''), ''), '/') END")
_PAGE_GROUP: Final = GROUP_SQL.replace("page", "path")
_PAGE_MATCH: Final = f"(path = ? OR {_PAGE_GROUP} = ?)"
# A purchase counts once per transaction id (its first event), as kpis.py's orders; per
# bucket, so that a bucket's value is the value of that bucket alone.
_FIRST_PURCHASE: Final = ("QUALIFY name <> 'purchase' OR transaction_id IS NULL OR "
                          "row_number() OVER (PARTITION BY name, transaction_id, b "
                          "ORDER BY ts, id) = 1")
_PM: Final = "params->>'$.payment_method'"


class Sql:
    """A query and its parameters, built in text order (DuckDB binds ``?`` by position)."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.params: list[Any] = []

    def add(self, text: str, *params: Any) -> Self:
        self.parts.append(text)
        self.params.extend(params)
        return self

    @property
    def text(self) -> str:
        return "\n".join(self.parts)


def _check(series: str, filter: Mapping[str, str] | None) -> dict[str, str]:
    if series not in SERIES:
        raise ValueError(f"series: {series!r} is not one of {', '.join(SERIES)}")
    found = dict(filter or {})
    for key in found:
        if key not in SERIES[series]:
            allowed = ", ".join(sorted(SERIES[series])) or "none"
            raise ValueError(f"filter.{key}: the {series} series is not filtered by {key} "
                             f"(it takes: {allowed})")
    return found


def _events_sql(q: Sql, where: Sql, project_id: int, start_us: int, end_us: int,
                bucket_us: int, names: tuple[str, ...] | None) -> None:
    """Counts of events (``names``: of those names only) per bucket."""
    marks = f" AND name IN ({', '.join('?' for _ in names)})" if names else ""
    q.add(f"SELECT {BUCKET} AS b, count(*), NULL FROM events", start_us, bucket_us)
    q.add(f"WHERE {IN_RANGE}{marks}", project_id, start_us, end_us, *(names or ()))
    q.add(where.text, *where.params).add("GROUP BY b")


def _sql(project_id: int, series: str, f: dict[str, str], start_us: int, end_us: int,
         bucket_us: int, currency: str | None) -> Sql:
    """Rows ``(b, a, c)`` per bucket ``b`` with data: the value ``a`` of a count, sum or
    percentile, or the numerator ``a`` and denominator ``c`` of a ratio."""
    q = Sql()
    rng = (project_id, start_us, end_us)
    where = Sql()
    if series == "events":
        if "name" in f:
            where.add("AND name = ?", f["name"])
        _events_sql(q, where, *rng, bucket_us, None)
    elif series == "login_failures":
        _events_sql(q, where, *rng, bucket_us, ("login_failed",))
    elif series == "orders":
        q.add(f"SELECT b, count(*), NULL FROM (SELECT {BUCKET} AS b, name, ts, id, "
              f"transaction_id, {_PM} AS pm FROM events", start_us, bucket_us)
        q.add(f"WHERE {IN_RANGE} AND name = 'purchase' {_FIRST_PURCHASE})", *rng)
        if "payment_method" in f:
            q.add("WHERE pm = ?", f["payment_method"])
        q.add("GROUP BY b")
    elif series == "revenue":
        if currency is None:
            raise ValueError("revenue: the project's currency is needed (currency=)")
        # kpis.py's net revenue: first purchases minus refunds (their own value, else the
        # order's) and cancellations (the order's value, found at any time, else their
        # own), converted; an amount in a currency without a rate is left out. A refund
        # or cancellation has its order's payment method.
        q.add(f"""WITH p AS (
    SELECT {BUCKET} AS b, name, ts, id, transaction_id, value, upper(currency) AS cur,
           {_PM} AS pm
    FROM events""", start_us, bucket_us)
        q.add(f"""    WHERE {IN_RANGE} AND name IN ('purchase', 'refund', 'order_cancelled')
    {_FIRST_PURCHASE}
), r AS (SELECT * FROM p WHERE name <> 'purchase'),
o AS (
    SELECT transaction_id, arg_min(value, ts) AS value, arg_min(upper(currency), ts) AS cur,
           arg_min({_PM}, ts) AS pm
    FROM events""", *rng)
        q.add("""    WHERE project_id = ? AND name = 'purchase'
          AND transaction_id IN (SELECT transaction_id FROM r)
    GROUP BY transaction_id
), m AS (
    SELECT r.b,
        -CASE WHEN r.name = 'refund' AND r.value IS NOT NULL THEN r.value
              ELSE COALESCE(o.value, r.value) END AS value,
        CASE WHEN r.name = 'refund' AND r.value IS NOT NULL THEN r.cur
             ELSE COALESCE(o.cur, r.cur) END AS cur,
        COALESCE(o.pm, r.pm) AS pm
    FROM r LEFT JOIN o USING (transaction_id)
)""", project_id)
        q.add(f"""SELECT b, COALESCE(sum(value * {rate_sql(currency)}), 0), NULL FROM (
    SELECT b, value, cur, pm FROM p WHERE name = 'purchase'
    UNION ALL SELECT b, value, cur, pm FROM m)""")
        if "payment_method" in f:
            q.add("WHERE pm = ?", f["payment_method"])
        q.add("GROUP BY b")
    elif series == "declined_rate":
        # Declined payments ÷ (declined payments + orders), each filtered by its own
        # payment_method and gateway.
        q.add(f"""SELECT b, count(*) FILTER (WHERE name = 'payment_declined'), count(*)
FROM (SELECT {BUCKET} AS b, name, ts, id, transaction_id, {_PM} AS pm,
             params->>'$.gateway' AS gw FROM events""", start_us, bucket_us)
        q.add(f"""      WHERE {IN_RANGE} AND name IN ('purchase', 'payment_declined')
      {_FIRST_PURCHASE})
WHERE true""", *rng)
        if "payment_method" in f:
            q.add("AND pm = ?", f["payment_method"])
        if "gateway" in f:
            q.add("AND gw = ?", f["gateway"])
        q.add("GROUP BY b")
    elif series in ("sessions", "conversion", "checkout_conversion"):
        # Sessions as sessions.py (and kpis.py) make them; per bucket, the part of each
        # session in it. Its device and country: those of its first event there.
        q.add(f"WITH {sessionized_sql(f'{_PM} AS pm')},", *rng)
        q.add(f"""s AS (
    SELECT sk, {BUCKET} AS b, arg_min(device_category, ts) AS device,
           arg_min(country, ts) AS country, bool_or(name = 'purchase') AS bought,
           bool_or(name = 'begin_checkout') AS checked_out,""", start_us, bucket_us)
        if "page" in f:
            q.add(f"bool_or({_PAGE_MATCH}) AS on_page,", f["page"], f["page"])
        if "payment_method" in f:
            q.add("bool_or(pm = ?) AS chose,", f["payment_method"])
        q.add(f"""    count(*) AS n
    FROM (SELECT *, {_PATH} AS path FROM ev WHERE sk IS NOT NULL) GROUP BY sk, b
)""")
        if series == "sessions":
            q.add("SELECT b, count(*), NULL FROM s WHERE true")
        elif series == "conversion":
            q.add("SELECT b, count(*) FILTER (WHERE bought), count(*) FROM s WHERE true")
        else:
            q.add("SELECT b, count(*) FILTER (WHERE bought), count(*) FROM s "
                  "WHERE checked_out")
        for key, column in (("device", "device"), ("country", "country")):
            if key in f:
                q.add(f"AND {column} = ?", f[key])
        if "page" in f:
            q.add("AND on_page")
        if "payment_method" in f:
            q.add("AND chose")
        q.add("GROUP BY b")
    elif series in ("lcp_p75", "inp_p75", "error_rate"):
        # vitals.py's page views (a view_id with view or vitals rows; its metrics the
        # largest of its rows; its page the first row's), per bucket.
        q.add(f"""WITH pv AS (
    SELECT view_id, {BUCKET} AS b, arg_min(page, ts) FILTER (WHERE kind <> 'error') AS page,
           any_value(device_category) FILTER (WHERE kind <> 'error') AS device,
           max(lcp_ms) AS lcp, max(inp_ms) AS inp,
           bool_or(kind <> 'error') AS viewed, bool_or(kind = 'error') AS erred
    FROM rum""", start_us, bucket_us)
        q.add(f"""    WHERE {IN_RANGE} AND kind IN ('view', 'vitals', 'error')
          AND view_id IS NOT NULL
    GROUP BY view_id, b
)""", *rng)
        if series == "error_rate":
            q.add("SELECT b, count(*) FILTER (WHERE erred), count(*)")
        else:
            q.add(f"SELECT b, quantile_cont({series.removesuffix('_p75')}, 0.75), NULL")
        q.add(f"FROM (SELECT *, {GROUP_SQL} AS grp FROM pv WHERE viewed) WHERE true")
        if "page" in f:
            q.add("AND (page = ? OR grp = ?)", f["page"], f["page"])
        if "device" in f:
            q.add("AND device = ?", f["device"])
        q.add("GROUP BY b")
    elif series == "failed_checks":
        q.add(f"SELECT {BUCKET} AS b, count(*), NULL FROM check_results", start_us,
              bucket_us)
        q.add(f"WHERE {IN_RANGE} AND NOT ok", *rng)
        for key in ("monitor", "location"):
            if key in f:
                q.add(f"AND {key} = ?", f[key])
        q.add("GROUP BY b")
    elif series == "js_errors":
        q.add(f"SELECT {BUCKET} AS b, count(*), NULL FROM (SELECT *, {_PATH} AS path "
              "FROM rum", start_us, bucket_us)
        q.add(f"WHERE {IN_RANGE} AND kind = 'error')", *rng)
        if "page" in f:
            q.add(f"WHERE {_PAGE_MATCH}", f["page"], f["page"])
        q.add("GROUP BY b")
    elif series in ("backend_errors", "backend_p95_ms"):
        # apm.py's requests (server spans): those in error, or the p95 of their durations.
        measure = ("count(*)" if series == "backend_errors"
                   else "quantile_cont(duration_ms, 0.95)")
        q.add(f"SELECT {BUCKET} AS b, {measure}, NULL FROM spans", start_us, bucket_us)
        q.add(f"WHERE {IN_RANGE} AND kind = 'server'", *rng)
        if series == "backend_errors":
            q.add(f"AND {IN_ERROR}")
        if "service" in f:
            q.add("AND service = ?", f["service"])
        if "route" in f:
            q.add(f"AND {ROUTE} = ?", f["route"])
        q.add("GROUP BY b")
    else:  # monitor: the latest run of each monitor and location in each bucket
        q.add(f"SELECT {BUCKET} AS b, monitor, location, arg_max(ok, ts) FROM check_results",
              start_us, bucket_us)
        q.add(f"WHERE {IN_RANGE}", *rng)
        if "monitor" in f:
            q.add("AND monitor = ?", f["monitor"])
        if "location" in f:
            q.add("AND location = ?", f["location"])
        q.add("GROUP BY ALL")
    return q


def _monitor_values(rows: list[tuple[Any, ...]], min_failed: Mapping[str, int],
                    by_location: bool) -> dict[int, float | None]:
    """Per bucket: 1.0 when some monitor is down there (at least its
    ``min_failed_locations`` latest runs failed; with a ``location`` filter, that
    location's), else 0.0."""
    failed: dict[int, dict[str, int]] = {}
    for b, monitor, _location, ok in rows:
        per = failed.setdefault(int(b), {})
        per[monitor] = per.get(monitor, 0) + (0 if ok else 1)
    out: dict[int, float | None] = {}
    for b, per in failed.items():
        down = any(n >= (1 if by_location else min_failed.get(m, 1)) for m, n in per.items())
        out[b] = 1.0 if down else 0.0
    return out


def _values(store: EventStore, project_id: int, series: str,
            filter: Mapping[str, str] | None, start_us: int, end_us: int, bucket_us: int,
            currency: str | None, min_failed: Mapping[str, int] | None,
            ) -> dict[int, float | None]:
    f = _check(series, filter)
    if end_us <= start_us:
        raise ValueError(f"range: end {end_us} must be after start {start_us}")
    if bucket_us <= 0:
        raise ValueError(f"bucket_s: {bucket_us / 1e6:g} must be positive")
    q = _sql(project_id, series, f, start_us, end_us, bucket_us, currency)
    rows = store.query(q.text, q.params)
    if series == "monitor":
        return _monitor_values(rows, min_failed or {}, "location" in f)
    out: dict[int, float | None] = {}
    for b, a, c in rows:
        if series in COUNTS or series in PERCENTILES:
            out[int(b)] = None if a is None else float(a)
        else:
            out[int(b)] = float(a) / float(c) if c else None
    return out


def value(store: EventStore, project_id: int, series: str,
          filter: Mapping[str, str] | None, start_us: int, end_us: int, *,
          currency: str | None = None, min_failed: Mapping[str, int] | None = None,
          ) -> float | None:
    """The series' value over ``[start_us, end_us)`` (see the module docstring).

    ``currency``: the project's, for ``revenue`` (required there). ``min_failed``:
    monitors' ``min_failed_locations`` by name (1 when absent), for ``monitor``.
    """
    found = _values(store, project_id, series, filter, start_us, end_us,
                    end_us - start_us, currency, min_failed)
    if 0 in found:
        return found[0]
    return 0.0 if series in COUNTS else None


def buckets(store: EventStore, project_id: int, series: str,
            filter: Mapping[str, str] | None, start_us: int, end_us: int, bucket_s: float,
            *, currency: str | None = None, min_failed: Mapping[str, int] | None = None,
            ) -> list[tuple[float, float]]:
    """``(bucket start in epoch seconds, value)`` for the buckets of ``bucket_s`` from
    ``start_us`` to ``end_us`` (the last may be shorter): every bucket for counts (zeros
    included), the buckets with a value for the others (see the module docstring)."""
    bucket_us = round(bucket_s * 1_000_000)
    found = _values(store, project_id, series, filter, start_us, end_us, bucket_us,
                    currency, min_failed)
    count = -(-(end_us - start_us) // bucket_us)
    out: list[tuple[float, float]] = []
    for i in range(count):
        v = found.get(i, 0.0 if series in COUNTS else None)
        if v is not None:
            out.append(((start_us + i * bucket_us) / 1e6, v))
    return out


def seasonal_buckets(store: EventStore, project_id: int, series: str,
                     filter: Mapping[str, str] | None, start_us: int, end_us: int,
                     bucket_s: float, weeks: int, *, currency: str | None = None,
                     ) -> list[tuple[float, float]]:
    """:func:`buckets` of ``[start_us, end_us)`` and of the same span in each of the
    ``weeks`` previous weeks, oldest first: what a seasonal baseline reads, without the
    days in between (one query per week: each scans its own span only)."""
    week_us = 7 * 86400 * 1_000_000
    found: list[tuple[float, float]] = []
    for k in range(weeks, -1, -1):
        found += buckets(store, project_id, series, filter, start_us - k * week_us,
                         end_us - k * week_us, bucket_s, currency=currency)
    return found
