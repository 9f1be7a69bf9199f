"""The dashboard in a real browser: the system's headless Chromium driven by Playwright.

Signs in, visits every page, and asserts the browser saw no console error, no failed
request and no HTTP error; screenshots land in ``test-artifacts/screenshots/``. Playwright
never downloads a browser here: it drives ``chromium`` from the system (Debian package,
installed by ``make test``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Request, Response

from shopwatch.web.sections import PAGES
from tests.conftest import ADMIN_EMAIL, PASSWORD, REPO, VIEWER_EMAIL, Live

pytestmark = pytest.mark.browser
SHOTS = REPO / "test-artifacts" / "screenshots"


class Watched:
    """A page whose console errors, failed requests and HTTP errors are collected."""

    def __init__(self, page: Page, base_url: str) -> None:
        self.page = page
        self.base_url = base_url
        self.problems: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.problems.append(f"page error: {exc}"))
        page.on("requestfailed", self._failed)
        page.on("response", self._response)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            self.problems.append(f"console {message.type}: {message.text}")

    def _failed(self, request: Request) -> None:
        # ERR_ABORTED is the browser cancelling a request itself because the page moved
        # on (e.g. the favicon still loading when a test clicks a link): not a failure
        # of the server. Refused connections, DNS and TLS errors are; HTTP errors are
        # caught in _response.
        if request.failure != "net::ERR_ABORTED":
            self.problems.append(f"request failed: {request.url} ({request.failure})")

    def _response(self, response: Response) -> None:
        if response.status >= 400:
            self.problems.append(f"HTTP {response.status}: {response.url}")

    def open(self, path: str) -> None:
        self.page.goto(self.base_url + path)
        self.settle()

    def sign_in(self, email: str = ADMIN_EMAIL) -> None:
        """Sign in through the login form (password :data:`PASSWORD`), on the overview."""
        self.open("/login")
        self.page.fill("input[name=email]", email)
        self.page.fill("input[name=password]", PASSWORD)
        self.page.click("button[type=submit]")
        self.page.wait_for_url("**/overview")

    def settle(self) -> None:
        self.page.wait_for_load_state("networkidle")
        self.page.wait_for_function(
            "() => !document.querySelector('[data-panel][aria-busy=\"true\"]')")

    def shot(self, name: str) -> Path:
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def signed_in(browser: Browser, dashboard: Live) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1360, "height": 900}, locale="en-US",
                                  timezone_id="UTC")
    watched = Watched(context.new_page(), dashboard.base_url)
    watched.sign_in()
    watched.settle()
    yield watched
    context.close()


def seed(live: Live) -> None:
    project = live.runtime.state.get_project("shop-a")
    events: list[dict[str, Any]] = [
        {"name": "page_view", "session_id": f"s{i}", "page": f"/product/{i}",
         "device": {"category": "mobile", "browser": "Firefox", "country": "FR"}}
        for i in range(6)]
    events += [{"name": "purchase", "session_id": "s1",
                "params": {"transaction_id": "T-1", "value": 1234.5, "currency": "USD"}}]
    assert live.post_events(project.ingest_key or "", events).status_code == 200


def test_every_page_loads_without_errors(signed_in: Watched, dashboard: Live) -> None:
    seed(dashboard)
    paths = [*PAGES, "/settings/projects", "/settings/users", "/account", "/api/docs"]
    for path in paths:
        signed_in.open(path)
        assert signed_in.page.locator("h1").first.is_visible(), path
        signed_in.shot(path.strip("/").replace("/", "-"))
    assert signed_in.problems == []


def test_overview_shows_figures_from_the_api(signed_in: Watched, dashboard: Live) -> None:
    seed(dashboard)
    signed_in.open("/overview?range=1h")
    page = signed_in.page
    orders = page.locator("[data-kpi=orders_today] .kpi-value")
    assert orders.inner_text() == "1"
    assert page.locator("[data-kpi=revenue_today] .kpi-value").inner_text() == "$1,234.50"
    assert page.locator("[data-kpi=active_sessions] .kpi-value").inner_text() == "6"
    # No monitor has run and no rule exists: the cards say how to start.
    assert "No monitor has run yet" in page.locator("[data-kpi=availability]").inner_text()
    assert "No alert rules yet" in page.locator("[data-kpi=open_alerts]").inner_text()
    assert page.locator("[data-chart=traffic] canvas").count() == 1  # uPlot drew it
    assert page.locator("[data-kpi=orders_today] .spark canvas").count() == 1
    signed_in.shot("overview-with-data")
    assert signed_in.problems == []


def test_period_picker_and_comparison_drive_the_figures(signed_in: Watched) -> None:
    page = signed_in.page
    page.select_option("#range-select", "7d")
    page.wait_for_url("**range=7d**")
    signed_in.settle()
    assert "last 7 days" in page.locator("[data-kpi=conversion_rate] h2").inner_text()
    page.uncheck("#compare")
    page.wait_for_url("**compare=0**")
    signed_in.settle()
    assert "previous period" not in page.locator("[data-traffic-totals]").inner_text()
    page.select_option("#range-select", "custom")
    assert page.locator(".custom-range").is_visible()
    page.fill("input[name=from]", "2026-01-01T00:00")
    page.fill("input[name=to]", "2026-01-08T00:00")
    page.click(".custom-range button")
    page.wait_for_url("**range=custom**")
    signed_in.settle()
    assert "selected period" in page.locator("[data-kpi=conversion_rate] h2").inner_text()
    signed_in.shot("overview-custom-range")
    assert signed_in.problems == []


def test_live_events_table_sorts(signed_in: Watched, dashboard: Live) -> None:
    seed(dashboard)
    signed_in.open("/behaviour/events")
    page = signed_in.page
    rows = page.locator("table.data tbody tr")
    assert rows.count() == 7
    page.click("th:has-text('Event')")
    first = page.locator("table.data tbody tr td:nth-child(2)").first.inner_text()
    assert first == "page_view"
    page.click("th:has-text('Event')")
    assert page.locator("table.data tbody tr td:nth-child(2)").first.inner_text() == "purchase"
    assert signed_in.problems == []


def test_rotating_a_key_in_the_browser_swaps_the_card(signed_in: Watched, dashboard: Live) -> None:
    old = dashboard.runtime.state.get_project("shop-a")
    signed_in.open("/settings/projects")
    page = signed_in.page
    page.on("dialog", lambda dialog: dialog.accept())
    card = page.locator(f"#project-{old.id}")
    assert old.ingest_key in card.inner_text()
    card.locator("form[action$='/keys/ingest/rotate'] button").click()
    page.wait_for_function(
        f"() => !document.querySelector('#project-{old.id}').innerText.includes("
        f"'{old.ingest_key}')")
    new = dashboard.runtime.state.get_project("shop-a")
    assert new.ingest_key != old.ingest_key
    assert (new.ingest_key or "") in page.locator(f"#project-{old.id}").inner_text()
    assert page.url.endswith("/settings/projects")  # swapped in place, no reload
    assert signed_in.problems == []


def test_signing_out_ends_the_session(signed_in: Watched) -> None:
    page = signed_in.page
    page.click("text=Sign out")
    page.wait_for_url("**/login")
    signed_in.open("/overview")
    assert "/login?next=" in page.url
    assert signed_in.problems == []


def test_a_shop_page_on_another_origin_can_send_events(browser: Browser, dashboard: Live,
                                                       tmp_path: Path) -> None:
    """The snippet shown under Settings → Projects works from the shop's own origin."""
    import http.server
    import threading

    project = dashboard.runtime.state.get_project("shop-a")
    (tmp_path / "index.html").write_text("<!doctype html><title>shop</title>")
    handler = partial_handler(tmp_path)
    shop = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=shop.serve_forever, daemon=True).start()
    try:
        context = browser.new_context()
        page = context.new_page()
        page.goto(f"http://127.0.0.1:{shop.server_address[1]}/index.html")
        status = page.evaluate(
            """async ([url, key]) => (await fetch(url + "/api/v1/events", {method: "POST",
                 headers: {"Authorization": "Bearer " + key, "Content-Type": "application/json"},
                 body: JSON.stringify({events: [{name: "page_view", page: "/cross-origin"}]})
               })).status""", [dashboard.base_url, project.ingest_key])
        assert status == 200
        reading = page.evaluate(
            """async ([url, key]) => { try { await fetch(url + "/api/v1/events",
                 {headers: {"Authorization": "Bearer " + key}}); return "read"; }
                 catch (e) { return "blocked"; } }""", [dashboard.base_url, project.secret_key])
        assert reading == "blocked"  # nothing but ingest answers other origins
        context.close()
    finally:
        shop.shutdown()
    stored = dashboard.read_events(project.secret_key or "")
    assert [e["page"] for e in stored] == ["/cross-origin"]


