"""Incidents, grouping and silences: a storm of alerts is one incident and one message,
alerts joining it wait for the group interval, silences mute matching rules, and the
impact estimate read from a real DuckDB file finds the orders a synthetic outage lost
(docs/alerts.md, "Incidents", "Silences")."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest

from shopwatch.alerts import incidents as signals
from shopwatch.alerts.channels import Notification
from shopwatch.alerts.evaluator import Evaluator
from shopwatch.alerts.rules import Rule, parse_rules
from shopwatch.errors import ConfigError
from shopwatch.ingest.pipeline import Format, PipelineConfig, process
from shopwatch.spend import SpendRow, store_rows
from shopwatch.store import alerts as alert_store
from shopwatch.store import incidents as store
from shopwatch.store import silences
from shopwatch.store.duckdb import DuckDBEventStore
from shopwatch.store.incidents import Incident
from shopwatch.store.state import StateStore
from tests.conftest import PASSWORD, VIEWER_EMAIL, Live, csrf_of, sign_in
from tests.test_channels import env

RULES = """
rules:
  - {name: checkout errors, kind: threshold, series: error_rate, window: 5m, op: ">",
     threshold: 0.05, severity: critical, channels: [ops]}
  - {name: payments failing, kind: threshold, series: declined_rate, window: 5m, op: ">",
     threshold: 0.3, channels: [ops]}
  - {name: orders drop, kind: threshold, series: orders, window: 5m, op: "<", threshold: 1,
     channels: [ops, oncall]}
  - {name: slow trickle, kind: threshold, series: orders, window: 5m, op: "<", threshold: 3,
     severity: info, channels: [ops]}
"""
T0 = 1_800_000_000.0


@pytest.fixture
def state(tmp_path: Path) -> Iterator[StateStore]:
    opened = StateStore(tmp_path / "state.sqlite")
    opened.create_project("shop", "EUR")
    from shopwatch.alerts import channels as kinds
    kinds.create(opened, 1, "ops", "webhook", {"url": "https://hooks.example.com/a"}, env())
    kinds.create(opened, 1, "oncall", "webhook", {"url": "https://hooks.example.com/b"}, env())
    yield opened
    opened.close()


class Script:
    """Each rule's value per minute after T0 (breaching inside ``spans``)."""

    def __init__(self, spans: dict[str, tuple[int, int]], t0: float = T0) -> None:
        self.spans = spans
        self.t0 = t0

    def read(self, project_id: int, rule: Rule, start_us: int, end_us: int) -> float:
        minute = round((end_us / 1e6 - self.t0) / 60)
        first, last = self.spans.get(rule.name, (-1, -1))
        breach = first <= minute < last
        return {"checkout errors": 0.2 if breach else 0.0,
                "payments failing": 0.5 if breach else 0.1,
                "orders drop": 0.0 if breach else 5.0,
                "slow trickle": 1.0 if breach else 5.0}[rule.name]


def run(state: StateStore, script: Script, minutes: range, **kw: Any
        ) -> dict[int, list[tuple[Notification, list[int]]]]:
    """Evaluate the rules once a minute; the notifications of each minute."""
    rules = [(1, r) for r in parse_rules(RULES)]
    sent: list[tuple[Notification, list[int]]] = []
    evaluator = Evaluator(state, lambda: rules, script.read,
                          lambda n, ids: sent.append((n, ids)), **kw)
    out = {}
    for minute in minutes:
        before = len(sent)
        evaluator.evaluate(T0 + 60 * minute)
        out[minute] = sent[before:]
    return out


