"""Alert evaluation benchmark: a shop's rules and SLOs read at once, a whole evaluation
pass, and an incident's impact and timeline, on generated events.

``make bench-alerts`` (default 1,000,000 events over 30 days, one project in EUR, UTC):

1. **Generate** events straight into a fresh data directory's event store with
   ``benchmarks/queries.py``'s generator (its ``FILL``, through its ``generate``), then
   add what alert rules read and that generator leaves out (this file's
   ``SUPPLEMENT``): the payment method and gateway a session chose, on its
   ``add_payment_info`` and ``purchase`` events; a ``payment_declined`` before the
   purchase in 12 % of card checkouts; ``login_failed`` events in 2 % of the sessions.
   The table is rewritten in time order. **Now** is the start of the last generated
   session, rounded up to the second: the end of the data (events of the sessions still
   under way then lie in the future and are not read). ``--data DIR`` keeps the
   directory and reuses it.
2. **Rules**: the shop's rules (:data:`RULES`, parsed by ``parse_rules``) and SLOs
   (:data:`RULES` too, ``parse_objectives``; their burn rules by ``burn_rules``) are
   applied to a real SQLite state store in a temp directory. Each rule is read through
   the server's reader (``series_reader(events, state)``) over the window the evaluator
   gives it at now, p50/p95 over ``--repeat`` reads after a warm-up, each interleaved
   with its **baseline**: one hand-written DuckDB query over raw events computing the
   same value from the definitions of docs/alerts.md ("Series") and docs/kpis.md, not
   from Shopwatch's SQL. The anomaly rule's baseline is one GROUP BY of the same
   buckets (orders per 30 minutes over the 4 weeks) with the median/MAD judgement done
   in Python; each SLO burn rule's is one GROUP BY of the tier's buckets (good and
   total per short window over the long window) with the burn arithmetic in Python.
   Values must agree, or the run fails.
3. **Evaluation pass**: the real ``Evaluator`` (rules from the state store as the
   server reads them, the reader above, the server's incident impact; notifications
   appended to a list) runs ``evaluate(now)``; p50/p95 over ``--repeat`` passes after
   a warm-up pass, against the 60 s ``alerts_interval``.
4. **Incident**: a 45-minute incident ending at now (an ``Incident`` built directly):
   ``impact`` (orders and revenue lost against the same minutes of the previous 4
   weeks) and ``timeline``, each interleaved with its baseline: the two hand-written
   queries (orders and net revenue per minute over the incident, and over the same
   minutes of the previous 4 weeks) with the medians in Python; for the timeline, also
   one query for its sessions, add-to-carts and checkouts per minute and one for its
   technical series (check runs, RUM, spans: empty here, as nothing generates them).
   Their figures must agree too.

The event store is opened as ``shopwatch serve`` opens it: in its own process by
default (``store_process``), with the server's DuckDB threads and memory limit; the
baselines run in this process on a copy of the file with the same DuckDB settings.
``--in-process`` reads the store in this process instead (no pipe between).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import duckdb

from shopwatch.alerts.channels.base import Notification
from shopwatch.alerts.evaluator import Evaluator
from shopwatch.alerts.incidents import impact, incident_impact, timeline
from shopwatch.alerts.objectives import Objective, burn_rules, parse_objectives, tier_named
from shopwatch.alerts.reader import series_reader
from shopwatch.alerts.rules import Rule, parse_rules
from shopwatch.settings import Settings, defaults
from shopwatch.store.base import EventStore
from shopwatch.store.channels import add_channel
from shopwatch.store.duckdb import DuckDBEventStore, duckdb_config
from shopwatch.store.incidents import Incident
from shopwatch.store.process import EventStoreProcess
from shopwatch.store.rules import apply_rules
from shopwatch.store.slos import all_rules, apply_slos
from shopwatch.store.state import StateStore

sys.path.insert(0, str(Path(__file__).parent))
from baselines import FX, sessions
from queries import differences, generate, ms

WEEK_S: Final = 7 * 86400
INCIDENT_S: Final = 45 * 60
MAD_K: Final = 3.0  # the reader's: outside 3 times the spread of past weeks
MAD_SCALE: Final = 1.4826

# A shop's rules and objectives, as its YAML file would hold them.
RULES: Final = """
rules:
  - name: orders stopped
    kind: threshold
    series: orders
    window: 10m
    op: "<"
    threshold: 1
    for: 10m
    severity: critical
    channels: [ops]
  - {name: revenue low, kind: threshold, series: revenue, window: 1h, op: "<",
     threshold: 200, for: 30m, channels: [ops]}
  - {name: conversion low, kind: threshold, series: conversion, window: 30m, op: "<",
     threshold: 0.02, clear: 0.025, for: 15m, channels: [ops]}
  - {name: mobile checkout failing, kind: threshold, series: checkout_conversion,
     filter: {device: mobile}, window: 1h, op: "<", threshold: 0.2, for: 15m,
     severity: critical, channels: [ops]}
  - {name: card declines, kind: threshold, series: declined_rate,
     filter: {payment_method: card}, window: 10m, op: ">", threshold: 0.3, clear: 0.2,
     for: 5m, severity: critical, channels: [ops]}
  - {name: credential stuffing, kind: threshold, series: login_failures, window: 10m,
     op: ">", threshold: 50, channels: [security]}
  - {name: traffic drop, kind: threshold, series: sessions, window: 30m, op: "<",
     threshold: 20, for: 10m, channels: [ops]}
  - {name: tracking stopped, kind: no_data, series: events, window: 15m,
     severity: critical, channels: [ops]}
  - {name: orders drop, kind: anomaly, series: orders, window: 30m, weeks: 4,
     min_change: 0.4, severity: critical, channels: [ops]}
