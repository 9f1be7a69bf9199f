"""The single writer: one thread that owns event-store writes, with group commit.

Request handlers call :meth:`Writer.submit` with the rows of one request and await the
returned future. The writer thread takes everything queued (up to
``max_batch_events``), commits it in one transaction, then resolves every future of
that group. A request is answered only after its future resolves, so an acknowledged
event is committed (and survives SIGKILL: DuckDB's WAL is written at commit).

Back-pressure instead of unbounded buffering: when the events waiting would exceed
``max_queue_events``, :meth:`submit` raises :class:`Unavailable` (503 + Retry-After).
If the store fails, the futures of that group fail with :class:`Unavailable` too and
nothing is acknowledged.

Between commits the same thread keeps the store's rollups current (``rollup``): one
time budget every ``rollup_every`` seconds under load, back to back while idle with a
backlog, then the idle callback (a checkpoint) once a backlog has caught up. Queries
never depend on it for correctness, only for speed.

Shutdown (:meth:`stop`) stops taking new work, then commits what is queued.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

from shopwatch.errors import Unavailable
from shopwatch.store.base import EventBatch as RowBatch
from shopwatch.store.base import EventStore

log = logging.getLogger(__name__)

_STOP = object()


@dataclass
class _Job:
    rows: RowBatch
    future: Future[int]


@dataclass
class CommitStats:
    """What one group commit did; handed to the observer for metrics."""

    events: int
    requests: int
    seconds: float
    ok: bool


class Writer:
    """See the module docstring. Thread-safe ``submit``; one writer thread."""

    def __init__(
        self,
        store: EventStore,
        *,
        max_queue_events: int = 200_000,
        max_batch_events: int = 50_000,
        retry_after: int = 1,
        observe: Callable[[CommitStats], None] | None = None,
        housekeeping: Callable[[], None] | None = None,
        housekeeping_every: float = 3600.0,
        on_idle: Callable[[], None] | None = None,
        idle_after: float = 5.0,
        rollup: Callable[[float], int] | None = None,
        rollup_every: float = 2.0,
        rollup_budget: float = 0.2,
    ) -> None:
        self.store = store
        self.max_queue_events = max_queue_events
        self.max_batch_events = max_batch_events
        self.retry_after = retry_after
        self._observe = observe
        self._housekeeping = housekeeping
        self._housekeeping_every = housekeeping_every
        self._on_idle = on_idle
        self._idle_after = idle_after
        self._rollup = rollup
        self._rollup_every = rollup_every
        self._rollup_budget = rollup_budget
        self._queue: queue.SimpleQueue[_Job | object] = queue.SimpleQueue()
        self._queued_events = 0
        self._lock = threading.Lock()
        self._accepting = True
        self._thread = threading.Thread(target=self._run, name="shopwatch-writer", daemon=True)

    @property
    def queued_events(self) -> int:
        """Events submitted and not yet committed."""
        return self._queued_events

    def start(self) -> None:
        self._thread.start()

    def submit(self, rows: RowBatch) -> Future[int]:
        """Queue rows for the next commit; the future resolves to the count newly stored.

        Raises :class:`Unavailable` when the queue is full or the writer is stopping.
        """
        future: Future[int] = Future()
        with self._lock:
            if not self._accepting:
                raise Unavailable("shopwatch is shutting down; retry shortly",
                                  retry_after=self.retry_after)
            if self._queued_events + rows.size > self.max_queue_events:
                raise Unavailable(
                    f"ingest is overloaded ({self._queued_events} events waiting for the "
                    "writer); retry after the Retry-After delay", retry_after=self.retry_after)
            self._queued_events += rows.size
        self._queue.put(_Job(rows, future))
        return future

    def stop(self, timeout: float = 30.0) -> None:
        """Refuse new work, commit what is queued, and end the thread."""
        with self._lock:
            self._accepting = False
        self._queue.put(_STOP)
        self._thread.join(timeout)

    # --- the thread ------------------------------------------------------------------------

    def _run(self) -> None:
        next_housekeeping = time.monotonic() + 60.0
        last_commit = 0.0
        dirty = False  # committed since the last idle callback
        stopping = False
        next_rollup = 0.0
        backlog = 0  # rollup hours still pending: keep working on them while idle
        while not stopping:
            try:
                first = self._queue.get(timeout=0.01 if backlog else 1.0)
            except queue.Empty:
                first = None
            # Rollups share the writer with commits: at most one budget per interval
            # under load, continuously while there is a backlog and nothing to commit.
            if self._rollup is not None and (
                    time.monotonic() >= next_rollup or (backlog and first is None)):
                had_backlog = backlog > 0
                backlog = self._refresh_rollup(self._rollup)
                next_rollup = time.monotonic() + self._rollup_every
                if had_backlog and not backlog and first is None:
                    # A backlog just caught up (e.g. a rebuild): its rows sit uncompressed
                    # in memory and the WAL until a checkpoint, which frees them.
                    self._run_housekeeping(self._on_idle)
            if time.monotonic() >= next_housekeeping:
                next_housekeeping = time.monotonic() + self._housekeeping_every
                self._run_housekeeping(self._housekeeping)
            if first is None:
                if dirty and time.monotonic() - last_commit >= self._idle_after:
                    dirty = False
                    self._run_housekeeping(self._on_idle)
                continue
            jobs: list[_Job] = []
            n = 0
            item: _Job | object = first
            while True:
                if item is _STOP:
                    stopping = True
                else:
                    assert isinstance(item, _Job)
                    jobs.append(item)
                    n += item.rows.size
                if n >= self.max_batch_events:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if jobs:
                self._commit(jobs, n)
                last_commit = time.monotonic()
                dirty = True
        # Anything that raced in after _STOP still gets committed.
        leftovers: list[_Job] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, _Job):
                leftovers.append(item)
        if leftovers:
            self._commit(leftovers, sum(j.rows.size for j in leftovers))

    def _commit(self, jobs: list[_Job], n: int) -> None:
        started = time.perf_counter()
        try:
            failed = self._write(jobs)
            if failed and len(jobs) > 1:
                # One request's rows may be what broke the group: commit each alone so
                # the others are not refused with it.
                failed = [job for job in jobs if self._write([job])]
        finally:
            with self._lock:
                self._queued_events -= n
        if self._observe is not None:
            self._observe(CommitStats(n, len(jobs), time.perf_counter() - started, not failed))

    def _write(self, jobs: list[_Job]) -> list[_Job]:
        """Commit the jobs in one transaction; resolve their futures on success.

        Returns the jobs left unresolved (all of them) when the write failed.
        """
        try:
            self.store.write([job.rows for job in jobs])
        except Exception as exc:  # any failure must fail the futures, never hang them
            log.error("event store write failed (%d requests): %s", len(jobs), exc)
            if len(jobs) == 1:
                jobs[0].future.set_exception(Unavailable(
                    f"the event store cannot write right now ({exc}); retry later",
                    retry_after=self.retry_after))
            return jobs
        # Duplicates are acknowledged too: the client's event is stored (once).
        for job in jobs:
            job.future.set_result(job.rows.n)
        return []

    def _refresh_rollup(self, refresh: Callable[[float], int]) -> int:
        try:
            return refresh(self._rollup_budget)
        except Exception as exc:  # queries stay exact without it, only slower
            log.warning("rollup refresh failed: %s", exc)
            return 0

    def _run_housekeeping(self, task: Callable[[], None] | None) -> None:
        if task is None:
            return
        try:
            task()
        except Exception as exc:
            log.warning("housekeeping failed: %s", exc)