def test_a_storm_is_one_incident_told_once_then_grouped_and_resolved(
        state: StateStore) -> None:
    # Two rules breach at minute 1, a third at minute 2; all clear at minute 10.
    script = Script({"checkout errors": (1, 10), "payments failing": (1, 10),
                     "orders drop": (2, 10)})
    impact = {"orders": {"lost": 12.4}, "revenue": {"lost": 496.0}, "wasted_spend": 7.5}
    sent = run(state, script, range(0, 12),
               impact=lambda incident, now: impact,
               incident_link=lambda pid, iid: f"https://sw.example/alerts/incidents/{iid}")
    # Minute 1: one message for both rules on the channel they share.
    ((storm, ids),) = sent[1]
    assert storm.title == "[firing] 2 alerts: checkout errors, payments failing"
    assert storm.severity == "critical" and storm.incident == 1
    assert storm.url == "https://sw.example/alerts/incidents/1"
    assert storm.text.splitlines() == [
        "- checkout errors: error_rate is 0.2 (> 0.05 over 5m)",
        "- payments failing: declined_rate is 0.5 (> 0.3 over 5m)",
        "Incident #1: checkout errors and 1 more"]
    assert len(ids) == 1
    # Minutes 2-5: the third rule joined the incident told about at minute 1: it waits
    # for the group interval (5 minutes), then is told on both its channels at once.
    assert all(sent[m] == [] for m in range(2, 6))
    ((joined, joined_ids),) = sent[6]
    assert joined.title == "[firing] orders drop" and len(joined_ids) == 2
    assert joined.incident == 1 and "Incident #1: checkout errors and 2 more" in joined.text
    # Minute 10: all resolve; one message per set of channels, with the incident's end.
    resolved = {n.title: (n, ids) for n, ids in sent[10]}
    assert set(resolved) == {"[resolved] 3 alerts: checkout errors, payments failing, "
                             "orders drop", "[resolved] orders drop"}
    message = resolved["[resolved] orders drop"][0].text
    assert message.endswith("Incident #1 resolved after 9 min; estimated 12 orders and "
                            "496.00 EUR of revenue lost, 7.50 EUR of ad spend wasted")
    (incident,) = store.list_incidents(state, 1)
    assert (incident.status, incident.started_at, incident.detected_at,
            incident.resolved_at) == ("resolved", T0 + 60, T0 + 60, T0 + 600)
    assert (incident.mttd_s, incident.mttr_s) == (0.0, 540.0)
    assert (incident.lost_orders, incident.lost_revenue, incident.wasted_spend) == (
        12.4, 496.0, 7.5)
    assert [a.rule for a in store.alerts_of(state, incident.id)] == [
        "checkout errors", "payments failing", "orders drop"]
    assert incident.severity == "critical"
    # A breach after the incident resolved opens a new one.
    script.spans["orders drop"] = (14, 20)
    run(state, script, range(14, 15))
    assert [i.id for i in store.list_incidents(state, 1)] == [2, 1]
    assert store.open_incident(state, 1) is not None


def test_late_alerts_and_info_alerts_open_no_storm_of_their_own(state: StateStore) -> None:
    # Checkout errors fire at minute 1 and last; payments fail from minute 15, past the
    # 10-minute join window: a second incident. The info rule fires inside the first
    # storm but is a note: it joins no incident, and is still told.
    script = Script({"checkout errors": (1, 30), "payments failing": (15, 30),
                     "slow trickle": (3, 30)})
    sent = run(state, script, range(0, 16), group_interval=0)
    assert [n.title for n, _ in sent[3]] == ["[firing] slow trickle"]
    assert sent[3][0][0].incident is None
    second, first = store.list_incidents(state, 1)
    assert (first.title, second.title) == ("checkout errors", "payments failing")
    assert (first.status, second.status) == ("open", "open")
    assert [a.rule for a in store.alerts_of(state, first.id)] == ["checkout errors"]
    trickle = alert_store.open_alert(state, 1, "slow trickle")
    assert trickle is not None and store.incident_of(state, trickle.id) is None


def test_group_interval_zero_tells_each_alert_at_once(state: StateStore) -> None:
    script = Script({"checkout errors": (1, 5), "orders drop": (2, 5)})
    sent = run(state, script, range(0, 3), group_interval=0)
    assert [(n.title, len(ids)) for n, ids in sent[2]] == [("[firing] orders drop", 2)]


def test_silences_mute_matching_rules_until_they_end(state: StateStore) -> None:
    made = silences.add_silence(state, 1, "checkout*", T0, T0 + 300, "deploying",
                                "admin@example.com", T0)
    assert made.matches("Checkout errors") and not made.matches("payments failing")
    script = Script({"checkout errors": (1, 20), "payments failing": (1, 20)})
    sent = run(state, script, range(0, 7), group_interval=0)
    assert [n.title for n, _ in sent[1]] == ["[firing] payments failing"]
    assert all(sent[m] == [] for m in range(2, 5))
    # The silence ends at minute 5: the alert still firing is told then.
    assert [n.title for n, _ in sent[5]] == ["[firing] checkout errors"]
    # Silenced alerts were evaluated, stored and part of the incident all along.
    alert = alert_store.open_alert(state, 1, "checkout errors")
    assert alert is not None and alert.fired_at == T0 + 60
    (incident,) = store.list_incidents(state, 1)
    assert len(store.alerts_of(state, incident.id)) == 2


