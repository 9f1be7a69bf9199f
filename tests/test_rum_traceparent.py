"""Browser to backend (docs/rum.md, "Browser to backend"): the beacon's trace ids, the
trace view's page views and sessions, the journey's trace links, and the snippet in
real headless Chromium (with its opt-in add-on ``rum-trace.js``) adding ``traceparent``
to same-origin calls only and reading the page's ``Server-Timing: traceparent``.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import msgspec
import pytest
from playwright.sync_api import Browser

from shopwatch import beacon
from shopwatch.analytics import apm, journey
from shopwatch.beacon import RumRow
from shopwatch.store.base import EventBatch
from shopwatch.telemetry import SpanRow
from shopwatch.useragent import Agent
from tests.conftest import Live, open_event_store
from tests.rum_fixtures import rum_tag

T0 = datetime(2026, 3, 10, 10, 0, tzinfo=UTC).timestamp()
PAGE_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PAGE_SPAN = "00f067aa0ba902b7"
CALL_TRACE = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT_RE = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-01$")
AGENT = Agent(category="desktop", browser="Chrome", browser_version="120", os="Linux",
              os_version=None)


def _parse(records: list[dict[str, Any]]) -> beacon.Parsed:
    body = msgspec.json.encode({"v": 1, "sid": "s1", "r": records})
    return beacon.parse(body, now_ms=T0 * 1000, agent=AGENT)


# --- the beacon ------------------------------------------------------------------------------


def test_the_beacon_keeps_valid_trace_ids_and_rejects_others() -> None:
    url = "https://shop.example/checkout?email=jane@example.com"
    parsed = _parse([
        {"k": "view", "pv": "p1", "url": url, "ttfb": 120,
         "tp": f"00-{PAGE_TRACE}-{PAGE_SPAN}-01"},
        {"k": "view", "pv": "p2", "url": url},
        {"k": "api", "pv": "p1", "url": url, "ru": "/api/cart", "rt": "xhr", "st": 502,
         "dur": 80, "tid": CALL_TRACE},
        {"k": "api", "pv": "p1", "url": url, "ru": "/api/ok", "st": 200, "tid": CALL_TRACE},
        {"k": "api", "pv": "p1", "ru": "/api/x", "tid": CALL_TRACE.upper()},
        {"k": "api", "pv": "p1", "ru": "/api/x", "tid": "0" * 32},
        {"k": "api", "pv": "p1", "ru": "/api/x", "tid": CALL_TRACE[:31]},
        {"k": "api", "pv": "p1", "ru": "/api/cart"},  # an API call without its trace
        {"k": "api", "pv": "p1", "ru": "/api/cart", "tid": CALL_TRACE, "rt": "beacon"},
    ])
    view, plain, failed, ok = parsed.rows
    assert (view.kind, view.trace_id, view.page) == ("view", PAGE_TRACE, "/checkout")
    assert plain.trace_id is None
    assert (failed.kind, failed.trace_id, failed.resource_url, failed.resource_type,
            failed.duration_ms, failed.failed) == ("api", CALL_TRACE, "/api/cart", "xhr",
                                                   80, True)
    assert (ok.resource_type, ok.failed) == ("fetch", False)
    assert [r["index"] for r in parsed.rejected] == [4, 5, 6, 7, 8]
    for rejection in parsed.rejected[:3]:
        assert f"r[{rejection['index']}].tid" in rejection["error"], rejection
    assert "missing required field tid" in parsed.rejected[3]["error"]
    assert "r[8].rt" in parsed.rejected[4]["error"]
    assert parsed.warnings == []


@pytest.mark.parametrize("value", [
    f"00-{'0' * 32}-{PAGE_SPAN}-01",  # the invalid trace id
    f"00-{PAGE_TRACE}-{'0' * 16}-01",  # the invalid span id
    f"00-{PAGE_TRACE.upper()}-{PAGE_SPAN}-01",
    f"01-{PAGE_TRACE}-{PAGE_SPAN}-01",  # a version this reader does not know
    f"00-{PAGE_TRACE}-{PAGE_SPAN}",
    PAGE_TRACE,
])
def test_a_bad_server_timing_traceparent_costs_only_its_value(value: str) -> None:
    parsed = _parse([{"k": "view", "pv": "p1", "ttfb": 120, "tp": value}])
    (row,) = parsed.rows
    assert (row.kind, row.ttfb_ms, row.trace_id) == ("view", 120, None)
    (warning,) = parsed.warnings
    assert warning["index"] == 0 and "r[0].tp" in warning["warning"]
    assert "not a W3C traceparent" in warning["warning"]


def test_an_api_status_of_zero_is_a_failure() -> None:
    (row,) = _parse([{"k": "api", "ru": "/api/x", "st": 0, "tid": CALL_TRACE}]).rows
    assert row.failed is True


# --- the trace view and the journey ----------------------------------------------------------


def _span(trace: str, n: int, name: str, at_s: float, dur: float,
          session: str | None = None, parent: int | None = None) -> SpanRow:
    return SpanRow(ts=T0 + at_s, trace_id=trace, span_id=f"{trace[:8]}{n:08x}",
                   service="shop", name=name, kind="server" if parent is None else "client",
                   status="unset", duration_ms=dur,
                   parent_span_id=None if parent is None else f"{trace[:8]}{parent:08x}",
                   session_id=session)


def _rum(kind: str, at_s: float, session: str, view: str, **fields: Any) -> RumRow:
    return RumRow(kind=kind, ts=T0 + at_s, session_id=session, view_id=view,
                  device_category="mobile", browser="Safari", **fields)


def _write(store: Any, project_id: int, spans: list[SpanRow], rum: list[RumRow]) -> None:
    store.write([EventBatch(project_id, int((T0 + 60) * 1e6), b"[]", 0, [],
                            rum=msgspec.json.encode(rum), n_rum=len(rum),
                            spans=msgspec.json.encode(spans), n_spans=len(spans))])


def test_a_trace_lists_the_page_views_and_sessions_it_served(tmp_path: Path) -> None:
    store = open_event_store(tmp_path / "events.duckdb")
    try:
        _write(store, 1, [
            _span(PAGE_TRACE, 1, "GET /checkout", 0.0, 900, session="sess-span"),
            _span(PAGE_TRACE, 2, "SELECT carts", 0.1, 700, parent=1),
            _span(CALL_TRACE, 1, "POST /api/cart", 5.0, 40),
        ], [
            _rum("view", 0.0, "sess-1", "pv1", page="/checkout", ttfb_ms=950.0,
                 trace_id=PAGE_TRACE),
            _rum("vitals", 3.0, "sess-1", "pv1", page="/checkout", lcp_ms=2100.0),
            _rum("vitals", 9.0, "sess-1", "pv1", page="/checkout", lcp_ms=3400.0),
            _rum("api", 5.0, "sess-1", "pv1", page="/checkout", resource_url="/api/cart",
                 resource_type="fetch", duration_ms=45.0, failed=False, trace_id=CALL_TRACE),
        ])
        # Another project's row with the same trace id is not this project's page view.
        _write(store, 2, [], [_rum("view", 0.0, "sess-x", "pvx", trace_id=PAGE_TRACE)])

        found = apm.trace(store, 1, PAGE_TRACE)
        (view,) = found["page_views"]
        assert view == {"kind": "view", "t": "2026-03-10T10:00:00Z", "view_id": "pv1",
                        "session_id": "sess-1", "page": "/checkout", "url": None,
                        "device": "mobile", "browser": "Safari", "ttfb_ms": 950.0,
                        "duration_ms": None, "failed": None, "lcp_ms": 3400.0}
        assert found["sessions"] == ["sess-1", "sess-span"]
        call = apm.trace(store, 1, CALL_TRACE)
        assert [(v["kind"], v["url"], v["duration_ms"], v["lcp_ms"])
                for v in call["page_views"]] == [("api", "/api/cart", 45.0, 3400.0)]
        assert call["sessions"] == ["sess-1"]

        steps = journey.journey(store, 1, "sess-1")["steps"]
        assert [(s["type"], s.get("trace_id")) for s in steps] == [
            ("page_view", PAGE_TRACE), ("api", CALL_TRACE), ("vitals", None)]
        assert steps[1]["url"] == "/api/cart" and steps[1]["failed"] is False
    finally:
        store.close()


class _Submit:
    """``write`` through the live server's writer, as ingestion does."""

    def __init__(self, live: Live) -> None:
        self.live = live

    def write(self, batches: list[EventBatch]) -> None:
        for batch in batches:
            self.live.runtime.writer.submit(batch).result(timeout=30)