def partial_handler(directory: Path) -> Any:
    import functools
    import http.server

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    return functools.partial(Quiet, directory=str(directory))


def test_funnel_page_draws_steps_and_opens_a_dropped_session(signed_in: Watched,
                                                            dashboard: Live) -> None:
    project = dashboard.runtime.state.get_project("shop-a")
    events = [{"name": n, "session_id": s} for s, n in [
        ("k1", "view_item"), ("k1", "add_to_cart"), ("k2", "view_item")]]
    assert dashboard.post_events(project.ingest_key or "", events).status_code == 200
    signed_in.open("/behaviour/funnels?range=1h&steps=view_item,add_to_cart&by=device")
    page = signed_in.page
    rows = page.locator("[data-steps] tr")
    assert rows.count() == 2
    assert "2" in rows.nth(0).inner_text() and "50%" in rows.nth(1).inner_text()
    assert page.locator("[data-chart=funnel] canvas").count() == 1  # ECharts drew it
    assert page.locator("[data-breakdown]").is_visible()
    page.click("text=list sessions")
    page.wait_for_selector("[data-dropped] tbody tr")
    page.locator("[data-dropped] tbody button").first.click()
    page.wait_for_selector("[data-session] tbody tr")
    assert page.locator("[data-session-key]").inner_text() == "s:k2"
    signed_in.shot("funnel-dropped-session")
    assert signed_in.problems == []