def test_ending_a_silence_early_and_its_limits(state: StateStore) -> None:
    made = silences.add_silence(state, 1, "*", T0, T0 + 3600, "", "secret key", T0)
    assert silences.silenced(state, 1, "anything", T0 + 10)
    ended = silences.expire(state, 1, made.id, T0 + 60)
    assert ended.ends_at == T0 + 60 and not silences.silenced(state, 1, "anything", T0 + 61)
    assert silences.list_silences(state, 1, now=T0 + 61) == []
    assert [s.id for s in silences.list_silences(state, 1)] == [made.id]
    for args, message in (
            (("", T0, T0 + 60, ""), "matcher: empty"),
            (("x" * 101, T0, T0 + 60, ""), "matcher: longer than 100"),
            (("*", T0, T0, ""), "ends_at: must be after starts_at"),
            (("*", T0, T0 + 31 * 86400, ""), "ends_at: a silence lasts at most 30 days"),
            (("*", T0, T0 + 60, "c" * 501), "comment: longer than 500")):
        with pytest.raises(ConfigError, match=message):
            silences.add_silence(state, 1, *args, "a", T0)


# --- the impact estimate on a real event store --------------------------------------------

WEEK = 7 * 86400
OUTAGE = datetime(2026, 3, 30, 14, 0, tzinfo=UTC).timestamp()  # a Monday, 14:00-15:00 UTC


def orders_around(week_start: float, rng: random.Random) -> list[float]:
    """Order times from 12:00 to 17:00 of one Monday: about 40 an hour at 14:00-15:00,
    20 an hour otherwise (a seasonal shape), with Poisson noise."""
    times = []
    t = week_start - 2 * 3600
    while t < week_start + 3 * 3600:
        rate = 40 if week_start <= t < week_start + 3600 else 20
        t += rng.expovariate(rate / 3600)
        times.append(t)
    return times


@pytest.fixture(scope="module")
def outage(tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[DuckDBEventStore, StateStore, int]]:
    """Four ordinary Mondays, then one whose 14:00-15:00 lost every order: the orders the
    generator made in that hour are the truth the estimate must find."""
    tmp = tmp_path_factory.mktemp("impact")
    state = StateStore(tmp / "state.sqlite")
    project = state.create_project("shop", "EUR")
    events = DuckDBEventStore(tmp / "events.duckdb")
    rng = random.Random(8)
    rows, lost = [], 0
    for k in range(4, -1, -1):
        for i, t in enumerate(orders_around(OUTAGE - k * WEEK, rng)):
            if k == 0 and OUTAGE <= t < OUTAGE + 3600:
                lost += 1
                continue
            rows.append({"name": "purchase", "session_id": f"s{k}-{i}",
                         "ts": datetime.fromtimestamp(t, UTC).isoformat(),
                         "params": {"transaction_id": f"T{k}-{i}", "value": 40,
                                    "currency": "EUR"}})
    now_us = int((OUTAGE + 4 * 3600) * 1e6)
    config = PipelineConfig(max_event_age_s=60 * 86400)
    for start in range(0, len(rows), 500):
        batch = msgspec.json.encode({"events": rows[start:start + 500]})
        outcome = process(batch, Format.JSON, project.id, now_us, config)
        assert not outcome.rejected
        events.write([outcome.rows])
    store_rows(state, project.id, [SpendRow(date(2026, 3, 30), "google", "brand", 480.0,
                                            "EUR")])
    state.lost = lost  # type: ignore[attr-defined]
    yield events, state, project.id
    events.close()
    state.close()


def test_the_impact_of_a_synthetic_outage_is_within_ten_percent(
        outage: tuple[DuckDBEventStore, StateStore, int]) -> None:
    events, state, project_id = outage
    lost = state.lost  # type: ignore[attr-defined]
    assert 30 <= lost <= 50
    incident = Incident(id=1, project_id=project_id, title="checkout down",
                        severity="critical", status="resolved", started_at=OUTAGE,
                        detected_at=OUTAGE + 120, resolved_at=OUTAGE + 3600,
                        notified_at=None, impact=None, updated_at=OUTAGE + 3600)
    found = signals.impact(events, state, incident, OUTAGE + 4 * 3600)
    assert found["bucket_s"] == 60 and found["buckets"] == 60
    assert found["orders"]["observed"] == 0
    assert abs(found["orders"]["lost"] - lost) <= 0.1 * lost
    assert found["revenue"]["lost"] == pytest.approx(40 * found["orders"]["lost"])
    low, high = found["orders"]["low"], found["orders"]["high"]
    assert low <= found["orders"]["lost"] <= high
    # 480 EUR that day is 20 EUR an hour; every expected order was lost: all of it wasted.
    assert found["spend"] == pytest.approx(20.0)
    assert found["wasted_spend"] == pytest.approx(20.0)