slos:
  - {name: checkout success, sli: checkout, target: 45%, window: 30d, channels: [ops]}
  - {name: payments accepted, sli: payment, target: 90%, window: 30d, channels: [ops]}
"""

# What the alert rules read and queries.py's generator leaves out. Rewrites project 1's
# events in time order (as they would have arrived) with: the payment method (and its
# gateway) the session chose on add_payment_info and purchase; a declined card payment
# 10 s after the payment info in 12 % of card checkouts; and in 2 % of the sessions a
# failed login 5 s after each page view.
SUPPLEMENT: Final = """
CREATE OR REPLACE TEMP TABLE supplemented AS
WITH chosen AS (
    SELECT *, ['card', 'card', 'paypal', 'klarna'][
        (1 + hash(session_id || ':pm') % 4)::BIGINT] AS pm
    FROM events WHERE project_id = 1
), e AS (
    SELECT * EXCLUDE (pm) REPLACE (
        CASE WHEN name IN ('add_payment_info', 'purchase') THEN json_merge_patch(params,
            json_object('payment_method', pm,
                        'gateway', CASE pm WHEN 'card' THEN 'stripe' ELSE pm END))
        ELSE params END AS params)
    FROM chosen
)
SELECT * FROM e
UNION ALL
SELECT * REPLACE ('payment_declined' AS name, uuid()::VARCHAR AS id,
                  ts + INTERVAL 10 SECOND AS ts, received_at + INTERVAL 10 SECOND AS received_at,
                  '/checkout/payment' AS page, NULL AS value, NULL AS currency,
                  NULL AS transaction_id,
                  '{"payment_method":"card","gateway":"stripe","reason":"card_declined"}'::JSON
                      AS params)
FROM e WHERE name = 'add_payment_info' AND params->>'$.payment_method' = 'card'
    AND hash(session_id || ':declined') % 100 < 12
UNION ALL
SELECT * REPLACE ('login_failed' AS name, uuid()::VARCHAR AS id,
                  ts + INTERVAL 5 SECOND AS ts, received_at + INTERVAL 5 SECOND AS received_at,
                  '/account/login' AS page, NULL AS value, NULL AS currency,
                  NULL AS transaction_id, '{}'::JSON AS params)
