"""Burn-rate alerts of an SLO through the real evaluator and reader, on events in a real
DuckDB file and state in SQLite: they fire and resolve at the hand-computed minutes, and
a maintenance window over the incident keeps them quiet (docs/alerts.md, "SLOs")."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest

from shopwatch.alerts.evaluator import Evaluator, describe
from shopwatch.alerts.objectives import burn_rules, parse_objectives
from shopwatch.alerts.reader import series_reader
from shopwatch.ingest.pipeline import Format, PipelineConfig, process
from shopwatch.store import alerts as alert_store
from shopwatch.store.duckdb import DuckDBEventStore
from shopwatch.store.maintenance import add_window
from shopwatch.store.slos import all_rules, apply_slos
from shopwatch.store.state import StateStore

T0 = int(datetime(2026, 3, 10, 12, 0, tzinfo=UTC).timestamp())  # the incident starts
SLOS = """
slos:
  - {name: payments, sli: payment, target: 99%, window: 30d, severity: critical}
"""


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def history() -> list[dict[str, Any]]:
    """One order a minute from six hours before T0 to 30 minutes after; in the first ten
    minutes of the incident, two declined payments a minute as well."""
    events: list[dict[str, Any]] = []
    for m in range(-360, 30):
        t = T0 + m * 60
        events.append({"name": "purchase", "ts": iso(t + 30),
                       "params": {"transaction_id": f"T{m}", "value": 10, "currency": "EUR"}})
        if 0 <= m < 10:
            events += [{"name": "payment_declined", "ts": iso(t + s)} for s in (10, 20)]
    return events


@dataclass
class Shop:
    state: StateStore
    events: DuckDBEventStore
    project_id: int
    quiet_id: int  # the same events, with a maintenance window over the incident


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    tmp: Path = tmp_path_factory.mktemp("slo_alerts")
    state = StateStore(tmp / "state.sqlite")
    events = DuckDBEventStore(tmp / "events.duckdb")
    loud, quiet = state.create_project("loud"), state.create_project("quiet")
    config = PipelineConfig(max_event_age_s=10 * 86400)
    body = msgspec.json.encode({"events": history()})
    for project in (loud, quiet):
        outcome = process(body, Format.JSON, project.id, (T0 + 3600) * 1_000_000, config)
        assert not outcome.rejected, outcome.rejected
        events.write([outcome.rows])
        apply_slos(state, project.id, parse_objectives(SLOS))
    add_window(state, quiet.id, T0, 600, note="gateway upgrade")
    yield Shop(state, events, loud.id, quiet.id)
    events.close()
    state.close()


def evaluate_minutes(shop: Shop, minutes: range) -> dict[str, list[tuple[int, float | None]]]:
    """Run the evaluator at T0 + each minute; every rule's readings by minute."""
    evaluator = Evaluator(shop.state, lambda: all_rules(shop.state, shop.project_id),
                          series_reader(shop.events, shop.state),
                          lambda notification, ids: None)
    readings: dict[str, list[tuple[int, float | None]]] = {}
    for k in minutes:
        for outcome in evaluator.evaluate(float(T0 + k * 60)):
            readings.setdefault(outcome.rule, []).append((k, outcome.value))
    return readings


def test_burn_rate_alerts_fire_and_resolve_at_the_hand_computed_minutes(shop: Shop) -> None:
    readings = evaluate_minutes(shop, range(-2, 21))
    fast, medium, slow = (f"SLO payments: {t} burn" for t in ("fast", "medium", "slow"))
    assert set(readings) == {fast, medium, slow}
    value = {name: dict(r) for name, r in readings.items()}
    # Before the incident nothing burns.
    assert value[fast][0] == value[medium][0] == value[slow][0] == 0.0
    # Fast (14.4x over 1 h and 5 min) at minute k: over the hour 60 orders and 2k
    # declines, burn (2k / (60 + 2k)) / 0.01. k = 5: 10/70 → 14.29, under 14.4; k = 6:
    # 12/72 → 16.67, and the last 5 minutes burn 10/15 → 66.7: the reading is the lower.
    assert value[fast][5] == pytest.approx(100 * 10 / 70)
    assert value[fast][6] == pytest.approx(100 * 12 / 72)
    # k = 14: 20/80 → 25 over the hour, the last 5 minutes hold minute 9 (2/7 → 28.6);
    # k = 15: no decline in the last 5 minutes, so nothing burns now: reading 0.
    assert value[fast][14] == pytest.approx(25.0)
    assert value[fast][15] == 0.0
    # Medium (6x over 6 h and 30 min): at most 20 declines against 360 orders → 5.26.
    assert max(v or 0 for v in value[medium].values()) == pytest.approx(100 * 20 / 380)
    # Slow (1x over 3 days and 6 h): k = 1: 2/363 → 0.55; k = 2: 4/366 → 1.09 over the
    # whole history and 4/364 → 1.10 over 6 hours: the ticket fires.
    assert value[slow][1] == pytest.approx(100 * 2 / 363)
    assert value[slow][2] == pytest.approx(100 * 4 / 366)

    stored = {a.rule: a for a in alert_store.list_alerts(shop.state, shop.project_id)}
    assert set(stored) == {fast, slow}  # medium never breached
    page = stored[fast]
    assert (page.phase, page.severity) == ("resolved", "critical")
    assert (page.since, page.fired_at, page.resolved_at) == (T0 + 360, T0 + 360, T0 + 900)
    assert page.worst == pytest.approx(25.0)
    ticket = stored[slow]
    assert (ticket.phase, ticket.severity, ticket.fired_at) == ("firing", "info", T0 + 120)
    assert ticket.resolved_at is None


def test_a_maintenance_window_over_the_incident_keeps_the_budget(shop: Shop) -> None:
    evaluator = Evaluator(shop.state, lambda: all_rules(shop.state, shop.quiet_id),
                          series_reader(shop.events, shop.state),
                          lambda notification, ids: None)
    for k in range(-2, 21):
        for outcome in evaluator.evaluate(float(T0 + k * 60)):
            # The declines all fall in the window: nothing burns, ever.
            assert outcome.value == 0.0, (k, outcome)
    assert alert_store.list_alerts(shop.state, shop.quiet_id) == []


def test_notifications_say_what_burns() -> None:
    (objective,) = parse_objectives(SLOS)
    fast = burn_rules(objective)[0]
    assert describe(fast, 16.7) == ("SLO payments: error budget burning at 16.7x (the lower "
                                    "of 1h and 5m; alerts at 14.4x)")
    assert fast.condition().judge(14.4) == "breach"  # at the threshold: both windows are
    assert fast.condition().judge(14.39) == "clear"
