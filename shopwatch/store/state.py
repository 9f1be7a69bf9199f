"""The state store: projects, keys and instance settings, through SQLAlchemy Core.

SQLite (``<data_dir>/state.sqlite``, WAL mode) by default; any SQLAlchemy URL works
(PostgreSQL at scale). Several processes may use it at once: the server reads keys
while ``shopwatch project rotate-key`` writes them.

Migrations are versioned and applied at open, in order, each in its own transaction;
the applied versions are recorded in ``schema_migrations``.

Keys: every project has one public *ingest* key (``swpub_…``, write-only, safe to embed
in a web page) and one *secret* key (``swsec_…``, reads the API). Rotating a key revokes
the old one at once; a running server notices within its key-cache lifetime (2 s).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from shopwatch.errors import ConfigError, NotFound

KeyKind = Literal["ingest", "secret"]
KEY_PREFIX: Final[dict[str, str]] = {"ingest": "swpub_", "secret": "swsec_"}

metadata = sa.MetaData()
schema_migrations = sa.Table(
    "schema_migrations", metadata,
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
)
projects = sa.Table(
    "projects", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    # Added by migration 2: what "today" and "revenue" mean for this shop.
    sa.Column("currency", sa.String(3), nullable=False, server_default="USD"),
    sa.Column("timezone", sa.String(64), nullable=False, server_default="UTC"),
    # Added by migration 4: real-user monitoring. Origins are space-separated.
    sa.Column("rum_origins", sa.Text, nullable=False, server_default=""),
    sa.Column("rum_sample_rate", sa.Float, nullable=False, server_default="1.0"),
    # Added by migration 6: what relative monitor URLs join ('' when not set).
    sa.Column("base_url", sa.Text, nullable=False, server_default=""),
    # Added by migration 7: the public status page's address, /status/<slug> ('' = off).
    sa.Column("status_slug", sa.String(40), nullable=False, server_default=""),
)
api_keys = sa.Table(
    "api_keys", metadata,
    sa.Column("key", sa.String(80), primary_key=True),
    sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False, index=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
)
instance = sa.Table(
    "instance", metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)
users = sa.Table(
    "users", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("email", sa.String(254), nullable=False, unique=True),  # stored lower-case
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("password_changed_at", sa.DateTime(timezone=True), nullable=False),
)
sessions = sa.Table(
    "sessions", metadata,
    # SHA-256 of the cookie's token: a copy of this table opens no session.
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"),
              nullable=False, index=True),
    sa.Column("csrf_token", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
)
login_failures = sa.Table(
    "login_failures", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False, index=True),
    # Keyed hashes (instance pseudonym key) of the e-mail tried and of the client address:
    # enough to count, never the address itself.
    sa.Column("account_hash", sa.String(64), nullable=False, index=True),
    sa.Column("client_hash", sa.String(64), nullable=False, index=True),
    # Set by a successful sign-in: no longer counted against the account, still against
    # the address.
    sa.Column("account_cleared", sa.Boolean, nullable=False, server_default=sa.false()),
)

marketing_spend = sa.Table(
    "marketing_spend", metadata,
    sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("channel", sa.String(100), primary_key=True),
    sa.Column("campaign", sa.String(200), primary_key=True),
    sa.Column("cost", sa.Float, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=False),
)

# Monitors (issue 7): the YAML monitor as JSON in ``spec``; ``source`` says who manages
# it: "code" (``shopwatch monitors apply``) or "ui" (the dashboard or the API).
monitors = sa.Table(
    "monitors", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("spec", sa.Text, nullable=False),
    sa.Column("source", sa.String(8), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("project_id", "name"),
)

# Maintenance windows (issue 7): planned downtime, left out of availability. ``every`` is
# '' (once), 'day' or 'week'; times are epoch seconds (UTC).
maintenance = sa.Table(
    "maintenance", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False,
              index=True),
    sa.Column("starts_at", sa.Float, nullable=False),
    sa.Column("duration_s", sa.Float, nullable=False),
    sa.Column("every", sa.String(8), nullable=False, server_default=""),
    sa.Column("note", sa.String(200), nullable=False, server_default=""),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)


# Heartbeat monitors (issue 7): the last pings to a monitor's push URL, one row per
# monitor (by name: its push token is derived from it), times in epoch seconds.
heartbeats = sa.Table(
    "heartbeats", metadata,
    sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), primary_key=True),
    sa.Column("monitor", sa.String(100), primary_key=True),
    sa.Column("last_ping", sa.Float, nullable=True),  # the last success ping
    sa.Column("last_fail", sa.Float, nullable=True),  # the last ping to .../fail
    sa.Column("pings", sa.Integer, nullable=False, server_default="0"),
    sa.Column("fails", sa.Integer, nullable=False, server_default="0"),
)

# Remote probes (issue 7): one row per probe token, instance-wide. Only the SHA-256 of the
# token is kept (a copy of this table lets no probe in), and no client address.
probes = sa.Table(
    "probes", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("location", sa.String(32), nullable=False, index=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
)

# Notification channels and their deliveries (issue 8, alerts/channels, alerts/delivery):
# ``config`` is the kind's JSON, secrets included (webhook signing secrets, Apprise URLs
# with tokens). A delivery is one notification to one channel; times are epoch seconds.
channels = sa.Table(
    "channels", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("config", sa.Text, nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.UniqueConstraint("project_id", "name"),
)
deliveries = sa.Table(
    "deliveries", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("channel_id", sa.Integer, sa.ForeignKey("channels.id", ondelete="CASCADE"),
              nullable=False, index=True),
    sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False,
              index=True),
    sa.Column("notification", sa.Text, nullable=False),
    sa.Column("alert", sa.String(200), nullable=True, index=True),
    sa.Column("status", sa.String(8), nullable=False),  # pending|sending|sent|failed
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    # pending: when it is due; sending: when its lease ends (then it is due again).
    sa.Column("next_attempt_at", sa.Float, nullable=False),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("sent_at", sa.Float, nullable=True),
    sa.Index("deliveries_due", "status", "next_attempt_at"),
)
# Alerts (issue 8): one row per alert of a rule, from its first breach. At most one open
# (pending or firing) per project and rule; resolved ones are the history. A pending
# alert that clears before firing is deleted: it never happened for anyone.
alerts = sa.Table(
    "alerts", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False),
    sa.Column("rule", sa.String(100), nullable=False),
    sa.Column("phase", sa.String(8), nullable=False),  # pending|firing|resolved
    sa.Column("severity", sa.String(8), nullable=False),
    sa.Column("since", sa.Float, nullable=False),  # first breach (epoch seconds)
    sa.Column("fired_at", sa.Float, nullable=True),
    sa.Column("resolved_at", sa.Float, nullable=True),
    sa.Column("notified_at", sa.Float, nullable=True),
    sa.Column("clear_since", sa.Float, nullable=True),
    sa.Column("acknowledged_at", sa.Float, nullable=True),
    sa.Column("acknowledged_by", sa.String(200), nullable=True),
    sa.Column("worst", sa.Float, nullable=True),
    sa.Column("last_value", sa.Float, nullable=True),
    sa.Column("evaluated_at", sa.Float, nullable=False),
    sa.Index("alerts_open", "project_id", "rule", "phase"),
)
# Alert rules (issue 8), applied from YAML with the monitors (``rules:``); code only.
rules = sa.Table(
    "rules", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("spec", sa.Text, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.UniqueConstraint("project_id", "name"),
)

# Incidents (issue 8): a firing alert opens one, or joins the project's open one; it
# resolves when its last alert does. The impact estimate is frozen at resolution.
incidents = sa.Table(
    "incidents", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("severity", sa.String(8), nullable=False),
    sa.Column("status", sa.String(8), nullable=False),  # open|resolved
    sa.Column("started_at", sa.Float, nullable=False),  # first breach of its first alert
    sa.Column("detected_at", sa.Float, nullable=False),  # its first alert fired
    sa.Column("resolved_at", sa.Float, nullable=True),
    sa.Column("notified_at", sa.Float, nullable=True),  # the latest notification about it
    sa.Column("impact", sa.Text, nullable=True),  # JSON, frozen at resolution
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Index("incidents_open", "project_id", "status"),
)
incident_alerts = sa.Table(
    "incident_alerts", metadata,
    sa.Column("incident_id", sa.Integer, sa.ForeignKey("incidents.id"), nullable=False),
    sa.Column("alert_id", sa.Integer, sa.ForeignKey("alerts.id"), nullable=False),
    sa.PrimaryKeyConstraint("incident_id", "alert_id"),
    sa.Index("incident_alerts_alert", "alert_id"),
)
# Silences (issue 8): mute notifications of matching rules until ``ends_at``.
silences = sa.Table(
    "silences", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False),
    sa.Column("matcher", sa.String(100), nullable=False),  # a rule name or glob; * = all
    sa.Column("starts_at", sa.Float, nullable=False),
    sa.Column("ends_at", sa.Float, nullable=False),
    sa.Column("comment", sa.String(500), nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Index("silences_project", "project_id", "ends_at"),
)


def _m14_incidents(conn: Connection) -> None:
    incidents.create(conn)
    incident_alerts.create(conn)


def _m11_channels(conn: Connection) -> None:
    channels.create(conn)
    deliveries.create(conn)

# Report schedules (shopwatch.reports): a project's daily or weekly report e-mailed to
# ``recipients`` (JSON list) at ``hour`` local time. ``last_sent_for`` is the key of the
# latest period sent (or given up), so a restart never sends one twice; ``claimed_until``
# leases a send to one worker; times are epoch seconds.
report_schedules = sa.Table(
    "report_schedules", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("audience", sa.String(16), nullable=False),  # technical|business
    sa.Column("period", sa.String(8), nullable=False),  # daily|weekly
    sa.Column("recipients", sa.Text, nullable=False),
    sa.Column("hour", sa.Integer, nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("last_sent_for", sa.String(40), nullable=True),
    sa.Column("last_sent_at", sa.Float, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("claimed_until", sa.Float, nullable=True),
    sa.UniqueConstraint("project_id", "name"),
)

# Security findings (shopwatch.security): one per detection kind and subject (an account,
# a network, a session, or "global") until resolved. ``evidence`` is JSON (accounts,
# networks, user agents, sessions, counts, the events' ids in time order); times are
# epoch seconds; ``status_at``/``status_by`` say who last changed the status.
findings = sa.Table(
    "findings", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("subject", sa.String(300), nullable=False),
    sa.Column("rule", sa.String(100), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("title", sa.String(300), nullable=False),
    sa.Column("first_seen", sa.Float, nullable=False),
    sa.Column("last_seen", sa.Float, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("status_at", sa.Float, nullable=True),
    sa.Column("status_by", sa.String(200), nullable=True),
    sa.Column("notified_at", sa.Float, nullable=True),
    sa.Column("evidence", sa.Text, nullable=False),
    sa.Index("findings_subject", "project_id", "kind", "subject"),
    sa.Index("findings_status", "project_id", "status", "last_seen"),
)


def _m1_initial(conn: Connection) -> None:
    # The version-1 shape of ``projects``, frozen here: later migrations alter it.
    v1 = sa.MetaData()
    sa.Table("projects", v1,
             sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
             sa.Column("name", sa.String(200), nullable=False, unique=True),
             sa.Column("created_at", sa.DateTime(timezone=True), nullable=False)).create(conn)
    for table in (api_keys, instance):
        table.create(conn)
    conn.execute(instance.insert().values(key="pseudonym_key", value=secrets.token_hex(32)))


def _m2_accounts(conn: Connection) -> None:
    conn.execute(sa.text(
        "ALTER TABLE projects ADD COLUMN currency VARCHAR(3) NOT NULL DEFAULT 'USD'"))
    conn.execute(sa.text(
        "ALTER TABLE projects ADD COLUMN timezone VARCHAR(64) NOT NULL DEFAULT 'UTC'"))
    for table in (users, sessions, login_failures):
        table.create(conn)


MIGRATIONS: Final[tuple[tuple[int, str, Callable[[Connection], None]], ...]] = (
    (1, "projects, api keys, instance secrets", _m1_initial),
    (2, "dashboard accounts, sessions, login failures; project currency and time zone",
     _m2_accounts),
    (3, "marketing spend per day, channel and campaign",
     lambda conn: marketing_spend.create(conn)),
    (4, "real-user monitoring: allowed origins and sample rate per project",
     lambda conn: _m4_rum(conn)),
    (5, "monitors", lambda conn: monitors.create(conn)),
    (6, "project base URL (for monitors)", lambda conn: _m6_base_url(conn)),
    (7, "public status page per project", lambda conn: _m7_status_page(conn)),
    (8, "heartbeat pings", lambda conn: heartbeats.create(conn)),
    (9, "maintenance windows", lambda conn: maintenance.create(conn)),
    (10, "remote probes", lambda conn: probes.create(conn)),
    (11, "notification channels and deliveries",
     lambda conn: _m11_channels(conn)),
    (12, "alerts: each rule's pending, firing and resolved alerts", alerts.create),
    (13, "alert rules applied from files", rules.create),
    (14, "incidents and the alerts they group", lambda conn: _m14_incidents(conn)),
    (15, "silences", silences.create),
    (16, "service level objectives applied from files", lambda conn: _m16_slos(conn)),
    (17, "report schedules", lambda conn: report_schedules.create(conn)),
    (18, "security findings", lambda conn: findings.create(conn)),
)


def _m16_slos(conn: Connection) -> None:
    # The table is declared by its module (store/slos.py), which imports this one.
    from shopwatch.store.slos import slos

    slos.create(conn)


def _m7_status_page(conn: Connection) -> None:
    conn.execute(sa.text(
        "ALTER TABLE projects ADD COLUMN status_slug VARCHAR(40) NOT NULL DEFAULT ''"))


def _m6_base_url(conn: Connection) -> None:
    conn.execute(sa.text("ALTER TABLE projects ADD COLUMN base_url TEXT NOT NULL DEFAULT ''"))


def _m4_rum(conn: Connection) -> None:
    conn.execute(sa.text("ALTER TABLE projects ADD COLUMN rum_origins TEXT NOT NULL DEFAULT ''"))
    conn.execute(sa.text(
        "ALTER TABLE projects ADD COLUMN rum_sample_rate FLOAT NOT NULL DEFAULT 1.0"))


@dataclass(frozen=True)
class Project:
    """A shop: what `project create --json` prints."""

    id: int
    name: str
    ingest_key: str | None  # None once revoked without a replacement
    secret_key: str | None
    currency: str = "USD"  # ISO 4217: the currency revenue is reported in
    timezone: str = "UTC"  # IANA name: where "today" starts and ends
    # Origins (scheme://host[:port]) whose pages may send RUM beacons; empty: any origin
    # may send, and none is answered with CORS headers.
    rum_origins: tuple[str, ...] = ()
    rum_sample_rate: float = 1.0  # share of sessions whose RUM telemetry is kept
    base_url: str = ""  # the shop's address, which relative monitor URLs join
    status_slug: str = ""  # public status page at /status/<slug>; '' when off

    def as_dict(self) -> dict[str, Any]:
        """The four fields of the CLI's ``--json`` contract (issue 2), nothing more."""
        return {"id": self.id, "name": self.name, "ingest_key": self.ingest_key,
                "secret_key": self.secret_key}


