"""OTLP ingest benchmark: spans/s one ``shopwatch serve`` accepts and commits, one run.

    python benchmarks/otlp.py [--seconds 10] [--concurrency 16] [--batch 512]

What it does, all on this machine:

1. Builds realistic ``ExportTraceServiceRequest`` bodies in binary protobuf, ``--batch``
   spans each (the batch span processor's default of 512), as a shop's services send
   them: one service per request (checkout, catalog, cart, search) with its resource,
   traces of a server span with database, cache and payment-gateway client spans, about
   11 attributes a span, an exception on 2 % of the payment calls.
2. **Shopwatch**: starts ``shopwatch serve`` (a separate process, fresh data dir) and a
   separate load process that posts the bodies over keep-alive HTTP/1.1 connections
   with ``--concurrency`` requests in flight (several exporters in parallel). Every 200
   means committed. Afterwards the spans acknowledged (``/metrics``) are compared with
   the rows in the stopped server's DuckDB file.
3. **Baselines**, measured in the same run on one core: (a) the protobuf library's
   decode alone (``ParseFromString``), the floor of any Python receiver; (b) Shopwatch's
   decode core (``shopwatch.otlp.decode``: decode, map, scrub, encode the rows), without
   HTTP or storage. Printed next to them: the OpenTelemetry Collector's published
   sustained rates for OTLP with 20-attribute spans, ~12 K spans/s with 1 CPU and ~24 K
   with 2 (10 K and 20 K recommended; opentelemetry-collector, docs/performance.md,
   collector v0.1.3). That is a receive-and-forward pipeline, not a store: the nearest
   published figure, not the same work.

Bar (issue 9): >= 20,000 spans/s accepted by one server process.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
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

# The Collector's published OTLP figures (docs/performance.md): sustained and recommended
# maximum spans/s with 1 CPU, and with 2 CPUs (this machine's size).
COLLECTOR_1_CPU = (12_000, 10_000)
COLLECTOR_2_CPU = (24_000, 20_000)
SERVICES = {
    "checkout": ["POST /checkout", "GET /checkout/shipping", "POST /checkout/payment"],
    "catalog": ["GET /c/{category}", "GET /p/{slug}"],
    "cart": ["POST /cart/items", "GET /cart"],
    "search": ["GET /search"],
}
TABLES = ["products", "carts", "orders", "customers", "stock"]


def _kv(key: str, value: Any) -> Any:
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def make_body(rng: random.Random, batch: int, now_ns: int) -> bytes:
    """One request: ``batch`` spans of one service, whole traces of 3-6 spans."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from opentelemetry.proto.trace.v1.trace_pb2 import Span

    service = rng.choice(sorted(SERVICES))
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.extend(_kv(k, v) for k, v in {
        "service.name": service, "service.version": "3.2.1",
        "deployment.environment.name": "production", "host.name": f"web-{rng.randint(1, 8)}",
        "process.pid": rng.randint(100, 60_000), "telemetry.sdk.language": "python",
        "telemetry.sdk.name": "opentelemetry", "telemetry.sdk.version": "1.45.2"}.items())
    scope = rs.scope_spans.add()
    scope.scope.name = "opentelemetry.instrumentation.django"
    n = 0
    while n < batch:
        trace_id = rng.randbytes(16)
        root_id = rng.randbytes(8)
        start = now_ns - rng.randint(0, 5_000_000_000)
        duration = int(rng.lognormvariate(17.5, 0.7))
        route = rng.choice(SERVICES[service])
        method, path = route.split(" ", 1)
        status = rng.choices([200, 201, 302, 404, 500], [80, 5, 5, 7, 3])[0]
        root = scope.spans.add(
            trace_id=trace_id, span_id=root_id, name=route, kind=Span.SPAN_KIND_SERVER,
            start_time_unix_nano=start, end_time_unix_nano=start + duration)
        root.attributes.extend(_kv(k, v) for k, v in {
            "http.request.method": method, "http.route": path,
            "url.path": path.replace("{slug}", f"trail-runner-{rng.randint(1, 500)}")
            .replace("{category}", "shoes"), "url.scheme": "https",
            "url.query": "utm_source=newsletter&sort=price", "server.address": "shop.example",
            "http.response.status_code": status, "client.address": "203.0.113.7",
            "user_agent.original": "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0",
            "network.protocol.version": "1.1",
            "session.id": f"s-{rng.getrandbits(48):012x}"}.items())
        if status >= 500:
            root.status.code = 2
        n += 1
        offset = 100_000
        for _ in range(rng.randint(2, 5)):
            if n >= batch:
                break
            child_ms = rng.randint(200_000, max(300_000, duration // 4))
            child = scope.spans.add(
                trace_id=trace_id, span_id=rng.randbytes(8), parent_span_id=root_id,
                kind=Span.SPAN_KIND_CLIENT, start_time_unix_nano=start + offset,
                end_time_unix_nano=start + offset + child_ms)
            offset += child_ms
            kind = rng.choices(["db", "cache", "payment"], [70, 20, 10])[0]
            if kind == "db":
                table = rng.choice(TABLES)
                op = rng.choice(["SELECT", "SELECT", "UPDATE", "INSERT"])
                child.name = f"{op} shop.{table}"
                attrs = {"db.system.name": "postgresql", "db.operation.name": op,
                         "db.collection.name": table, "db.namespace": "shop",
                         "db.query.text": f"{op} * FROM {table} WHERE id = $1",
                         "server.address": "db-1.internal", "server.port": 5432,
                         "network.peer.address": "10.0.0.12"}
            elif kind == "cache":
                child.name = "GET"
                attrs = {"db.system.name": "redis", "db.operation.name": "GET",
                         "server.address": "cache-1.internal", "server.port": 6379,
                         "db.query.text": "GET cart:*"}
            else:
                child.name = "POST"
                attrs = {"http.request.method": "POST", "peer.service": "payments",
                         "server.address": "psp.example", "server.port": 443,
                         "url.full": "https://psp.example/v1/charges",
                         "http.response.status_code": 201}
                if rng.random() < 0.02:
                    child.status.code = 2
                    event = child.events.add(name="exception",
                                             time_unix_nano=start + offset)
                    event.attributes.extend(_kv(k, v) for k, v in {
                        "exception.type": "requests.exceptions.ReadTimeout",
                        "exception.message": "HTTPSConnectionPool: read timed out",
                        "exception.stacktrace": "Traceback (most recent call last):\n"
                        '  File "shop/payments.py", line 88, in charge\n' * 6}.items())
            child.attributes.extend(_kv(k, v) for k, v in attrs.items())
            n += 1
    return req.SerializeToString()


def otlp_head(key: str) -> bytes:
    """Request line and headers (without Content-Length) of an OTLP traces export."""
    return (b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/x-protobuf\r\nAuthorization: Bearer "
            + key.encode() + b"\r\n")


def decode_rates(bodies: list[bytes], batch: int, seconds: float = 3.0) -> tuple[float, float]:
    """Spans/s on one core: (a) ParseFromString alone; (b) shopwatch.otlp.decode + encode."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    from shopwatch import otlp

    def rate(work: Any) -> float:
        done = 0
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            work(bodies[done % len(bodies)])
            done += 1
        return done * batch / (time.perf_counter() - t0)

    def parse(body: bytes) -> None:
        ExportTraceServiceRequest().ParseFromString(body)

    def core(body: bytes) -> None:
        otlp.decode(otlp.TRACES, body, otlp.Encoding.PROTOBUF, now_s=time.time(),
                    pseudonym_key=b"k" * 32).payload()

    return rate(parse), rate(core)


def acknowledged(port: int) -> int:
    """Spans the server has acknowledged so far (its /metrics counter)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    match = re.search(r'^shopwatch_otlp_accepted_total\{signal="traces"\} (\S+)$', text, re.M)
    return int(float(match.group(1))) if match else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--requests", type=int, default=64,
                        help="distinct pre-built request bodies")
    args = parser.parse_args()

    print(f"building {args.requests} requests x {args.batch} spans ...", flush=True)
    rng = random.Random(1)
    now_ns = time.time_ns()
    bodies = [make_body(rng, args.batch, now_ns) for _ in range(args.requests)]
    avg_kb = sum(map(len, bodies)) / len(bodies) / 1024
    print("baselines: decode rates on one core ...", flush=True)
    parse_rate, core_rate = decode_rates(bodies, args.batch)

    python = sys.executable
    tmp = Path(tempfile.mkdtemp(prefix="shopwatch-bench-otlp-"))
    try:
        data = tmp / "data"
        created = subprocess.run(
            [python, "-m", "shopwatch.cli", "project", "create", "bench", "--data", str(data),
             "--json"], cwd=ROOT, check=True, capture_output=True, text=True)
        key = json.loads(created.stdout)["ingest_key"]
        env = {**os.environ, "SHOPWATCH_LOG_LEVEL": "warning",
               "SHOPWATCH_CHECKS_ENABLED": "false"}
        port = free_port()
        server = start_process([python, "-m", "shopwatch.cli", "serve", "--data", str(data),
                                "--port", str(port)], ROOT, env)
        try:
            wait_port(port)
            print("load: shopwatch serve ...", flush=True)
            result = run_load(port, key, bodies, args.seconds, args.warmup, args.concurrency,
                              head=otlp_head(key))
            acked = acknowledged(port)
        finally:
            stop_process(server)
        import duckdb

        with duckdb.connect(str(data / "events.duckdb"), read_only=True) as con:
            row = con.execute("SELECT count(*) FROM spans").fetchone()
            stored = int(row[0]) if row else 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    rate = result["ok_requests"] * args.batch / result["seconds"]
    print()
    print(f"machine: {os.cpu_count()} cores; batch {args.batch} spans (~{avg_kb:.0f} KiB "
          f"protobuf); concurrency {args.concurrency}; {args.seconds:g}s measured after "
          f"{args.warmup:g}s warm-up")
    print(f"{'':46}{'spans/s':>10}{'p50 ms':>9}{'p99 ms':>9}  statuses")
    print(f"{'shopwatch serve, accepted = committed':46}{rate:>10,.0f}"
          f"{result['p50'] * 1000:>9.1f}{result['p99'] * 1000:>9.1f}  {result['statuses']}")
    print(f"{'baseline (a) protobuf decode only, 1 core':46}{parse_rate:>10,.0f}")
    print(f"{'baseline (b) shopwatch.otlp.decode, 1 core':46}{core_rate:>10,.0f}")
    for cpus, (sustained, recommended) in ((1, COLLECTOR_1_CPU), (2, COLLECTOR_2_CPU)):
        label = f"OTel Collector, published, {cpus} CPU{'s' if cpus > 1 else ''}"
        print(f"{label:46}{f'~{sustained:,}':>10}   (recommended max {recommended:,})")
    print()
    print(f"acknowledged {acked:,} spans in all; the stopped server's store holds {stored:,} "
          f"({'none lost' if stored >= acked else 'LOST SPANS'})")
    print(f"shopwatch / Collector with 2 CPUs = {rate / COLLECTOR_2_CPU[0]:.1f}x")
    print(f"shopwatch spans/s = {rate:,.0f}   (bar: >= 20,000)")


if __name__ == "__main__":
    main()