def test_uploading_spend_shows_cost_and_roas(signed_in: Watched, dashboard: Live,
                                             tmp_path: Path) -> None:
    import datetime as dt

    project = dashboard.runtime.state.get_project("shop-a")
    assert dashboard.post_events(project.ingest_key or "", [
        {"name": "page_view", "session_id": "u", "utm_source": "google", "utm_medium": "cpc",
         "utm_campaign": "spring"},
        {"name": "purchase", "session_id": "u",
         "params": {"transaction_id": "U1", "value": 50, "currency": "USD"}}]).status_code == 200
    today = dt.datetime.now(dt.UTC).date().isoformat()
    upload = tmp_path / "spend.csv"
    upload.write_text(f"date,channel,campaign,cost\n{today},google,spring,20\n")
    signed_in.open("/marketing/spend?range=24h")
    page = signed_in.page
    page.set_input_files("form[data-spend-upload] input[type=file]", str(upload))
    page.click("form[data-spend-upload] button")
    page.wait_for_function(
        "() => document.querySelector('[data-spend-result]').textContent.includes('saved')")
    signed_in.settle()
    page.wait_for_selector("th[data-cost]:not([hidden])")
    row = page.locator("[data-panel=acquisition] table.data tbody tr", has_text="spring")
    assert "2.5\u00d7" in row.inner_text()  # ROAS 2.5x: 50 of revenue for 20 of spend
    signed_in.shot("spend")
    assert signed_in.problems == []


def seed_rum(live: Live) -> None:
    """Page views, Web Vitals, errors and resources from two browsers (tests/test_vitals)."""
    from tests.test_vitals import CHROME, SAFARI, page_view, send

    key = live.runtime.state.get_project("shop-a").ingest_key or ""
    now = time.time() * 1000 - 600_000
    for i in range(8):
        path = f"/product/item-{i}" if i < 6 else "/checkout"
        records = page_view(f"pv-{i}", path, now + i * 30_000, 1200.0 + 500 * i, 0.03 * i,
                            60.0 + 70 * i, 300.0 + 150 * i)
        if i % 3 == 0:
            records.append({"k": "error", "pv": f"pv-{i}", "t": now + i * 30_000 + 900,
                            "url": f"https://shop.example{path}",
                            "msg": "TypeError: undefined is not an object "
                                   "(evaluating 'cart.items')",
                            "stack": "TypeError\n at add (https://shop.example/js/cart.js:88:12)",
                            "src": "https://shop.example/js/cart.js", "line": 88})
        if i == 7:
            records.append({"k": "resource", "pv": "pv-7", "t": now + 211_000,
                            "url": "https://shop.example/checkout", "rt": "script",
                            "ru": "https://js.payments.example/v3/sdk.js", "fail": True})
        send(live, key, f"visitor-{i // 3}", records, SAFARI if i % 2 else CHROME)


def test_real_user_pages_show_vitals_errors_and_journeys(signed_in: Watched,
                                                         dashboard: Live) -> None:
    seed_rum(dashboard)
    page = signed_in.page
    signed_in.open("/behaviour/real-users?range=1h")
    api = signed_in.page.request.get(f"{dashboard.base_url}/api/v1/vitals?range=1h").json()
    lcp = api["total"]["metrics"]["lcp"]
    card = page.locator("[data-vital=lcp] .kpi-value")
    assert card.inner_text() == f"{lcp['p75'] / 1000:.2f}".rstrip("0").rstrip(".") + " s"
    assert f"rating-{lcp['rating']}" in (card.get_attribute("class") or "")
    rows = page.locator("[data-breakdown] tbody tr")
    assert rows.count() == 2 and "/product/*" in rows.first.inner_text()
    assert page.locator("[data-chart=vitals] canvas").count() == 1
    signed_in.shot("real-users-with-data")
    signed_in.open("/reliability/errors?range=1h")
    groups = page.locator("[data-groups] tbody tr")
    assert groups.count() == 1 and "cart.items" in groups.first.inner_text()
    assert "js.payments.example" in page.locator("[data-failed] tbody").inner_text()
    groups.first.locator("button").click()
    page.wait_for_selector("[data-group-sessions] tbody tr")
    signed_in.shot("errors-with-data")
    page.locator("[data-group-sessions] tbody tr a").first.click()
    page.wait_for_url("**session=visitor-**")
    signed_in.settle()
    steps = page.locator("[data-steps] li")
    assert steps.count() >= 4
    assert " Page view /" in steps.first.inner_text()
    assert page.locator("[data-steps] li.step-error").count() >= 1
    signed_in.shot("journey-with-data")
    signed_in.open("/settings/projects")
    tag = page.locator("pre.snippet", has_text="/rum.js").first.text_content() or ""
    assert f'src="{dashboard.base_url}/rum.js"' in tag and "data-key=\"swpub_" in tag
    assert signed_in.problems == []


