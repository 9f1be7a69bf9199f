"""The event store's read queries with a prelude (``EventStore.query(..., prelude=...)``):
the prelude's values replace the :class:`Prelude` parameters, and both statements see one
snapshot, in process and through the store process. Real DuckDB files in ``tmp_path``."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from shopwatch.errors import StoreError
from shopwatch.ingest.pipeline import Format, PipelineConfig, process
from shopwatch.store.base import EventBatch, EventStore, Prelude
from shopwatch.store.duckdb import DuckDBEventStore
from shopwatch.store.process import EventStoreProcess

NOW_US = 1_750_000_000_000_000
CONFIG = PipelineConfig(pseudonym_key=b"k" * 32)


def batch(first: int, n: int) -> EventBatch:
    body = json.dumps({"events": [{"name": "page_view", "id": f"e{i}"}
                                  for i in range(first, first + n)]}).encode()
    return process(body, Format.JSON, 1, NOW_US, CONFIG).rows


@pytest.fixture(params=["in-process", "store-process"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventStore]:
    opened: EventStore
    if request.param == "in-process":
        opened = DuckDBEventStore(tmp_path / "events.duckdb")
    else:
        opened = EventStoreProcess(tmp_path / "events.duckdb")
    yield opened
    opened.close()


def test_prelude_values_replace_their_parameters(store: EventStore) -> None:
    store.write([batch(0, 3)])
    rows = store.query("SELECT ?::BIGINT, ?::VARCHAR, ?::BIGINT",
                       [Prelude(1), "plain", Prelude(0)],
                       prelude=("SELECT count(*), 40 + ? FROM events WHERE project_id = ?",
                                [2, 1]))
    assert rows == [(42, "plain", 3)]


def test_prelude_and_query_see_one_snapshot(store: EventStore) -> None:
    # A writer commits batches all along; the query's count must always be the count
    # its prelude saw, never one including a batch committed in between.
    store.write([batch(0, 1)])
    stop = threading.Event()

    def write() -> None:
        first = 1
        while not stop.is_set():
            store.write([batch(first, 5)])
            first += 5

    writer = threading.Thread(target=write)
    writer.start()
    try:
        seen = set()
        for _ in range(150):
            (before, now), = store.query(
                "SELECT ?::BIGINT, (SELECT count(*) FROM events WHERE project_id = 1)",
                [Prelude(0)], prelude=("SELECT count(*) FROM events WHERE project_id = ?", [1]))
            assert before == now
            seen.add(now)
    finally:
        stop.set()
        writer.join()
    assert len(seen) > 1  # the writer did commit while the queries ran


def test_a_failing_query_leaves_the_store_usable(store: EventStore) -> None:
    store.write([batch(0, 2)])
    with pytest.raises((StoreError, duckdb.Error), match="no_such_column"):
        store.query("SELECT no_such_column FROM events WHERE ? > 0", [Prelude(0)],
                    prelude=("SELECT 1", []))
    # The transaction was rolled back: the next queries run, and see new writes.
    store.write([batch(2, 1)])
    assert store.query("SELECT ?::BIGINT + 0", [Prelude(0)],
                       prelude=("SELECT count(*) FROM events", [])) == [(3,)]
    assert store.query("SELECT count(*) FROM events") == [(3,)]


def test_an_idle_checkpoint_waits_for_another_write_transaction(tmp_path: Path) -> None:
    """The writer checkpoints when idle; another connection's open write (a check result,
    say) makes DuckDB refuse. That skips the checkpoint (no "housekeeping failed" log),
    loses nothing, and the next one folds the WAL."""
    store = DuckDBEventStore(tmp_path / "events.duckdb")
    try:
        store.write([batch(0, 3)])
        other = store._con.cursor()
        other.execute("BEGIN")
        other.execute("CREATE TABLE scratch AS SELECT 1 AS x")
        with pytest.raises(duckdb.TransactionException):  # what the store meets
            store._con.cursor().execute("CHECKPOINT")
        store.checkpoint()
        other.execute("COMMIT")
        store.checkpoint()
        wal = tmp_path / "events.duckdb.wal"
        assert not wal.exists() or wal.stat().st_size == 0
        assert store.query("SELECT count(*) FROM events") == [(3,)]
    finally:
        store.close()
