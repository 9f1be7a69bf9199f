"""Heartbeat monitors: push tokens, the public push URL of a running server, and the
scheduler's judgement of a heartbeat that pings and then stops."""

from __future__ import annotations

import time
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest

from shopwatch.checks import heartbeat
from shopwatch.checks.heartbeat import evaluate, instance_key, pings_of, push_path, span
from shopwatch.checks.monitor import Monitor, parse_monitors
from shopwatch.checks.safety import AddressPolicy
from shopwatch.checks.scheduler import server_scheduler
from shopwatch.store import monitors as store
from shopwatch.store.base import EventBatch
from tests.conftest import Live
from tests.test_scheduler import Clock, rows_of

MONITORS = """
monitors:
  - {name: nightly export, kind: heartbeat, period: 5m, grace: 1m, interval: 30s}
  - {name: home, kind: http, url: /}
"""


def setup(live: Live) -> tuple[int, Monitor, str]:
    """A project with a heartbeat monitor (and an http one); its id, monitor, push path."""
    project = live.create_project("shop")
    wanted = parse_monitors(MONITORS)
    store.apply(live.runtime.state, project.id, wanted)
    path = push_path(instance_key(live.runtime.state), project.id, "nightly export")
    return project.id, wanted[0], path


def test_push_tokens_are_stable_secret_and_per_monitor() -> None:
    key = bytes(range(32))
    path = push_path(key, 1, "nightly export")
    token = path.removeprefix("/api/v1/heartbeat/")
    assert path.startswith("/api/v1/heartbeat/") and heartbeat.TOKEN_RE.fullmatch(token)
    assert push_path(key, 1, "nightly export") == path  # stable: derived, not stored
    assert len({path, push_path(key, 2, "nightly export"), push_path(key, 1, "nightly"),
                push_path(bytes(32), 1, "nightly export")}) == 4


def test_the_push_url_records_pings_once_stored(live: Live) -> None:
    project_id, _, path = setup(live)
    client = live.client()
    for method in ("GET", "POST", "HEAD"):
        response = client.request(method, path)
        assert response.status_code == 200, response.text
    assert client.get(path).json()["monitor"] == "nightly export"
    seen = pings_of(live.runtime.state, project_id, "nightly export")
    assert seen is not None and seen.pings == 4 and seen.fails == 0
    assert seen.last_ping is not None and abs(seen.last_ping - time.time()) < 5
    failed = client.post(path + "/fail")
    assert failed.status_code == 200 and failed.json()["recorded"] == "fail"
    seen = pings_of(live.runtime.state, project_id, "nightly export")
    assert seen is not None and seen.fails == 1 and seen.last_fail is not None
    # Unknown tokens, malformed ones, and the token an http monitor would have: 404.
    key = instance_key(live.runtime.state)
    for wrong in (path[:-1] + ("A" if path[-1] != "A" else "B"), "/api/v1/heartbeat/x",
                  push_path(key, project_id, "home"), push_path(key, project_id + 1,
                                                                "nightly export")):
        response = client.get(wrong)
        assert response.status_code == 404, wrong
        assert response.json()["error"]["code"] == "not_found"
    # The token survives a restart: it is derived from the instance key, not stored.
    assert push_path(instance_key(live.runtime.state), project_id, "nightly export") == path


