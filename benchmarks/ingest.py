"""Ingest benchmark: end-to-end acknowledged events/s against two baselines, one run.

    python benchmarks/ingest.py [--seconds 10] [--concurrency 32] [--batch 100]

What it does, all on this machine:

1. Builds realistic batches (page views, product views, carts, checkouts, purchases
   with items, logins...) of ``--batch`` events, each event with a unique id.
2. **Shopwatch**: starts ``shopwatch serve`` (a separate process, fresh data dir) and a
   separate load process that posts the batches over keep-alive HTTP/1.1 connections
   with ``--concurrency`` requests in flight. Every 200 means committed.
3. **Baseline (a), web-framework limit**: the same load against a bare ASGI app under
   the same uvicorn that only decodes the JSON (msgspec) and answers.
4. **Baseline (b), storage limit**: the same rows (already through the pipeline)
   inserted into a fresh DuckDB event store in bulk, the same code path the writer uses.

It prints events/s, p50/p99 latency, and the ratios. The bar (issue 2):
>= 100,000 events/s end to end and >= 0.5 x baseline (a).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ID_SLOT = b"@@@@@@@@"
PAGES = ["/", "/c/shoes", "/c/jackets", "/p/trail-runner-2", "/p/rain-jacket", "/search",
         "/cart", "/checkout/shipping", "/checkout/payment", "/account"]
PRODUCTS = [(f"SKU-{i:05d}", f"Product {i}", random.choice(["shoes", "jackets", "bags"]),
             round(random.uniform(9, 250), 2)) for i in range(500)]


# --- payloads --------------------------------------------------------------------------


def make_event(rng: random.Random, now_ms: int) -> dict[str, Any]:
    """One realistic event with a unique id, as a shop's server or snippet sends it."""
    kind = rng.choices(
        ["page_view", "view_item", "add_to_cart", "begin_checkout", "purchase", "login",
         "search"], weights=[40, 25, 10, 5, 3, 4, 5])[0]
    event: dict[str, Any] = {
        # The load process writes the request number into this id slot, so every
        # event id of the run is unique (repeats would be cheap dedup hits).
        "id": ID_SLOT.decode() + uuid.UUID(int=rng.getrandbits(128)).hex[:24],
        "name": kind,
        "ts": now_ms - rng.randint(0, 5000),
        "session_id": f"s-{rng.randint(1, 50_000)}",
        "anonymous_id": f"a-{rng.randint(1, 40_000)}",
        "page": rng.choice(PAGES),
        "device": {"category": rng.choice(["desktop", "mobile", "tablet"]),
                   "browser": rng.choice(["Chrome", "Safari", "Firefox"]),
                   "os": rng.choice(["Windows", "iOS", "Android", "macOS"]),
                   "language": "de-DE", "country": rng.choice(["DE", "FR", "NL", "AT"])},
    }
    if rng.random() < 0.2:
        event["referrer"] = "https://www.google.com/"
        event["utm_source"], event["utm_medium"] = "google", "cpc"
    if rng.random() < 0.3:
        event["user_id"] = f"u-{rng.randint(1, 20_000)}"
    sku, name, cat, price = rng.choice(PRODUCTS)
    item = {"item_id": sku, "item_name": name, "item_category": cat, "price": price,
            "quantity": rng.randint(1, 3)}
    if kind in ("view_item", "add_to_cart"):
        event["params"] = {"currency": "EUR", "value": price, "items": [item]}
    elif kind in ("begin_checkout", "purchase"):
        items = [item] + [
            {"item_id": s, "item_name": n, "item_category": c, "price": p, "quantity": 1}
            for s, n, c, p in rng.sample(PRODUCTS, rng.randint(0, 3))]
        params: dict[str, Any] = {"currency": "EUR", "items": items,
                                  "value": round(sum(i["price"] * i["quantity"] for i in items), 2)}
        if kind == "purchase":
            params.update(transaction_id=f"T-{rng.getrandbits(40)}", payment_method="card",
                          shipping=4.9, tax=round(params["value"] * 0.19, 2))
        event["params"] = params
    elif kind == "search":
        event["params"] = {"search_term": rng.choice(["boots", "rain jacket", "socks"])}
    elif kind == "login":
        event["params"] = {"method": "password"}
    return event


