"""Running every monitor on its interval: in the server (``shopwatch serve``) and in a
remote probe (``shopwatch probe``, :mod:`shopwatch.checks.probe`).

The scheduler takes its monitors from a *source* and hands its results to a *sink*. The
server's source is the state store (:class:`StoredMonitors`: the enabled monitors that
run at the server's own location) and its sink the event store's writer
(:func:`writer_sink`); :func:`server_scheduler` puts them together. A probe's source is
the assignments it polls from the server, and its sink a buffer it posts from.

Contract:

- Monitors are re-read from the source every ``reload_s`` (10 s), so ``shopwatch
  monitors apply`` and dashboard edits reach a running server within that time.
- Each monitor runs every ``interval`` at a fixed offset inside the interval, drawn at
  random when the scheduler first sees it (jitter: monitors with the same interval do not
  all fire in the same second). Its first run is at that offset from now.
- At most ``concurrency`` checks run at once (a thread pool: checks are blocking HTTP).
  A due check waits for a free slot; the wait shows as schedule drift.
- No pile-up: a monitor whose previous run has not finished when it is due again skips
  that turn (counted in ``shopwatch_checks_skipped_total``) and runs at the next one.
- Results go to the sink gathered per project, once a second (the server's: the event
  store's ``check_results`` table, through the writer); each carries ``location``. A
  check is judged against the runner's address policy (:mod:`shopwatch.checks.safety`):
  only public addresses and the allow-list.
- A ``heartbeat`` monitor probes nothing: its turn judges the pings stored for it
  (``judge``: :func:`shopwatch.checks.heartbeat.evaluate`, against ``wall``, the epoch
  clock). Only the server has them: a heartbeat has no locations.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from prometheus_client import CollectorRegistry, Counter, Histogram

from shopwatch.checks import heartbeat
from shopwatch.checks.http import Context
from shopwatch.checks.kinds import run_monitor
from shopwatch.checks.monitor import Monitor
from shopwatch.checks.record import CheckRow, row_of
from shopwatch.checks.result import CheckResult
from shopwatch.checks.safety import AddressPolicy, Resolver, system_resolver
from shopwatch.store.base import EventBatch
from shopwatch.store.state import StateStore

log = logging.getLogger(__name__)
_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True)
class Assignment:
    """A monitor to run: its project, and the base URL its relative URLs join."""

    project_id: int
    monitor: Monitor
    base_url: str


# Where the monitors come from, and where their results go (rows of one project).
Source = Callable[[], Iterable[Assignment]]
Sink = Callable[[int, list[CheckRow]], object]
# A heartbeat's judgement: (project id, monitor, epoch now) -> result, or None (no ping
# expected yet).
Judge = Callable[[int, Monitor, float], CheckResult | None]


def runs_at(monitor: Monitor, location: str, home: str) -> bool:
    """Whether ``monitor`` runs at ``location``: one of its ``locations``, or, when it has
    none, the server's own (``home``, ``checks_location``)."""
    return location in monitor.locations if monitor.locations else location == home


class StoredMonitors:
    """The server's source: the enabled monitors in the state store that run at
    ``location`` (the server's own), with their project's base URL."""

    def __init__(self, state: StateStore, location: str = "local") -> None:
        self._state = state
        self._location = location

    def __call__(self) -> list[Assignment]:
        from shopwatch.store.monitors import list_monitors

        projects = {p.id: p for p in self._state.list_projects()}
        out = []
        for stored in list_monitors(self._state):
            project = projects.get(stored.project_id)
            if project is None or not stored.monitor.enabled or not runs_at(
                    stored.monitor, self._location, self._location):
                continue
            out.append(Assignment(stored.project_id, stored.monitor, project.base_url))
        return out


def writer_sink(submit: Callable[[EventBatch], object]) -> Sink:
    """The server's sink: the rows of one project as one batch for the writer."""
    def sink(project_id: int, rows: list[CheckRow]) -> object:
        return submit(EventBatch(project_id, time.time_ns() // 1000, b"[]", 0, [],
                                 checks=_encode(rows), n_checks=len(rows)))
    return sink


def server_scheduler(state: StateStore, submit: Callable[[EventBatch], object],
                     policy: AddressPolicy, *, location: str = "local",
                     **options: Any) -> Scheduler:
    """The scheduler of ``shopwatch serve``: monitors from the state store that run at
    ``location``, results to the writer (``submit``), heartbeats judged from their pings.
    ``options`` are :class:`Scheduler`'s."""
    def judge(project_id: int, monitor: Monitor, now: float) -> CheckResult | None:
        return heartbeat.evaluate(state, project_id, monitor, now)

    return Scheduler(StoredMonitors(state, location), writer_sink(submit), policy,
                     location=location, judge=judge, **options)


@dataclass
class _Entry:
    project_id: int
    monitor: Monitor
    base_url: str
    due: float  # monotonic time of the next run
    running: Future[None] | None = None


@dataclass
class SchedulerMetrics:
    """What ``/metrics`` shows of the scheduler."""

    registry: CollectorRegistry
    checks: Counter = field(init=False)
    skipped: Counter = field(init=False)
    drift: Histogram = field(init=False)

    def __post_init__(self) -> None:
        r = self.registry
        self.checks = Counter("shopwatch_checks", "Monitor runs, by outcome.", ["outcome"],
                              registry=r)
        self.skipped = Counter("shopwatch_checks_skipped",
                               "Monitor runs skipped because the previous one was still going.",
                               registry=r)
        self.drift = Histogram("shopwatch_check_drift_seconds",
                               "How late a monitor run started after it was due.",
                               buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
                               registry=r)