def test_uptime_page_shows_status_bars_and_one_monitor(signed_in: Watched,
                                                       dashboard: Live) -> None:
    from shopwatch.checks.monitor import parse_monitors
    from shopwatch.checks.record import CheckRow
    from shopwatch.store import monitors as store
    from tests.test_uptime import MONITORS, write

    project = dashboard.runtime.state.get_project("shop-a")
    store.apply(dashboard.runtime.state, project.id, parse_monitors(MONITORS))
    now = time.time()
    write(dashboard, project.id, [
        CheckRow(ts=now - i * 3600, monitor="home", kind="http", location="local",
                 ok=i not in (5, 6), attempts=1, duration_ms=120.0 + i, status=200)
        for i in range(48)])
    page = signed_in.page
    signed_in.open("/reliability/uptime")
    rows = page.locator("[data-monitors] tbody tr")
    assert rows.count() == 4
    home = rows.filter(has_text="home")
    assert "up" in home.inner_text() and "95.8%" in home.inner_text()  # 46 of 48
    assert home.locator(".bars span").count() == 90
    signed_in.shot("uptime-with-data")
    home.locator("a").click()
    page.wait_for_url("**monitor=home**")
    signed_in.settle()
    assert page.locator("[data-chart=monitor] canvas").count() == 1
    assert page.locator("[data-incidents] tbody tr").count() == 1
    signed_in.shot("uptime-monitor")
    assert signed_in.problems == []


def test_checks_page_shows_each_flow_step_by_step(signed_in: Watched, dashboard: Live) -> None:
    from shopwatch.checks.browser_flow import slug
    from shopwatch.checks.monitor import parse_monitors
    from shopwatch.checks.record import row_of
    from shopwatch.store import monitors as store
    from tests.test_flows import BROWSER, FLOWS, browser_run
    from tests.test_uptime import write

    state = dashboard.runtime.state
    project = state.get_project("shop-a")
    store.apply(state, project.id, parse_monitors(FLOWS))
    start = time.time() - 3600
    # Runs 0..7: pay fails in runs 1, 3 and 7, add to cart in run 5 (pay skipped).
    write(dashboard, project.id, [row_of(browser_run(k, start + k * 300), "local")
                                  for k in range(8)])
    # Run 7's screenshot, where the server keeps a browser flow's artifacts.
    folder = dashboard.runtime.artifacts / str(project.id) / slug(BROWSER)
    folder.mkdir(parents=True)
    (folder / "20261122T120000Z-pay7.png").write_bytes(signed_in.page.screenshot())
    page = signed_in.page
    signed_in.open("/reliability/checks?range=24h")
    assert page.locator("[data-flow]").count() == 3  # the http monitor is no flow
    card = page.locator(f"[data-flow='{BROWSER}']")
    head = card.locator(".flow-head").inner_text()
    assert "browser flow" in head and "failing" in head
    assert card.locator("[data-fact=pass_rate]").inner_text() == "50%"
    assert card.locator("[data-fact=runs]").inner_text() == "8"
    rows = card.locator("[data-flow-steps] tbody tr")
    assert rows.count() == 3
    assert [rows.nth(i).locator("td.step").inner_text() for i in range(3)] == [
        "home", "add to cart", "pay"]
    pay = card.locator("tr[data-step=pay]").locator("td")
    assert pay.nth(2).inner_text() == "7\n1 skipped"
    assert pay.nth(3).inner_text() == "3 (42.9%)"
    assert "Thank you for your order" in pay.nth(6).inner_text()
    assert pay.nth(10).inner_text() == "3" and pay.nth(11).inner_text() == "6"
    assert card.locator("th[data-browser]").count() == 5
    assert card.locator("[data-chart=flow] canvas").count() == 1
    failure = card.locator("[data-failure]")
    assert failure.locator("[data-failure-step]").inner_text() == "pay"
    assert "GET https://pay.example/sdk.js: 503" in failure.inner_text()
    shot = failure.locator("img")
    shot.scroll_into_view_if_needed()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0",
                           arg=shot.element_handle())
    assert "/artifacts/20261122T120000Z-pay7.png" in (shot.get_attribute("src") or "")
    link = card.locator("[data-flow-uptime]").get_attribute("href") or ""
    assert link.startswith("/reliability/uptime?") and "monitor=checkout+in+a+browser" in link
    # An API flow without runs: its steps, no browser columns, nothing failed.
    api = page.locator("[data-flow='checkout api']")
    assert "not run yet" in api.inner_text()
    assert api.locator("th[data-browser]").count() == 0
    assert api.locator("[data-flow-steps] tbody tr").count() == 2
    assert api.locator("[data-flow-nofailure]").is_visible()
    page.evaluate("window.scrollTo(0, 0)")  # the sidebar sticks to where the page is
    signed_in.shot("checks-with-data")
    # A project without flows says how to add one.
    other = dashboard.create_project("no flows")
    signed_in.open(f"/reliability/checks?project={other.id}")
    empty = page.locator("[data-flows-empty]")
    assert empty.is_visible() and page.locator("[data-flow]").count() == 0
    assert "kind: browser_flow" in empty.inner_text()
    assert "shopwatch monitors apply" in empty.inner_text()
    signed_in.shot("checks-empty")
    assert signed_in.problems == []