FROM e WHERE name = 'page_view' AND hash(session_id || ':login') % 50 = 0
"""

# --- baselines: hand-written from docs/alerts.md "Series" and docs/kpis.md ----------------
# Named parameters: $from and $to (epoch µs) for the window; $origin and $bucket (µs) for
# queries by bucket. Project 1, currency EUR (FX converts to it), time zone UTC.

RANGE: Final = "ts >= make_timestamp($from) AND ts < make_timestamp($to)"
BUCKET: Final = "(epoch_us(ts) - $origin) // $bucket"
# Orders: purchases, one per transaction id; without one, each purchase.
ORDER_COUNT: Final = ("count(DISTINCT transaction_id) FILTER (WHERE name = 'purchase') "
                      "+ count(*) FILTER (WHERE name = 'purchase' AND transaction_id IS NULL)")

ORDERS: Final = f"""
SELECT {ORDER_COUNT} FROM events WHERE project_id = 1 AND name = 'purchase' AND {RANGE}
"""
EVENTS: Final = f"SELECT count(*) FROM events WHERE project_id = 1 AND {RANGE}"
LOGIN_FAILURES: Final = f"""
SELECT count(*) FROM events WHERE project_id = 1 AND name = 'login_failed' AND {RANGE}
"""
SESSIONS: Final = f"WITH {sessions(RANGE)} SELECT count(DISTINCT sk) FROM ev"
CONVERSION: Final = f"""
WITH {sessions(RANGE)}
SELECT count(*) FILTER (WHERE bought), count(*)
FROM (SELECT sk, bool_or(name = 'purchase') AS bought FROM ev GROUP BY sk)
"""
# A session's device: its first event's in the window.
CHECKOUT_CONVERSION: Final = f"""
WITH {sessions(RANGE, extra="device_category")}
SELECT count(*) FILTER (WHERE bought), count(*)
FROM (SELECT sk, arg_min(device_category, ts) AS device, bool_or(name = 'purchase') AS bought,
             bool_or(name = 'begin_checkout') AS checked_out
      FROM ev GROUP BY sk)
WHERE checked_out AND device = $device
"""
# Declined payments ÷ (declined payments + orders), each event with its own method.
DECLINED_RATE: Final = f"""
SELECT count(*) FILTER (WHERE name = 'payment_declined'),
       count(*) FILTER (WHERE name = 'payment_declined') + {ORDER_COUNT}
FROM events
WHERE project_id = 1 AND name IN ('purchase', 'payment_declined') AND {RANGE}
  AND params->>'$.payment_method' = $method
"""
# Orders per bucket of the events matching a predicate on ts ({where}).
ORDER_BUCKETS: Final = f"""
SELECT {BUCKET} AS b, {ORDER_COUNT} FROM events
WHERE project_id = 1 AND name = 'purchase' AND ({{where}}) GROUP BY b
"""


def money_sql(where: str) -> str:
    """Per bucket ``b`` of the events matching ``where``: orders and net revenue (the
    orders' value, each order's first purchase in the bucket, minus refunds, their own
    value or else their order's, and cancellations, their order's value found at any
    time or else their own), in EUR."""
    return f"""
WITH w AS (
    SELECT {BUCKET} AS b, name, ts, id, transaction_id, value, currency FROM events
    WHERE project_id = 1 AND name IN ('purchase', 'refund', 'order_cancelled') AND ({where})
), orders AS (
    SELECT b, value * {FX} AS amount FROM w WHERE name = 'purchase'
    QUALIFY transaction_id IS NULL
         OR row_number() OVER (PARTITION BY b, transaction_id ORDER BY ts, id) = 1
), first_purchase AS (
    SELECT transaction_id, arg_min_null(value * {FX}, ts) AS amount FROM events
    WHERE project_id = 1 AND name = 'purchase'
      AND transaction_id IN (SELECT transaction_id FROM w WHERE name <> 'purchase')
    GROUP BY transaction_id
), taken_back AS (
    SELECT w.b, CASE WHEN w.name = 'refund' AND w.value IS NOT NULL THEN w.value * {FX}
                     WHEN p.transaction_id IS NOT NULL THEN p.amount
                     ELSE w.value * {FX} END AS amount
    FROM w LEFT JOIN first_purchase p USING (transaction_id) WHERE w.name <> 'purchase'
)
SELECT b, count(*) FILTER (WHERE kind = 'order'),
       COALESCE(sum(amount) FILTER (WHERE kind = 'order'), 0)
       - COALESCE(sum(amount) FILTER (WHERE kind = 'back'), 0)
FROM (SELECT b, 'order' AS kind, amount FROM orders
      UNION ALL SELECT b, 'back', amount FROM taken_back)
