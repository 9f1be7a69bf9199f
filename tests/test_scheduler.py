"""The check scheduler: monitors run on their schedule in the server, results land in the
event store, slow checks do not pile up, and the server's address policy holds."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

from shopwatch.checks.monitor import parse_monitors
from shopwatch.checks.safety import AddressPolicy
from shopwatch.checks.scheduler import Scheduler, server_scheduler
from shopwatch.store import monitors as store
from shopwatch.store.base import EventBatch
from tests.conftest import Live
from tests.test_checks import Target


@pytest.fixture
def target() -> Iterator[Target]:
    t = Target(flaky=0, slow_s=1.5)
    yield t
    t.close()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def manual(live: Live, batches: list[EventBatch], clock: Clock) -> Scheduler:
    """A scheduler driven by the test (no thread), loopback allowed, monitors loaded."""
    scheduler = server_scheduler(live.runtime.state, batches.append,
                          AddressPolicy.parse(["127.0.0.1"]), clock=clock,
                          offset=lambda interval: 0.0)
    scheduler.reload()
    return scheduler


def rows_of(batches: list[EventBatch]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for batch in batches:
        out.extend(msgspec.json.decode(batch.checks))
    return out


def test_runs_due_monitors_and_hands_results_to_the_writer(live: Live, target: Target) -> None:
    project = live.create_project("shop")
    live.runtime.state.update_project(project.id, base_url=target.url)
    store.apply(live.runtime.state, project.id, parse_monitors("""
monitors:
  - {name: home, kind: http, url: /, expect: {contains: "Add to cart"}}
  - {name: broken, kind: http, url: /nope, interval: 5m}
  - {name: paused, kind: http, url: /, enabled: false}
"""))
    batches: list[EventBatch] = []
    clock = Clock()
    scheduler = manual(live, batches, clock)
    assert scheduler.monitors == 2  # the disabled one is not scheduled
    for entry in list(scheduler._entries.values()):
        scheduler._fire(entry, clock.now)
    scheduler.stop()
    rows = {r["monitor"]: r for r in rows_of(batches)}
    assert rows["home"]["ok"] is True and rows["home"]["status"] == 200
    assert rows["home"]["location"] == "local" and rows["home"]["first_byte_ms"] >= 0
    assert rows["broken"]["ok"] is False and rows["broken"]["failure"].startswith("status 404")
    assert all(b.project_id == project.id for b in batches)
    # The next turns keep each monitor's rhythm.
    due = {e.monitor.name: e.due - clock.now for e in scheduler._entries.values()}
    assert due == {"home": 60.0, "broken": 300.0}


def test_a_slow_check_is_not_run_twice_at_once(live: Live, target: Target) -> None:
    project = live.create_project("shop")
    store.apply(live.runtime.state, project.id, parse_monitors(
        f"monitors: [{{name: slow, kind: http, url: '{target.url}/slow', interval: 20s}}]"))
    batches: list[EventBatch] = []
    clock = Clock()
    scheduler = manual(live, batches, clock)
    entry = next(iter(scheduler._entries.values()))
    scheduler._fire(entry, clock.now)
    clock.now += 20.0  # due again while the first run (1.5 s) is still going
    scheduler._fire(entry, clock.now)
    scheduler.stop()
    assert target.hits.get("/slow") == 1
    assert len(rows_of(batches)) == 1
    assert entry.due == clock.now + 20.0


def test_loopback_targets_are_refused_without_the_allow_list(live: Live,
                                                            target: Target) -> None:
    project = live.create_project("shop")
    store.apply(live.runtime.state, project.id, parse_monitors(
        f"monitors: [{{name: local, kind: http, url: '{target.url}/'}}]"))
    batches: list[EventBatch] = []
    scheduler = server_scheduler(live.runtime.state, batches.append, AddressPolicy(),
                          offset=lambda interval: 0.0)
    scheduler.reload()
    scheduler._fire(next(iter(scheduler._entries.values())), time.monotonic())
    scheduler.stop()
    (row,) = rows_of(batches)
    assert row["ok"] is False and "loopback" in row["failure"]
    assert target.hits == {}


def test_results_reach_the_event_store_through_the_running_server(
        server: Any, target: Target) -> None:
    live = server(checks_allow="127.0.0.1")
    project = live.create_project("shop")
    live.runtime.state.update_project(project.id, base_url=target.url)
    store.apply(live.runtime.state, project.id, parse_monitors(
        "monitors: [{name: home, kind: http, url: /}]"))
    scheduler = server_scheduler(live.runtime.state, live.runtime.writer.submit,
                          AddressPolicy.parse(["127.0.0.1"]), reload_s=0.2,
                          offset=lambda interval: 0.0)
    scheduler.start()
    deadline = time.monotonic() + 15
    rows: list[tuple[Any, ...]] = []
    while time.monotonic() < deadline and not rows:
        time.sleep(0.2)
        rows = live.runtime.events.query(
            "SELECT monitor, ok, status, location FROM check_results WHERE project_id = ?",
            [project.id])
    scheduler.stop()
    assert rows == [("home", True, 200, "local")]
    assert live.runtime.scheduler is not None  # the server runs its own as well


def test_stopping_finishes_every_check_already_fired(live: Live, target: Target) -> None:
    """A check fired just before stop() may still wait for its worker thread to start:
    it must run and be stored, not be cancelled (it was counted as started). 50 checks
    fill every slot; before the fix, most runs of this test lost some of them."""
    project = live.create_project("shop")
    live.runtime.state.update_project(project.id, base_url=target.url)
    store.apply(live.runtime.state, project.id, parse_monitors(
        "monitors:\n" + "".join(f"  - {{name: m{i}, kind: http, url: /}}\n"
                                for i in range(50))))
    batches: list[EventBatch] = []
    clock = Clock()
    scheduler = manual(live, batches, clock)
    for entry in list(scheduler._entries.values()):
        scheduler._fire(entry, clock.now)
    scheduler.stop()  # at once: many checks are still queued
    assert sorted(r["monitor"] for r in rows_of(batches)) == sorted(
        f"m{i}" for i in range(50))
