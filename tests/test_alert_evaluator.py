"""The evaluator end to end: crafted series through the rule's lifecycle into stored
alerts and signed webhook notifications received on loopback (real SQLite state, real
outbox, real HTTP). The series reader is the seam: its SQL is tested on its own."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from shopwatch.alerts import channels as kinds
from shopwatch.alerts.delivery import Outbox
from shopwatch.alerts.evaluator import Evaluator
from shopwatch.alerts.rules import Rule, parse_rules
from shopwatch.errors import NotFound
from shopwatch.store import alerts as store
from shopwatch.store.rules import apply_rules
from shopwatch.store.state import StateStore
from tests.test_channels import Receiver, env, expected_signature, receiver  # noqa: F401

RULES = """
rules:
  - {name: checkout errors, kind: threshold, series: error_rate, window: 5m, op: ">",
     threshold: 0.05, clear: 0.04, for: 2m, renotify: 10m, severity: critical,
     channels: [ops, nowhere]}
  - {name: tracking stopped, kind: no_data, series: events, window: 15m}
"""


@pytest.fixture
def state(tmp_path: Path) -> Iterator[StateStore]:
    opened = StateStore(tmp_path / "state.sqlite")
    opened.create_project("shop")
    yield opened
    opened.close()


class Series:
    """The values the rules read, by rule name and evaluation time (epoch seconds)."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, float], float | None] = {}
        self.windows: list[tuple[str, int, int]] = []

    def read(self, project_id: int, rule: Rule, start_us: int, end_us: int) -> float | None:
        self.windows.append((rule.name, start_us, end_us))
        return self.values.get((rule.name, end_us / 1e6))


def test_a_breach_fires_once_reminds_and_resolves_with_signed_webhooks(
        state: StateStore, receiver: Receiver) -> None:  # noqa: F811
    rules = parse_rules(RULES, "alerts.yml")
    hook = kinds.create(state, 1, "ops", "webhook", {"url": receiver.url + "/hook"}, env())
    outbox = Outbox(state, env())
    series = Series()
    evaluator = Evaluator(state, lambda: [(1, rules[0])], series.read, outbox.enqueue,
                          link=lambda pid, rule: f"http://sw.example/alerts?rule={rule}")
    # One evaluation a minute: a breach from 1 min (firing at 3, after `for: 2m`),
    # hovering in the band (0.045) from 5 to 12, breaching at 13 (a reminder: 10 min
    # after firing), clear at 14.
    values = {1: 0.06, 2: 0.08, 3: 0.07, 4: 0.06, 13: 0.09, 14: 0.01,
              **{m: 0.045 for m in range(5, 13)}}
    t0 = 1_800_000_000.0
    events = []
    for minute in range(0, 16):
        series.values[("checkout errors", t0 + 60 * minute)] = values.get(minute, 0.0)
        for outcome in evaluator.evaluate(t0 + 60 * minute):
            if outcome.event:
                events.append((minute, outcome.event))
    assert events == [(3, "firing"), (13, "renotify"), (14, "resolved")]
    # Each evaluation read the rule's window, [now - 5 min, now).
    assert series.windows[0] == ("checkout errors", int((t0 - 300) * 1e6), int(t0 * 1e6))
    (stored,) = store.list_alerts(state, 1)
    assert (stored.phase, stored.since, stored.fired_at, stored.resolved_at, stored.worst) \
        == ("resolved", t0 + 60, t0 + 180, t0 + 840, 0.09)
    outcomes = outbox.run_once()
    assert [o.ok for o in outcomes] == [True, True, True]
    bodies = [json.loads(r.body) for r in receiver.requests]
    assert [b["event"] for b in bodies] == ["firing", "reminder", "resolved"]
    first = bodies[0]
    assert first["title"] == "[firing] checkout errors"
    assert first["text"] == "error_rate is 0.07 (> 0.05 over 5m)\nIncident #1: checkout errors"
    assert first["incident"] == 1
    # The incident resolved with its only alert: 13 minutes from the first breach.
    assert bodies[2]["text"].endswith("Incident #1 resolved after 13 min")
    assert first["severity"] == "critical"
    assert first["url"] == "http://sw.example/alerts?rule=checkout errors"
    assert first["alert"] == f"checkout errors#{stored.id}"
    got = receiver.requests[0]
    assert got.headers["x-shopwatch-signature"] == expected_signature(
        hook.config["secret"], got.headers["x-shopwatch-timestamp"], got.body)