@dataclass(frozen=True)
class KeyInfo:
    project_id: int
    kind: KeyKind


def new_key(kind: KeyKind) -> str:
    """A fresh random key: prefix plus 32 bytes of urlsafe randomness."""
    return KEY_PREFIX[kind] + secrets.token_urlsafe(32)


def _now() -> datetime:
    return datetime.now(UTC)


class StateStore:
    """Projects and keys; see the module docstring."""

    def __init__(self, url_or_path: str | Path) -> None:
        url = str(url_or_path)
        if "://" not in url:
            url = f"sqlite:///{url}"
        self.engine: Engine = sa.create_engine(url)
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        self._migrate()

    def _migrate(self) -> None:
        with self.engine.begin() as conn:
            schema_migrations.create(conn, checkfirst=True)
            done = set(conn.execute(sa.select(schema_migrations.c.version)).scalars())
        for version, name, apply in MIGRATIONS:
            if version in done:
                continue
            with self.engine.begin() as conn:
                apply(conn)
                conn.execute(schema_migrations.insert().values(
                    version=version, name=name, applied_at=_now()))

    @property
    def schema_version(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.max(schema_migrations.c.version))).scalar()
                       or 0)

    def close(self) -> None:
        self.engine.dispose()

    # --- projects --------------------------------------------------------------------------

    def create_project(self, name: str, currency: str = "USD", timezone: str = "UTC") -> Project:
        """Create a project with fresh keys. Raises ConfigError when the name is taken or
        the currency or time zone is not valid."""
        name = name.strip()
        if not name or len(name) > 200:
            raise ConfigError("a project name must be 1 to 200 characters")
        currency, timezone = check_currency(currency), check_timezone(timezone)
        now = _now()
        with self.engine.begin() as conn:
            exists = conn.execute(sa.select(projects.c.id).where(
                sa.func.lower(projects.c.name) == name.lower())).first()
            if exists:
                raise ConfigError(f"a project named {name!r} exists already (id {exists[0]})")
            inserted = conn.execute(projects.insert().values(
                name=name, created_at=now, currency=currency, timezone=timezone))
            pid = inserted.inserted_primary_key
            assert pid is not None
            project_id = int(pid[0])
            keys = {kind: new_key(kind) for kind in ("ingest", "secret")}
            for kind, key in keys.items():
                conn.execute(api_keys.insert().values(
                    key=key, project_id=project_id, kind=kind, created_at=now))
        return Project(project_id, name, keys["ingest"], keys["secret"], currency, timezone)

    def list_projects(self) -> list[Project]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(projects.c.id, projects.c.name, projects.c.currency,
                          projects.c.timezone, projects.c.rum_origins,
                          projects.c.rum_sample_rate, projects.c.base_url,
                          projects.c.status_slug).order_by(projects.c.id)).all()
            keys = conn.execute(
                sa.select(api_keys.c.project_id, api_keys.c.kind, api_keys.c.key)
                .where(api_keys.c.revoked_at.is_(None))).all()
        live = {(pid, kind): key for pid, kind, key in keys}
        return [Project(pid, name, live.get((pid, "ingest")), live.get((pid, "secret")),
                        currency, timezone, tuple(origins.split()), float(rate), base_url,
                        slug)
                for pid, name, currency, timezone, origins, rate, base_url, slug in rows]

    def update_project(self, ref: str | int, *, name: str | None = None,
                       currency: str | None = None, timezone: str | None = None,
                       rum_origins: list[str] | None = None,
                       rum_sample_rate: float | None = None,
                       base_url: str | None = None,
                       status_slug: str | None = None) -> Project:
        """Rename a project or change its currency, time zone, RUM origins or RUM sample
        rate, base URL or status page slug (ConfigError naming the field if invalid)."""
        project = self.get_project(ref)
        values: dict[str, str | float] = {}
        if name is not None:
            name = name.strip()
            if not name or len(name) > 200:
                raise ConfigError("name: a project name must be 1 to 200 characters")
            values["name"] = name
        if currency is not None:
            values["currency"] = check_currency(currency)
        if timezone is not None:
            values["timezone"] = check_timezone(timezone)
        if rum_origins is not None:
            values["rum_origins"] = " ".join(check_origin(o) for o in rum_origins if o.strip())
        if base_url is not None:
            values["base_url"] = check_base_url(base_url) if base_url.strip() else ""
        if status_slug is not None:
            values["status_slug"] = check_slug(status_slug) if status_slug.strip() else ""
        if rum_sample_rate is not None:
            if not 0.0 <= rum_sample_rate <= 1.0:
                raise ConfigError(f"rum_sample_rate: {rum_sample_rate:g} is not between 0 and 1")
            values["rum_sample_rate"] = float(rum_sample_rate)
        with self.engine.begin() as conn:
            if "name" in values:
                clash = conn.execute(sa.select(projects.c.id).where(
                    (sa.func.lower(projects.c.name) == str(values["name"]).lower())
                    & (projects.c.id != project.id))).first()
                if clash:
                    raise ConfigError(f"name: a project named {values['name']!r} exists already")
            if values.get("status_slug"):
                taken = conn.execute(sa.select(projects.c.id).where(
                    (projects.c.status_slug == values["status_slug"])
                    & (projects.c.id != project.id))).first()
                if taken:
                    raise ConfigError(f"status_slug: /status/{values['status_slug']} is used "
                                      "by another project")
            if values:
                conn.execute(projects.update().where(projects.c.id == project.id).values(**values))
        return self.get_project(project.id)

    def revoke_key(self, ref: str | int, kind: KeyKind) -> Project:
        """Revoke the project's current key of ``kind`` without issuing a new one (for a
        leaked key, or to stop ingest); :meth:`rotate_key` issues a fresh one."""
        project = self.get_project(ref)
        with self.engine.begin() as conn:
            conn.execute(api_keys.update().where(
                (api_keys.c.project_id == project.id) & (api_keys.c.kind == kind)
                & api_keys.c.revoked_at.is_(None)).values(revoked_at=_now()))
        return self.get_project(project.id)

    def get_project(self, ref: str | int) -> Project:
        """A project by id or (case-insensitive) name; NotFound says which exist."""
        all_projects = self.list_projects()
        for p in all_projects:
            if str(p.id) == str(ref) or p.name.lower() == str(ref).strip().lower():
                return p
        names = ", ".join(f"{p.id} ({p.name})" for p in all_projects) or "none yet"
        raise NotFound(f"no project {ref!r}; projects: {names}")

    def rotate_key(self, ref: str | int, kind: KeyKind) -> Project:
        """Revoke the project's current key of ``kind`` and issue a new one."""
        project = self.get_project(ref)
        now = _now()
        with self.engine.begin() as conn:
            conn.execute(api_keys.update().where(
                (api_keys.c.project_id == project.id) & (api_keys.c.kind == kind)
                & api_keys.c.revoked_at.is_(None)).values(revoked_at=now))
            conn.execute(api_keys.insert().values(
                key=new_key(kind), project_id=project.id, kind=kind, created_at=now))
        return self.get_project(project.id)

    def resolve_key(self, key: str) -> KeyInfo | None:
        """The project and kind of a live key, or None for an unknown or revoked key."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(api_keys.c.project_id, api_keys.c.kind).where(
                (api_keys.c.key == key) & api_keys.c.revoked_at.is_(None))).first()
        if row is None:
            return None
        return KeyInfo(int(row[0]), row[1])

    def instance_value(self, key: str) -> str:
        with self.engine.connect() as conn:
            value = conn.execute(sa.select(instance.c.value).where(instance.c.key == key)).scalar()
        if value is None:
            raise NotFound(f"instance setting {key!r} missing")
        return str(value)


def check_currency(code: str) -> str:
    """An ISO 4217 code, upper-cased; ConfigError otherwise."""
    code = code.strip().upper()
    if len(code) != 3 or not code.isalpha() or not code.isascii():
        raise ConfigError(f"currency: {code!r} is not a three-letter ISO 4217 code (e.g. EUR)")
    return code


def check_slug(slug: str) -> str:
    """A status page address: 3 to 40 lower-case letters, digits and dashes."""
    text = slug.strip().lower()
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{2,39}", text):
        raise ConfigError(f"status_slug: {slug!r} must be 3 to 40 lower-case letters, digits "
                          "and dashes, starting with a letter or digit")
    return text


def check_base_url(url: str) -> str:
    """An absolute http(s) URL without query or fragment, or ConfigError."""
    text = url.strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query \
            or parts.fragment:
        raise ConfigError(f"base_url: {url!r} is not an address like https://shop.example")
    return text.rstrip("/")


def check_origin(origin: str) -> str:
    """A web origin as browsers send it (``https://shop.example`` or with a port), or
    ConfigError saying what is wrong."""
    text = origin.strip().rstrip("/")
    parts = urlsplit(text)
    if (parts.scheme not in ("http", "https") or not parts.hostname or parts.path
            or parts.query or parts.fragment or parts.username is not None):
        raise ConfigError(f"rum_origins: {origin!r} is not an origin like "
                          "https://shop.example (scheme, host and optional port, no path)")
    try:
        parts.port  # noqa: B018 (raises for a bad port)
    except ValueError:
        raise ConfigError(f"rum_origins: {origin!r} has an invalid port") from None
    return text.lower()


def check_timezone(name: str) -> str:
    """An IANA time zone name; ConfigError otherwise."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    name = name.strip()
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"timezone: {name!r} is not an IANA time zone "
                          "(e.g. Europe/Paris, America/New_York, UTC)") from None
    return name


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets the CLI write keys while the server reads them; busy_timeout waits out
    # the other process's short write instead of failing with "database is locked".
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()
