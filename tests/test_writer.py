"""The single writer: group commit, back-pressure, shutdown and store failures.

A real DuckDB store in ``tmp_path``; the commits are observed through the writer's
``observe`` callback, as ``/metrics`` observes them.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path

import pytest

from shopwatch.errors import Unavailable
from shopwatch.ingest.pipeline import Format, PipelineConfig, process
from shopwatch.ingest.writer import CommitStats, Writer
from shopwatch.store.base import EventBatch
from shopwatch.store.duckdb import DuckDBEventStore
from tests.conftest import open_event_store, second_connection

NOW_US = 1_750_000_000_000_000
CONFIG = PipelineConfig(pseudonym_key=b"k" * 32)


def batch(project_id: int, ids: list[str]) -> EventBatch:
    body = json.dumps({"events": [{"name": "page_view", "id": i} for i in ids]}).encode()
    outcome = process(body, Format.JSON, project_id, NOW_US, CONFIG)
    assert outcome.rows.n == len(ids)
    return outcome.rows


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DuckDBEventStore]:
    store = open_event_store(tmp_path / "events.duckdb")
    yield store
    store.close()


def test_concurrent_submits_share_commits(store: DuckDBEventStore) -> None:
    commits: list[CommitStats] = []
    writer = Writer(store, observe=commits.append)
    writer.start()
    futures: list[Future[int]] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def client(t: int) -> None:
        start.wait()
        for r in range(40):
            future = writer.submit(batch(1, [f"{t}-{r}-{i}" for i in range(5)]))
            with lock:
                futures.append(future)

    threads = [threading.Thread(target=client, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [f.result(timeout=60) for f in futures] == [5] * 320
    writer.stop()
    assert store.count(1) == 1600
    assert sum(c.events for c in commits) == 1600
    assert sum(c.requests for c in commits) == 320
    assert all(c.ok for c in commits)
    assert len(commits) < 320, "every request got its own commit: no group commit"


def test_work_queued_before_the_writer_runs_is_one_commit(store: DuckDBEventStore) -> None:
    commits: list[CommitStats] = []
    writer = Writer(store, observe=commits.append)
    futures = [writer.submit(batch(1, [f"q{i}"])) for i in range(50)]
    assert writer.queued_events == 50
    writer.start()
    assert [f.result(timeout=60) for f in futures] == [1] * 50
    writer.stop()
    assert [(c.events, c.requests) for c in commits] == [(50, 50)]
    assert writer.queued_events == 0


def test_commits_are_bounded_by_max_batch_events(store: DuckDBEventStore) -> None:
    commits: list[CommitStats] = []
    writer = Writer(store, max_batch_events=100, observe=commits.append)
    futures = [writer.submit(batch(1, [f"b{r}-{i}" for i in range(30)])) for r in range(10)]
    writer.start()
    for f in futures:
        f.result(timeout=60)
    writer.stop()
    assert sum(c.events for c in commits) == 300
    assert len(commits) >= 3
    assert all(c.events < 100 + 30 for c in commits)
    assert store.count(1) == 300


def test_stop_commits_what_is_queued(store: DuckDBEventStore) -> None:
    writer = Writer(store)
    futures = [writer.submit(batch(2, [f"s{r}-{i}" for i in range(10)])) for r in range(20)]
    writer.start()
    writer.stop()
    assert all(f.done() for f in futures)
    assert [f.result() for f in futures] == [10] * 20
    assert store.count(2) == 200
    with pytest.raises(Unavailable) as info:
        writer.submit(batch(2, ["late"]))
    assert info.value.retry_after == 1
    assert store.count(2) == 200


def test_a_full_queue_refuses_with_retry_after(store: DuckDBEventStore) -> None:
    writer = Writer(store, max_queue_events=10, retry_after=3)
    kept = writer.submit(batch(1, [f"k{i}" for i in range(8)]))
    with pytest.raises(Unavailable) as info:
        writer.submit(batch(1, ["x1", "x2", "x3"]))
    assert info.value.status == 503
    assert info.value.retry_after == 3
    assert "overloaded" in info.value.message
    writer.start()
    assert kept.result(timeout=60) == 8
    assert writer.submit(batch(1, ["x1", "x2", "x3"])).result(timeout=60) == 3  # room again
    writer.stop()
    assert store.count(1) == 11


def test_duplicates_are_acknowledged_and_stored_once(store: DuckDBEventStore) -> None:
    writer = Writer(store)
    writer.start()
    first = writer.submit(batch(1, ["same", "other"]))
    again = writer.submit(batch(1, ["same"]))
    elsewhere = writer.submit(batch(2, ["same"]))
    assert (first.result(timeout=60), again.result(timeout=60),
            elsewhere.result(timeout=60)) == (2, 1, 1)
    writer.stop()
    assert store.count(1) == 2
    assert store.count(2) == 1


def test_a_failing_store_fails_the_futures_with_unavailable(store: DuckDBEventStore) -> None:
    commits: list[CommitStats] = []
    writer = Writer(store, retry_after=4, observe=commits.append)
    writer.start()
    assert writer.submit(batch(1, ["before"])).result(timeout=60) == 1
    with second_connection(store.path) as con:  # the same database, as a second client
        con.execute("ALTER TABLE events RENAME TO events_away")
        futures = [writer.submit(batch(1, [f"f{i}"])) for i in range(5)]
        for future in futures:
            with pytest.raises(Unavailable) as info:
                future.result(timeout=60)
            assert info.value.retry_after == 4
            assert "cannot write" in info.value.message
        con.execute("ALTER TABLE events_away RENAME TO events")
    assert writer.queued_events == 0
    assert any(not c.ok for c in commits)
    # The writer survives a failed commit, and nothing of it was stored.
    assert writer.submit(batch(1, ["f0"])).result(timeout=60) == 1
    writer.stop()
    assert store.count(1) == 2


def test_a_closed_store_fails_the_futures_and_the_writer_keeps_running(
        tmp_path: Path) -> None:
    store = open_event_store(tmp_path / "closed.duckdb")
    commits: list[CommitStats] = []
    writer = Writer(store, observe=commits.append)
    writer.start()
    store.close()
    for _ in range(2):
        with pytest.raises(Unavailable):
            writer.submit(batch(1, ["x"])).result(timeout=60)
    assert [c.ok for c in commits] == [False, False]
    writer.stop()


def test_one_bad_request_does_not_fail_the_others_in_its_group(
        store: DuckDBEventStore) -> None:
    commits: list[CommitStats] = []
    writer = Writer(store, observe=commits.append)
    # Queued before the thread starts, so all three land in one group commit. The
    # middle one breaks the store contract (a payload that is not JSON), as a bug would.
    good_a = writer.submit(batch(1, ["a1", "a2"]))
    poison = writer.submit(EventBatch(1, NOW_US, b"not json", 1, []))
    good_b = writer.submit(batch(1, ["b1"]))
    writer.start()
    assert good_a.result(timeout=60) == 2
    assert good_b.result(timeout=60) == 1
    with pytest.raises(Unavailable):
        poison.result(timeout=60)
    writer.stop()
    assert store.count(1) == 3
    assert [c.requests for c in commits] == [3]
    assert commits[0].ok is False  # the group as a whole did not commit


def test_a_caught_up_rollup_backlog_is_checkpointed(store: DuckDBEventStore) -> None:
    """A rollup backlog worked off with nothing committed (a rebuild) still gets the
    idle checkpoint, once, when it reaches zero."""
    pending = [3]
    caught_up = threading.Event()
    calls: list[str] = []

    def rollup(budget_s: float) -> int:
        pending[0] = max(0, pending[0] - 1)
        calls.append(f"rollup {pending[0]}")
        return pending[0]

    def checkpoint() -> None:
        calls.append("checkpoint")
        caught_up.set()

    writer = Writer(store, rollup=rollup, on_idle=checkpoint, rollup_every=0.01)
    writer.start()
    try:
        assert caught_up.wait(5)
        time.sleep(0.1)  # no second checkpoint without new work
    finally:
        writer.stop()
    assert calls[:4] == ["rollup 2", "rollup 1", "rollup 0", "checkpoint"]
    assert calls.count("checkpoint") == 1
