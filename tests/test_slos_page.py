"""The SLOs API and page on a live server: objectives applied as code, events sent
through the ingest API, figures read over HTTP and the page drawn in headless Chromium
(docs/alerts.md, "SLOs")."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from playwright.sync_api import Browser

from shopwatch.alerts.evaluator import Evaluator
from shopwatch.alerts.objectives import parse_objectives
from shopwatch.alerts.reader import series_reader
from shopwatch.store.slos import all_rules, apply_slos
from tests.conftest import ADMIN_EMAIL, PASSWORD, REPO, Live, sign_in

SLOS = """
slos:
  - {name: payments, sli: payment, target: 99%, window: 30d, channels: [ops]}
  - {name: home up, sli: availability, target: 99.9%, filter: {monitor: home}}
  - {name: fast cart, sli: latency, target: 90%, window: 1d,
     filter: {page: /cart, threshold: 2500ms}, severity: warning}
"""


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def shop(server: Callable[..., Live]) -> tuple[Live, Any]:
    """A server whose own evaluator does not run, a project with :data:`SLOS`, and 100
    payments: 96 orders 50 minutes ago, 2 orders 3 minutes ago, 2 declined 2 minutes ago."""
    live = server(alerts_interval=0)
    project = live.create_project("shop")
    apply_slos(live.runtime.state, project.id, parse_objectives(SLOS))
    now = time.time()
    events = [{"name": "purchase", "ts": iso(now - 3000 + i),
               "params": {"transaction_id": f"T{i}", "value": 10, "currency": "USD"}}
              for i in range(96)]
    events += [{"name": "purchase", "ts": iso(now - 180 + i),
                "params": {"transaction_id": f"U{i}", "value": 10, "currency": "USD"}}
               for i in range(2)]
    events += [{"name": "payment_declined", "ts": iso(now - 120 + i)} for i in range(2)]
    answer = live.post_events(project.ingest_key, events)
    assert answer.status_code == 200, answer.text
    return live, project


def test_the_api_gives_each_slo_its_budget_burn_rates_and_trend(
        server: Callable[..., Live]) -> None:
    live, project = shop(server)
    api = live.client(project.secret_key)
    answer = api.get("/api/v1/slos")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["project"] == project.id
    slos = {s["name"]: s for s in body["slos"]}
    assert list(slos) == ["fast cart", "home up", "payments"]  # by name
    pay = slos["payments"]
    assert (pay["sli"], pay["target"], pay["window"], pay["window_s"], pay["severity"],
            pay["channels"], pay["filter"]) == (
        "payment", 0.99, "30d", 30 * 86400, "critical", ["ops"], {})
    assert pay["description"] == "payments accepted ÷ payments attempted"
    # 98 accepted of 100: 1 bad allowed (1 % of 100), 2 spent: 1 - 2/1 = -1, overspent.
    assert (pay["good"], pay["total"], pay["value"]) == (98, 100, 0.98)
    assert pay["budget"] == {"allowed": 1.0, "consumed": 2.0, "remaining": -1.0}
    assert pay["budget_state"] == "exhausted"
    tiers = {t["name"]: t for t in pay["tiers"]}
    # Over every long window: 2 % bad ÷ 1 % = 2. Over 5 and 30 minutes: 2 of 4 bad, 50;
    # over 6 hours, 2 again. Only the slow tier (1x) has both windows at its threshold.
    assert {n: (t["long_burn"], t["short_burn"], t["firing"]) for n, t in tiers.items()} == {
        "fast": (2.0, 50.0, False), "medium": (2.0, 50.0, False), "slow": (2.0, 2.0, True)}
    assert (tiers["fast"]["threshold"], tiers["fast"]["long_window"],
            tiers["fast"]["short_window"], tiers["fast"]["severity"]) == (14.4, "1h", "5m",
                                                                         "page")
    assert tiers["slow"]["rule"] == "SLO payments: slow burn" and tiers["slow"]["alert"] is None
    assert pay["firing"] == ["slow"]
    # The trend: a point every 6 hours over 30 days, the last one now; only its window
    # holds the payments.
    points = pay["trend"]["points"]
    assert pay["trend"]["step_s"] == 6 * 3600 and len(points) == 120
    assert points[-1]["t"] == body["now"] and points[-1]["remaining"] == -1.0
    assert {p["remaining"] for p in points[:-1]} == {None}

    home = slos["home up"]  # no monitor runs: no budget, never 100 %
    assert (home["total"], home["value"], home["budget"], home["budget_state"]) == (
        0, None, None, "no_data")
    assert all(t["long_burn"] is None and not t["firing"] for t in home["tiers"])
    assert [t["name"] for t in slos["fast cart"]["tiers"]] == ["fast", "medium"]  # 1d

    one = api.get("/api/v1/slos/payments")
    assert one.status_code == 200
    assert {k: v for k, v in one.json().items() if k not in ("now", "trend")} == {
        "project": project.id, **{k: v for k, v in pay.items() if k != "trend"}}
    missing = api.get("/api/v1/slos/nope")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    other = live.create_project("other")
    assert live.client(other.secret_key).get(
        "/api/v1/slos", params={"project": project.id}).status_code == 403
    assert live.client(other.secret_key).get("/api/v1/slos/payments").status_code == 404
    assert live.client(other.secret_key).get("/api/v1/slos").json()["slos"] == []


def test_burn_alerts_show_on_the_slo_and_among_the_rules(server: Callable[..., Live]) -> None:
    live, project = shop(server)
    rt = live.runtime
    Evaluator(rt.state, lambda: all_rules(rt.state), series_reader(rt.events, rt.state),
              lambda notification, ids: None).evaluate()
    api = live.client(project.secret_key)
    tiers = {t["name"]: t for t in api.get("/api/v1/slos/payments").json()["tiers"]}
    assert tiers["slow"]["alert"]["phase"] == "firing"
    assert tiers["fast"]["alert"] is None
    alerts = api.get("/api/v1/alerts").json()
    (firing,) = [a for a in alerts["alerts"] if a["phase"] == "firing"]
    assert (firing["rule"], firing["kind"], firing["series"], firing["unit"],
            firing["severity"], firing["last_value"]) == (
        "SLO payments: slow burn", "slo_burn", "slo", "burn", "info", 2.0)
    assert firing["condition"] == "burn rate ≥ 1x over 3d and 6h"
    rules = {r["name"]: r for r in alerts["rules"]}
    assert rules["SLO payments: fast burn"]["condition"] == "burn rate ≥ 14.4x over 1h and 5m"
    assert rules["SLO payments: fast burn"]["state"] == "ok"
    assert rules["SLO payments: slow burn"]["state"] == "firing"
    assert len([n for n in rules if n.startswith("SLO ")]) == 3 + 3 + 2


def test_the_page_renders_with_its_panel_and_empty_state(server: Callable[..., Live]) -> None:
    live = server(alerts_interval=0)
    project = live.create_project("shop")
    live.runtime.users.add(ADMIN_EMAIL, PASSWORD, "admin")
    page = sign_in(live).get(f"/alerts/slos?project={project.id}")
    assert page.status_code == 200
    for marker in ('data-panel="slos"', 'data-api="/api/v1/slos"', "data-slo-template",
                   "slos:\n  - name: checkout success", "shopwatch monitors apply monitors.yml",
                   'href="/alerts/slos?', "docs/alerts.md"):
        assert marker in page.text, marker
    assert 'id="range-select"' not in page.text  # an objective has its own window


@pytest.mark.browser
def test_the_page_draws_the_budget_in_chromium(server: Callable[..., Live],
                                              browser: Browser) -> None:
    live, project = shop(server)
    live.runtime.users.add(ADMIN_EMAIL, PASSWORD, "admin")
    context = browser.new_context(viewport={"width": 1360, "height": 900}, locale="en-US",
                                  timezone_id="UTC")
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning")
            else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.goto(live.base_url + "/login")
    page.fill("input[name=email]", ADMIN_EMAIL)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/overview")
    page.goto(f"{live.base_url}/alerts/slos?project={project.id}")
    page.wait_for_load_state("networkidle")
    page.wait_for_function("() => !document.querySelector('[data-panel][aria-busy=\"true\"]')")
    cards = page.locator("[data-slo]")
    assert cards.count() == 3
    pay = page.locator("[data-slo=payments]")
    assert pay.locator("[data-slo-remaining]").inner_text() == "-100%"
    assert "rating-poor" in (pay.locator("[data-slo-remaining]").get_attribute("class") or "")
    assert pay.locator("[data-slo-state]").inner_text() == "burning: slow"
    assert pay.locator("[data-chart=budget] canvas").count() == 1  # uPlot drew the trend
    assert pay.locator("tr[data-tier=slow] td").last.inner_text() == "firing"
    home = page.locator("[data-slo='home up']")
    assert home.locator("[data-slo-remaining]").inner_text() == "\N{EN DASH}"  # no figure
    assert home.locator("[data-slo-nochart]").is_visible()
    assert "1 burning too fast now" in page.locator("[data-slos-summary]").inner_text()
    shots = REPO / "test-artifacts" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / "alerts-slos-with-data.png"), full_page=True)
    context.close()
    assert problems == []


def test_budget_states_and_their_bounds() -> None:
    from shopwatch.web.slos import LOW_BUDGET, budget_state

    assert LOW_BUDGET == 0.25
    assert [budget_state(r) for r in (None, -1.0, 0.0, 0.1, 0.2499, 0.25, 1.0)] == [
        "no_data", "exhausted", "exhausted", "low", "low", "healthy", "healthy"]
