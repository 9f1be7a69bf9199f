"""The demo shop's traces: made by the OpenTelemetry SDK, sent over OTLP to a real
Shopwatch and stored as the Reliability → Backend page reads them."""

from __future__ import annotations

import asyncio
import json
import random
import re
from datetime import UTC, datetime
from typing import Any

import httpx

from shopwatch.demo import history
from shopwatch.demo.incidents import ShopFaults
from shopwatch.demo.shop import BrowserTag, catalogue, create_shop
from shopwatch.demo.shop.tracing import SANDBOX_HOST, ShopTracing
from shopwatch.demo.traces import PastTraces
from tests.conftest import Live

SHIPPING = {"name": "Jane Q. Customer", "address": "17 Rue des Lilas", "city": "Lyon",
            "country": "fr", "method": "standard"}
APPROVED_CARD = "4000 0000 0000 0077"
COLUMNS = ["trace_id", "span_id", "parent_span_id", "service", "name", "kind", "status",
           "http_route", "http_method", "http_status", "db_system", "db_operation",
           "server_address", "exception_type", "session_id", "attributes"]
PRODUCTS = [history.Product(p.id, p.name, p.category, p.price) for p in catalogue.PRODUCTS]
TRACEPARENT_RE = re.compile(r'traceparent;desc="00-([0-9a-f]{32})-([0-9a-f]{16})-01"')


class Events:
    """A :class:`~shopwatch.demo.shop.Tracker` that keeps the shop's events."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send(self, event: dict[str, Any]) -> str:
        self.sent.append(event)
        return str(len(self.sent))


async def buy(client: httpx.AsyncClient, card: str = APPROVED_CARD) -> int:
    """Put a product in the cart and pay; the payment's status code."""
    assert (await client.post("/cart/add", data={"product_id": "moka-pot"})).status_code == 303
    assert (await client.get("/checkout")).status_code == 200
    assert (await client.post("/checkout/shipping", data=SHIPPING)).status_code == 303
    paid = await client.post("/checkout/payment", data={"method": "card", "card_number": card})
    return paid.status_code


