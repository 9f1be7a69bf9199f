"""The RUM snippet in real headless Chromium, against a running Shopwatch.

Fixture pages (``tests/rum_fixtures.py``) are served from a second loopback origin, as a
shop's pages would be; the snippet loads from Shopwatch and sends real beacons. The
tests check what arrives (the beacons the browser posts) and what is stored.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page

from tests.conftest import Live
from tests.rum_fixtures import (
    BEACON_COPY,
    BUSY_MS,
    ERROR_MESSAGE,
    REJECTION_MESSAGE,
    SHIFT_SCORE,
    SHOP_PAGE,
    VITALS_PAGE,
    FixtureSite,
    rum_tag,
)

pytestmark = pytest.mark.browser


class Beacons:
    """Every RUM beacon a browser context sends (copies logged by the fixture site)."""

    def __init__(self, context: BrowserContext, site: FixtureSite) -> None:
        context.add_init_script(BEACON_COPY)
        self.site = site
        self.site.logged.clear()

    @property
    def sent(self) -> list[dict[str, Any]]:
        return [json.loads(body) for body in self.site.logged if body.startswith(b"{")]

    def records(self, kind: str) -> list[dict[str, Any]]:
        return [r for b in self.sent for r in b["r"] if r["k"] == kind]


def rows(live: Live, sql: str, *params: Any, expect: int = 1,
         timeout: float = 15.0) -> list[tuple[Any, ...]]:
    """Poll the event store until ``sql`` returns at least ``expect`` rows."""
    deadline = time.monotonic() + timeout
    while True:
        found = live.runtime.events.query(sql, list(params))
        if len(found) >= expect or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


@pytest.fixture
def site(live: Live) -> Iterator[tuple[FixtureSite, dict[str, str]]]:
    """A fixture site whose pages carry the snippet of a project on ``live``; the
    project allows the site's origin. Returns the site and ``{"key": ingest key}``."""
    project = live.create_project("rum")
    pages: dict[str, str] = {}
    site = FixtureSite({
        "/vitals.html": lambda: VITALS_PAGE.format(
            tag=rum_tag(live.base_url, pages["key"]), busy=BUSY_MS, error=ERROR_MESSAGE,
            rejection=REJECTION_MESSAGE),
        "/shop.html": lambda: SHOP_PAGE.format(tag=rum_tag(live.base_url, pages["key"])),
        "/consent.html": lambda: SHOP_PAGE.format(
            tag=rum_tag(live.base_url, pages["key"], consent="required")),
    })
    assert project.ingest_key is not None
    pages["key"] = project.ingest_key
    live.runtime.state.update_project(project.id, rum_origins=[site.origin])
    yield site, pages
    site.close()


def _open(context: BrowserContext, url: str) -> Page:
    page = context.new_page()
    page.goto(url)
    page.wait_for_load_state("load")
    return page


def _vitals_visit(context: BrowserContext, url: str) -> float:
    """Load the vitals page, wait for its shift and image, click the busy button, leave;
    return the browser's own LCP time."""
    page = context.new_page()
    page.goto(url)
    page.wait_for_function("window.heroLoaded === true && window.ownLcp > 0")
    page.wait_for_timeout(300)  # the hero's paint; the shift's input exclusion ends
    own_lcp = float(page.evaluate("window.ownLcp"))
    page.click("#busy")
    page.wait_for_function("document.getElementById('note').textContent === 'clicked'")
    page.wait_for_timeout(200)
    page.goto("about:blank")  # unload: the page is hidden, the snippet reports and flushes
    page.close()
    return own_lcp