def test_an_admin_adds_runs_edits_and_deletes_a_monitor(signed_in: Watched,
                                                       dashboard: Live) -> None:
    from tests.test_checks import Target

    target = Target()
    try:
        project = dashboard.runtime.state.get_project("shop-a")
        dashboard.runtime.state.update_project(project.id, base_url=target.url)
        page = signed_in.page
        signed_in.open("/reliability/uptime")
        page.click("#edit-monitor summary")
        page.fill("textarea[name=spec]", "name: home\nkind: http\nurl: /\ninterval: 5s\n")
        page.click("#edit-monitor button[type=submit]")
        page.wait_for_selector("#edit-monitor [role=alert]")
        assert "interval: 5s is under the minimum of 20s" in page.inner_text("[role=alert]")
        assert all("400" in p for p in signed_in.problems)  # the refusal, as intended
        signed_in.problems.clear()
        page.fill("textarea[name=spec]", "name: home\nkind: http\nurl: /\n"
                  "expect: {contains: Add to cart}\n")
        page.click("#edit-monitor button[type=submit]")
        page.wait_for_url("**notice=monitor-saved**")
        signed_in.settle()
        assert "Monitor saved" in page.inner_text(".notice")
        assert page.locator("[data-monitors] tbody tr", has_text="home").count() == 1
        # Run now goes through the server's address policy: loopback is refused here.
        page.click("[data-run-monitor]")
        page.wait_for_function(
            "() => document.querySelector('[data-run-result]').textContent.includes('ms')")
        assert "refused" in page.inner_text("[data-run-result]")
        signed_in.shot("uptime-edit")
        page.click("a.button:has-text('Edit')")
        signed_in.settle()
        assert "contains: Add to cart" in page.input_value("textarea[name=spec]")
        page.on("dialog", lambda dialog: dialog.accept())
        page.click("button.danger:has-text('Delete')")
        page.wait_for_url("**notice=monitor-deleted**")
        signed_in.settle()
        assert page.locator("[data-monitors] tbody tr").count() == 0
        assert signed_in.problems == []
    finally:
        target.close()


def test_public_status_page_renders_without_signing_in(browser: Browser,
                                                       dashboard: Live) -> None:
    from shopwatch.checks.monitor import parse_monitors
    from shopwatch.checks.record import CheckRow
    from shopwatch.store import monitors as store
    from tests.test_uptime import MONITORS, write

    project = dashboard.runtime.state.get_project("shop-a")
    store.apply(dashboard.runtime.state, project.id, parse_monitors(MONITORS))
    dashboard.runtime.state.update_project(project.id, status_slug="shop-a")
    now = time.time()
    write(dashboard, project.id, [
        CheckRow(ts=now - i * 3600 * 7, monitor="home", kind="http", location="local",
                 ok=i != 3, attempts=1, duration_ms=100.0, status=200) for i in range(200)])
    context = browser.new_context(viewport={"width": 900, "height": 700})
    watched = Watched(context.new_page(), dashboard.base_url)
    watched.open("/status/shop-a")
    page = watched.page
    assert page.locator("h1").inner_text() == "shop-a"
    assert page.locator(".component").count() == 3  # the paused monitor is not shown
    watched.shot("status-page")
    assert watched.problems == []
    context.close()


def test_an_admin_adds_and_removes_maintenance_windows_and_a_viewer_only_reads(
        browser: Browser, signed_in: Watched, dashboard: Live) -> None:
    from shopwatch.store.maintenance import add_window, list_windows

    state = dashboard.runtime.state
    project = state.get_project("shop-a")
    add_window(state, project.id, time.time() - 600, 3600, note="database upgrade")  # open now
    page = signed_in.page
    signed_in.open("/reliability/uptime")
    card = page.locator("#maintenance")
    assert "in progress" in card.locator("tbody tr", has_text="database upgrade").inner_text()
    card.locator("summary").click()
    form = card.locator("form[data-maintenance-form]")
    form.locator("input[name=note]").fill("nightly backups")
    form.locator("select[name=every]").select_option("day")
    form.locator("input[name=starts_at]").fill("2026-01-05T02:00")
    form.locator("input[name=duration]").fill("0m")
    form.locator("button[type=submit]").click()
    error = form.locator("[data-field-error=duration]")
    error.wait_for()
    assert "more than 0 s" in error.inner_text()
    assert form.locator("input[name=duration]").input_value() == "0m"  # kept as typed
    assert form.locator("input[name=note]").input_value() == "nightly backups"
    assert all("400" in p for p in signed_in.problems)  # the refusal, as intended
    signed_in.problems.clear()
    signed_in.shot("uptime-maintenance-error")
    form.locator("input[name=duration]").fill("30m")
    form.locator("button[type=submit]").click()
    row = card.locator("tbody tr", has_text="nightly backups")
    row.wait_for()
    assert "daily 02:00\u201302:30 UTC" in row.inner_text()
    assert "all monitors" in row.inner_text()
    assert form.locator("[data-field-error=duration]").inner_text() == ""
    assert [w.note for w in list_windows(state, project.id)] == ["nightly backups",
                                                               "database upgrade"]
    signed_in.shot("uptime-maintenance")
    page.on("dialog", lambda dialog: dialog.accept())
    row.locator("button:has-text('Remove')").click()
    row.wait_for(state="detached")
    assert [w.note for w in list_windows(state, project.id)] == ["database upgrade"]
    assert signed_in.problems == []

    context = browser.new_context(viewport={"width": 1360, "height": 900}, locale="en-US",
                                  timezone_id="UTC")
    viewer = Watched(context.new_page(), dashboard.base_url)
    viewer.open("/login")
    viewer.page.fill("input[name=email]", VIEWER_EMAIL)
    viewer.page.fill("input[name=password]", PASSWORD)
    viewer.page.click("button[type=submit]")
    viewer.page.wait_for_url("**/overview")
    viewer.open("/reliability/uptime")
    card = viewer.page.locator("#maintenance")
    assert "database upgrade" in card.locator("tbody").inner_text()
    assert card.locator("form, button").count() == 0  # no form, no remove button
    viewer.shot("uptime-maintenance-viewer")
    assert viewer.problems == []
    context.close()