GROUP BY b
"""


REVENUE: Final = money_sql(RANGE)
# SLIs per bucket (docs/kpis.md, "SLIs"): checkout: orders (once per transaction id, at its
# first purchase in the range) ÷ checkouts begun (once per session, at its first
# begin_checkout in the range; without a session id, each); payment: orders ÷ (orders +
# declined payments).
_FIRST_ORDERS: Final = f"""o AS (
    SELECT min(ts) AS ts FROM events WHERE project_id = 1 AND name = 'purchase' AND {RANGE}
    GROUP BY COALESCE('t:' || transaction_id, 'e:' || id)
)"""
CHECKOUT_SLI: Final = f"""
WITH {_FIRST_ORDERS}, c AS (
    SELECT min(ts) AS ts FROM events
    WHERE project_id = 1 AND name = 'begin_checkout' AND {RANGE}
    GROUP BY COALESCE('s:' || session_id, 'e:' || id)
)
SELECT b, count(*) FILTER (WHERE good), count(*) FILTER (WHERE NOT good)
FROM (SELECT {BUCKET} AS b, true AS good FROM o UNION ALL SELECT {BUCKET}, false FROM c)
GROUP BY b
"""
PAYMENT_SLI: Final = f"""
WITH {_FIRST_ORDERS}, d AS (
    SELECT ts FROM events WHERE project_id = 1 AND name = 'payment_declined' AND {RANGE}
)
SELECT b, count(*) FILTER (WHERE good), count(*)
FROM (SELECT {BUCKET} AS b, true AS good FROM o UNION ALL SELECT {BUCKET}, false FROM d)
GROUP BY b
"""
# The timeline's other series per bucket: sessions (each in every bucket it has events
# in), add-to-carts and checkouts begun (events); failed check runs, JavaScript errors,
# p75 LCP of the page views (a view_id, its largest LCP), and requests in error and p95
# duration of the requests (OpenTelemetry server spans).
TIMELINE_EVENTS: Final = f"""
WITH {sessions(RANGE)}
SELECT 'sessions', b, count(DISTINCT sk) FROM (SELECT {BUCKET} AS b, sk FROM ev) GROUP BY b
UNION ALL
SELECT name, {BUCKET} AS b, count(*) FROM ev0
WHERE name IN ('add_to_cart', 'begin_checkout') GROUP BY name, b
"""
TIMELINE_TECHNICAL: Final = f"""
SELECT 'failed_checks', {BUCKET} AS b, count(*) FROM check_results
WHERE project_id = 1 AND {RANGE} AND NOT ok GROUP BY b
UNION ALL
SELECT 'js_errors', {BUCKET} AS b, count(*) FROM rum
WHERE project_id = 1 AND {RANGE} AND kind = 'error' GROUP BY b
UNION ALL
SELECT 'lcp_p75', b, quantile_cont(lcp, 0.75)
FROM (SELECT view_id, {BUCKET} AS b, max(lcp_ms) AS lcp FROM rum
      WHERE project_id = 1 AND {RANGE} AND kind IN ('view', 'vitals') AND view_id IS NOT NULL
      GROUP BY view_id, b)
GROUP BY b
UNION ALL
SELECT 'backend_errors', {BUCKET} AS b, count(*) FROM spans
WHERE project_id = 1 AND {RANGE} AND kind = 'server'
  AND (status = 'error' OR http_status >= 500) GROUP BY b
UNION ALL
SELECT 'backend_p95_ms', {BUCKET} AS b, quantile_cont(duration_ms, 0.95) FROM spans
WHERE project_id = 1 AND {RANGE} AND kind = 'server' GROUP BY b
"""

Con = duckdb.DuckDBPyConnection


def one(con: Con, sql: str, params: dict[str, Any]) -> tuple[Any, ...]:
    row = con.execute(sql, params).fetchone()
    assert row is not None
    return row


def ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def window(start_us: int, end_us: int) -> dict[str, Any]:
    return {"from": start_us, "to": end_us}


def ranges(spans: list[tuple[int, int]]) -> str:
    """A predicate on ts: in one of the ``[start, end)`` spans (epoch µs)."""
    return " OR ".join(f"(ts >= make_timestamp({a}) AND ts < make_timestamp({b}))"
                       for a, b in spans)


def by_bucket(con: Con, sql: str, params: dict[str, Any]) -> dict[int, tuple[Any, ...]]:
    return {int(b): tuple(rest) for b, *rest in con.execute(sql, params).fetchall()}


def series_baseline(con: Con, rule: Rule, start_us: int, end_us: int) -> float | None:
    """A threshold or no_data rule's value over ``[start, end)``, from raw events."""
    f = rule.filter or {}
    p = window(start_us, end_us)
    if rule.series == "orders":
        return float(one(con, ORDERS, p)[0])
    if rule.series == "events":
        return float(one(con, EVENTS, p)[0])
    if rule.series == "login_failures":
        return float(one(con, LOGIN_FAILURES, p)[0])
    if rule.series == "sessions":
        return float(one(con, SESSIONS, p)[0])
    if rule.series == "revenue":
        found = by_bucket(con, REVENUE, {**p, "origin": start_us, "bucket": end_us - start_us})
        return float(found[0][1]) if 0 in found else 0.0
    if rule.series == "conversion":
        return ratio(*one(con, CONVERSION, p))
    if rule.series == "checkout_conversion":
        return ratio(*one(con, CHECKOUT_CONVERSION, {**p, "device": f["device"]}))
    if rule.series == "declined_rate":
        return ratio(*one(con, DECLINED_RATE, {**p, "method": f["payment_method"]}))
    raise ValueError(f"no baseline for the {rule.series} series")