class Scheduler:
    """See the module docstring: monitors from ``source``, results to ``sink``, each
    tagged with ``location``."""

    def __init__(self, source: Source, sink: Sink, policy: AddressPolicy, *,
                 concurrency: int = 50, location: str = "local", judge: Judge | None = None,
                 reload_s: float = 10.0, resolver: Resolver = system_resolver,
                 artifacts: Path | None = None,
                 metrics: SchedulerMetrics | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time,
                 offset: Callable[[float], float] = lambda interval: random.uniform(
                     0, interval)) -> None:
        self._source = source
        self._sink = sink
        self._judge = judge
        self._policy = policy
        self._location = location
        self._reload_s = reload_s
        self._resolver = resolver
        self._artifacts = artifacts  # browser flows' failure screenshots, per project
        self._metrics = metrics
        self._clock = clock
        self._wall = wall
        self._offset = offset  # where in its interval a monitor runs (tests pass 0)
        self._pool = ThreadPoolExecutor(max_workers=concurrency,
                                        thread_name_prefix="shopwatch-check")
        self._slots = threading.Semaphore(concurrency)
        self._entries: dict[tuple[int, str], _Entry] = {}
        self._rows: dict[int, list[CheckRow]] = {}
        self._rows_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="shopwatch-scheduler",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop scheduling, let running checks finish, hand their results to the sink."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        # Checks already fired hold a slot and finish (cancelling one still queued for
        # a worker thread would lose a run the scheduler counted as started).
        self._pool.shutdown(wait=True)
        self._flush()

    @property
    def monitors(self) -> int:
        return len(self._entries)

    # --- the loop ------------------------------------------------------------------------

    def _run(self) -> None:
        next_reload = 0.0
        next_flush = self._clock() + 1.0
        while not self._stop.is_set():
            now = self._clock()
            if now >= next_reload:
                next_reload = now + self._reload_s
                try:
                    self.reload()
                except Exception as exc:  # a broken state store must not end scheduling
                    log.warning("could not read monitors: %s", exc)
            for entry in list(self._entries.values()):
                if entry.due <= now:
                    self._fire(entry, now)
            if now >= next_flush:
                next_flush = now + 1.0
                self._flush()
            due = min((e.due for e in self._entries.values()), default=now + 1.0)
            # A check still due here is waiting for a slot: look again shortly, not at once.
            wake = max(due, self._clock() + 0.02)
            self._stop.wait(max(0.0, min(wake, next_flush, next_reload) - self._clock()))

    def reload(self) -> None:
        """Bring the schedule in line with the source's monitors."""
        seen: set[tuple[int, str]] = set()
        now = self._clock()
        for assignment in self._source():
            monitor = assignment.monitor
            if not monitor.enabled:
                continue
            key = (assignment.project_id, monitor.name)
            seen.add(key)
            entry = self._entries.get(key)
            if entry is None:
                self._entries[key] = _Entry(assignment.project_id, monitor,
                                            assignment.base_url,
                                            now + self._offset(monitor.interval_s))
            else:
                if entry.monitor.interval_s != monitor.interval_s:
                    entry.due = min(entry.due, now + self._offset(monitor.interval_s))
                entry.monitor, entry.base_url = monitor, assignment.base_url
        for key in set(self._entries) - seen:
            del self._entries[key]

    def _fire(self, entry: _Entry, now: float) -> None:
        interval = entry.monitor.interval_s
        if entry.running is not None and not entry.running.done():
            if self._metrics is not None:
                self._metrics.skipped.inc()
            entry.due += interval * max(1, int((now - entry.due) // interval) + 1)
            return
        if not self._slots.acquire(blocking=False):
            return  # every slot busy: try again next turn of the loop (drift grows)
        if self._metrics is not None:
            self._metrics.drift.observe(max(0.0, now - entry.due))
        monitor, base_url, project_id = entry.monitor, entry.base_url, entry.project_id
        entry.running = self._pool.submit(self._check, project_id, monitor, base_url)
        # The next turn keeps the monitor's rhythm; turns missed while late are dropped.
        entry.due += interval * max(1, int((now - entry.due) // interval) + 1)

    def _check(self, project_id: int, monitor: Monitor, base_url: str) -> None:
        try:
            if monitor.kind == "heartbeat":
                if self._judge is None:
                    return  # a probe has no pings to judge (and is never assigned one)
                judged = self._judge(project_id, monitor, self._wall())
                if judged is None:
                    return  # waiting for its first ping: nothing to record yet
                result = judged
            else:
                context = Context(base_url=base_url or None, policy=self._policy,
                                  resolver=self._resolver,
                                  artifacts=self._artifacts / str(project_id)
                                  if self._artifacts is not None else None)
                result = run_monitor(monitor, context)
            row = row_of(result, self._location)
            if self._metrics is not None:
                self._metrics.checks.labels("ok" if result.ok else "failed").inc()
            with self._rows_lock:
                self._rows.setdefault(project_id, []).append(row)
        except Exception:
            log.exception("monitor %s failed to run", monitor.name)
        finally:
            self._slots.release()

    def _flush(self) -> None:
        with self._rows_lock:
            rows, self._rows = self._rows, {}
        for project_id, batch in rows.items():
            try:
                self._sink(project_id, batch)
            except Exception as exc:  # overload: these results are lost, the next come
                log.warning("could not store %d check results: %s", len(batch), exc)