def test_alerts_page_shows_alerts_rules_channels_and_an_admin_acknowledges(
        signed_in: Watched, dashboard: Live) -> None:
    from shopwatch.alerts import channels as kinds
    from tests.test_alerts_page import make_alerts
    from tests.test_channels import env

    if dashboard.runtime.alerts is not None:
        dashboard.runtime.alerts.stop()  # the test's evaluator is the only one
    state = dashboard.runtime.state
    project = state.get_project("shop-a")
    # Loopback: this server refuses to send there (checks_allow is empty), at once.
    kinds.create(state, project.id, "ops", "webhook", {"url": "http://127.0.0.1:9/hook"}, env())
    assert dashboard.runtime.outbox is not None
    make_alerts(dashboard, project.id, dashboard.runtime.outbox.enqueue)
    page = signed_in.page
    signed_in.open(f"/alerts?project={project.id}")
    firing = page.locator("#open-alerts tbody tr.alert-firing")
    assert firing.count() == 1
    text = firing.inner_text()
    assert "checkout errors" in text and "critical" in text.lower()
    assert "9%" in text and "error_rate (page=/checkout) > 0.05 over 10m" in text
    pending = page.locator("#open-alerts tbody tr.alert-pending")
    assert "slow checkout" in pending.inner_text() and "3.1 s" in pending.inner_text()
    assert pending.locator("button").count() == 0  # only firing alerts are acknowledged
    rules = page.locator("#rules tbody tr")
    assert rules.count() == 5
    assert "firing" in page.locator("#rules tr[data-rule='checkout errors']").inner_text()
    assert "ops, oncall" in page.locator("#rules tr[data-rule='slow checkout']").inner_text()
    resolved = page.locator("#resolved-alerts tbody tr")
    assert resolved.count() == 2
    assert "40 min" in page.locator("#resolved-alerts").inner_text()
    channel = page.locator("#channels tr[data-channel=ops]")
    assert "http://127.0.0.1:9/hook" in channel.inner_text()
    signed_in.shot("alerts-firing")

    firing.locator("button:has-text('Acknowledge')").click()
    page.locator("#open-alerts tr.alert-firing", has_text="by admin@example.com").wait_for()
    assert firing.locator("button").count() == 0
    channel.locator("button:has-text('Send test')").click()
    result = channel.locator("[data-test-result]")
    page.wait_for_function(
        "el => el.textContent && el.textContent !== 'sending…'", arg=result.element_handle())
    assert result.inner_text().startswith("✗") and "loopback" in result.inner_text()
    signed_in.settle()
    history = page.locator("#deliveries tbody tr")
    assert history.count() >= 1 and "test" in page.locator("#deliveries").inner_text()
    signed_in.shot("alerts-acknowledged")
    assert signed_in.problems == []


def test_incidents_pages_show_the_storm_its_impact_and_timeline(
        signed_in: Watched, dashboard: Live) -> None:
    from tests.test_incidents import make_incident

    if dashboard.runtime.alerts is not None:
        dashboard.runtime.alerts.stop()  # the test's evaluator is the only one
    project_id = make_incident(dashboard)
    page = signed_in.page
    signed_in.open(f"/alerts/incidents?project={project_id}")
    row = page.locator("[data-incidents] tbody tr")
    assert row.count() == 1
    assert "#1 checkout errors and 2 more" in row.inner_text()
    assert "9 min" in row.inner_text() and "resolved" in row.inner_text()
    assert page.locator("[data-total=incidents] .kpi-value").inner_text() == "1"
    assert page.locator("[data-total=mttr] .kpi-value").inner_text() == "9 min"
    signed_in.shot("incidents")
    row.locator("a").click()
    signed_in.settle()
    assert "id=1" in page.url
    assert "checkout errors and 2 more" in page.locator("[data-incident-title]").inner_text()
    alerts = page.locator("[data-incident-alerts] tbody tr")
    assert page.locator(".panel-error").count() == 0, page.locator(".panel-error").inner_text()
    assert alerts.count() == 3
    assert page.locator("[data-impact=orders] .kpi-value").inner_text() == "0"
    assert "No marketing spend" in page.locator("[data-impact=spend]").inner_text()
    for chart in ("technical", "business"):
        assert page.locator(f"[data-timeline={chart}] canvas").count() >= 1, chart
    signed_in.shot("incident")
    assert signed_in.problems == []