def anomaly_baseline(con: Con, rule: Rule, start_us: int, end_us: int) -> float | None:
    """The anomaly reading from orders per window-long bucket over the last ``weeks``
    weeks and the window (one GROUP BY), judged as docs/alerts.md says: the size of the
    relative change against the median of the same window of past weeks, when it goes
    the rule's direction and lies outside 3 times their spread (MAD x 1.4826), else 0."""
    assert rule.series == "orders" and not rule.filter
    bucket = end_us - start_us
    week = WEEK_S * 1_000_000
    origin = end_us - rule.weeks * week - bucket
    found = by_bucket(con, ORDER_BUCKETS.format(where=RANGE),
                      {"from": origin, "to": end_us, "origin": origin, "bucket": bucket})

    def at(k: int) -> float:  # the window k weeks back (a count: 0 without orders)
        return float(found.get((rule.weeks - k) * week // bucket, (0,))[0])

    weeks = [at(k) for k in range(1, rule.weeks + 1)]
    observed = at(0)
    expected = statistics.median(weeks)
    spread = MAD_SCALE * statistics.median(abs(w - expected) for w in weeks)
    delta = observed - expected
    wanted = ((rule.direction in ("below", "both") and delta < 0)
              or (rule.direction in ("above", "both") and delta > 0))
    if expected == 0 or not wanted or abs(delta) <= MAD_K * spread:
        return 0.0
    return abs(delta / expected)


def burn_baseline(con: Con, objective: Objective, rule: Rule, now_us: int) -> float | None:
    """An SLO burn rule's reading: the burn rate, (bad / total) / (1 - target), over the
    tier's long window and over its short one (the last bucket), the lower of the two;
    none without traffic over the long window, 0 for a short window without traffic."""
    tier = tier_named((rule.filter or {})["tier"])
    start = now_us - tier.long_s * 1_000_000
    sql = CHECKOUT_SLI if objective.sli == "checkout" else PAYMENT_SLI
    found = by_bucket(con, sql, {"from": start, "to": now_us, "origin": start,
                                 "bucket": tier.short_s * 1_000_000})
    allowed = 1 - target(objective.target)
    last = tier.long_s // tier.short_s - 1
    good = {b: min(g, t) for b, (g, t) in found.items()}  # clamped per bucket

    def burn(buckets: list[int]) -> float | None:
        total = sum(found[b][1] for b in buckets)
        bad = total - sum(good[b] for b in buckets)
        return None if not total else bad / total / allowed

    long_burn, short_burn = burn(list(found)), burn([last] if last in found else [])
    if long_burn is None:
        return None
    return min(long_burn, short_burn if short_burn is not None else 0.0)


def target(written: str | float) -> float:
    """``45%`` or ``0.45`` as a fraction, read as the decimal written."""
    text = str(written).strip()
    return float(Decimal(text[:-1]) / 100 if text.endswith("%") else Decimal(text))


def loss(expected: list[float], observed: list[float]) -> dict[str, float]:
    exp, obs = sum(expected), sum(observed)
    return {"expected": exp, "observed": obs, "lost": max(0.0, exp - obs)}


def history_spans(start_us: int, end_us: int, weeks: int) -> list[tuple[int, int]]:
    week = WEEK_S * 1_000_000
    return [(start_us - k * week, end_us - k * week) for k in range(1, weeks + 1)]


def impact_baseline(con: Con, start: int, end: int, weeks: int = 4) -> dict[str, Any]:
    """Orders and revenue lost over ``[start, end)`` (epoch s) against the median of the
    same minutes of the previous weeks: two queries (the incident's minutes, the past
    weeks' minutes), per docs/kpis.md "Business impact of an incident"."""
    bucket = 60_000_000
    s_us, e_us = start * 1_000_000, end * 1_000_000
    origin = s_us - weeks * WEEK_S * 1_000_000
    params = {"origin": origin, "bucket": bucket}
    now = by_bucket(con, money_sql(ranges([(s_us, e_us)])), params)
    past = by_bucket(con, money_sql(ranges(history_spans(s_us, e_us, weeks))), params)
    per_week = WEEK_S * 1_000_000 // bucket
    minutes = range((s_us - origin) // bucket, (e_us - origin) // bucket)
    out: dict[str, Any] = {}
    for key, column in (("orders", 0), ("revenue", 1)):
        observed = [float(now.get(m, (0, 0.0))[column]) for m in minutes]
        expected = [statistics.median(float(past.get(m - k * per_week, (0, 0.0))[column])
                                      for k in range(1, weeks + 1)) for m in minutes]
        out[key] = loss(expected, observed)
    return out


def timeline_baseline(con: Con, first: int, stop: int, bucket_s: int,
                      weeks: int = 4) -> dict[str, Any]:
    """The timeline's series per bucket of ``[first, stop)`` (epoch s) and the orders
    expected (median of the same bucket of the previous weeks): four queries."""
    f_us, s_us, b_us = first * 1_000_000, stop * 1_000_000, bucket_s * 1_000_000
    count = (s_us - f_us) // b_us
    p = {"from": f_us, "to": s_us, "origin": f_us, "bucket": b_us}
    values: dict[str, dict[int, float | None]] = {}
    for sql in (TIMELINE_EVENTS, TIMELINE_TECHNICAL):
        for key, b, v in con.execute(sql, p).fetchall():
            values.setdefault(key, {})[int(b)] = None if v is None else float(v)
    money = by_bucket(con, money_sql(RANGE), p)
    values["orders"] = {b: float(o) for b, (o, _) in money.items()}
    values["revenue"] = {b: float(r) for b, (_, r) in money.items()}
    origin = f_us - weeks * WEEK_S * 1_000_000
    past = by_bucket(con, ORDER_BUCKETS.format(where=ranges(history_spans(f_us, s_us, weeks))),
                     {"origin": origin, "bucket": b_us})
    per_week = WEEK_S * 1_000_000 // b_us
    base = weeks * per_week
    out: dict[str, Any] = {}
    for key in ("failed_checks", "js_errors", "lcp_p75", "backend_errors", "backend_p95_ms",
                "sessions", "add_to_cart", "begin_checkout", "orders", "revenue"):
        found = values.get(key, {})
        # Counts read 0 in a quiet bucket; percentiles have no value there.
        empty = None if key in ("lcp_p75", "backend_p95_ms") else 0.0
        out[key] = [found.get(i, empty) for i in range(count)]
    out["expected_orders"] = [
        statistics.median(float(past.get(base + i - k * per_week, (0,))[0])
                          for k in range(1, weeks + 1)) for i in range(count)]
    return out


# --- measuring --------------------------------------------------------------------------


@dataclass
class Row:
    name: str
    ours: list[float]
    base: list[float]
    same: bool
    note: str = ""

    @property
    def p50(self) -> float:
        return statistics.median(self.ours)

    @property
    def p95(self) -> float:
        s = sorted(self.ours)
        return s[min(len(s) - 1, int(len(s) * 0.95))]

    @property
    def base_p50(self) -> float | None:
        return statistics.median(self.base) if self.base else None


def compare(name: str, ours: Callable[[], Any], base: Callable[[], Any], repeat: int,
            failures: list[str], note: str = "") -> Row:
    """Both once (warm-up, and their results must agree), then ``repeat`` times each,
    interleaved, so that a slow spell of the machine hits both."""
    diff = differences(ours(), base())
    failures += [f"{name}{d}" for d in diff[:5]]
    b: list[float] = []
    o: list[float] = []
    for _ in range(repeat):
        b.append(ms(base))
        o.append(ms(ours))
    return Row(name, o, b, not diff, note)


def open_events(path: Path, settings: Settings, in_process: bool) -> EventStore:
    """The event store as ``shopwatch serve`` opens it (its own process unless asked)."""
    kind = DuckDBEventStore if in_process or not settings.store_process else EventStoreProcess
    return kind(path, threads=settings.duckdb_threads,
                checkpoint_threshold=settings.duckdb_checkpoint_threshold,
                memory_limit=settings.duckdb_memory_limit)


def prepare(data: Path, events: int) -> int:
    """Generate (unless ``data`` holds a generated directory) and supplement the events;
    returns now (epoch s)."""
    marker = data / "bench-alerts.json"
    if marker.exists():
        now: int = json.loads(marker.read_text())["now"]
        return now
    if not (data / "bench-project.json").exists():
        generate(Path(sys.executable).with_name("shopwatch"), data, dict(os.environ), events)
    t0 = time.perf_counter()
    con = duckdb.connect(str(data / "events.duckdb"))
    try:
        con.execute(SUPPLEMENT)
        con.execute("BEGIN")
        con.execute("DELETE FROM events WHERE project_id = 1")
        con.execute("INSERT INTO events SELECT * FROM supplemented ORDER BY ts")
        con.execute("COMMIT")
        con.execute("DROP TABLE supplemented")
        con.execute("CHECKPOINT")
        # Now: the start of the last session, rounded up to the second.
        last = one(con, "SELECT max(first) FROM (SELECT min(epoch_us(ts)) AS first "
                        "FROM events WHERE project_id = 1 GROUP BY session_id)", {})[0]
    finally:
        con.close()
    now = int(last) // 1_000_000 + 1
    print(f"supplemented in {time.perf_counter() - t0:.0f} s")
    marker.write_text(json.dumps({"now": now}))
    return now


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--data", type=Path, default=None,
                        help="keep the generated data in this directory and reuse it on the "
                             "next run")
    parser.add_argument("--in-process", action="store_true",
                        help="read the event store in this process, not in its own")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        data = args.data or Path(scratch) / "data"
        data.mkdir(parents=True, exist_ok=True)
        now = prepare(data, args.events)
        failures = measure(data, Path(scratch), now, args.repeat, args.in_process)
    if failures:
        print("\nresults differing from the baseline's:\n  " + "\n  ".join(failures))
        sys.exit(1)


def measure(data: Path, scratch: Path, now: int, repeat: int, in_process: bool) -> list[str]:
    settings = defaults()
    copy = scratch / "baseline.duckdb"
    shutil.copyfile(data / "events.duckdb", copy)
    con = duckdb.connect(str(copy), config=duckdb_config(
        threads=settings.duckdb_threads,
        checkpoint_threshold=settings.duckdb_checkpoint_threshold,
        memory_limit=settings.duckdb_memory_limit))
    state = StateStore(scratch / "state.sqlite")
    project = state.create_project("bench", currency="EUR")
    assert project.id == 1, "the generated events are project 1's"
    for name in ("ops", "security"):
        add_channel(state, 1, name, "webhook",
                    {"url": f"https://{name}.example.com/hook", "secret": "s" * 32}, now)
    apply_rules(state, 1, parse_rules(RULES, "alerts.yml"))
    objectives = {o.name: o for o in parse_objectives(RULES, "alerts.yml")}
    apply_slos(state, 1, list(objectives.values()))
    events = open_events(data / "events.duckdb", settings, in_process)
    try:
        total = one(con, "SELECT count(*) FROM events", {})[0]
        where = "in this process" if isinstance(events, DuckDBEventStore) else "in its own process"
        print(f"{total:,} events ({copy.stat().st_size / 2**20:.0f} MiB), now "
              f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(now))} UTC, DuckDB threads "
              f"{settings.duckdb_threads} (store and baselines), store "
              f"{where}, {os.cpu_count()} cores")
        return run(events, state, con, objectives, now, repeat)
    finally:
        events.close()
        con.close()
        state.close()


