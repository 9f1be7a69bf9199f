"""Dashboard query benchmark: every dashboard API call on millions of events.

``make bench-queries`` (default 10,000,000 events over 30 days, one project):

1. **Generate** realistic events straight into a fresh data directory's event store with
   one DuckDB statement (sessions of 1-12 events, visitors coming back, devices,
   countries, utm campaigns, the e-commerce funnel with its drop-offs, products viewed
   and added to carts, purchases with items in several currencies, refunds,
   cancellations), in time order as they would arrive. The generator is this file's
   ``FILL``.
2. **Baseline**: for each call, one hand-written DuckDB query that computes the call's
   result from raw events (``benchmarks/baselines.py``), run in this process on a copy
   of the file with the server's DuckDB thread count. For reference, also a smaller
   query giving only a few headline numbers (``HEADLINE``: fewer figures, simpler
   definitions).
3. **Shopwatch**: start ``shopwatch serve`` on the data directory and call each API
   route over HTTP with the secret key, p50/p95 over ``--repeat`` calls after a warm-up,
   each call interleaved with its baseline and headline query (a slow spell of a shared
   machine then hits all three); then the server's resident memory (server plus its
   store process, from /proc).
4. **Same result**: each call once more over the baseline's exact period (a custom
   range); its figures must equal the baseline's, or the run fails.

Bars (issue 5): every call <= 300 ms at 10 M events, <= 1.5 x its baseline, server RSS
< 500 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb
import httpx

from shopwatch.analytics.timerange import bucket_seconds
from shopwatch.analytics.timeseries import INTERVALS
from shopwatch.settings import defaults

sys.path.insert(0, str(Path(__file__).parent))
import baselines
from ingest import free_port, start_process, stop_process, wait_port

FILL = """
INSERT INTO events (project_id, id, name, ts, received_at, session_id, anonymous_id, user_id,
                    page, referrer, utm_source, utm_medium, utm_campaign, device_category,
                    browser, os, country, value, currency, transaction_id, params, flags)