def test_an_admin_silences_rules_and_ends_the_silence(signed_in: Watched,
                                                       dashboard: Live) -> None:
    project = dashboard.runtime.state.get_project("shop-a")
    page = signed_in.page
    signed_in.open(f"/alerts?project={project.id}")
    page.click("[data-silence-details] summary")
    form = page.locator("form[data-silence-form]")
    form.locator("input[name=matcher]").fill("checkout*")
    form.locator("input[name=duration]").fill("400d")
    form.locator("button[type=submit]").click()
    error = form.locator("[data-field-error=duration]")
    error.wait_for()
    page.wait_for_function("el => el.textContent.length > 0", arg=error.element_handle())
    assert "at most 30 days" in error.inner_text()
    form.locator("input[name=duration]").fill("2h")
    form.locator("input[name=comment]").fill("deploying the new checkout")
    form.locator("button[type=submit]").click()
    row = page.locator("[data-silences] tbody tr", has_text="checkout*")
    row.wait_for()
    assert "active" in row.inner_text() and "deploying the new checkout" in row.inner_text()
    signed_in.shot("alerts-silence")
    row.locator("button:has-text('End now')").click()
    page.locator("[data-silences] tbody tr", has_text="expired").wait_for()
    # The one refusal is the 400-day silence, answered with the field's error.
    assert signed_in.problems == [
        f"HTTP 400: {dashboard.base_url}/api/v1/silences?project={project.id}",
        "console error: Failed to load resource: the server responded with a status of 400 "
        "(Bad Request)"]


def test_security_page_shows_sign_ins_payments_changes_and_sign_ups(signed_in: Watched,
                                                                     dashboard: Live) -> None:
    from tests.test_security_section import ATTACK, crafted, period_start

    project = dashboard.runtime.state.get_project("shop-a")
    assert dashboard.post_events(project.ingest_key or "", crafted(period_start())
                                 ).status_code == 200
    page = signed_in.page
    signed_in.open(f"/security?project={project.id}&range=24h")
    assert page.locator(".panel-error").count() == 0, page.locator(".panel-error").inner_text()
    card = page.locator("[data-sec-card=logins]")
    assert card.locator(".kpi-value").inner_text() == "15"  # with the minute before t0
    assert "6 succeeded · 9 failed" in card.locator(".kpi-sub").inner_text()
    assert page.locator("[data-sec-card=declined_rate] .kpi-value").inner_text() == "62.5%"
    assert page.locator("[data-sec-card=account_changes] .kpi-value").inner_text() == "5"
    assert page.locator("[data-sec-card=sign_ups] .kpi-value").inner_text() == "5"
    for chart in ("logins", "payments", "account_changes", "sign_ups"):
        assert page.locator(f"[data-sec-chart={chart}] canvas").count() >= 1, chart
    networks = page.locator("[data-sec-table=networks] tbody tr")
    assert networks.count() == 3 and networks.first.locator("td").first.inner_text() == ATTACK
    assert "Python Requests (automation)" in page.locator(
        "[data-sec-table=user_agents] tbody tr").first.inner_text()
    assert page.locator("[data-sec-table=by_gateway] tbody tr").count() == 3
    assert page.locator("[data-sec-table=latest] tbody tr").count() == 5
    assert page.locator("[data-sec-empty]:visible").count() == 0
    signed_in.shot("security")
    # A period without events: every block says which events fill it.
    signed_in.open(f"/security?project={project.id}&range=custom&from=2026-01-01T00:00"
                   "&to=2026-01-02T00:00")
    empties = page.locator("[data-sec-empty]:visible")
    assert empties.count() == 4
    assert "No login or login_failed events" in empties.first.inner_text()
    signed_in.shot("security-empty")
    assert signed_in.problems == []


def test_a_finding_is_listed_opened_with_its_evidence_and_acknowledged(
        signed_in: Watched, dashboard: Live) -> None:
    from shopwatch.security.watch import Watch
    from shopwatch.store.findings import list_findings

    project = dashboard.runtime.state.get_project("shop-a")
    now = time.time()
    attempts = [{"name": "login_failed", "ts": int((now - 300 + 10 * i) * 1000),
                 "user_id": "cust-9", "ip": "203.0.113.5", "user_agent": "curl/8.5.0",
                 "params": {"reason": "wrong_password"}} for i in range(12)]
    assert dashboard.post_events(project.ingest_key or "", attempts).status_code == 200
    Watch(dashboard.runtime.state, dashboard.runtime.events, lambda: [],
          lambda n, ids: None).run(now)
    page = signed_in.page
    signed_in.open(f"/security?project={project.id}&range=24h")
    rows = page.locator("[data-findings] tbody tr")
    assert rows.count() == 1
    assert "Brute force on account cust-9: 12 failed sign-ins" in rows.first.inner_text()
    rows.first.click()
    page.wait_for_url("**finding=*")
    signed_in.settle()
    assert "Brute force on account cust-9" in page.locator("[data-finding-title]").inner_text()
    events = page.locator("[data-finding-events] tbody tr")
    assert events.count() == 12
    assert "203.0.113.0/24" in events.first.inner_text()
    assert "203.0.113.5" not in page.content()
    signed_in.shot("security-finding")
    page.locator("[data-set-status=acknowledged]").click()
    page.wait_for_function(
        "() => document.querySelector('[data-finding-badges]').innerText.includes('acknowledged')")
    (finding,) = list_findings(dashboard.runtime.state, project.id)
    assert (finding.status, finding.status_by) == ("acknowledged", ADMIN_EMAIL)
    assert signed_in.problems == []


