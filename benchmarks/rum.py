"""RUM benchmark: the snippet's size, beacon ingest, and the real-user queries, one run.

    python benchmarks/rum.py [--seconds 10] [--concurrency 64] [--views 300000]

1. **Snippet size**: ``/rum.js`` as served (gzip -9), next to the published sizes of
   the libraries it replaces: web-vitals ~2 KB (brotli), Sentry's browser SDK ~23 KB,
   Datadog's browser RUM ~36 KB (gzip). Bar (issue 6): at most 3 KB gzip.
2. **Ingest**: ``shopwatch serve`` (fresh data dir) takes realistic beacons (a page view,
   its vitals, two slow resources, and every third one an error or a commerce event;
   four different browser user agents) over keep-alive HTTP/1.1 from a separate load
   process; every 200 means committed. **Baseline**: the same records as the same number
   of events per request through ``POST /api/v1/events`` (the event pipeline), in the same
   run: what a beacon costs over an event batch of its size.
3. **Queries**: ``--views`` page views (about 2.3 rows each: view, vitals, some errors and
   resources) spread over 30 days, written straight into a DuckDB event store; then
   ``vitals`` (30 d, by page group), ``error_groups`` and ``resources`` are timed (median
   of 5). **Baseline**: one scan computing p75 LCP over the same rows (``quantile_cont``
   over ``rum``), the floor any such query pays.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.ingest import (  # noqa: E402
    free_port,
    run_load,
    start_process,
    stop_process,
    wait_port,
)

AGENTS = [
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.4; rv:132.0) Gecko/20100101 Firefox/132.0",
]
PAGES = ["/", "/c/shoes", "/product/trail-runner", "/product/rain-jacket", "/cart",
         "/checkout/shipping", "/checkout/payment", "/search"]
REFERENCES = [("web-vitals (brotli)", 2.0), ("Sentry browser SDK", 23.0),
              ("Datadog browser RUM", 36.0)]


def records(rng: random.Random, i: int, now_ms: float) -> list[dict[str, Any]]:
    """One page view's records as the snippet sends them at page hide."""
    page = f"https://shop.example{rng.choice(PAGES)}?utm_source=news"
    pv = f"pv-{i}-{rng.getrandbits(32):08x}"
    base = {"pv": pv, "t": now_ms, "url": page}
    out: list[dict[str, Any]] = [
        {"k": "view", **base, "ref": "https://www.google.com/", "dns": 4, "tcp": 20,
         "tls": 15, "ttfb": rng.lognormvariate(6, 0.5), "di": 900.0, "load": 1500.0},
        {"k": "vitals", **base, "fcp": rng.lognormvariate(6.8, 0.4),
         "lcp": rng.lognormvariate(7.4, 0.5), "cls": rng.random() * 0.3,
         "inp": rng.lognormvariate(4.8, 0.6), "lcpEl": "img#hero", "inpEl": "button.add",
         "vis": 12000},
        {"k": "resource", **base, "ru": "https://cdn.example/img/hero.jpg", "rt": "img",
         "dur": 1300.0},
        {"k": "resource", **base, "ru": "https://js.payments.example/v3/", "rt": "script",
         "fail": i % 7 == 0},
    ]
    if i % 3 == 0:
        out.append({"k": "error", **base, "msg": f"TypeError: cart is undefined ({i})",
                    "stack": "TypeError\n at add (https://shop.example/app.js:10:5)",
                    "src": "https://shop.example/app.js", "line": 10, "col": 5})
    elif i % 3 == 1:
        out.append({"k": "event", **base, "n": "add_to_cart",
                    "p": {"currency": "EUR", "value": 19.9}})
    return out


def beacon_bodies(n: int) -> tuple[list[bytes], list[bytes], float]:
    """``n`` beacons, the same records as event batches, and records per request."""
    rng = random.Random(6)
    now_ms = time.time() * 1000
    rum, events, sizes = [], [], []
    for i in range(n):
        recs = records(rng, i, now_ms)
        sizes.append(len(recs))
        rum.append(json.dumps({"v": 1, "sid": f"s-{i % 997}", "vw": 390, "vh": 844,
                               "ect": "4g", "r": recs}, separators=(",", ":")).encode())
        events.append(json.dumps({"events": [
            {"name": "page_view", "session_id": f"s-{i % 997}", "page": r["url"],
             "params": {k: v for k, v in r.items() if k not in ("k", "pv", "t", "url", "p", "n")}}
            for r in recs]}, separators=(",", ":")).encode())
    return rum, events, statistics.mean(sizes)


def rum_head(key: str, agent: str) -> bytes:
    return (f"POST /api/v1/rum?key={key} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: text/plain;charset=UTF-8\r\nOrigin: https://shop.example\r\n"
            f"User-Agent: {agent}\r\n").encode()


