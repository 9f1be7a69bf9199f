"""The Alerts API and page on a live server: alerts made by the real evaluator (series
read through its seam) on rules applied as code, read and acknowledged over HTTP."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from shopwatch.alerts import channels as kinds
from shopwatch.alerts.evaluator import Evaluator
from shopwatch.alerts.rules import Rule, parse_rules
from shopwatch.store import alerts as store
from shopwatch.store.rules import apply_rules
from tests.conftest import PASSWORD, VIEWER_EMAIL, Live, csrf_of, sign_in
from tests.test_channels import env

RULES = """
rules:
  - {name: checkout errors, kind: threshold, series: error_rate, filter: {page: /checkout},
     window: 10m, op: ">", threshold: 0.05, clear: 0.04, for: 2m, renotify: 30m,
     severity: critical, channels: [ops]}
  - {name: slow checkout, kind: threshold, series: lcp_p75, filter: {page: /checkout},
     window: 15m, op: ">", threshold: 2500, for: 10m, channels: [ops, oncall]}
  - {name: tracking stopped, kind: no_data, series: events, window: 15m, severity: critical}
  - {name: orders drop, kind: anomaly, series: orders, window: 30m, min_change: 0.4}
  - {name: checkout down, kind: monitor_down, filter: {monitor: checkout}, severity: info}