def test_the_trace_route_serves_the_browser_side(live: Live) -> None:
    project = live.create_project("traced")
    _write(_Submit(live), project.id,
           [_span(PAGE_TRACE, 1, "GET /checkout", 0.0, 900)],
           [_rum("view", 0.0, "sess-1", "pv1", page="/checkout", trace_id=PAGE_TRACE)])
    assert project.secret_key is not None
    body = live.client(project.secret_key).get(f"/api/v1/traces/{PAGE_TRACE}").json()
    assert [(v["kind"], v["session_id"], v["page"]) for v in body["page_views"]] == [
        ("view", "sess-1", "/checkout")]
    assert body["sessions"] == ["sess-1"]


# --- the snippet in Chromium -----------------------------------------------------------------


class Site:
    """A loopback server: ``/checkout.html`` (the snippet tag from ``tag``, answered with
    ``Server-Timing: traceparent``) and ``/api/*`` (records each request's
    ``traceparent``; CORS open to any origin)."""

    def __init__(self, tag: str = "") -> None:
        site = self
        self.tag = tag
        self.calls: list[tuple[str, str | None]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.do_GET()

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/checkout.html":
                    page = ("<!doctype html><html><head><meta charset='utf-8'>"
                            f"{site.tag}</head><body><h1>Checkout</h1></body></html>")
                    self._send(200, "text/html; charset=utf-8", page.encode(), {
                        "Server-Timing":
                            f'app;dur=12, traceparent;desc="00-{PAGE_TRACE}-{PAGE_SPAN}-01"'})
                elif path.startswith("/api/"):
                    site.calls.append((path, self.headers.get("traceparent")))
                    self._send(200, "application/json", b"{}")
                else:
                    self._send(404, "text/plain", b"not found")

            def _send(self, status: int, media: str, body: bytes,
                      extra: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", media)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.send_header("Access-Control-Allow-Origin", "*")
                for name, value in (extra or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def sites(live: Live) -> Iterator[tuple[Site, Site, str]]:
    """The shop (with the snippet, ``data-traceparent="on"``), a third party on another
    origin, and the shop project's secret key."""
    project = live.create_project("traceparent")
    assert project.ingest_key is not None and project.secret_key is not None
    shop = Site(rum_tag(live.base_url, project.ingest_key, traceparent="on"))
    other = Site()
    live.runtime.state.update_project(project.id, rum_origins=[shop.origin])
    yield shop, other, project.secret_key
    shop.close()
    other.close()


def _rows(live: Live, sql: str, *params: Any, expect: int) -> list[tuple[Any, ...]]:
    """Poll the event store until ``sql`` returns at least ``expect`` rows (the writer
    commits beacons asynchronously)."""
    deadline = time.monotonic() + 15
    while True:
        found = live.runtime.events.query(sql, list(params))
        if len(found) >= expect or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


@pytest.mark.browser
def test_the_snippet_traces_same_origin_calls_only(
        live: Live, sites: tuple[Site, Site, str], browser: Browser) -> None:
    shop, other, _ = sites
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{shop.origin}/checkout.html")
    # rum.js loads its tracing add-on (rum-trace.js) when the tag opts in.
    page.wait_for_function("window.shopwatchTrace === 1")
    page.evaluate("""async ([other]) => {
        await fetch('/api/cart?item=1', {method: 'POST'});
        await fetch(new Request('/api/request'));
        const own = '00-' + 'ab'.repeat(16) + '-' + 'cd'.repeat(8) + '-01';
        await fetch('/api/own', {headers: {traceparent: own}});
        await fetch(other + '/api/third-party');
        await new Promise((done) => {
            const x = new XMLHttpRequest();
            x.open('GET', '/api/xhr'); x.onloadend = done; x.send();
        });
        await new Promise((done) => {
            const x = new XMLHttpRequest();
            x.open('GET', other + '/api/third-party-xhr'); x.onloadend = done; x.send();
        });
    }""", [other.origin])
    page.goto("about:blank")  # hidden: the snippet flushes
    page.close()
    context.close()

    sent = dict(shop.calls)
    assert set(sent) == {"/api/cart", "/api/request", "/api/own", "/api/xhr"}
    traced = {}
    for path in ("/api/cart", "/api/request", "/api/xhr"):
        match = TRACEPARENT_RE.match(sent[path] or "")
        assert match, (path, sent[path])
        traced[path] = match.group(1)
    assert len(set(traced.values())) == 3  # a new trace per call
    assert sent["/api/own"] == f"00-{'ab' * 16}-{'cd' * 8}-01"  # the page's own is kept
    # No third party ever sees a traceparent.
    assert sorted(other.calls) == [("/api/third-party", None), ("/api/third-party-xhr", None)]

    views = _rows(live, "SELECT trace_id, page FROM rum WHERE kind = 'view'", expect=1)
    assert views == [(PAGE_TRACE, "/checkout.html")]
    calls = _rows(live, "SELECT resource_url, resource_type, trace_id, failed FROM rum "
                        "WHERE kind = 'api' ORDER BY resource_url", expect=3)
    assert calls == [("/api/cart", "fetch", traced["/api/cart"], False),
                     ("/api/request", "fetch", traced["/api/request"], False),
                     ("/api/xhr", "xhr", traced["/api/xhr"], False)]


def test_the_tracing_add_on_is_served_like_the_snippet(live: Live) -> None:
    client = live.client()
    response = client.get("/rum-trace.js", headers={"accept-encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert response.headers["content-encoding"] == "gzip"
    assert "max-age=86400" in response.headers["cache-control"]
    assert "traceparent" in response.text and "// " not in response.text
    again = client.get("/rum-trace.js", headers={"if-none-match": response.headers["etag"]})
    assert again.status_code == 304
    assert response.headers["etag"] != client.get("/rum.js").headers["etag"]


@pytest.mark.browser
def test_the_trace_and_journey_pages_link_both_ways(browser: Browser, dashboard: Live) -> None:
    from tests.test_browser import Watched

    project = dashboard.runtime.state.get_project("shop-a")
    now = time.time() - 600
    spans = [SpanRow(ts=now, trace_id=PAGE_TRACE, span_id=PAGE_SPAN, service="shop",
                     name="GET /checkout", kind="server", status="unset", duration_ms=900.0,
                     session_id="sess-1")]
    rum = [RumRow(kind="view", ts=now, session_id="sess-1", view_id="pv1", page="/checkout",
                  device_category="mobile", browser="Safari", ttfb_ms=950.0,
                  trace_id=PAGE_TRACE),
           RumRow(kind="vitals", ts=now + 5, session_id="sess-1", view_id="pv1",
                  page="/checkout", lcp_ms=3400.0)]
    dashboard.runtime.writer.submit(EventBatch(
        project.id, int(now * 1e6), b"[]", 0, [], rum=msgspec.json.encode(rum), n_rum=2,
        spans=msgspec.json.encode(spans), n_spans=1)).result(timeout=30)
    context = browser.new_context(viewport={"width": 1360, "height": 900}, locale="en-US",
                                  timezone_id="UTC")
    watched = Watched(context.new_page(), dashboard.base_url)
    try:
        watched.sign_in()
        page = watched.page
        # The journey's page view opens its backend trace ...
        watched.open("/behaviour/session-journeys?range=1h&session=sess-1")
        link = page.locator(f"[data-steps] a.trace-link[data-trace-id='{PAGE_TRACE}']")
        assert link.count() == 1
        link.click()
        page.wait_for_url(f"**/reliability/backend?**trace={PAGE_TRACE}**")
        watched.settle()
        # ... and the trace shows the page view and its session, linked to the journey.
        browser_box = page.locator("[data-trace-browser]")
        assert browser_box.is_visible()
        row = browser_box.locator("[data-trace-views] tbody tr")
        assert row.count() == 1
        cells = row.locator("td").all_inner_texts()
        assert cells[1:5] == ["Page view", "/checkout", "sess-1", "mobile, Safari"]
        assert cells[5] == "950 ms" and cells[6] == "3.4 s"
        sessions = browser_box.locator("[data-trace-sessions] a")
        assert sessions.all_inner_texts() == ["sess-1"]
        sessions.first.click()
        page.wait_for_url("**/behaviour/session-journeys?**session=sess-1**")
        assert watched.problems == []
    finally:
        context.close()