def test_the_timeline_places_signals_around_the_incident(
        outage: tuple[DuckDBEventStore, StateStore, int]) -> None:
    events, state, project_id = outage
    incident = Incident(id=1, project_id=project_id, title="checkout down",
                        severity="critical", status="resolved", started_at=OUTAGE,
                        detected_at=OUTAGE + 120, resolved_at=OUTAGE + 3600,
                        notified_at=None, impact=None, updated_at=OUTAGE + 3600)
    tl = signals.timeline(events, state, incident, OUTAGE + 4 * 3600)
    # 30 minutes of margin each side (half the incident), in 1-minute buckets.
    assert (tl["start"], tl["end"], tl["bucket_s"]) == (OUTAGE - 1800, OUTAGE + 5400, 60)
    orders = tl["series"]["orders"]
    inside = [v for b, v in zip(tl["buckets"], orders["values"], strict=True)
              if OUTAGE <= b < OUTAGE + 3600]
    before = [v for b, v in zip(tl["buckets"], orders["values"], strict=True)
              if b < OUTAGE]
    assert len(inside) == 60 and sum(inside) == 0 and sum(before) > 0
    expected = [e for b, e in zip(tl["buckets"], orders["expected"], strict=True)
                if OUTAGE <= b < OUTAGE + 3600]
    assert all(e is not None for e in expected)
    assert set(tl["series"]) == {"failed_checks", "js_errors", "lcp_p75", "backend_errors",
                                 "backend_p95_ms", "sessions", "add_to_cart",
                                 "begin_checkout", "orders", "revenue"}
    assert tl["series"]["lcp_p75"]["values"] == [None] * len(tl["buckets"])
    # No spans: backend errors are a count (0 per bucket), the p95 has no value.
    assert tl["series"]["backend_errors"]["values"] == [0.0] * len(tl["buckets"])
    assert tl["series"]["backend_p95_ms"]["values"] == [None] * len(tl["buckets"])


def test_bucket_sizes_divide_a_week() -> None:
    for length in (30, 3600, 6 * 3600, 2 * 86400, 30 * 86400):
        step = signals.bucket_for(length)
        assert WEEK % step == 0 and (length / step <= 120 or step == 86400)


# --- the API and the page --------------------------------------------------------------------


def make_incident(live: Live, notify: bool = False) -> int:
    """A resolved incident of three rules in project "shop" (by the real evaluator);
    ``notify``: through the server's outbox to an "ops" webhook on loopback (refused by
    the address policy at once, and recorded)."""
    state = live.runtime.state
    project = state.create_project("shop")
    enqueue: Callable[..., object] = lambda n, ids: None  # noqa: E731
    if notify:
        from shopwatch.alerts import channels as kinds
        kinds.create(state, project.id, "ops", "webhook", {"url": "http://127.0.0.1:9/hook"},
                     env())
        assert live.runtime.outbox is not None
        enqueue = live.runtime.outbox.enqueue
    from shopwatch.store.rules import apply_rules
    apply_rules(state, project.id, parse_rules(RULES))
    start = datetime.now(UTC).timestamp() - 3600
    script = Script({"checkout errors": (1, 10), "payments failing": (1, 10),
                     "orders drop": (2, 10)}, start)
    rules = [(project.id, r) for r in parse_rules(RULES)]
    evaluator = Evaluator(state, lambda: rules, script.read, enqueue,
                          impact=signals.incident_impact(live.runtime.events, state))
    for minute in range(0, 12):
        evaluator.evaluate(start + 60 * minute)
    return project.id


