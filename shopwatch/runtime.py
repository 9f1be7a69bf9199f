"""The running instance: settings, stores, writer, metrics — built once, passed around.

Nothing here is global: ``shopwatch serve`` builds one :class:`Runtime`, tests build as
many as they like, each on its own data directory.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from shopwatch.accounts.lockout import LoginThrottle
from shopwatch.accounts.sessions import Sessions
from shopwatch.accounts.users import Users
from shopwatch.alerts.channels import Environment, Smtp
from shopwatch.alerts.delivery import Outbox
from shopwatch.alerts.evaluator import AlertLoop, Evaluator
from shopwatch.alerts.incidents import incident_impact
from shopwatch.alerts.reader import series_reader
from shopwatch.checks.monitor import check_location
from shopwatch.checks.safety import AddressPolicy
from shopwatch.checks.scheduler import Scheduler, SchedulerMetrics, server_scheduler
from shopwatch.geoip import CountryLookup
from shopwatch.ingest.pipeline import PipelineConfig
from shopwatch.ingest.ratelimit import RateLimiter
from shopwatch.ingest.writer import Writer
from shopwatch.metrics import Metrics
from shopwatch.reports.loop import Reporter, ReportLoop
from shopwatch.security.watch import SecurityLoop, Watch
from shopwatch.settings import Settings
from shopwatch.store.base import EventStore, files_bytes
from shopwatch.store.process import EventStoreProcess
from shopwatch.store.rules import list_rules
from shopwatch.store.slos import all_rules
from shopwatch.store.state import StateStore

if TYPE_CHECKING:
    from shopwatch.store.duckdb import DuckDBEventStore
from shopwatch.web.auth import KeyCache

EVENTS_FILE = "events.duckdb"
STATE_FILE = "state.sqlite"
ARTIFACTS_DIR = "artifacts"  # browser flows' failure screenshots and HTML


def ensure_data_dir(path: Path) -> Path:
    """Create the data directory, private to its owner (it holds keys and sales data)."""
    path.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        os.chmod(path, 0o700)
    return path


def open_state(settings: Settings) -> StateStore:
    """The state store of the configured data directory (creating it if needed)."""
    return StateStore(ensure_data_dir(settings.data_path) / STATE_FILE)


def notify_environment(settings: Settings, policy: AddressPolicy) -> Environment:
    """What notification channels need from the settings (smtp_*, notify_timeout)."""
    return Environment(policy=policy, timeout=settings.notify_timeout, smtp=Smtp(
        settings.smtp_host, settings.smtp_port, settings.smtp_username,
        settings.smtp_password, settings.smtp_from, settings.smtp_security))


@dataclass
class Runtime:
    settings: Settings
    state: StateStore
    events: EventStore
    writer: Writer
    metrics: Metrics
    keys: KeyCache
    limiter: RateLimiter
    pipeline: PipelineConfig
    users: Users
    sessions: Sessions
    throttle: LoginThrottle
    geoip: CountryLookup | None = None  # only when the admin configured a database
    scheduler: Scheduler | None = None  # with checks_enabled
    checks_policy: AddressPolicy = field(default_factory=AddressPolicy)  # checks_allow
    outbox: Outbox | None = None  # notifications' deliveries (alerts/delivery.py)
    alerts: AlertLoop | None = None  # rule evaluation (alerts/evaluator.py), alerts_interval
    reports: ReportLoop | None = None  # scheduled reports (reports/loop.py), reports_interval
    security: SecurityLoop | None = None  # detections (security/watch.py), security_interval

    @property
    def artifacts(self) -> Path:
        """Where browser flows keep failure screenshots and HTML: a folder per project
        (then per monitor) under the data directory."""
        return self.settings.data_path / ARTIFACTS_DIR

    @classmethod
    def open(cls, settings: Settings) -> Runtime:
        """Open (and migrate) both stores and build the writer; call :meth:`start` next."""
        data = ensure_data_dir(settings.data_path)
        # First: a bad database path fails before any store is opened (and left open).
        geoip = CountryLookup(settings.geoip_database) if settings.geoip_database else None
        policy = AddressPolicy.parse(a for a in settings.checks_allow.split(",") if a.strip())
        check_location(settings.checks_location, "checks_location")
        state = StateStore(data / STATE_FILE)
        store_class: type[EventStoreProcess] | type[DuckDBEventStore] = EventStoreProcess
        if not settings.store_process:
            # Imported only here: with the store in its own process, the server process
            # never loads DuckDB and Arrow (about 50 MB of resident memory).
            from shopwatch.store.duckdb import DuckDBEventStore as store_class
        events: EventStore = store_class(
            data / EVENTS_FILE, threads=settings.duckdb_threads,
            checkpoint_threshold=settings.duckdb_checkpoint_threshold,
            memory_limit=settings.duckdb_memory_limit)
        metrics = Metrics()
        window_us = int(settings.dedup_window * 1_000_000)

        def prune() -> None:
            events.prune_dedup(int(time.time() * 1_000_000) - window_us)

        writer = Writer(
            events,
            max_queue_events=settings.writer_queue_events,
            max_batch_events=settings.writer_batch_events,
            retry_after=settings.retry_after,
            observe=metrics.observe_commit,
            housekeeping=prune,
            on_idle=events.checkpoint,  # keep the WAL (and crash replay) short when quiet
            rollup=events.refresh_rollups,
        )
        metrics.add_gauges({
            "shopwatch_writer_queue_events": ("Events waiting for the writer.",
                                              lambda: float(writer.queued_events)),
            "shopwatch_store_bytes": (
                "Bytes of the event and state stores on disk.",
                lambda: float(events.size_bytes() + files_bytes(data / STATE_FILE, "-wal"))),
            "shopwatch_rollup_pending_hours": (
                "Hours of events not yet rolled up (read raw meanwhile: exact, slower).",
                lambda: float(events.query("SELECT count(*) FROM rollup_pending")[0][0])),
        })
        pipeline = PipelineConfig(
            max_events=settings.max_events_per_request,
            max_future_skew_s=settings.max_future_skew,
            max_event_age_s=settings.max_event_age,
            query_allow=settings.query_allow,
            pseudonym_key=bytes.fromhex(state.instance_value("pseudonym_key")),
            network_prefix_v4=settings.network_prefix_v4,
            network_prefix_v6=settings.network_prefix_v6,
            country_of=geoip.lookup if geoip is not None else None,
        )
        users = Users(state)
        scheduler = None
        if settings.checks_enabled:
            scheduler = server_scheduler(state, writer.submit, policy,
                                         concurrency=settings.checks_concurrency,
                                         location=settings.checks_location,
                                         artifacts=data / ARTIFACTS_DIR,
                                         metrics=SchedulerMetrics(metrics.registry))
        outbox = Outbox(state, notify_environment(settings, policy))
        alert_loop = None
        if settings.alerts_interval > 0:
            public = settings.public_url.rstrip("/")
            evaluator = Evaluator(
                state, lambda: all_rules(state), series_reader(events, state),
                outbox.enqueue,
                link=lambda pid, rule: f"{public}/alerts?project={pid}" if public else "",
                incident_link=lambda pid, iid: (f"{public}/alerts/incidents/{iid}?project={pid}"
                                                if public else ""),
                impact=incident_impact(events, state),
                group_interval=settings.alerts_group_interval,
                incident_window=settings.alerts_incident_window)
            alert_loop = AlertLoop(evaluator, settings.alerts_interval)
        security_loop = None
        if settings.security_interval > 0:
            public = settings.public_url.rstrip("/")
            watch = Watch(state, events, lambda: list_rules(state), outbox.enqueue,
                          link=lambda pid, fid: (
                              f"{public}/security?project={pid}"
                              + (f"&finding={fid}" if fid else "") if public else ""))
            security_loop = SecurityLoop(watch, settings.security_interval)
        report_loop = None
        if settings.reports_interval > 0:
            report_loop = ReportLoop(Reporter(events, state, outbox.env),
                                     settings.reports_interval)
        return cls(settings, state, events, writer, metrics, KeyCache(state),
                   RateLimiter(settings.ingest_rate_limit), pipeline, users,
                   Sessions(state, users, idle_timeout=settings.session_idle_timeout,
                            lifetime=settings.session_lifetime),
                   LoginThrottle(state, pipeline.pseudonym_key,
                                 max_failures=settings.login_max_failures,
                                 window=settings.login_failure_window),
                   geoip, scheduler, policy, outbox, alert_loop, reports=report_loop,
                   security=security_loop)

    def start(self) -> None:
        self.writer.start()
        if self.scheduler is not None:
            self.scheduler.start()
        if self.outbox is not None:
            self.outbox.start()
        if self.alerts is not None:
            self.alerts.start()
        if self.reports is not None:
            self.reports.start()
        if self.security is not None:
            self.security.start()

    def close(self) -> None:
        """Stop the checks, commit what is queued, then close both stores."""
        if self.scheduler is not None:
            self.scheduler.stop()
        if self.alerts is not None:
            self.alerts.stop()
        if self.reports is not None:
            self.reports.stop()
        if self.security is not None:
            self.security.stop()
        if self.outbox is not None:
            self.outbox.stop()
        self.writer.stop()
        self.events.close()
        self.state.close()
        if self.geoip is not None:
            self.geoip.close()