def test_vitals_errors_and_resources_from_a_real_browser(
        live: Live, site: tuple[FixtureSite, dict[str, str]], browser: Browser) -> None:
    fixture, _ = site
    context = browser.new_context(viewport={"width": 1000, "height": 1000})
    beacons = Beacons(context, fixture)
    own = [_vitals_visit(context, f"{fixture.origin}/vitals.html") for _ in range(2)]
    context.close()

    # What arrives: two page loads, each with its view and its vitals.
    views = beacons.records("view")
    assert len(views) == 2 and all(not v["spa"] for v in views)
    assert all(v["ttfb"] >= 0 and v["load"] >= v["di"] > 0 for v in views)

    stored = rows(live, """
        SELECT view_id, max(cls), max(lcp_ms), max(inp_ms), any_value(lcp_target),
               any_value(cls_target), any_value(inp_target), max(fcp_ms), max(visible_ms)
        FROM rum WHERE kind = 'vitals' GROUP BY view_id ORDER BY min(ts)""", expect=2)
    assert len(stored) == 2
    for (_, cls, lcp, inp, lcp_el, cls_el, inp_el, fcp, visible), own_lcp in zip(
            stored, own, strict=True):
        assert cls == pytest.approx(SHIFT_SCORE, abs=0.001)
        assert cls_el == "div#box"
        assert lcp == pytest.approx(own_lcp, abs=1.0)
        assert lcp_el == "img#hero"
        assert inp >= BUSY_MS
        assert inp_el == "button#busy"
        assert 0 < fcp <= lcp
        assert visible > 500

    # Errors: the thrown error (its message varies by a number) and the rejection are two
    # groups, each seen on both page loads; the broken image is one failed resource.
    groups = rows(live, """
        SELECT error_type, any_value(message), count(*), count(DISTINCT view_id),
               any_value(source), any_value(line), any_value(stack)
        FROM rum WHERE kind = 'error' GROUP BY fingerprint, error_type ORDER BY error_type""",
                  expect=2)
    assert [(g[0], g[2], g[3]) for g in groups] == [("error", 2, 2), ("rejection", 2, 2)]
    assert groups[0][1].startswith(f"Uncaught Error: {ERROR_MESSAGE} at ")
    assert groups[0][4] == f"{fixture.origin}/vitals.html" and groups[0][5] > 0
    assert REJECTION_MESSAGE in groups[1][1] and "vitals.html" in groups[1][6]
    failed = rows(live, """SELECT resource_url, resource_host, resource_type, count(*)
                           FROM rum WHERE kind = 'resource' AND failed GROUP BY ALL""")
    assert failed == [(f"{fixture.origin}/missing.png", "127.0.0.1", "img", 2)]

    # The same through the API the dashboard reads.
    project = live.runtime.state.get_project("rum")
    api = live.client(project.secret_key)
    errors = api.get("/api/v1/errors", params={"range": "1h"}).json()["groups"]
    assert sorted((g["type"], g["count"], g["views"]) for g in errors) == [
        ("error", 2, 2), ("rejection", 2, 2)]
    body = api.get("/api/v1/vitals", params={"range": "1h", "by": "page"}).json()
    assert body["total"]["views"] == 2
    assert body["total"]["metrics"]["cls"]["p75"] == pytest.approx(SHIFT_SCORE, abs=0.001)
    assert body["total"]["metrics"]["inp"]["p75"] >= BUSY_MS
    assert [(h["host"], h["failures"]) for h in body["failed_hosts"]] == [("127.0.0.1", 2)]

    # The user agent was parsed (a headless browser counts as a bot); the page path is
    # stored without its origin.
    meta = rows(live, "SELECT DISTINCT device_category, browser, os, page, viewport_width "
                      "FROM rum WHERE kind = 'view'")
    assert meta == [("bot", "HeadlessChrome", "Linux", "/vitals.html", 1000)]


def test_commerce_api_routes_identify_and_dedup(
        live: Live, site: tuple[FixtureSite, dict[str, str]], browser: Browser) -> None:
    fixture, pages = site
    project = live.runtime.state.get_project("rum")
    context = browser.new_context()
    beacons = Beacons(context, fixture)
    page = _open(context, f"{fixture.origin}/shop.html")
    page.click("#add")
    page.wait_for_timeout(100)
    page.click("#route")  # a single-page-app route change
    page.wait_for_timeout(100)
    page.goto("about:blank")
    context.close()
    # The shop's server sends the same add_to_cart with the same event id.
    response = live.post_events(pages["key"], [{
        "name": "add_to_cart", "id": "evt-add-1", "session_id": "server-side",
        "params": {"currency": "EUR", "value": 19.9}}])
    assert response.status_code == 200

    added = rows(live, "SELECT id, user_id, session_id, value FROM events "
                       "WHERE name = 'add_to_cart'")
    assert len(added) == 1  # counted once
    assert added[0][0] == "evt-add-1" and added[0][1] == "customer-7"
    sid = beacons.sent[0]["sid"]
    assert added[0][2] == sid  # the browser's came first
    views = rows(live, "SELECT page, spa, user_id, session_id FROM rum WHERE kind = 'view' "
                       "ORDER BY ts", expect=2)
    # The route's query string is dropped except utm_*; its email never arrives stored.
    assert views == [("/shop.html", False, "customer-7", sid),
                     ("/checkout", True, "customer-7", sid)]
    assert project.id > 0


def test_consent_required_sends_nothing_until_given(
        live: Live, site: tuple[FixtureSite, dict[str, str]], browser: Browser) -> None:
    fixture, _ = site
    context = browser.new_context()
    beacons = Beacons(context, fixture)
    page = _open(context, f"{fixture.origin}/consent.html")
    page.click("#add")
    page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
    page.wait_for_timeout(300)
    assert beacons.sent == []
    page.evaluate("shopwatch('consent', true)")
    page.wait_for_timeout(300)
    assert [r["k"] for b in beacons.sent for r in b["r"]][:2] == ["view", "event"]
    page.click("#deny")
    page.click("#add")
    page.goto("about:blank")
    context.close()
    assert sum(1 for b in beacons.sent for r in b["r"] if r["k"] == "event") == 1


def test_global_privacy_control_keeps_no_session_and_no_identity(
        live: Live, site: tuple[FixtureSite, dict[str, str]], browser: Browser) -> None:
    fixture, _ = site
    context = browser.new_context()
    context.add_init_script(
        "Object.defineProperty(navigator, 'globalPrivacyControl', {get: () => true})")
    beacons = Beacons(context, fixture)
    page = context.new_page()
    for _ in range(2):
        page.goto(f"{fixture.origin}/shop.html")
        page.wait_for_load_state("load")
        page.wait_for_timeout(100)
    page.goto("about:blank")
    context.close()
    sids = {b["sid"] for b in beacons.sent}
    assert len(sids) == 2  # a new id per page: nothing links one page view to the next
    assert all("uid" not in b for b in beacons.sent)
    assert page.is_closed()