def make_bodies(n_requests: int, batch: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    now_ms = int(time.time() * 1000)
    return [json.dumps({"events": [make_event(rng, now_ms) for _ in range(batch)]},
                       separators=(",", ":")).encode() for _ in range(n_requests)]


# --- load process ----------------------------------------------------------------------


def events_head(key: str) -> bytes:
    """Request line and headers (without Content-Length) of an event ingest request."""
    return (b"POST /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nAuthorization: Bearer " + key.encode() + b"\r\n")


async def _load(port: int, head: bytes, bodies: list[bytes], seconds: float, warmup: float,
                concurrency: int) -> dict[str, Any]:
    requests = [head + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
                for body in bodies]
    next_index = 0
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    t_start = time.perf_counter()
    measure_from = t_start + warmup
    stop_at = measure_from + seconds
    done_in_window = 0

    async def worker() -> None:
        nonlocal next_index, done_in_window
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while True:
            now = time.perf_counter()
            if now >= stop_at:
                break
            req = requests[next_index % len(requests)].replace(
                ID_SLOT, b"%08x" % next_index)
            next_index += 1
            t0 = time.perf_counter()
            writer.write(req)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 60)
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            t1 = time.perf_counter()
            if t0 >= measure_from and t1 <= stop_at:
                latencies.append(t1 - t0)
                statuses[status] = statuses.get(status, 0) + 1
                if status == 200:
                    done_in_window += 1
        writer.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    latencies.sort()
    return {"ok_requests": done_in_window, "statuses": statuses, "seconds": seconds,
            "p50": latencies[len(latencies) // 2] if latencies else float("nan"),
            "p99": latencies[int(len(latencies) * 0.99)] if latencies else float("nan")}


def _load_entry(port: int, head: bytes, bodies: list[bytes], seconds: float, warmup: float,
                concurrency: int, out: Any) -> None:
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    out.put(asyncio.run(_load(port, head, bodies, seconds, warmup, concurrency)))


def run_load(port: int, key: str, bodies: list[bytes], seconds: float, warmup: float,
             concurrency: int, head: bytes | None = None) -> dict[str, Any]:
    """Run the load generator in its own process and return its figures. ``head`` is the
    request line and headers (default: event ingest with ``key``)."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=_load_entry, args=(port, head or events_head(key), bodies,
                                                  seconds, warmup, concurrency, out))
    proc.start()
    result = out.get(timeout=seconds + warmup + 120)
    proc.join()
    return result


# --- servers ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server on port {port} did not start")


BARE_APP = '''
import msgspec
decode = msgspec.json.decode
async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"}); return
    body = b""
    while True:
        msg = await receive()
        body += msg.get("body", b"")
        if not msg.get("more_body"):
            break
    n = len(decode(body)["events"])
    out = b'{"accepted":%d,"rejected":[],"warnings":[]}' % n
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", b"%d" % len(out))]})
    await send({"type": "http.response.body", "body": out})
'''


def start_process(args: list[str], cwd: Path, env: dict[str, str] | None = None
                  ) -> subprocess.Popen[bytes]:
    return subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


# --- storage baseline ------------------------------------------------------------------


def storage_baseline(bodies: list[bytes], tmp: Path, requests_per_commit: int) -> float:
    """Events/s of the event store's bulk write of the same events (pipeline already run,
    not timed), committed in groups of ``requests_per_commit`` requests."""
    from shopwatch.ingest import pipeline
    from shopwatch.store.duckdb import DuckDBEventStore

    config = pipeline.PipelineConfig(max_events=10_000)
    now_us = time.time_ns() // 1000
    batches = [pipeline.process(b.replace(ID_SLOT, b"%08x" % i), pipeline.Format.JSON, 1,
                                now_us, config).rows for i, b in enumerate(bodies)]
    store = DuckDBEventStore(tmp / "baseline.duckdb")
    t0 = time.perf_counter()
    total = 0
    for i in range(0, len(batches), requests_per_commit):
        total += store.write(batches[i:i + requests_per_commit])
    dt = time.perf_counter() - t0
    store.close()
    return total / dt


# --- main ------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--requests", type=int, default=500,
                        help="distinct pre-built request bodies (ids stay unique)")
    args = parser.parse_args()

    python = sys.executable
    print(f"building {args.requests} requests x {args.batch} events ...", flush=True)
    bodies = make_bodies(args.requests, args.batch, seed=1)
    avg_kb = sum(map(len, bodies)) / len(bodies) / 1024
    tmp = Path(tempfile.mkdtemp(prefix="shopwatch-bench-"))
    results: dict[str, Any] = {}
    try:
        # Shopwatch end to end
        data = tmp / "data"
        created = subprocess.run(
            [python, "-m", "shopwatch.cli", "project", "create", "bench", "--data", str(data),
             "--json"], cwd=ROOT, check=True, capture_output=True, text=True)
        key = json.loads(created.stdout)["ingest_key"]
        env = {**os.environ, "SHOPWATCH_LOG_LEVEL": "warning"}

        def load(label: str, command: list[str], cwd: Path) -> dict[str, Any]:
            port = free_port()
            server = start_process([*command, "--port", str(port)], cwd, env)
            try:
                wait_port(port)
                print(f"load: {label} ...", flush=True)
                return run_load(port, key, bodies, args.seconds, args.warmup,
                                args.concurrency)
            finally:
                stop_process(server)

        results["shopwatch"] = load(
            "shopwatch", [python, "-m", "shopwatch.cli", "serve", "--data", str(data)], ROOT)
        # Baseline (a): bare ASGI app that only decodes JSON
        (tmp / "bare_app.py").write_text(BARE_APP)
        results["bare"] = load("bare ASGI baseline", [
            python, "-m", "uvicorn", "bare_app:app", "--log-level", "warning",
            "--no-access-log"], tmp)

        print("storage baseline: bulk DuckDB insert ...", flush=True)
        storage_rate = storage_baseline(bodies, tmp, requests_per_commit=100)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    def rate(r: dict[str, Any]) -> float:
        return float(r["ok_requests"]) * args.batch / r["seconds"]

    sw, bare_rate = rate(results["shopwatch"]), rate(results["bare"])
    print()
    print(f"machine: {os.cpu_count()} cores; batch {args.batch} events (~{avg_kb:.1f} KiB JSON); "
          f"concurrency {args.concurrency}; {args.seconds:g}s measured after {args.warmup:g}s "
          "warm-up")
    print(f"{'':34}{'events/s':>12}{'p50 ms':>10}{'p99 ms':>10}  statuses")
    for label, key_ in (("shopwatch end-to-end (committed)", "shopwatch"),
                        ("baseline (a) bare ASGI decode", "bare")):
        r = results[key_]
        print(f"{label:34}{rate(r):>12,.0f}{r['p50'] * 1000:>10.1f}{r['p99'] * 1000:>10.1f}"
              f"  {r['statuses']}")
    print(f"{'baseline (b) DuckDB bulk insert':34}{storage_rate:>12,.0f}")
    print()
    print(f"shopwatch / baseline (a) = {sw / bare_rate:.2f}   (bar: >= 0.5)")
    print(f"shopwatch / baseline (b) = {sw / storage_rate:.2f}")
    print(f"shopwatch events/s = {sw:,.0f}   (bar: >= 100,000)")


if __name__ == "__main__":
    main()