def run(events: EventStore, state: StateStore, con: Con, objectives: dict[str, Objective],
        now: int, repeat: int) -> list[str]:
    """Prints the table; returns where results differ from the baselines'."""
    read = series_reader(events, state)
    end_us = now * 1_000_000
    failures: list[str] = []
    rows: list[Row] = []
    # In the file's order, then the objectives' burn rules (the evaluator sorts by name).
    order = [r.name for r in parse_rules(RULES)] + [
        r.name for o in objectives.values() for r in burn_rules(o)]
    rules = sorted((rule for _, rule in all_rules(state, 1)), key=lambda r: order.index(r.name))
    readings: dict[str, float | None] = {}
    for rule in rules:
        start_us = end_us - int(rule.window_s * 1_000_000)

        def ours(rule: Rule = rule, start_us: int = start_us) -> float | None:
            return read(1, rule, start_us, end_us)

        def base(rule: Rule = rule, start_us: int = start_us) -> float | None:
            if rule.kind == "anomaly":
                return anomaly_baseline(con, rule, start_us, end_us)
            if rule.kind == "slo_burn":
                objective = objectives[(rule.filter or {})["slo"]]
                return burn_baseline(con, objective, rule, end_us)
            return series_baseline(con, rule, start_us, end_us)

        readings[rule.name] = ours()
        label = (f"{rule.kind} {rule.series} {rule.window}" if rule.kind != "slo_burn"
                 else rule.name.removeprefix("SLO "))
        rows.append(compare(label, ours, base, repeat, failures, rule.name))

    sent: list[tuple[Notification, list[int]]] = []
    evaluator = Evaluator(state, lambda: all_rules(state), read,
                          lambda n, ids: sent.append((n, ids)),
                          impact=incident_impact(events, state))
    outcomes = evaluator.evaluate(float(now))  # warm-up: alerts open on the first pass
    passes = [ms(lambda: evaluator.evaluate(float(now))) for _ in range(repeat)]
    reads_base = sum(r.base_p50 or 0.0 for r in rows)
    evaluation = Row(f"evaluate(): {len(outcomes)} rules", passes, [], True)

    incident = Incident(id=1, project_id=1, title="orders stopped", severity="critical",
                        status="resolved", started_at=float(now - INCIDENT_S),
                        detected_at=float(now - INCIDENT_S + 300), resolved_at=float(now),
                        notified_at=None, impact=None, updated_at=float(now))

    def ours_impact() -> dict[str, Any]:
        found = impact(events, state, incident, float(now))
        return {k: {f: found[k][f] for f in ("expected", "observed", "lost")}
                for k in ("orders", "revenue")}

    rows.append(compare("incident impact 45m", ours_impact,
                        lambda: impact_baseline(con, now - INCIDENT_S, now), repeat, failures))
    shape = timeline(events, state, incident, float(now))

    def ours_timeline() -> dict[str, Any]:
        found = timeline(events, state, incident, float(now))
        out = {k: v["values"] for k, v in found["series"].items()}
        out["expected_orders"] = found["series"]["orders"]["expected"]
        return out

    rows.append(compare(
        f"incident timeline {len(shape['buckets'])}x{shape['bucket_s']}s", ours_timeline,
        lambda: timeline_baseline(con, int(shape["start"]), int(shape["end"]),
                                  int(shape["bucket_s"])), repeat, failures))

    print(f"\n{'call':34}{'p50 ms':>9}{'p95 ms':>9}{'baseline ms':>13}{'ratio':>7}"
          f"{'same result':>13}  reading")
    for row in rows:
        value = readings.get(row.note)
        shown = "-" if not row.note else "none" if value is None else f"{value:.6g}"
        floor = row.base_p50 or 0.0
        print(f"{row.name:34}{row.p50:>9.1f}{row.p95:>9.1f}{floor:>13.1f}"
              f"{row.p50 / floor:>7.1f}{'yes' if row.same else 'NO':>13}  {shown}")
    reads = sum(r.p50 for r in rows if r.note)
    print(f"{evaluation.name:34}{evaluation.p50:>9.1f}{evaluation.p95:>9.1f}"
          f"{reads_base:>13.1f}{evaluation.p50 / reads_base:>7.1f}{'-':>13}  "
          f"sum of the reads' p50: {reads:.1f} ms")
    interval = defaults().alerts_interval
    fired = sum(o.phase == "firing" for o in outcomes)
    print(f"\nevaluation pass: p50 {evaluation.p50:.0f} ms, p95 {evaluation.p95:.0f} ms = "
          f"{evaluation.p95 / (interval * 1000):.2%} of the {interval:g} s alerts_interval "
          f"(1 : {interval * 1000 / evaluation.p95:.0f}); {fired} rules firing after the first "
          f"pass, {len(sent)} notifications enqueued")
    print("baselines: one hand-written DuckDB query per threshold/no_data rule (docs/alerts.md "
          "'Series'); anomaly: orders per 30 min over 4 weeks + the window in one GROUP BY, "
          "median/MAD in Python; SLO burn: good/total per short window over the long window "
          "in one GROUP BY, burn rates in Python; impact: orders and net revenue per minute "
          "over the incident, and over the same minutes of the 4 previous weeks (two "
          "queries), medians in Python; timeline: those by minute over its span, plus "
          "sessions/add-to-carts/checkouts and the technical series (four queries; no "
          "check runs, RUM or spans are generated); "
          "evaluate(): the sum of the rules' baselines (p50).")
    return failures


if __name__ == "__main__":
    main()