def test_the_shop_sends_its_requests_store_calls_and_payments_as_spans(live: Live) -> None:
    project = live.create_project("demo")
    assert project.ingest_key is not None
    tracing = ShopTracing.otlp(live.base_url, project.ingest_key)
    faults = ShopFaults()
    events = Events()
    app = create_shop(events, faults=faults, tracing=tracing,
                      browser_tag=BrowserTag(live.base_url, project.ingest_key))

    async def shop() -> tuple[httpx.Response, httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://127.0.0.1:8081") as client:
            home = await client.get("/")
            product = await client.get("/p/moka-pot")
            assert await buy(client) == 303
            faults.gateway_errors = True
            assert await buy(client) == 502
            return home, product

    home, product = asyncio.run(shop())
    tracing.shutdown()  # flushes every span to Shopwatch before we look

    # Pages name their trace for rum.js, whose tag asks for it.
    match = TRACEPARENT_RE.fullmatch(product.headers["server-timing"])
    assert match is not None, product.headers
    assert 'data-traceparent="on"' in home.text
    assert "server-timing" in home.headers
    session_id = events.sent[0]["session_id"]

    rows = [dict(zip(COLUMNS, row, strict=True)) for row in live.runtime.events.query(
        f"SELECT {', '.join(COLUMNS)} FROM spans WHERE project_id = ? ORDER BY ts, span_id",
        [project.id])]
    for row in rows:
        row["attributes"] = json.loads(row["attributes"] or "{}")
    by_id = {r["span_id"]: r for r in rows}
    servers = [r for r in rows if r["service"] == "demo-shop" and r["kind"] == "server"]
    routes = {(r["http_method"], r["http_route"]) for r in servers}
    assert {("GET", "/"), ("GET", "/p/{product_id}"), ("POST", "/cart/add"),
            ("GET", "/checkout"), ("POST", "/checkout/shipping"),
            ("POST", "/checkout/payment")} <= routes
    assert all(r["parent_span_id"] is None for r in servers)
    assert {r["session_id"] for r in servers} == {session_id}
    # The page whose Server-Timing we read is that server span.
    page = by_id[match.group(2)]
    assert (page["trace_id"], page["http_route"], page["http_status"]) == (
        match.group(1), "/p/{product_id}", 200)

    # Store calls: children of their request, named for what the store is.
    lookup = [r for r in rows if r["db_system"] is not None
              and by_id[r["parent_span_id"]]["http_route"] == "/p/{product_id}"]
    assert {(r["db_operation"], r["attributes"]["db.collection.name"]) for r in lookup} >= {
        ("SELECT", "products"), ("SELECT", "sessions")}
    assert {r["db_system"] for r in rows if r["db_system"]} == {"in-memory"}
    inserts = [r for r in rows if r["db_operation"] == "INSERT"
               and r["attributes"]["db.collection.name"] == "orders"]
    assert len(inserts) == 1  # the one approved payment placed an order

    # Payments: a client span to the sandbox's host below the POST, and the sandbox's
    # own server span below that; the gateway error fails all three, with exceptions.
    calls = [r for r in rows if r["kind"] == "client" and r["server_address"] == SANDBOX_HOST]
    assert [(c["http_status"], c["status"]) for c in calls] == [(200, "unset"), (502, "error")]
    for call in calls:
        parent = by_id[call["parent_span_id"]]
        assert (parent["http_method"], parent["http_route"]) == ("POST", "/checkout/payment")
        assert call["trace_id"] == parent["trace_id"]
        served = [r for r in rows if r["parent_span_id"] == call["span_id"]]
        assert [(s["service"], s["kind"], s["http_status"]) for s in served] == [
            ("payments-sandbox", "server", call["http_status"])]
    failed_call = calls[1]
    assert failed_call["exception_type"].endswith("GatewayError")
    failed_post = by_id[failed_call["parent_span_id"]]
    assert (failed_post["http_status"], failed_post["status"]) == (502, "error")


# --- the backfill's past traces ----------------------------------------------------------

def test_past_requests_are_traced_like_live_ones_incidents_included() -> None:
    calm = PastTraces(random.Random(1), lambda kind, at: False)
    incident = PastTraces(random.Random(1), lambda kind, at: True)
    ts = 1_700_000_000_000
    view = {"name": "page_view", "page": "/p/moka-pot", "ts": ts, "session_id": "s-1"}
    root, *children = calm.of(view)
    assert (root.kind, root.http_method, root.http_route, root.http_status,
            root.session_id, root.parent_span_id) == (
        "server", "GET", "/p/{product_id}", 200, "s-1", None)
    assert [(c.db_system, c.db_operation, c.parent_span_id) for c in children] == [
        ("in-memory", "SELECT", root.span_id), ("in-memory", "SELECT", root.span_id)]
    for child in children:  # inside their request
        assert root.ts <= child.ts and child.ts + child.duration_ms / 1000 <= ts / 1000
    assert list(calm.of({"name": "view_item", "page": "/p/moka-pot", "ts": ts})) == []

    declined = {"name": "payment_declined", "page": "/checkout/payment", "ts": ts,
                "params": {"reason": "gateway_error"}}
    post, *rest = incident.of(declined)
    call, served = (s for s in rest if s.db_system is None)
    assert (post.http_route, post.http_status, post.status) == (
        "/checkout/payment", 502, "error")
    assert (call.kind, call.server_address, call.parent_span_id, call.status) == (
        "client", SANDBOX_HOST, post.span_id, "error")
    assert (served.service, served.kind, served.parent_span_id) == (
        "payments-sandbox", "server", call.span_id)
    assert call.exception_type is not None and call.exception_type.endswith("GatewayError")
    # A slow checkout makes the checkout's requests longer by the delay.
    slow, *_ = incident.of(declined)
    fast, *_ = calm.of(declined)
    assert slow.duration_ms - fast.duration_ms > 2000
    bought = {"name": "purchase", "page": "/order/H-1", "ts": ts}
    paid, *paid_rest = calm.of(bought)
    assert (paid.http_method, paid.http_route, paid.http_status, paid.status) == (
        "POST", "/checkout/payment", 303, "unset")
    assert ("INSERT", "orders") in {(s.db_operation, (s.attributes or {}).get(
        "db.collection.name")) for s in paid_rest}


def test_the_backfill_stores_past_spans_with_the_events(live: Live) -> None:
    project = live.create_project("history")
    sink = history.Ingest(live.runtime, project.id)
    result = history.backfill(sink, PRODUCTS, days=0.5, now=datetime.now(UTC), seed=5,
                              origin="http://127.0.0.1:8081")
    sink.close()
    assert result.spans == sink.span_rows > result.events // 2
    stored = live.runtime.events.query(
        "SELECT service, kind, count(*) FROM spans WHERE project_id = ? GROUP BY ALL",
        [project.id])
    counts = {(service, kind): n for service, kind, n in stored}
    assert sum(counts.values()) == result.spans
    assert counts[("demo-shop", "server")] > result.counts["page_view"]
    assert counts[("payments-sandbox", "server")] == (
        result.counts["purchase"] + result.counts["payment_declined"])
    # Every child's parent is stored, in the same trace.
    orphans = live.runtime.events.query(
        "SELECT count(*) FROM spans c WHERE project_id = ? AND parent_span_id IS NOT NULL "
        "AND NOT EXISTS (SELECT 1 FROM spans p WHERE p.project_id = c.project_id "
        "AND p.span_id = c.parent_span_id AND p.trace_id = c.trace_id)", [project.id])
    assert orphans == [(0,)]