def test_the_api_lists_incidents_with_their_trend_and_shows_one(
        server: Callable[..., Live]) -> None:
    live = server(alerts_interval=0)
    project_id = make_incident(live, notify=True)
    secret = live.runtime.state.get_project(project_id).secret_key or ""
    client = live.client(secret)
    listed = client.get("/api/v1/incidents").json()
    (incident,) = listed["incidents"]
    assert (incident["title"], incident["status"], incident["mttr_s"]) == (
        "checkout errors and 2 more", "resolved", 540.0)
    assert incident["lost_orders"] == 0  # an empty store: nothing expected, nothing lost
    assert len(listed["trend"]) == 12 and listed["trend"][-1]["incidents"] in (0, 1)
    assert listed["totals"]["incidents"] == 1 and listed["totals"]["mttr_s"] == 540.0
    one = client.get(f"/api/v1/incidents/{incident['id']}").json()
    assert [a["rule"] for a in one["alerts"]] == [
        "checkout errors", "payments failing", "orders drop"]
    assert one["impact"]["orders"]["expected"] == 0 and not one["incident"][
        "impact_estimated_live"]
    assert one["timeline"]["bucket_s"] == 60 and "orders" in one["timeline"]["series"]
    # Told twice on "ops": the storm of two rules, then the third after the group interval;
    # the end once (the "oncall" channel does not exist).
    assert [(n["channel"], n["event"], n["title"]) for n in one["notifications"]] == [
        ("ops", "firing", "[firing] 2 alerts: checkout errors, payments failing"),
        ("ops", "firing", "[firing] orders drop"),
        ("ops", "resolved", "[resolved] 3 alerts: checkout errors, payments failing, "
                            "orders drop")]
    missing = client.get("/api/v1/incidents/99")
    assert missing.status_code == 404 and "no incident 99" in missing.text


def test_silences_over_http_need_a_writer_and_name_bad_fields(
        server: Callable[..., Live]) -> None:
    live = server(alerts_interval=0)
    project = live.create_project("shop")
    client = live.client(project.secret_key or "")
    for body, message in (
            ({"duration": "1h"}, "matcher: required"),
            ({"matcher": "*"}, "duration: give either duration"),
            ({"matcher": "*", "duration": "soon"}, "duration: 'soon' is not a duration"),
            ({"matcher": "*", "duration": "-5m"}, "is not a duration"),
            ({"matcher": "*", "ends_at": "tomorrow"}, "ends_at: 'tomorrow' is not an ISO"),
            ({"matcher": "*", "duration": "40d"}, "ends_at: a silence lasts at most 30"),
            ({"matcher": "*", "duration": "1h", "why": "x"}, "why: not a field")):
        answer = client.post("/api/v1/silences", json=body)
        assert answer.status_code == 400, body
        assert message in answer.json()["error"]["message"], (body, answer.text)
    made = client.post("/api/v1/silences", json={"matcher": "checkout*", "duration": "2h",
                                                  "comment": "deploying"})
    assert made.status_code == 201
    silence = made.json()
    assert (silence["state"], silence["created_by"]) == ("active", "secret key")
    listed = client.get("/api/v1/silences?state=active").json()["silences"]
    assert [s["id"] for s in listed] == [silence["id"]]
    ended = client.delete(f"/api/v1/silences/{silence['id']}")
    assert ended.status_code == 200 and ended.json()["state"] == "expired"
    assert client.get("/api/v1/silences?state=active").json()["silences"] == []
    assert client.delete("/api/v1/silences/99").status_code == 404
    # A viewer reads them but may not silence.
    live.runtime.users.add(VIEWER_EMAIL, PASSWORD, "viewer")
    viewer = sign_in(live, VIEWER_EMAIL)
    page = viewer.get(f"/alerts?project={project.id}")
    assert 'data-panel="silences"' in page.text and "data-silence-form" not in page.text
    refused = viewer.post(f"/api/v1/silences?project={project.id}",
                          json={"matcher": "*", "duration": "1h"},
                          headers={"X-CSRF-Token": csrf_of(viewer)})
    assert refused.status_code == 403 and "only an admin can silence" in refused.text


def test_the_incidents_pages_render(server: Callable[..., Live]) -> None:
    live = server(alerts_interval=0)
    project_id = make_incident(live)
    live.runtime.users.add("admin@example.com", PASSWORD, "admin")
    client = sign_in(live)
    listing = client.get(f"/alerts/incidents?project={project_id}")
    assert listing.status_code == 200
    assert 'data-api="/api/v1/incidents?weeks=12"' in listing.text
    detail = client.get(f"/alerts/incidents?project={project_id}&id=1")
    assert 'data-api="/api/v1/incidents/1"' in detail.text and "Business signals" in detail.text
    bogus = client.get(f"/alerts/incidents?project={project_id}&id=x%22")
    assert bogus.status_code == 200 and "/api/v1/incidents/x" not in bogus.text