def ingest(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    python = sys.executable
    data = tmp / "data"
    created = subprocess.run(
        [python, "-m", "shopwatch.cli", "project", "create", "bench", "--data", str(data),
         "--json"], cwd=ROOT, check=True, capture_output=True, text=True)
    key = json.loads(created.stdout)["ingest_key"]
    rum, events, per_request = beacon_bodies(500)
    env = {**os.environ, "SHOPWATCH_LOG_LEVEL": "warning"}
    port = free_port()
    server = start_process([python, "-m", "shopwatch.cli", "serve", "--data", str(data),
                            "--port", str(port)], ROOT, env)
    out: dict[str, Any] = {"per_request": per_request}
    try:
        wait_port(port)
        print("load: RUM beacons ...", flush=True)
        # One user agent per run: ua-parser answers are memoised per distinct string, and
        # a shop's traffic has a few hundred of them.
        out["rum"] = run_load(port, key, rum, args.seconds, args.warmup, args.concurrency,
                              head=rum_head(key, AGENTS[0]))
        print("load: the same records as events ...", flush=True)
        out["events"] = run_load(port, key, events, args.seconds, args.warmup,
                                 args.concurrency)
    finally:
        stop_process(server)
    return out


def queries(args: argparse.Namespace, tmp: Path) -> dict[str, float]:
    import msgspec

    from shopwatch.analytics.jserrors import error_groups
    from shopwatch.analytics.timerange import parse_range
    from shopwatch.analytics.vitals import resources, vitals
    from shopwatch.beacon import parse
    from shopwatch.store.base import EventBatch
    from shopwatch.store.duckdb import DuckDBEventStore
    from shopwatch.useragent import parse_agent

    store = DuckDBEventStore(tmp / "q.duckdb", threads=2)
    rng = random.Random(7)
    now_ms = time.time() * 1000
    span_ms = 30 * 86400 * 1000
    print(f"writing {args.views:,} page views of RUM rows ...", flush=True)
    batch: list[Any] = []
    n_rows = 0
    for i in range(args.views):
        recs = [r for r in records(rng, i, now_ms - rng.random() * span_ms) if r["k"] != "event"]
        for r in recs:
            r["t"] = recs[0]["t"]
        parsed = parse(json.dumps({"sid": f"s-{i // 4}", "r": recs}).encode(), now_ms=now_ms,
                       agent=parse_agent(AGENTS[i % 4]))
        batch.extend(parsed.rows)
        if len(batch) >= 50_000 or i == args.views - 1:
            store.write([EventBatch(1, int(now_ms * 1000), b"[]", 0, [],
                                    msgspec.json.encode(batch), len(batch))])
            n_rows += len(batch)
            batch = []
    rng_30d = parse_range("30d", None, None, int(now_ms * 1000))
    base = [1, rng_30d.start_us, rng_30d.end_us]

    def timed(fn: Any) -> float:
        runs = []
        for _ in range(5):
            t0 = time.perf_counter()
            fn()
            runs.append((time.perf_counter() - t0) * 1000)
        return statistics.median(runs)

    out = {
        "rows": float(n_rows),
        "vitals 30d by group": timed(lambda: vitals(store, 1, rng_30d, "group")),
        "errors 30d": timed(lambda: error_groups(store, 1, rng_30d)),
        "resources 30d": timed(lambda: resources(store, base)),
        "baseline: one p75 LCP scan": timed(lambda: store.query(
            "SELECT quantile_cont(lcp_ms, 0.75) FROM rum WHERE project_id = ? AND "
            "ts >= make_timestamp(?::BIGINT) AND ts < make_timestamp(?::BIGINT)", base)),
    }
    store.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--views", type=int, default=300_000)
    args = parser.parse_args()

    from shopwatch.web.snippet import MAX_GZIP_BYTES, served

    body, packed, _ = served()
    size = len(gzip.compress(body, 9))
    tmp = Path(tempfile.mkdtemp(prefix="shopwatch-bench-rum-"))
    try:
        load = ingest(args, tmp)
        q = queries(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print()
    print(f"machine: {os.cpu_count()} cores")
    print(f"/rum.js: {len(body):,} bytes, {len(packed):,} bytes gzip as served "
          f"(gzip -9: {size:,}; bar: <= {MAX_GZIP_BYTES:,})")
    for name, kb in REFERENCES:
        print(f"  {name:28} ~{kb:g} KB  ({kb * 1024 / len(packed):.1f}x /rum.js)")
    per = load["per_request"]
    print(f"\ningest: {per:.2f} records per request; concurrency {args.concurrency}; "
          f"{args.seconds:g}s measured after {args.warmup:g}s warm-up")
    print(f"{'':40}{'requests/s':>12}{'records/s':>12}{'p50 ms':>9}{'p99 ms':>9}  statuses")
    for label, key in (("RUM beacons (committed)", "rum"),
                       ("baseline: same records as events", "events")):
        r = load[key]
        rps = r["ok_requests"] / r["seconds"]
        print(f"{label:40}{rps:>12,.0f}{rps * per:>12,.0f}{r['p50'] * 1000:>9.1f}"
              f"{r['p99'] * 1000:>9.1f}  {r['statuses']}")
    ratio = load["rum"]["ok_requests"] / max(1, load["events"]["ok_requests"])
    print(f"RUM / events = {ratio:.2f}")
    print(f"\nqueries over {q.pop('rows'):,.0f} RUM rows ({args.views:,} page views, 30 days), "
          "median of 5:")
    for label, ms in q.items():
        print(f"  {label:32}{ms:>9.1f} ms")


if __name__ == "__main__":
    main()