def test_feedback_page_shows_scores_segments_and_linked_comments(signed_in: Watched,
                                                                 dashboard: Live) -> None:
    from tests.test_feedback import crafted, period_start

    project = dashboard.runtime.state.get_project("shop-a")
    t0 = period_start()
    assert dashboard.post_events(project.ingest_key or "", crafted(t0)).status_code == 200
    beacon = {"v": 1, "sid": "s1", "uid": "cust-1", "r": [
        {"k": "error", "t": t0 + 330_000, "pv": "pv1", "url": "https://shop.example/checkout",
         "msg": "TypeError: pay is undefined"}]}
    assert dashboard.client().post(f"/api/v1/rum?key={project.ingest_key}", json=beacon,
                                   headers={"Content-Type": "text/plain"}).status_code == 200
    page = signed_in.page
    signed_in.open(f"/business/feedback?project={project.id}&range=24h")
    assert page.locator(".panel-error").count() == 0, page.locator(".panel-error").inner_text()
    # With the answer a few minutes before t0 (NPS 0): 2 promoters, 2 detractors of 6.
    assert page.locator("[data-fb-card=nps] .kpi-value").inner_text() == "0"
    assert page.locator("[data-fb-card=csat] .kpi-value").inner_text() == "75 %"
    assert page.locator("[data-fb-card=responses] .kpi-value").inner_text() == "11"
    assert page.locator("[data-fb-card=problems] .kpi-value").inner_text() == "2"
    for chart in ("nps", "csat"):
        assert page.locator(f"[data-fb-chart={chart}] canvas").count() >= 1, chart
    assert page.locator("[data-fb-segment=channel] tbody tr").count() == 3
    comments = page.locator("li.fb-comment")
    assert comments.count() == 3
    detractor = page.locator("li.fb-comment.detractor")
    assert "Checkout crashed twice" in detractor.inner_text()
    assert "TypeError: pay is undefined" in detractor.inner_text()
    assert detractor.locator("a[href*='session-journeys'][href*='session=s1']").count() >= 1
    signed_in.shot("feedback")
    page.fill("input[name=q]", "great")
    page.click("form[role=search] button")
    signed_in.settle()
    assert page.locator("li.fb-comment").count() == 1
    assert signed_in.problems == []


def test_customers_page_shows_kpis_cohorts_segments_ltv_cac_and_the_list(
        signed_in: Watched, dashboard: Live) -> None:
    import dataclasses
    from datetime import timedelta

    from tests.test_customers import SPEND, crafted, month, period_end

    # Months of history: this server's ingest would clamp events older than 7 days.
    rt = dashboard.runtime
    rt.pipeline = dataclasses.replace(rt.pipeline, max_event_age_s=400 * 86400.0)
    project = rt.state.create_project("shop-c", "EUR")
    assert dashboard.post_events(project.ingest_key or "", crafted()).status_code == 200
    rows = [{"date": f"{month(k)[0]:04d}-{month(k)[1]:02d}-15", "channel": ch,
             "campaign": "c", "cost": cost} for k, ch, cost in SPEND]
    assert dashboard.client(project.secret_key).post(
        "/api/v1/spend", json={"rows": rows}).status_code == 200
    t = period_end()
    span = (f"range=custom&from={(t - timedelta(days=30)):%Y-%m-%dT%H:%M}"
            f"&to={t:%Y-%m-%dT%H:%M}")
    page = signed_in.page
    signed_in.open(f"/business/customers?project={project.id}&{span}")
    assert page.locator(".panel-error").count() == 0, page.locator(".panel-error").inner_text()
    assert page.locator("[data-cust-card=customers] .kpi-value").inner_text() == "2"
    assert page.locator("[data-cust-card=new_customers] .kpi-value").inner_text() == "1"
    assert page.locator("[data-cust-card=repeat_purchase_rate] .kpi-value").inner_text() == "40%"
    assert page.locator("[data-cust-card=cac] .kpi-value").inner_text() == "€72.00"
    # The fixture's oldest cohort is the 7th of the 12 months: the page leaves out the 6
    # empty months before it (and their columns), and says so.
    assert page.locator("[data-cust-table=cohorts] tbody tr").count() == 6
    assert page.locator("[data-cust-table=cohorts] thead th").count() == 2 + 5
    assert page.locator("[data-cust-since]").inner_text().startswith(
        "No first order in the 6 months before ")
    assert page.locator("[data-cust-table=segments] tbody tr").count() == 5
    assert "historical" in page.locator("[data-cust-ltv]").inner_text()
    assert page.locator("[data-cust-table=cac_channels] tbody tr").first.locator(
        "td").first.inner_text() == "google"
    customers_rows = page.locator("[data-cust-table=list] tbody tr")
    assert customers_rows.count() == 5
    assert customers_rows.first.locator("td").first.inner_text() == "alice"
    assert page.locator("[data-cust-empty]:visible").count() == 0
    signed_in.shot("customers")
    page.select_option("[data-cust-segment]", "new")
    signed_in.settle()
    assert customers_rows.count() == 2
    # A project without customers: every block says which events fill it.
    empty = rt.state.create_project("shop-none", "EUR")
    signed_in.open(f"/business/customers?project={empty.id}&{span}")
    assert page.locator("[data-cust-none]").is_visible()
    assert page.locator("[data-cust-empty]:visible").count() == 4
    assert not page.locator("[data-cust-ltv]").is_visible()
    assert "purchase events with a user_id" in page.locator(
        "[data-cust-block=cohorts] [data-cust-empty]").inner_text()
    signed_in.shot("customers-empty")
    assert signed_in.problems == []
