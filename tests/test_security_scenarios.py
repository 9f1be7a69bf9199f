"""The detections on labelled attacks mixed into normal traffic (tests/security_scenarios.py):
every attack is found with its evidence, no honest situation produces a finding.

The events go through the real ingest endpoint into a real DuckDB file; the detections
run as ``shopwatch serve`` runs them, every 10 minutes of event time over 8 hours.
"""

from __future__ import annotations

import time

import pytest

from shopwatch.store import findings as store
from tests.conftest import Live
from tests.security_scenarios import World, build, rum_batches, run_watch, score

pytestmark = pytest.mark.slow


def _load(live: Live, world: World) -> int:
    project = live.create_project("scenarios")
    for i in range(0, len(world.events), 1000):
        response = live.post_events(project.ingest_key, world.events[i:i + 1000])
        assert response.status_code == 200, response.text
        assert not response.json().get("rejected"), response.json()["rejected"][:3]
    for batch in rum_batches(project.id, world):
        live.runtime.writer.submit(batch).result(timeout=60)
    return project.id


def test_labelled_attacks_are_found_and_honest_traffic_is_not(server) -> None:  # type: ignore[no-untyped-def]
    live = server(security_interval=0.0)
    world = build(time.time() - 120)
    project_id = _load(live, world)
    run_watch(live.runtime, world)
    found = store.list_findings(live.runtime.state, project_id, limit=1000)
    result = score(world, found)

    described = [f"{f.kind} {f.subject}: {f.title}" for f in result.false_positives]
    assert not result.false_positives, described
    missed = [name for name, hits in result.found.items() if not hits]
    assert not missed, missed
    assert result.precision == 1.0 and result.recall == 1.0
    assert all(not hits for hits in result.honest_hits.values())

    # Each attack's finding holds its evidence: events of the attack, and the account
    # or network the attack came from.
    by_name = {s.name: s for s in world.scenarios}
    for name, hits in result.found.items():
        scenario = by_name[name]
        evidence_ids = {i for f in hits for i in f.evidence["event_ids"]}
        assert evidence_ids & scenario.ids, name
        assert evidence_ids <= {e["id"] for e in world.events}
    takeover = result.found["account takeover"][0]
    start_ms = int(by_name["account takeover"].start * 1000)
    chain = [e for e in by_name["account takeover"].events if e["ts"] >= start_ms]
    assert takeover.evidence["event_ids"] == [e["id"] for e in chain]
    assert takeover.evidence["reasons"] == ["a new network", "a new device", "a new country"]
    stuffing = result.found["credential stuffing from one network"][0]
    assert stuffing.evidence["networks"] == [stuffing.subject.removeprefix("network:")]
    assert len(stuffing.evidence["accounts"]) == 50  # a capped list; the title counts them
    assert "accounts failed to sign in" in stuffing.title
    assert stuffing.evidence["counts"]["login_failed"] >= 100
    assert len(stuffing.evidence["event_ids"]) == 200  # every window's events gathered
    signups = result.found["sign-up abuse from one network"][0]
    assert "25 sign-ups in 60 min" in signups.title
    assert len(signups.evidence["event_ids"]) == 25