WITH s AS (  -- sessions: start time, visitor, attributes
    SELECT i AS sid,
        make_timestamp((? - (hash(i * 31) % (30::UBIGINT * 86400 * 1000000)))::BIGINT) AS t0,
        'v' || (hash(i * 17) % (? // 4))::VARCHAR AS visitor,
        ['mobile', 'desktop', 'desktop', 'mobile', 'tablet'][(1 + hash(i) % 5)::BIGINT] AS device,
        ['Chrome', 'Safari', 'Firefox', 'Edge'][(1 + hash(i * 3) % 4)::BIGINT] AS browser,
        ['FR', 'DE', 'GB', 'US', 'ES', 'IT'][(1 + hash(i * 5) % 6)::BIGINT] AS country,
        CASE hash(i * 7) % 6 WHEN 0 THEN 'google' WHEN 1 THEN 'newsletter'
             WHEN 2 THEN 'facebook' ELSE NULL END AS utm_source,
        CASE hash(i * 11) % 3 WHEN 0 THEN 'winter-sale' WHEN 1 THEN 'new-arrivals'
             ELSE 'weekly' END AS campaign,
        1 + hash(i * 13) % 12 AS n,
        CASE WHEN hash(i * 19) % 10 = 0 THEN 'USD' ELSE 'EUR' END AS cur
    FROM range(?) t(i)
), e AS (  -- each session's events: the funnel with drop-offs, then browsing
    SELECT s.*, j,
        CASE WHEN j = 0 THEN 'page_view'
             WHEN j = 1 THEN 'view_item'
             WHEN j = 2 AND hash(sid * 23) % 4 = 0 THEN 'add_to_cart'
             WHEN j = 3 AND hash(sid * 23) % 4 = 0 AND hash(sid * 29) % 2 = 0
                  THEN 'begin_checkout'
             WHEN j = 4 AND hash(sid * 23) % 4 = 0 AND hash(sid * 29) % 2 = 0
                  AND hash(sid * 37) % 10 < 8 THEN 'add_payment_info'
             WHEN j = 5 AND hash(sid * 23) % 4 = 0 AND hash(sid * 29) % 2 = 0
                  AND hash(sid * 37) % 10 < 7 THEN 'purchase'
             WHEN j = 6 AND hash(sid * 41) % 50 = 0 THEN 'refund'
             WHEN j = 7 AND hash(sid * 43) % 100 = 0 THEN 'order_cancelled'
             WHEN j % 3 = 0 THEN 'search'
             ELSE 'page_view' END AS name
    FROM s, range(12) r(j) WHERE j < s.n
)
SELECT 1, uuid()::VARCHAR, name, t0 + to_seconds(j * 20), t0 + to_seconds(j * 20),
    's' || sid::VARCHAR, visitor, NULL, '/p/' || (hash(sid + j) % 300)::VARCHAR,
    CASE WHEN utm_source IS NULL AND sid % 2 = 0 THEN 'https://www.google.com/' END,
    utm_source, CASE WHEN utm_source IS NOT NULL THEN 'cpc' END,
    CASE WHEN utm_source IS NOT NULL THEN campaign END,
    device, browser, NULL, country,
    CASE WHEN name IN ('purchase', 'add_to_cart') THEN 20 + hash(sid) % 180 END,
    CASE WHEN name IN ('purchase', 'add_to_cart', 'refund') THEN cur END,
    CASE WHEN name IN ('purchase', 'refund', 'order_cancelled') THEN 'T' || sid::VARCHAR END,
    CASE WHEN name = 'purchase' THEN '{"items":[{"item_id":"a","quantity":2},{"item_id":"b"}]}'
         WHEN name IN ('view_item', 'add_to_cart') THEN
             '{"items":[{"item_id":"p' || (hash(sid * 47) % 200)::VARCHAR
             || '","item_name":"Product ' || (hash(sid * 47) % 200)::VARCHAR
             || '","item_category":"c' || (hash(sid * 47) % 200 % 12)::VARCHAR
             || '","price":' || (5 + hash(sid * 47) % 200)::VARCHAR
             || ',"quantity":' || (1 + hash(sid * 53) % 3)::VARCHAR || '}]}'
         ELSE '{}' END,
    []
FROM e ORDER BY 4
"""

# For reference: per call, the least work giving a few of its headline numbers (not its
# result: no idle-split sessions, no medians, no visitors or refunds...).
HEADLINE = {
    "kpis": """
        SELECT count(DISTINCT session_id),
               count(DISTINCT transaction_id) FILTER (WHERE name = 'purchase'),
               sum(value) FILTER (WHERE name = 'purchase'),
               count(DISTINCT session_id) FILTER (WHERE name = 'add_to_cart')
        FROM events WHERE project_id = 1 AND ts >= make_timestamp(?) AND ts < make_timestamp(?)
    """,
    "funnel": """
        WITH f AS (SELECT session_id,
                 min(ts) FILTER (WHERE name = 'view_item') AS a,
                 min(ts) FILTER (WHERE name = 'add_to_cart') AS b,
                 min(ts) FILTER (WHERE name = 'begin_checkout') AS c,
                 min(ts) FILTER (WHERE name = 'add_payment_info') AS d,
                 min(ts) FILTER (WHERE name = 'purchase') AS e
            FROM events WHERE project_id = 1 AND ts >= make_timestamp(?)
              AND ts < make_timestamp(?) GROUP BY 1)
        SELECT count(a), count(b) FILTER (WHERE b >= a), count(c) FILTER (WHERE c >= b AND b >= a),
               count(d) FILTER (WHERE d >= c AND c >= b AND b >= a),
               count(e) FILTER (WHERE e >= d AND d >= c AND c >= b AND b >= a)
        FROM f
    """,
    "overview": """
        SELECT time_bucket(INTERVAL 1 HOUR, ts), count(*), count(DISTINCT session_id)
        FROM events WHERE project_id = 1 AND ts >= make_timestamp(?) AND ts < make_timestamp(?)
        GROUP BY 1
    """,
}
CALLS: list[tuple[str, str, dict[str, str], str | None]] = [  # name, path, params, baseline
    ("overview 24h", "/api/v1/overview", {"range": "24h"}, "overview"),
    ("overview 30d", "/api/v1/overview", {"range": "30d"}, "overview"),
    ("kpis 24h", "/api/v1/kpis", {"range": "24h"}, "kpis"),
    ("kpis 7d", "/api/v1/kpis", {"range": "7d"}, "kpis"),
    ("kpis 30d", "/api/v1/kpis", {"range": "30d"}, "kpis"),
    ("funnel 24h", "/api/v1/funnel", {"range": "24h", "compare": "false"}, "funnel"),
    ("funnel 30d", "/api/v1/funnel", {"range": "30d"}, "funnel"),
    ("carts 24h", "/api/v1/carts", {"range": "24h"}, "carts"),
    ("carts 30d", "/api/v1/carts", {"range": "30d"}, "carts"),
    ("acquisition 24h", "/api/v1/acquisition", {"range": "24h"}, "acquisition"),
    ("acquisition 30d", "/api/v1/acquisition", {"range": "30d"}, "acquisition"),
    ("products 24h", "/api/v1/products", {"range": "24h"}, "products"),
    ("products 30d", "/api/v1/products", {"range": "30d"}, "products"),
    ("timeseries 7d", "/api/v1/timeseries", {"range": "7d", "interval": "hour"}, "timeseries"),
    ("timeseries 30d", "/api/v1/timeseries", {"range": "30d", "interval": "day"}, "timeseries"),
]
SPANS = {"24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children, in MB (from /proc)."""
    total = 0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for p in pids:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


def generate(shopwatch: Path, data: Path, env: dict[str, str], events: int) -> dict[str, str]:
    """A project and ``events`` generated events in ``data``; returns the project."""
    project: dict[str, str] = json.loads(subprocess.run(
        [str(shopwatch), "project", "create", "bench", "--currency", "EUR", "--json",
         "--data", str(data)], capture_output=True, text=True, check=True, env=env).stdout)
    # The server's own store opens (and migrates) the file once; then fill it.
    port = free_port()
    server = start_process([str(shopwatch), "serve", "--data", str(data), "--port", str(port)],
                           data, env)
    wait_port(port)
    stop_process(server)
    sessions = events // 6  # ~6 events per session on average (n is 1..12)
    t0 = time.perf_counter()
    con = duckdb.connect(str(data / "events.duckdb"), config={"threads": 1})
    con.execute(FILL, [time.time_ns() // 1000, sessions, sessions])
    con.execute("CHECKPOINT")
    con.close()
    print(f"generated in {time.perf_counter() - t0:.0f} s")
    (data / "bench-project.json").write_text(json.dumps(project))
    return project


def rollup_pending(client: httpx.Client) -> float:
    """Hours the server has not rolled up yet, from its /metrics."""
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("shopwatch_rollup_pending_hours "):
            return float(line.split()[1])
    raise RuntimeError("no shopwatch_rollup_pending_hours on /metrics")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--data", type=Path, default=None,
                        help="keep the generated data in this directory and reuse it on the "
                             "next run (its 24h window thins out as time passes)")
    args = parser.parse_args()
    shopwatch = Path(sys.executable).with_name("shopwatch")
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as scratch:
        data = args.data or Path(scratch)
        data.mkdir(parents=True, exist_ok=True)
        saved = data / "bench-project.json"
        project = (json.loads(saved.read_text()) if saved.exists()
                   else generate(shopwatch, data, env, args.events))
        measure(shopwatch, data, env, project, args.repeat)


def baseline_params(call: str, now_us: int, span_s: int,
                    query: dict[str, str]) -> dict[str, int]:
    """The named parameters of a call's baseline query over ``[now - span, now)``."""
    params = {"from": now_us - span_s * 1_000_000, "to": now_us}
    if call == "timeseries":
        params["bucket"] = INTERVALS[query["interval"]] * 1_000_000
    if call == "overview":
        day = 86400 * 1_000_000
        today = now_us // day * day  # the bench project's time zone is UTC
        params.update(now=now_us, bucket=bucket_seconds(span_s) * 1_000_000, today=today,
                      last_week=today - 7 * day)
    return params


def baseline_result(con: duckdb.DuckDBPyConnection, call: str,
                    params: dict[str, int]) -> dict[str, Any]:
    if call == "kpis":
        return baselines.kpis_result(con, params)
    if call == "funnel":
        return baselines.funnel_result(con, params)
    if call in ("carts", "acquisition", "products"):
        result: dict[str, Any] = getattr(baselines, f"{call}_result")(con, params)
        return result
    first = params["from"] // params["bucket"]
    n = -(-params["to"] // params["bucket"]) - first
    if call == "timeseries":
        return baselines.timeseries_result(con, params, n)
    return baselines.overview_result(con, params, n)


def api_result(call: str, body: dict[str, Any]) -> dict[str, Any]:
    """The figures of a call's answer that its baseline computes."""
    if call == "kpis":
        return {k: body[k] for k in KPI_KEYS}
    if call == "funnel":
        return {"counts": [s["count"] for s in body["steps"]],
                "median_seconds": [s["median_seconds"] for s in body["steps"]]}
    if call == "timeseries":
        return {period: [[r["events"], r["sessions"], r["converted_sessions"], r["carts"],
                          r["orders"], r["revenue"]] for r in body[period]]
                for period in ("current", "previous", "last_week")}
    if call == "acquisition":
        return {"rows": [[r["channel"], r["sessions"], r["converted_sessions"], r["orders"],
                          r["revenue"]] for r in body["rows"]]}
    if call == "products":
        return {"rows": [[r["product"], r["name"], r["category"], r["views"], r["adds"],
                          r["units"], r["revenue"], r["viewed_sessions"],
                          r["purchased_sessions"]] for r in body["rows"]]}
    if call == "carts":
        return {"carts": body["carts"], "abandoned_carts": body["abandoned_carts"],
                "avg_cart_units": body["avg_cart_units"],
                "avg_cart_value": body["avg_cart_value"],
                "abandoned_cart_value": body["abandoned_cart_value"],
                "abandoned_items": [[r["item_id"], r["item_name"], r["category"], r["carts"],
                                     r["units"], r["value"]] for r in body["abandoned_items"]],
                "abandoned_categories": [[r["category"], r["units"], r["value"]]
                                         for r in body["abandoned_categories"]],
                "last_steps": [[r["step"], r["carts"]] for r in body["last_steps"]],
                "last_pages": [[r["page"], r["carts"]] for r in body["last_pages"]]}
    conversion, traffic = body["conversion_rate"], body["traffic"]
    return {**{k: conversion[k] for k in ("sessions", "converted_sessions",
                                          "previous_sessions", "previous_converted_sessions",
                                          "series", "previous_series")},
            "traffic": traffic["series"]}


KPI_KEYS = ("events", "sessions", "visitors", "new_visitors", "bounce_rate",
            "pages_per_session", "avg_session_duration_s", "avg_time_on_page_s", "orders",
            "items_per_order", "gross_revenue", "refunds", "refund_count", "cancellations",
            "cancellation_count", "revenue", "aov", "conversion_rate", "carts",
            "abandoned_carts", "cart_abandonment_rate", "abandoned_cart_value", "checkouts",
            "checkout_abandonment_rate")


def differences(api: Any, base: Any, path: str = "") -> list[str]:
    """Where two results differ; floats up to 1e-9 relative (summation order), money
    rounded to 6 decimals by the API."""
    if isinstance(api, dict):
        return [d for k in api for d in differences(api[k], base[k], f"{path}.{k}")]
    if isinstance(api, list):
        if len(api) != len(base):
            return [f"{path}: {len(api)} vs {len(base)} entries"]
        return [d for i, (a, b) in enumerate(zip(api, base, strict=True))
                for d in differences(a, b, f"{path}[{i}]")]
    if isinstance(api, (int, float)) and isinstance(base, (int, float)):
        if abs(api - base) <= max(1e-6, 1e-9 * abs(base)):
            return []
    elif api == base:
        return []
    return [f"{path}: API {api!r}, baseline {base!r}"]


def ms(run: Any) -> float:
    t = time.perf_counter()
    run()
    return (time.perf_counter() - t) * 1000


def measure(shopwatch: Path, data: Path, env: dict[str, str], project: dict[str, str],
            repeat: int) -> None:
    """The API calls of a real server, each interleaved with its baseline (so that a slow
    spell of the machine hits both), then the table; fails when a call's result differs
    from its baseline's."""
    path = data / "events.duckdb"
    now_us = time.time_ns() // 1_000_000 * 1000  # whole ms: a custom range can say it
    # The baseline gets the threads the server's store gets (its default setting). It
    # reads a copy: DuckDB lets one process at a time open a database file.
    threads = defaults().duckdb_threads
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "events.duckdb"
        shutil.copyfile(path, copy)
        con = duckdb.connect(str(copy), config={"threads": threads})
        total = con.execute("SELECT count(*) FROM events").fetchone()[0]  # type: ignore[index]
        print(f"{total:,} events ({path.stat().st_size / 2**20:.0f} MiB), "
              f"DuckDB threads {threads} (server and baseline)")
        port = free_port()
        server = start_process([str(shopwatch), "serve", "--data", str(data),
                                "--port", str(port)], data, env)
        try:
            failures = run_calls(server, port, project, con, now_us, repeat)
        finally:
            stop_process(server)
            con.close()
    if failures:
        print("\nresults differing from the baseline's:\n  " + "\n  ".join(failures))
        sys.exit(1)


def unchecked(client: httpx.Client, name: str, route: str, params: dict[str, str],
              repeat: int) -> str:
    """The table row of a call without a baseline: its latency against 300 ms only."""
    response = client.get(route, params=params)  # warm-up
    assert response.status_code == 200, response.text
    calls = sorted(ms(lambda: client.get(route, params=params)) for _ in range(repeat))
    p50, p95 = statistics.median(calls), calls[min(len(calls) - 1, int(len(calls) * 0.95))]
    ok = "NOT met" if p50 > 300 else "no base"
    return (f"{name:16}{p50:>8.0f}{p95:>8.0f}{'-':>13}{'-':>7}{ok:>9}{'unchecked':>13}"
            f"{'-':>18}")


def run_calls(server: subprocess.Popen[bytes], port: int, project: dict[str, str],
              con: duckdb.DuckDBPyConnection, now_us: int, repeat: int) -> list[str]:
    """Prints the table; returns where results differ from the baselines'."""
    wait_port(port)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120,
                          headers={"Authorization": f"Bearer {project['secret_key']}"})
    t0 = time.perf_counter()
    while rollup_pending(client) > 0:
        time.sleep(1)
    print(f"rollup current after {time.perf_counter() - t0:.0f} s "
          f"(RSS {rss_mb(server.pid):.0f} MB)")
    time.sleep(5)  # the checkpoint that follows a caught-up rollup backlog
    print(f"\n{'call':16}{'p50 ms':>8}{'p95 ms':>8}{'baseline ms':>13}{'ratio':>7}"
          f"{'bar':>9}{'same result':>13}{'headline-only ms':>18}")
    failures: list[str] = []
    for name, route, params, call in CALLS:
        if call is None:
            print(unchecked(client, name, route, params, repeat))
            continue
        span = SPANS[params["range"]]
        named = baseline_params(call, now_us, span, params)
        window = [now_us - span * 1_000_000, now_us]
        exact = {**params, "range": "custom", "from": str(window[0] // 1000),
                 "to": str(window[1] // 1000)}
        response = client.get(route, params=exact)
        assert response.status_code == 200, response.text
        diff = differences(api_result(call, response.json()),
                           baseline_result(con, call, named))
        failures += [f"{name}{d}" for d in diff[:5]]

        def api() -> None:
            client.get(route, params=params)  # noqa: B023

        def base() -> None:
            baseline_result(con, call, named)  # noqa: B023

        def headline() -> None:
            if call in HEADLINE:  # noqa: B023
                con.execute(HEADLINE[call], window).fetchall()  # noqa: B023

        for warm_up in (api, base, headline):
            warm_up()
        samples: dict[str, list[float]] = {"api": [], "base": [], "headline": []}
        for _ in range(repeat):
            samples["base"].append(ms(base))
            samples["api"].append(ms(api))
            if call in HEADLINE:
                samples["headline"].append(ms(headline))
        calls = sorted(samples["api"])
        p50, p95 = statistics.median(calls), calls[min(len(calls) - 1, int(len(calls) * 0.95))]
        baseline = statistics.median(samples["base"])
        ratio = p50 / baseline
        ok = "met" if p50 <= 300 and ratio <= 1.5 else "NOT met"
        print(f"{name:16}{p50:>8.0f}{p95:>8.0f}{baseline:>13.0f}{ratio:>7.1f}"
              f"{ok:>9}{'yes' if not diff else 'NO':>13}"
              + (f"{statistics.median(samples['headline']):>18.0f}" if samples["headline"]
                 else f"{'-':>18}"))
    memory = rss_mb(server.pid)
    print(f"\nserver resident memory (with its store process): {memory:.0f} MB "
          f"(bar: < 500 MB) {'met' if memory < 500 else 'NOT met'}")
    return failures


if __name__ == "__main__":
    main()
