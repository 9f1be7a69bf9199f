"""The event store in a process of its own, behind the same :class:`EventStore` seam.

Why a process: DuckDB releases the GIL while it works, but a writer *thread* must win
the GIL back after every call into DuckDB, and under load the request loop (decoding
and validating events) holds it almost all the time. Measured on 2 cores, the writer
thread then commits a fraction of what it commits alone (docs/benchmarks.md). In a
child process DuckDB and the request loop each get a core and never wait for each
other's lock.

Contract:

- Every method is a request and a reply over a pipe. Writes (``write``,
  ``prune_dedup``, ``checkpoint``) come from the writer thread only and use one pipe,
  served in order by the child's main thread; reads may come from any thread, are
  serialised by a lock and use a second pipe, served by a child thread with its own
  DuckDB cursor, so a long read never delays a commit.
- A reply of ``ok`` to ``write`` means committed, exactly as in-process.
- If the parent dies, even by SIGKILL, the child sees the pipe close and exits at once
  without checkpointing: what was committed is in DuckDB's WAL and is replayed by the
  next open. Until it has exited the file stays locked, so opening retries for a while
  (:class:`~shopwatch.store.duckdb.DuckDBEventStore`).
- If the child dies, every call raises :class:`StoreError` (ingest answers 503).
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import threading
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from shopwatch.errors import StoreError
from shopwatch.store.base import EventBatch, EventQuery, files_bytes

START_TIMEOUT = 60.0


class EventStoreProcess:
    """A :class:`~shopwatch.store.duckdb.DuckDBEventStore` running in a child process."""

    def __init__(self, path: Path, *, threads: int = 1,
                 checkpoint_threshold: int = 256 * 1024 * 1024,
                 memory_limit: int = 256 * 1024 * 1024) -> None:
        self._path = path
        ctx = mp.get_context("spawn")  # fork would copy the parent's threads' locks
        self._write_conn, child_write = ctx.Pipe()
        self._read_conn, child_read = ctx.Pipe()
        self._read_lock = threading.Lock()
        self._process = ctx.Process(
            target=_child_main, name="shopwatch-store", daemon=True,
            args=(str(path), threads, checkpoint_threshold, memory_limit, child_write,
                  child_read))
        self._process.start()
        child_write.close()
        child_read.close()
        if not self._write_conn.poll(START_TIMEOUT):
            self._process.kill()
            raise StoreError(f"the event store process did not start within {START_TIMEOUT:g}s")
        self._schema_version: int = self._reply(self._write_conn)

    @property
    def path(self) -> Path:
        return self._path

    @property
    def schema_version(self) -> int:
        return self._schema_version

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def _reply(self, conn: Connection) -> Any:
        try:
            status, payload = conn.recv()
        except (EOFError, OSError) as exc:
            raise StoreError(f"the event store process has stopped ({exc!r})") from None
        if status != "ok":
            raise StoreError(str(payload))
        return payload

    def _call(self, conn: Connection, op: str, *args: Any) -> Any:
        try:
            conn.send((op, args))
        except (OSError, ValueError) as exc:
            raise StoreError(f"the event store process has stopped ({exc!r})") from None
        return self._reply(conn)

    # --- writes: the writer thread only ------------------------------------------------

    def write(self, batches: Sequence[EventBatch]) -> int:
        return int(self._call(self._write_conn, "write", list(batches)))

    def prune_dedup(self, older_than_us: int) -> int:
        return int(self._call(self._write_conn, "prune_dedup", older_than_us))

    def checkpoint(self) -> None:
        self._call(self._write_conn, "checkpoint")

    def refresh_rollups(self, budget_s: float) -> int:
        return int(self._call(self._write_conn, "refresh_rollups", budget_s))

    # --- reads: any thread -------------------------------------------------------------

    def query_events(self, query: EventQuery) -> list[dict[str, Any]]:
        with self._read_lock:
            result: list[dict[str, Any]] = self._call(self._read_conn, "query_events", query)
            return result

    def count(self, project_id: int | None = None) -> int:
        with self._read_lock:
            return int(self._call(self._read_conn, "count", project_id))

    def query(self, sql: str, params: Sequence[Any] = (), *,
              prelude: tuple[str, Sequence[Any]] | None = None) -> list[tuple[Any, ...]]:
        with self._read_lock:
            rows: list[tuple[Any, ...]] = self._call(self._read_conn, "query", sql,
                                                     list(params), prelude)
            return rows

    def size_bytes(self) -> int:
        return files_bytes(self.path, ".wal")

    def healthy(self) -> bool:
        return self._process.is_alive()

    def close(self) -> None:
        """Checkpoint and close the store, then end the child."""
        if self._process.is_alive():
            with contextlib.suppress(StoreError):  # it may have died: it is joined below
                self._call(self._write_conn, "close")
        self._process.join(30)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(5)
        self._write_conn.close()
        self._read_conn.close()


# --- the child -----------------------------------------------------------------------------


def _child_main(path: str, threads: int, checkpoint_threshold: int, memory_limit: int,
                write_conn: Connection, read_conn: Connection) -> None:
    # Ctrl-C reaches the whole process group; the parent decides when the store stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from shopwatch.store.duckdb import DuckDBEventStore

    try:
        store = DuckDBEventStore(Path(path), threads=threads,
                                 checkpoint_threshold=checkpoint_threshold,
                                 memory_limit=memory_limit)
    except Exception as exc:  # the parent reports it
        write_conn.send(("error", str(exc)))
        return
    write_conn.send(("ok", store.schema_version))
    reads: dict[str, Callable[..., Any]] = {"query_events": store.query_events,
                                            "count": store.count,
                                            "query": lambda sql, params, prelude:
                                            store.query(sql, params, prelude=prelude)}
    writes: dict[str, Callable[..., Any]] = {"write": store.write,
                                             "prune_dedup": store.prune_dedup,
                                             "checkpoint": store.checkpoint,
                                             "refresh_rollups": store.refresh_rollups}
    threading.Thread(target=_serve, args=(read_conn, reads, None), daemon=True,
                     name="shopwatch-store-reads").start()
    _serve(write_conn, writes, store.close)


def _serve(conn: Connection, ops: dict[str, Callable[..., Any]],
           close: Callable[[], None] | None) -> None:
    while True:
        try:
            op, args = conn.recv()
        except (EOFError, OSError):
            # The parent is gone (maybe SIGKILLed): exit now. Committed data is in the WAL;
            # a checkpoint here would only delay the next server's open.
            os._exit(0)
        if op == "close" and close is not None:
            close()
            conn.send(("ok", None))
            os._exit(0)
        try:
            conn.send(("ok", ops[op](*args)))
        except Exception as exc:  # reported to the caller as StoreError
            conn.send(("error", str(exc)))