def test_evaluation_up_late_failed_and_before_the_first_ping(live: Live) -> None:
    project_id, monitor, _ = setup(live)
    state = live.runtime.state
    updated = store.get_monitor(state, project_id, monitor.name).updated_at
    since = (updated if updated.tzinfo else updated.replace(tzinfo=UTC)).timestamp()
    # Before its first ping, a heartbeat has period + grace from when it was set up.
    assert evaluate(state, project_id, monitor, since + 60) is None
    never = evaluate(state, project_id, monitor, since + 420)
    assert never is not None and never.failure == (
        "no ping since the monitor was set up 7m ago (period 5m + grace 1m)")
    t0 = time.time()
    heartbeat.record_ping(state, project_id, monitor.name, t0)
    up = evaluate(state, project_id, monitor, t0 + 360)  # exactly period + grace: still up
    assert up is not None and up.ok and up.kind == "heartbeat"
    assert up.steps[0].details["age_s"] == 360 and up.steps[0].details["pings"] == 1
    late = evaluate(state, project_id, monitor, t0 + 420)
    assert late is not None and late.failure == "no ping for 7m (period 5m + grace 1m)"
    # An explicit failure report holds until the next ping.
    heartbeat.record_ping(state, project_id, monitor.name, t0 + 100, failed=True)
    failed = evaluate(state, project_id, monitor, t0 + 130)
    assert failed is not None and failed.failure == "the job reported a failure 30s ago (/fail)"
    heartbeat.record_ping(state, project_id, monitor.name, t0 + 200)
    again = evaluate(state, project_id, monitor, t0 + 230)
    assert again is not None and again.ok


def test_a_heartbeat_that_stops_fails_in_the_scheduler(live: Live) -> None:
    project_id, monitor, path = setup(live)
    batches: list[EventBatch] = []
    clock, wall = Clock(), [time.time()]
    scheduler = server_scheduler(live.runtime.state, batches.append,
                          AddressPolicy.parse(["127.0.0.1"]), clock=clock,
                          wall=lambda: wall[0], offset=lambda interval: 0.0)
    scheduler.reload()
    entry = scheduler._entries[(project_id, monitor.name)]

    def turn() -> dict[str, Any]:
        scheduler._fire(entry, clock.now)
        assert entry.running is not None
        entry.running.result(timeout=30)
        scheduler._flush()
        rows = rows_of(batches)
        batches.clear()
        (row,) = rows
        return row

    # The shop's job pings through the push URL...
    assert live.client().get(path).status_code == 200
    row = turn()
    assert row["ok"] is True and row["kind"] == "heartbeat" and row["monitor"] == monitor.name
    assert row["steps"][0]["details"]["pings"] == 1  # kept for the uptime page
    # ... then stops: once period + grace have passed, the turn records a failure.
    clock.now += 30.0
    wall[0] += 6 * 60 + 30
    row = turn()
    assert row["ok"] is False
    assert row["failure"] == "no ping for 6m 30s (period 5m + grace 1m)"
    scheduler.stop()


def test_a_heartbeat_waiting_for_its_first_ping_records_nothing(live: Live) -> None:
    project_id, monitor, _ = setup(live)
    batches: list[EventBatch] = []
    scheduler = server_scheduler(live.runtime.state, batches.append, AddressPolicy(),
                          offset=lambda interval: 0.0)
    scheduler.reload()
    entry = scheduler._entries[(project_id, monitor.name)]
    scheduler._fire(entry, time.monotonic())
    scheduler.stop()
    assert rows_of(batches) == []


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0s"), (45, "45s"), (90, "1m 30s"), (420, "7m"), (3900, "1h 5m"), (97200, "1d 3h")])
def test_durations_read_as_people_write_them(seconds: float, text: str) -> None:
    assert span(seconds) == text


def test_deleting_a_heartbeat_forgets_its_pings(tmp_path: Path) -> None:
    from shopwatch.checks.heartbeat import pings_of, record_ping
    from shopwatch.checks.monitor import parse_monitors
    from shopwatch.runtime import open_state
    from shopwatch.settings import defaults
    from shopwatch.store import monitors as store

    state = open_state(defaults().replace(data_dir=str(tmp_path)))
    project = state.create_project("shop")
    monitor = parse_monitors("monitors: [{name: job, kind: heartbeat, period: 1h}]")[0]
    store.put_monitor(state, project.id, monitor)
    record_ping(state, project.id, "job", 1000.0)
    assert pings_of(state, project.id, "job") is not None
    store.delete_monitor(state, project.id, "job")
    store.put_monitor(state, project.id, monitor)
    assert pings_of(state, project.id, "job") is None
    state.close()