def test_acknowledging_stops_reminders_and_a_short_breach_leaves_nothing(
        state: StateStore) -> None:
    rule = parse_rules(RULES)[0]
    series = Series()
    sent: list[str] = []
    evaluator = Evaluator(state, lambda: [(1, rule)], series.read,
                          lambda notification, ids: sent.append(notification.event))
    t0 = 1_800_000_000.0
    # A one-minute blip under `for: 2m`: pending, then cleared — nothing stored or sent.
    for minute, value in enumerate((0.09, 0.0)):
        series.values[("checkout errors", t0 + 60 * minute)] = value
        evaluator.evaluate(t0 + 60 * minute)
    assert store.list_alerts(state, 1) == [] and sent == []
    # No channel of the project is named: the alert still fires and is stored.
    for minute in range(10, 14):
        series.values[("checkout errors", t0 + 60 * minute)] = 0.2
        evaluator.evaluate(t0 + 60 * minute)
    (firing,) = store.list_alerts(state, 1)
    assert firing.phase == "firing" and sent == []
    acked = store.acknowledge(state, 1, firing.id, "ops@example.com", t0 + 800)
    assert acked.acknowledged_by == "ops@example.com"
    outcomes = [evaluator.evaluate(t0 + 60 * m) for m in range(14, 40)]
    assert all(o.event is None for batch in outcomes for o in batch)  # no reminders
    with pytest.raises(NotFound):
        store.acknowledge(state, 1, 9999, "x", t0)


def test_no_data_rules_fire_on_missing_readings(state: StateStore) -> None:
    rule = parse_rules(RULES)[1]
    series = Series()
    evaluator = Evaluator(state, lambda: [(1, rule)], series.read, lambda n, ids: None)
    t0 = 1_800_000_000.0
    series.values[("tracking stopped", t0)] = 120.0
    (ok,) = evaluator.evaluate(t0)
    series.values[("tracking stopped", t0 + 60)] = 0.0  # nothing arrived in the window
    (gone,) = evaluator.evaluate(t0 + 60)
    series.values[("tracking stopped", t0 + 120)] = 3.0
    (back,) = evaluator.evaluate(t0 + 120)
    assert (ok.event, gone.event, back.event) == (None, "firing", "resolved")


@pytest.mark.slow
def test_shopwatch_serve_evaluates_stored_rules_and_notifies(
        server: Any, receiver: Receiver, tmp_path: Path) -> None:  # noqa: F811
    """The whole path in a running server: rules applied as code, events ingested over
    HTTP, the evaluator's thread, the outbox's thread, a signed webhook on loopback."""
    live = server(alerts_interval=0.3, checks_allow="127.0.0.1",
                  public_url="https://sw.example", alerts_group_interval=0)
    project = live.create_project("shop")
    state = live.runtime.state
    kinds.create(state, project.id, "ops", "webhook", {"url": receiver.url}, env())
    apply_rules(state, project.id, parse_rules("""
rules:
  - {name: tracking stopped, kind: no_data, series: events, window: 1m, channels: [ops]}
  - {name: big orders, kind: threshold, series: orders, window: 1h, op: ">=",
     threshold: 2, channels: [ops]}
"""))

    def received(n: int) -> list[dict[str, Any]]:
        deadline = time.monotonic() + 30
        while len(receiver.requests) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        return [json.loads(r.body) for r in receiver.requests]

    # No event yet: tracking has stopped (a count of 0 is no data).
    first = received(1)
    assert [(b["event"], b["labels"]["rule"]) for b in first] == [
        ("firing", "tracking stopped")]
    assert first[0]["url"] == f"https://sw.example/alerts/incidents/1?project={project.id}"
    now = datetime.now(UTC).isoformat()
    purchases = [{"id": f"p{i}", "name": "purchase", "ts": now, "session_id": f"s{i}",
                  "params": {"transaction_id": f"T{i}", "value": 10, "currency": "USD"}}
                 for i in range(2)]
    assert live.post_events(project.ingest_key, purchases).status_code == 200
    bodies = received(3)
    assert sorted((b["event"], b["labels"]["rule"]) for b in bodies[1:]) == [
        ("firing", "big orders"), ("resolved", "tracking stopped")]
    listed = {a.rule: a.phase for a in store.list_alerts(state, project.id)}
    assert listed == {"big orders": "firing", "tracking stopped": "resolved"}


def test_maintenance_windows_mute_notifications_until_they_end(state: StateStore) -> None:
    from shopwatch.store.maintenance import add_window

    rule = parse_rules("rules: [{name: down, kind: monitor_down, channels: [ops]}]")[0]
    kinds.create(state, 1, "ops", "webhook", {"url": "https://hooks.example/ops"}, env())
    series = Series()
    sent: list[str] = []
    evaluator = Evaluator(state, lambda: [(1, rule)], series.read,
                          lambda n, ids: sent.append(n.event))
    t0 = 1_800_000_000.0
    add_window(state, 1, t0, 600, "", "database upgrade")  # [t0, t0 + 10 min)
    # Down at minute 1 and 2 (muted), up at 3: fired and resolved inside the window.
    # Down again from minute 5 to 12: muted until the window ends, then told once; up
    # at 13: resolved is told too.
    down = {1, 2, *range(5, 13)}
    events = []
    for minute in range(0, 15):
        series.values[("down", t0 + 60 * minute)] = 1.0 if minute in down else 0.0
        (outcome,) = evaluator.evaluate(t0 + 60 * minute)
        if outcome.event:
            events.append((minute, outcome.event))
    assert events == [(10, "firing"), (13, "resolved")]
    assert sent == ["firing", "resolved"]  # what the channel was given
    alerts = store.list_alerts(state, 1)
    assert [(a.phase, a.since) for a in alerts] == [("resolved", t0 + 300),
                                                   ("resolved", t0 + 60)]