"""
MINUTES = 180  # of history, one evaluation every 5 minutes; the last one is now


def value(rule: str, minute: int) -> float | None:
    """The series each rule reads, minute by minute (0 = three hours ago)."""
    if rule == "checkout errors":  # fired and resolved long ago; firing again now
        if minute < 40:
            return 0.11 if minute == 20 else 0.08
        return 0.09 if minute >= 180 else 0.07 if minute >= 165 else 0.01
    if rule == "slow checkout":  # breaching for 5 minutes: pending (for: 10m)
        return 3100.0 if minute >= 175 else 1800.0
    if rule == "tracking stopped":  # no events from minute 60 to 80
        return 0.0 if 60 <= minute < 80 else 120.0
    if rule == "orders drop":
        return 0.05
    return 0.0  # checkout up


def make_alerts(live: Live, project_id: int,
                enqueue: Callable[..., object] | None = None) -> float:
    """Apply :data:`RULES` and run the evaluator over the last three hours; ``now``."""
    state = live.runtime.state
    apply_rules(state, project_id, parse_rules(RULES, "alerts.yml"))
    now = time.time()
    t0 = now - MINUTES * 60

    def read(pid: int, rule: Rule, start_us: int, end_us: int) -> float | None:
        return value(rule.name, round((end_us / 1e6 - t0) / 60))

    rules = [(project_id, rule) for rule in parse_rules(RULES)]
    evaluator = Evaluator(state, lambda: rules, read,
                          enqueue or (lambda notification, ids: None))
    for minute in range(0, MINUTES + 1, 5):
        evaluator.evaluate(t0 + minute * 60)
    return now


def quiet(server: Callable[..., Live]) -> Live:
    """A server whose own evaluator does not run (the test runs one)."""
    return server(alerts_interval=0)


def test_the_api_lists_open_alerts_first_with_their_rules(server: Callable[..., Live]) -> None:
    live = quiet(server)
    project = live.create_project("shop")
    now = make_alerts(live, project.id)
    api = live.client(project.secret_key)
    answer = api.get("/api/v1/alerts")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    got = [(a["rule"], a["phase"]) for a in body["alerts"]]
    assert got[:2] == [("slow checkout", "pending"), ("checkout errors", "firing")]
    assert sorted(got[2:]) == [("checkout errors", "resolved"), ("tracking stopped", "resolved")]
    pending, firing = body["alerts"][:2]
    t0 = now - MINUTES * 60
    assert firing["key"] == f"checkout errors#{firing['id']}"
    assert (firing["severity"], firing["kind"], firing["series"], firing["unit"]) == (
        "critical", "threshold", "error_rate", "ratio")
    assert firing["condition"] == "error_rate (page=/checkout) > 0.05 over 10m, clears at 0.04"
    assert (firing["op"], firing["threshold"], firing["window"]) == (">", 0.05, "10m")
    assert firing["since"] == kinds.iso(t0 + 165 * 60)
    assert firing["fired_at"] == kinds.iso(t0 + 170 * 60)
    assert firing["resolved_at"] is None and firing["acknowledged_by"] is None
    assert (firing["last_value"], firing["worst"]) == (0.09, 0.09)
    assert abs(firing["duration_s"] - 15 * 60) < 5  # since the first breach, until now
    assert pending["unit"] == "ms" and pending["fired_at"] is None
    assert pending["last_value"] == 3100.0

    old = next(a for a in body["alerts"] if a["rule"] == "checkout errors"
               and a["phase"] == "resolved")
    assert (old["since"], old["resolved_at"]) == (kinds.iso(t0), kinds.iso(t0 + 40 * 60))
    assert old["worst"] == 0.11 and old["duration_s"] == 40 * 60
    gap = next(a for a in body["alerts"] if a["rule"] == "tracking stopped")
    assert gap["condition"] == "no events data for 15m" and gap["duration_s"] == 20 * 60

    rules = {r["name"]: r for r in body["rules"]}
    assert list(rules) == sorted(rules)  # by name
    assert {n: r["state"] for n, r in rules.items()} == {
        "checkout down": "ok", "checkout errors": "firing", "orders drop": "ok",
        "slow checkout": "pending", "tracking stopped": "ok"}
    assert rules["checkout errors"]["alert_id"] == firing["id"]
    assert rules["checkout errors"]["last_value"] == 0.09
    assert rules["checkout errors"]["channels"] == ["ops"]
    assert (rules["slow checkout"]["for"], rules["slow checkout"]["severity"]) == (
        "10m", "warning")
    assert rules["orders drop"]["condition"] == (
        "orders over 30m 40% or more below the same time of the last 4 weeks")
    assert rules["checkout down"]["condition"] == "monitor checkout down"
    assert rules["checkout down"]["last_value"] is None

    opened = api.get("/api/v1/alerts", params={"state": "open"}).json()["alerts"]
    assert [a["phase"] for a in opened] == ["pending", "firing"]
    assert len(api.get("/api/v1/alerts", params={"limit": 1}).json()["alerts"]) == 1
    assert api.get("/api/v1/alerts", params={"state": "closed"}).status_code == 400

    # A rule that goes keeps its alerts, without its description.
    apply_rules(live.runtime.state, project.id, [])
    later = api.get("/api/v1/alerts").json()
    assert later["rules"] == [] and len(later["alerts"]) == 4
    assert all(a["rule_exists"] is False and a["condition"] is None for a in later["alerts"])


def test_acknowledging_takes_the_secret_key_or_an_admin(dashboard: Live) -> None:
    dashboard.runtime.alerts and dashboard.runtime.alerts.stop()
    project = dashboard.runtime.state.get_project("shop-a")
    other = dashboard.create_project("shop-b")
    make_alerts(dashboard, project.id)
    alerts = {(a.rule, a.phase): a for a in store.list_alerts(dashboard.runtime.state,
                                                               project.id)}
    firing = alerts[("checkout errors", "firing")]
    pending = alerts[("slow checkout", "pending")]
    resolved = alerts[("checkout errors", "resolved")]

    viewer = sign_in(dashboard, VIEWER_EMAIL, PASSWORD)
    refused = viewer.post(f"/api/v1/alerts/{firing.id}/acknowledge",
                          headers={"X-CSRF-Token": csrf_of(viewer)})
    assert refused.status_code == 403
    assert viewer.get("/api/v1/alerts").status_code == 200  # viewers read
    admin = sign_in(dashboard)
    assert admin.post(f"/api/v1/alerts/{firing.id}/acknowledge").status_code == 403  # no CSRF
    token = csrf_of(admin)
    for alert_id in (pending.id, resolved.id, 99999):
        missing = admin.post(f"/api/v1/alerts/{alert_id}/acknowledge",
                             headers={"X-CSRF-Token": token})
        assert missing.status_code == 404, missing.text
        assert missing.json()["error"]["code"] == "not_found"
    # Another project's key does not reach this project's alert.
    assert dashboard.client(other.secret_key).post(
        f"/api/v1/alerts/{firing.id}/acknowledge").status_code == 404
    done = admin.post(f"/api/v1/alerts/{firing.id}/acknowledge?project={project.id}",
                      headers={"X-CSRF-Token": token})
    assert done.status_code == 200, done.text
    assert done.json()["acknowledged_by"] == "admin@example.com"
    assert done.json()["acknowledged_at"] is not None and done.json()["phase"] == "firing"
    listed = viewer.get("/api/v1/alerts").json()["alerts"]
    assert next(a for a in listed if a["id"] == firing.id)["acknowledged_by"] == (
        "admin@example.com")

    # The secret key acknowledges as "secret key" (again: the latest wins).
    by_key = dashboard.client(project.secret_key).post(
        f"/api/v1/alerts/{firing.id}/acknowledge")
    assert by_key.status_code == 200 and by_key.json()["acknowledged_by"] == "secret key"


def test_firing_notifies_the_rules_channels_and_the_page_renders(
        server: Callable[..., Live]) -> None:
    live = quiet(server)
    project = live.create_project("shop")
    ops = kinds.create(live.runtime.state, project.id, "ops", "webhook",
                       {"url": "https://hooks.example.com/sw"}, env())
    sent: list[tuple[Any, list[int]]] = []
    make_alerts(live, project.id, lambda notification, ids: sent.append((notification, ids)))
    events = [(n.event, n.alert.split("#")[0]) for n, _ in sent]
    assert events == [("firing", "checkout errors"), ("reminder", "checkout errors"),
                      ("resolved", "checkout errors"), ("firing", "checkout errors")]
    assert all(ids == [ops.id] for _, ids in sent)  # "ops"; the pending rule notified nothing
    live.runtime.users.add("admin@example.com", PASSWORD, "admin")
    page = sign_in(live).get(f"/alerts?project={project.id}")
    assert page.status_code == 200
    for marker in ('data-panel="alerts"', 'data-api="/api/v1/alerts"', "data-can-ack",
                   'data-api="/api/v1/channels"', "data-can-test",
                   'data-api="/api/v1/deliveries?limit=50"',
                   "shopwatch monitors apply monitors.yml", "shopwatch channels add",
                   "docs/alerts.md"):
        assert marker in page.text, marker
    assert "Not built yet" not in page.text
