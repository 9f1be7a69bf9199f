"""Backend analysis from OpenTelemetry spans (docs/kpis.md, "Backend"), over a crafted
set of traces written into a real DuckDB file through ``EventStore.write``; the API on a
live server; the Reliability → Backend page in the system's Chromium.

The traces (times from ``t0``, durations in ms):

- A, checkout that worked: shop ``POST /checkout`` (400) → postgresql SELECT (50),
  a call to payments.internal (120) → payments ``POST /charge`` (110) → postgresql
  UPDATE (20) and api.stripe.com (70); in parallel with the payments call, postgresql
  INSERT (30). Start order and tree order differ (the INSERT starts before ``/charge``).
- B, checkout that failed: shop ``POST /checkout`` (900, error, 502, its parent in the
  shopper's browser: not stored) → payments.internal (800, error) → payments
  ``POST /charge`` (780, error 500, CardDeclined) → api.stripe.com (700, error, 402).
- C0..C9, product pages: shop ``GET /product/{id}`` with :data:`PRODUCT_MS`, each with a
  postgresql SELECT of half its time; C3 answers 503, C5 and C7 fail with NotFound
  errors whose messages differ only in the product id.
- A worker's ``sync-inventory`` job (no server span) with a postgresql SELECT (100); a
  server span without a route (``GET``) and one without a method (``ProcessOrder``).
- Outside the period: a product request a second before it (9,999 ms), an older
  NotFound two days before, and another project's request.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from playwright.sync_api import Browser

from shopwatch.analytics import apm
from shopwatch.analytics.alert_series import buckets, value
from shopwatch.analytics.timerange import TimeRange, parse_range
from shopwatch.errors import BadRequest, PageNotFound
from shopwatch.store.base import EventBatch
from shopwatch.store.duckdb import DuckDBEventStore
from shopwatch.telemetry import SpanRow
from tests.conftest import ADMIN_EMAIL, PASSWORD, Live, open_event_store

T0 = datetime(2026, 3, 10, 10, 0, tzinfo=UTC).timestamp()
TRACE_A, TRACE_B = "a1" * 16, "b2" * 16
TRACE_C = [f"{0xc0 + i:032x}" for i in range(10)]
TRACE_JOB, TRACE_OLD = "d4" * 16, "e5" * 16
PRODUCT_MS = [12.0, 15.0, 18.0, 20.0, 25.0, 30.0, 45.0, 60.0, 80.0, 250.0]
STACK = 'Traceback (most recent call last):\n  File "shop/catalogue.py", line 42\nNotFound'


def sid(trace: str, n: int) -> str:
    """A span id (16 hex digits) unique to its trace."""
    return f"{trace[:8]}{n:08x}"


def span(t0: float, trace: str, n: int, service: str, name: str, kind: str, at_ms: float,
         dur: float, parent: int | str | None = None, **fields: Any) -> SpanRow:
    parent_id = sid(trace, parent) if isinstance(parent, int) else parent
    fields.setdefault("status", "unset")
    return SpanRow(ts=t0 + at_ms / 1000, trace_id=trace, span_id=sid(trace, n),
                   service=service, name=name, kind=kind, duration_ms=dur,
                   parent_span_id=parent_id, **fields)


def crafted(t0: float) -> list[SpanRow]:
    """The traces of the module docstring; the period is ``[t0, t0 + 1 h)``."""
    a, b = 5 * 60_000.0, 20 * 60_000.0  # A at +5 min, B at +20 min
    rows = [
        span(t0, TRACE_A, 1, "shop", "POST /checkout", "server", a, 400, http_method="POST",
             http_route="/checkout", http_status=200, session_id="sess-42",
             attributes={"http.request.method": "POST", "user_agent.original": "Firefox"}),
        span(t0, TRACE_A, 2, "shop", "SELECT shop.carts", "client", a + 10, 50, 1,
             db_system="postgresql", db_operation="SELECT"),
        span(t0, TRACE_A, 3, "shop", "POST", "client", a + 70, 120, 1, http_method="POST",
             server_address="payments.internal", http_status=200),
        span(t0, TRACE_A, 7, "shop", "INSERT shop.orders", "client", a + 72, 30, 1,
             db_system="postgresql", db_operation="INSERT"),
        span(t0, TRACE_A, 4, "payments", "POST /charge", "server", a + 75, 110, 3,
             http_method="POST", http_route="/charge", http_status=200),
        span(t0, TRACE_A, 5, "payments", "UPDATE payments", "client", a + 80, 20, 4,
             db_system="postgresql", db_operation="UPDATE"),
        span(t0, TRACE_A, 6, "payments", "POST", "client", a + 105, 70, 4,
             http_method="POST", server_address="api.stripe.com", http_status=200,
             attributes={"url.full": "https://api.stripe.com/v1/charges"}),
        span(t0, TRACE_B, 1, "shop", "POST /checkout", "server", b, 900, "f" * 16,
             status="error", http_method="POST", http_route="/checkout", http_status=502,
             exception_type="PaymentError",
             exception_message="payment 4242 failed for order ORD-2024-0001 (jane@example.com)"),
        span(t0, TRACE_B, 2, "shop", "POST", "client", b + 20, 800, 1, status="error",
             status_message="upstream failed", server_address="payments.internal"),
        span(t0, TRACE_B, 3, "payments", "POST /charge", "server", b + 25, 780, 2,
             status="error", http_method="POST", http_route="/charge", http_status=500,
             exception_type="CardDeclined",
             exception_message="card tok_1N3T9x declined (request "
                               "4bf92f3577b34da6a3ce929d0e0e4736, "
                               "6f1c2a9e-3b1d-4c3e-9a55-1f2e3d4c5b6a)",
             exceptions=[{"type": "CardDeclined", "message": "card declined",
                          "stacktrace": "CardDeclined at charge.py:12"}]),
        span(t0, TRACE_B, 4, "payments", "POST", "client", b + 30, 700, 3, status="error",
             http_status=402, server_address="api.stripe.com"),
    ]
    for i, (trace, dur) in enumerate(zip(TRACE_C, PRODUCT_MS, strict=True)):
        at = 30 * 60_000.0 + i * 60_000
        fields: dict[str, Any] = {"http_status": 200}
        if i == 3:
            fields = {"http_status": 503}
        elif i in (5, 7):
            fields = {"http_status": 404, "status": "error", "exception_type": "NotFound",
                      "exception_message": f"Product {123 if i == 5 else 98765} not found",
                      "exceptions": [{"type": "NotFound", "message": "…",
                                      "stacktrace": STACK}]}
        rows.append(span(t0, trace, 1, "shop", "GET /product/{id}", "server", at, dur,
                         http_method="GET", http_route="/product/{id}", **fields))
        rows.append(span(t0, trace, 2, "shop", "SELECT shop.products", "client", at + 1,
                         dur / 2, 1, db_system="postgresql", db_operation="SELECT"))
    job = 40 * 60_000.0 + 30_000
    rows += [
        span(t0, TRACE_JOB, 1, "worker", "sync-inventory", "internal", job, 150),
        span(t0, TRACE_JOB, 2, "worker", "SELECT stock", "client", job + 5, 100, 1,
             db_system="postgresql", db_operation="SELECT"),
        span(t0, "f1" * 16, 1, "shop", "GET", "server", 50 * 60_000.0, 5, http_method="GET"),
        span(t0, "f2" * 16, 1, "shop", "ProcessOrder", "server", 51 * 60_000.0, 8),
        # Outside the period, or the project's history.
        span(t0, "f3" * 16, 1, "shop", "GET /product/{id}", "server", -1000, 9999,
             http_method="GET", http_route="/product/{id}", status="error"),
        span(t0, TRACE_OLD, 1, "shop", "GET /product/{id}", "server", -2 * 86_400_000.0, 20,
             http_method="GET", http_route="/product/{id}", status="error",
             exception_type="NotFound", exception_message="Product 7 not found"),
    ]
    return rows


OTHER_PROJECT = [span(T0, "f4" * 16, 1, "shop", "GET /product/{id}", "server", 60_000, 5000,
                      http_method="GET", http_route="/product/{id}")]


def write(store: Callable[[EventBatch], object], project_id: int, rows: list[SpanRow],
          received: float) -> None:
    store(EventBatch(project_id, int(received * 1_000_000), b"[]", 0, [],
                     spans=msgspec.json.encode(rows), n_spans=len(rows)))


def quantiles(values: list[float]) -> tuple[float, float, float]:
    """p50, p95, p99 by linear interpolation between ranks (DuckDB's quantile_cont)."""
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return cuts[49], cuts[94], cuts[98]


HOUR = TimeRange(int(T0 * 1e6), int((T0 + 3600) * 1e6), 60, "custom")
FROM, TO = "2026-03-10T10:00:00Z", "2026-03-10T11:00:00Z"
REQUESTS = [400.0, 900.0, *PRODUCT_MS, 5.0, 8.0, 110.0, 780.0]  # the period's server spans


@pytest.fixture
def stored(tmp_path: Path) -> Iterator[tuple[DuckDBEventStore, int]]:
    store = open_event_store(tmp_path / "events.duckdb")
    write(lambda b: store.write([b]), 1, crafted(T0), T0 + 3600)
    write(lambda b: store.write([b]), 2, OTHER_PROJECT, T0 + 3600)
    yield store, 1
    store.close()


# --- services, endpoints, buckets ------------------------------------------------------------


def test_totals_services_and_endpoints(stored: tuple[DuckDBEventStore, int]) -> None:
    store, pid = stored
    body = apm.backend(store, pid, HOUR)
    t = body["totals"]
    # B1, B3 (status error), C3 (503), C5 and C7 (status error): 5 of 16 requests.
    assert (t["requests"], t["errors"]) == (16, 5)
    assert t["error_rate"] == pytest.approx(5 / 16)
    assert t["throughput"] == pytest.approx(16 / 60)
    for key, expected in zip(("p50", "p95", "p99"), quantiles(REQUESTS), strict=True):
        assert t[key] == pytest.approx(expected, abs=1e-3), key
    services = {s["service"]: s for s in body["services"]}
    assert [s["service"] for s in body["services"]] == ["shop", "payments", "worker"]
    assert (services["shop"]["spans"], services["shop"]["requests"]) == (28, 14)
    assert services["shop"]["error_rate"] == pytest.approx(4 / 14)
    assert (services["payments"]["spans"], services["payments"]["errors"]) == (5, 1)
    assert services["payments"]["p50"] == pytest.approx((110 + 780) / 2)
    # A service without requests: spans, but no rate and no latency.
    worker = services["worker"]
    assert (worker["spans"], worker["requests"], worker["error_rate"], worker["p95"]) == (
        2, 0, None, None)
    endpoints = {e["endpoint"]: e for e in body["endpoints"]}
    assert set(endpoints) == {"GET /product/{id}", "POST /checkout", "POST /charge", "GET",
                              "ProcessOrder"}
    product = endpoints["GET /product/{id}"]
    assert (product["service"], product["method"], product["route"]) == (
        "shop", "GET", "/product/{id}")
    assert (product["requests"], product["errors"]) == (10, 3)
    assert product["throughput"] == pytest.approx(10 / 60)
    for key, expected in zip(("p50", "p95", "p99"), quantiles(PRODUCT_MS), strict=True):
        assert product[key] == pytest.approx(expected, abs=1e-3), key
    assert endpoints["POST /checkout"]["p95"] == pytest.approx(400 + 0.95 * 500)
    # No route: the span's name, the method not repeated; no method: the name alone.
    assert (endpoints["GET"]["method"], endpoints["GET"]["route"]) == ("GET", "GET")
    assert endpoints["ProcessOrder"]["method"] is None


def test_slowest_endpoints_need_enough_requests(stored: tuple[DuckDBEventStore, int]) -> None:
    store, pid = stored
    assert [e["endpoint"] for e in apm.backend(store, pid, HOUR)["slowest"]] == [
        "GET /product/{id}"]  # the only one with 5 requests or more
    every = apm.backend(store, pid, HOUR, min_calls=1)["slowest"]
    assert [e["endpoint"] for e in every] == ["POST /checkout", "POST /charge",
                                             "GET /product/{id}", "ProcessOrder", "GET"]
    assert every[1]["p95"] == pytest.approx(110 + 0.95 * 670)


def test_buckets_cover_the_period(stored: tuple[DuckDBEventStore, int]) -> None:
    store, pid = stored
    series = apm.backend(store, pid, HOUR)["series"]
    assert len(series) == 60 and series[0]["t"] == FROM
    assert sum(b["requests"] for b in series) == 16
    at = {b["t"]: b for b in series}
    checkout = at["2026-03-10T10:05:00Z"]  # A's two requests: 400 and 110 ms
    assert (checkout["requests"], checkout["errors"], checkout["throughput"]) == (2, 0, 2.0)
    assert checkout["p50"] == pytest.approx(255.0)
    failed = at["2026-03-10T10:20:00Z"]
    assert (failed["errors"], failed["error_rate"]) == (2, 1.0)
    quiet = at["2026-03-10T10:01:00Z"]
    assert (quiet["requests"], quiet["throughput"], quiet["error_rate"], quiet["p95"]) == (
        0, 0.0, None, None)
    # A period that does not start on a minute: its first bucket counts the part inside.
    shifted = TimeRange(HOUR.start_us + 30_000_000, HOUR.end_us, 60, "custom")
    first = apm.backend(store, pid, shifted)["series"][0]
    assert first["t"] == FROM and first["requests"] == 0 and first["throughput"] == 0.0
    body = apm.backend(store, pid, shifted)
    assert body["totals"]["throughput"] == pytest.approx(16 / 59.5)


def test_a_service_filter_narrows_everything_but_the_services(
        stored: tuple[DuckDBEventStore, int]) -> None:
    store, pid = stored
    body = apm.backend(store, pid, HOUR, "payments", min_calls=1)
    assert body["totals"]["requests"] == 2 and body["totals"]["errors"] == 1
    assert [e["endpoint"] for e in body["endpoints"]] == ["POST /charge"]
    assert [e["endpoint"] for e in body["slowest"]] == ["POST /charge"]
    assert len(body["services"]) == 3
    assert sum(b["requests"] for b in body["series"]) == 2
    assert apm.backend(store, pid, HOUR, "nobody")["totals"]["requests"] == 0


# --- dependencies ----------------------------------------------------------------------------


def test_dependencies_and_their_share_of_the_time(stored: tuple[DuckDBEventStore, int]) -> None:
    store, pid = stored
    deps = {(d["type"], d["name"]): d for d in apm.dependencies(store, pid, HOUR)["dependencies"]}
    assert set(deps) == {("call", "api.stripe.com"), ("call", "payments.internal"),
                         ("database", "postgresql SELECT"), ("database", "postgresql UPDATE"),
                         ("database", "postgresql INSERT")}
    # Root server spans: A's shop POST /checkout (400; payments' /charge has a stored
    # parent) and B's (900; its parent is in the browser, not stored).
    stripe = deps[("call", "api.stripe.com")]
    assert (stripe["calls"], stripe["errors"], stripe["services"]) == (2, 1, ["payments"])
    assert stripe["share"] == pytest.approx((70 + 700) / (400 + 900))
    assert stripe["p50"] == pytest.approx(385.0)
    assert stripe["p95"] == pytest.approx(70 + 0.95 * 630)
    assert stripe["host"] == "api.stripe.com" and stripe["system"] is None
    internal = deps[("call", "payments.internal")]
    assert internal["share"] == pytest.approx((120 + 800) / 1300)
    assert internal["error_rate"] == pytest.approx(0.5)
    select = deps[("database", "postgresql SELECT")]
    # A's, the product pages' and the worker's; the worker's trace has no root server
    # span, so it counts in calls but in no share.
    assert select["calls"] == 12 and select["services"] == ["shop", "worker"]
    assert select["share"] == pytest.approx(
        (50 + sum(PRODUCT_MS) / 2) / (400 + sum(PRODUCT_MS)))
    assert select["total_ms"] == pytest.approx(50 + sum(PRODUCT_MS) / 2 + 100)
    assert (select["system"], select["operation"], select["host"]) == (
        "postgresql", "SELECT", None)
    assert deps[("database", "postgresql UPDATE")]["share"] == pytest.approx(20 / 400)
    assert deps[("database", "postgresql INSERT")]["share"] == pytest.approx(30 / 400)
    # Largest share first.
    names = [d["name"] for d in apm.dependencies(store, pid, HOUR)["dependencies"]]
    assert names[:2] == ["payments.internal", "api.stripe.com"]


def test_dependencies_of_one_service(stored: tuple[DuckDBEventStore, int]) -> None:
    store, pid = stored
    shop = {d["name"]: d for d in apm.dependencies(store, pid, HOUR, "shop")["dependencies"]}
    assert set(shop) == {"payments.internal", "postgresql SELECT", "postgresql INSERT"}
    assert shop["postgresql SELECT"]["calls"] == 11  # not the worker's
    # The share still divides by the requests' root spans, whoever served them.
    assert shop["payments.internal"]["share"] == pytest.approx(920 / 1300)


# --- errors ----------------------------------------------------------------------------------


def test_errors_are_grouped_with_ids_and_numbers_replaced(
        stored: tuple[DuckDBEventStore, int]) -> None:
    store, pid = stored
    groups = apm.errors(store, pid, HOUR)["groups"]
    found = {(g["service"], g["type"], g["message"]): g for g in groups}
    assert set(found) == {
        ("shop", "NotFound", "Product <n> not found"),
        ("shop", "HTTP 503", ""),
        ("shop", "PaymentError", "payment <n> failed for order <id> (<email>)"),
        ("shop", "(error status)", "upstream failed"),
        ("payments", "CardDeclined", "card <id> declined (request <id>, <id>)"),
        ("payments", "(error status)", ""),
    }
    not_found = groups[0]  # the only group seen twice comes first
    assert (not_found["type"], not_found["count"], not_found["traces"]) == ("NotFound", 2, 2)
    assert not_found["example_message"] == "Product 98765 not found"  # the latest
    assert not_found["example_trace_id"] == TRACE_C[7]
    assert not_found["stacktrace"] == STACK
    assert [e["endpoint"] for e in not_found["endpoints"]] == ["GET /product/{id}"]
    # First seen over all history (two days before); last seen in the period.
    assert not_found["first_seen"] == "2026-03-08T10:00:00Z"
    assert not_found["last_seen"] == "2026-03-10T10:37:00Z"
    declined = found[("payments", "CardDeclined", "card <id> declined (request <id>, <id>)")]
    assert declined["stacktrace"] == "CardDeclined at charge.py:12"
    assert [e["endpoint"] for e in declined["endpoints"]] == ["POST /charge"]
    # A client span's error: the endpoint its service was serving in that trace.
    upstream = found[("shop", "(error status)", "upstream failed")]
    assert upstream["example_trace_id"] == TRACE_B
    assert [e["endpoint"] for e in upstream["endpoints"]] == ["POST /checkout"]
    only = apm.errors(store, pid, HOUR, "payments")["groups"]
    assert {g["service"] for g in only} == {"payments"} and len(only) == 2


# --- traces ----------------------------------------------------------------------------------


def test_a_trace_in_tree_order_with_depths_and_offsets(
        stored: tuple[DuckDBEventStore, int]) -> None:
    store, pid = stored
    body = apm.trace(store, pid, TRACE_A)
    spans = body["spans"]
    # Tree order: the INSERT (started at +72 ms) after the payments call's whole subtree.
    assert [s["span_id"] for s in spans] == [sid(TRACE_A, n) for n in (1, 2, 3, 4, 5, 6, 7)]
    assert [s["depth"] for s in spans] == [0, 1, 1, 2, 3, 3, 1]
    assert [s["offset_ms"] for s in spans] == pytest.approx([0, 10, 70, 75, 80, 105, 72],
                                                            abs=0.01)
    assert body["duration_ms"] == pytest.approx(400, abs=0.01)
    assert (body["span_count"], body["errors"], body["truncated"]) == (7, 0, False)
    assert body["services"] == ["payments", "shop"]
    assert body["root"] == {"service": "shop", "name": "POST /checkout",
                            "endpoint": "POST /checkout"}
    assert spans[0]["attributes"] == {"http.request.method": "POST",
                                      "user_agent.original": "Firefox"}
    assert spans[0]["session_id"] == "sess-42" and spans[0]["start"] == "2026-03-10T10:05:00Z"
    failed = apm.trace(store, pid, TRACE_B.upper())  # ids are read in either case
    assert failed["errors"] == 4 and failed["spans"][0]["depth"] == 0
    assert failed["spans"][2]["exceptions"][0]["type"] == "CardDeclined"


def test_unknown_and_malformed_traces(stored: tuple[DuckDBEventStore, int]) -> None:
    store, pid = stored
    with pytest.raises(PageNotFound):
        apm.trace(store, pid, "0" * 32)
    with pytest.raises(PageNotFound):
        apm.trace(store, 2, TRACE_A)  # another project's
    for bad in ("xyz", "a" * 31, "g" * 32, "a" * 33):
        with pytest.raises(BadRequest):
            apm.trace(store, pid, bad)


def test_repeated_spans_and_parent_cycles(tmp_path: Path) -> None:
    store = open_event_store(tmp_path / "events.duckdb")
    trace = "c7" * 16
    rows = [span(T0, trace, 1, "shop", "root", "server", 0, 10),
            span(T0, trace, 2, "shop", "loop a", "internal", 1, 2, 3),
            span(T0, trace, 3, "shop", "loop b", "internal", 2, 2, 2),
            span(T0, trace, 4, "shop", "child", "internal", 3, 2, 1)]
    write(lambda b: store.write([b]), 1, [*rows, rows[3]], T0)  # an exporter's retry
    body = apm.trace(store, 1, trace)
    assert [s["name"] for s in body["spans"]] == ["root", "child", "loop a", "loop b"]
    assert [s["depth"] for s in body["spans"]] == [0, 1, 0, 1]
    store.close()


# --- alert series ----------------------------------------------------------------------------


@pytest.mark.parametrize(("series", "filter", "expected"), [
    ("backend_errors", None, 5),
    ("backend_errors", {"service": "payments"}, 1),
    ("backend_errors", {"route": "/product/{id}"}, 3),
    ("backend_errors", {"service": "shop", "route": "/checkout"}, 1),
    ("backend_errors", {"route": "ProcessOrder"}, 0),
    ("backend_p95_ms", None, quantiles(REQUESTS)[1]),
    ("backend_p95_ms", {"service": "shop", "route": "/product/{id}"},
     quantiles(PRODUCT_MS)[1]),
    ("backend_p95_ms", {"route": "GET"}, 5.0),
])
def test_alert_series_read_the_same_figures(stored: tuple[DuckDBEventStore, int], series: str,
                                            filter: dict[str, str] | None,
                                            expected: float) -> None:
    store, pid = stored
    assert value(store, pid, series, filter, HOUR.start_us, HOUR.end_us) == pytest.approx(
        expected, abs=1e-3)


def test_alert_series_buckets(stored: tuple[DuckDBEventStore, int]) -> None:
    store, pid = stored
    errors = buckets(store, pid, "backend_errors", None, HOUR.start_us, HOUR.end_us, 600)
    assert [v for _, v in errors] == [0.0, 0.0, 2.0, 3.0, 0.0, 0.0]
    p95 = buckets(store, pid, "backend_p95_ms", None, HOUR.start_us, HOUR.end_us, 600)
    assert [t - T0 for t, _ in p95] == [0, 1200, 1800, 3000]  # none at 10:10 and 10:40
    totals = apm.backend(store, pid, HOUR)["totals"]
    assert value(store, pid, "backend_p95_ms", None, HOUR.start_us,
                 HOUR.end_us) == pytest.approx(totals["p95"], abs=1e-3)
    quiet = value(store, pid, "backend_p95_ms", None, HOUR.start_us, HOUR.start_us + 60_000_000)
    assert quiet is None


# --- the API ---------------------------------------------------------------------------------


@pytest.fixture
def api(live: Live) -> tuple[Live, httpx.Client, int]:
    project = live.create_project("shop-a")
    other = live.create_project("shop-b")

    def submit(batch: EventBatch) -> None:
        live.runtime.writer.submit(batch).result(timeout=30)

    write(submit, project.id, crafted(T0), T0 + 3600)
    write(submit, other.id, OTHER_PROJECT, T0 + 3600)
    return live, live.client(project.secret_key), project.id


def test_the_api_serves_the_figures(api: tuple[Live, httpx.Client, int]) -> None:
    live, client, pid = api
    period = {"from": FROM, "to": TO}
    rng = parse_range("custom", FROM, TO, 0)
    backend = client.get("/api/v1/backend", params=period)
    assert backend.status_code == 200, backend.text
    assert backend.json() == apm.backend(live.runtime.events, pid, rng)
    payments = client.get("/api/v1/backend", params={**period, "service": "payments",
                                                     "min_calls": 1}).json()
    assert payments["totals"]["requests"] == 2 and payments["slowest"][0]["route"] == "/charge"
    deps = client.get("/api/v1/backend/dependencies", params=period).json()
    assert deps == apm.dependencies(live.runtime.events, pid, rng)
    errors = client.get("/api/v1/backend/errors", params=period).json()
    assert errors["groups"][0]["message"] == "Product <n> not found"
    csv = client.get("/api/v1/backend", params={**period, "format": "csv"})
    assert csv.status_code == 200 and csv.text.startswith("service,method,route,endpoint")
    assert len(csv.text.strip().splitlines()) == 6  # a header and five endpoints
    bad = client.get("/api/v1/backend", params={**period, "min_calls": 0})
    assert bad.status_code == 400 and "min_calls" in bad.json()["error"]["message"]


def test_the_trace_route_validates_and_isolates(api: tuple[Live, httpx.Client, int]) -> None:
    live, client, pid = api
    found = client.get(f"/api/v1/traces/{TRACE_A}")
    assert found.status_code == 200
    assert [s["depth"] for s in found.json()["spans"]] == [0, 1, 1, 2, 3, 3, 1]
    for bad in ("not-a-trace", "a" * 31, "z" * 32):
        response = client.get(f"/api/v1/traces/{bad}")
        assert response.status_code == 400, bad
        assert response.json()["error"]["code"] == "bad_request"
        assert "32 hex digits" in response.json()["error"]["message"]
    unknown = client.get(f"/api/v1/traces/{'0' * 32}")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"
    other = live.runtime.state.get_project("shop-b")
    theirs = live.client(other.secret_key).get(f"/api/v1/traces/{TRACE_A}")
    assert theirs.status_code == 404  # another project's key sees no such trace
    mine = live.runtime.state.get_project(pid)
    assert live.client(mine.ingest_key).get(f"/api/v1/traces/{TRACE_A}").status_code == 403
    assert live.client().get("/api/v1/traces/nonsense").status_code == 401
    for path in ("/api/v1/backend", "/api/v1/backend/dependencies", "/api/v1/backend/errors"):
        assert live.client().get(path).status_code == 401, path
        assert live.client(mine.ingest_key).get(path).status_code == 403, path
        assert client.get(path).status_code == 200, path


# --- the page --------------------------------------------------------------------------------


@pytest.mark.browser
def test_the_backend_page_draws_the_figures_and_a_trace(browser: Browser,
                                                        dashboard: Live) -> None:
    from tests.test_browser import Watched

    project = dashboard.runtime.state.get_project("shop-a")
    context = browser.new_context(viewport={"width": 1360, "height": 900}, locale="en-US",
                                  timezone_id="UTC")
    watched = Watched(context.new_page(), dashboard.base_url)
    try:
        watched.sign_in()
        page = watched.page
        # Before any span: how to send them, to this server.
        watched.open("/reliability/backend?range=1h")
        empty = page.locator("[data-backend-empty]")
        assert empty.is_visible()
        assert f"OTEL_EXPORTER_OTLP_ENDPOINT={dashboard.base_url}" in empty.inner_text()
        assert "http/protobuf" in empty.inner_text()
        # ... and nothing else: no empty charts, tables or cards.
        assert page.locator("[data-backend-figures]").is_hidden()
        assert page.locator("[data-panel=backend-dependencies]").is_hidden()
        assert page.locator("[data-panel=backend-errors]").is_hidden()
        watched.shot("backend-empty")

        now = time.time()
        t0 = now - 55 * 60  # the crafted hour ends 4 minutes ago
        inside = [r for r in crafted(t0) if r.ts >= t0]  # the last hour's only
        write(lambda b: dashboard.runtime.writer.submit(b).result(timeout=30), project.id,
              inside, now)
        watched.open("/reliability/backend?range=1h")
        assert not empty.is_visible()
        card = page.locator("[data-backend-card=error_rate] .kpi-value")
        assert card.inner_text() == "31.3%"
        assert page.locator("[data-backend-card=throughput] .kpi-value").inner_text() == (
            "0.27 /min")
        for chart in ("backend-latency", "backend-errors", "backend-throughput"):
            assert page.locator(f"[data-chart={chart}] canvas").count() == 1, chart
        assert page.locator("[data-endpoints] tbody tr").count() == 5
        assert page.locator("[data-slowest] tbody tr").count() == 1
        assert page.locator("[data-dependencies] tbody tr").count() == 5
        assert page.locator("[data-backend-errors] tbody tr").count() == 6
        options = page.locator("[data-service-select] option").all_inner_texts()
        assert options == ["all services", "shop", "payments", "worker"]
        # The endpoints sort by a heading: p95, largest first on the second click.
        heading = page.locator("[data-endpoints] th", has_text="p95")
        heading.click()
        heading.click()
        first = page.locator("[data-endpoints] tbody tr").first.inner_text()
        assert first.startswith("POST /checkout")
        watched.shot("backend")

        # A grouped error links to an example trace: the waterfall.
        row = page.locator("[data-backend-errors] tbody tr", has_text="CardDeclined")
        row.locator("a[data-trace-link]").click()
        page.wait_for_url(f"**trace={TRACE_B}**")
        watched.settle()
        assert page.locator(".wf-row[data-span-id]").count() == 4
        assert page.locator(".wf-row.wf-error").count() == 4

        watched.open(f"/reliability/backend?range=1h&trace={TRACE_A}")
        rows = page.locator(".wf-row[data-span-id]")
        assert rows.count() == 7
        assert rows.nth(4).locator(".wf-name").evaluate("e => e.style.paddingLeft") == "56px"
        bar = rows.nth(3).locator(".wf-bar")  # payments' /charge: 75 ms into 400
        assert bar.evaluate("e => parseFloat(e.style.left)") == pytest.approx(18.75, abs=0.01)
        assert bar.evaluate("e => parseFloat(e.style.width)") == pytest.approx(27.5, abs=0.01)
        # The root's bar spans the whole trace: its label is inside it, not over the names.
        assert "wf-dur-in" in (rows.first.locator(".wf-dur").get_attribute("class") or "")
        rows.nth(5).click()  # the call to the payment provider
        detail = page.locator("[data-span-detail]")
        assert detail.is_visible()
        assert "api.stripe.com" in detail.inner_text()
        assert "https://api.stripe.com/v1/charges" in detail.inner_text()
        watched.shot("backend-trace")
        watched.open(f"/reliability/backend?range=1h&trace={TRACE_B}")
        page.locator(".wf-row[data-span-id]").nth(2).click()
        assert "CardDeclined at charge.py:12" in page.locator("[data-span-detail]").inner_text()
        watched.shot("backend-trace-error")

        # The service filter narrows the page.
        watched.open("/reliability/backend?range=1h")
        page.select_option("[data-service-select]", "payments")
        page.wait_for_url("**service=payments**")
        watched.settle()
        assert page.locator("[data-endpoints] tbody tr").count() == 1
        assert page.locator("[data-dependencies] tbody tr").count() == 2
        assert watched.problems == []
    finally:
        context.close()


@pytest.mark.browser
def test_an_incident_timeline_shows_the_backend_signals(
        browser: Browser, server: Callable[..., Live]) -> None:
    from tests.test_browser import Watched
    from tests.test_incidents import make_incident

    live = server(alerts_interval=0)
    project_id = make_incident(live)  # starts an hour ago, lasts about 10 minutes
    live.runtime.users.add(ADMIN_EMAIL, PASSWORD, "admin")
    start = time.time() - 3600
    checkout = [r for r in crafted(start - 14 * 60) if r.trace_id in (TRACE_A, TRACE_B)]
    # A 9 minutes before the incident, B (two failed requests) 6 minutes into it.
    write(lambda b: live.runtime.writer.submit(b).result(timeout=30), project_id, checkout,
          time.time())
    context = browser.new_context(viewport={"width": 1360, "height": 900}, locale="en-US",
                                  timezone_id="UTC")
    watched = Watched(context.new_page(), live.base_url)
    try:
        watched.sign_in()
        watched.open(f"/alerts/incidents?project={project_id}&id=1")
        names = watched.page.locator("[data-timeline=technical]").evaluate(
            "el => echarts.getInstanceByDom(el).getOption().series.map(s => s.name)")
        assert names == ["failed check runs", "JavaScript errors", "backend errors",
                         "p75 LCP (ms)", "backend p95 (ms)"]
        errors = watched.page.locator("[data-timeline=technical]").evaluate(
            "el => echarts.getInstanceByDom(el).getOption().series[2].data"
            ".reduce((n, p) => n + (p[1] || 0), 0)")
        assert errors == 2  # trace B's
        watched.shot("incident-backend-signals")
        assert watched.problems == []
    finally:
        context.close()
