"""One declarative table of settings.

Every knob Shopwatch has is a row of :data:`SETTINGS`: its name, default, type and
help text. The same table drives the environment (``SHOPWATCH_<NAME>``), the ``.env``
file, CLI flags, ``shopwatch settings`` and ``docs/configuration.md`` (a test checks that
every row is documented there).

Precedence, highest first: explicit overrides (CLI flags) > process environment >
``.env`` in the working directory > the default.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

from shopwatch.errors import ConfigError

ENV_PREFIX = "SHOPWATCH_"


def _parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"expected true/false, got {raw!r}")


def parse_duration(raw: str) -> float:
    """Seconds from ``"90"``, ``"90s"``, ``"5m"``, ``"2h"`` or ``"7d"``."""
    text = raw.strip().lower()
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
    for suffix in ("ms", "s", "m", "h", "d"):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * units[suffix]
    return float(text)


def _parse_size(raw: str) -> int:
    """Bytes from ``"1048576"``, ``"512KiB"``, ``"1MiB"``, ``"1MB"``."""
    text = raw.strip().lower().replace(" ", "")
    units = {"kib": 1024, "mib": 1024**2, "gib": 1024**3, "kb": 1000, "mb": 1000**2, "gb": 1000**3}
    for suffix, factor in units.items():
        if text.endswith(suffix):
            return int(float(text[: -len(suffix)]) * factor)
    if text.endswith("b"):
        text = text[:-1]
    return int(text)


def _fraction(raw: str) -> float:
    """A number from 0 to 1 (``"0.8"``; ``"80%"`` is read as 0.8)."""
    text = raw.strip()
    value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    if not 0 <= value <= 1:
        raise ValueError(f"expected a number from 0 to 1, got {raw!r}")
    return value


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return value
    return parse


def _int_range(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        value = int(raw.strip())
        if not low <= value <= high:
            raise ValueError(f"must be from {low} to {high}")
        return value
    return parse


def _health_weights(raw: str) -> str:
    from shopwatch.analytics.customers import check_weights

    return check_weights(raw)


@dataclass(frozen=True)
class Setting:
    """One row of the settings table."""

    name: str
    default: Any
    parse: Callable[[str], Any]
    type_name: str
    help: str

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()


def _s(name: str, default: Any, parse: Callable[[str], Any], type_name: str, help: str) -> Setting:
    return Setting(name, default, parse, type_name, help)


SETTINGS: tuple[Setting, ...] = (
    _s("data_dir", "./shopwatch-data", str, "path",
       "Directory holding the event store (events.duckdb) and the state store (state.sqlite)."),
    _s("host", "127.0.0.1", str, "string", "Address `shopwatch serve` listens on."),
    _s("port", 8080, int, "integer", "TCP port `shopwatch serve` listens on."),
    _s("log_level", "info", str, "string", "Log level: debug, info, warning or error."),
    _s("max_body_bytes", 1024 * 1024, _parse_size, "size",
       "Largest request body accepted, measured after gzip decompression (413 above it)."),
    _s("max_events_per_request", 1000, int, "integer",
       "Most events one ingest request may carry (413 above it)."),
    _s("max_future_skew", 300.0, parse_duration, "duration",
       "Events stamped further than this in the future are clamped to receive time "
       "and flagged `ts_clamped`."),
    _s("max_event_age", 7 * 86400.0, parse_duration, "duration",
       "Events stamped older than this are clamped to receive time and flagged `ts_clamped`."),
    _s("dedup_window", 7 * 86400.0, parse_duration, "duration",
       "How long a client event id is remembered: the same id sent again within this "
       "window is acknowledged but stored once."),
    _s("writer_queue_events", 200_000, int, "integer",
       "Most events waiting for the writer; beyond it ingest answers 503 with Retry-After."),
    _s("writer_batch_events", 50_000, int, "integer",
       "Most events the writer commits in one transaction (group commit)."),
    _s("store_process", True, _parse_bool, "boolean",
       "Run the event store (DuckDB) in a child process, so that committing and handling "
       "requests each get a core instead of taking turns on Python's GIL."),
    _s("duckdb_threads", 2, int, "integer",
       "Threads DuckDB may use; 0 means one per core. Dashboard queries over a month "
       "take about 40 % less time with 2 than with 1 (docs/benchmarks.md); 1 leaves a "
       "core to request handling under the heaviest ingest."),
    _s("duckdb_memory_limit", 256 * 1024 * 1024, _parse_size, "size",
       "Most memory DuckDB keeps for its buffers and query state; beyond it, it spills "
       "to a temporary directory beside the database. Bounds the server's resident "
       "memory (issue 5's bar is under 500 MB in all)."),
    _s("duckdb_checkpoint_threshold", 256 * 1024 * 1024, _parse_size, "size",
       "WAL size at which DuckDB folds it into the database file. Larger means fewer, "
       "cheaper checkpoints under load and a longer replay after a crash."),
    _s("commit_timeout", 10.0, parse_duration, "duration",
       "How long an ingest request waits for its commit before answering 503."),
    _s("ingest_rate_limit", 0, int, "integer",
       "Events per second one project may send (token bucket, burst of one second's worth); "
       "0 means unlimited. Over it ingest answers 429 with Retry-After."),
    _s("retry_after", 1, int, "integer", "Seconds sent in Retry-After on 429 and 503 answers."),
    _s("rum_max_body_bytes", 64 * 1024, _parse_size, "size",
       "Largest RUM beacon accepted (413 above it); browsers cap a sendBeacon body at "
       "64 KiB, and the snippet sends well under it."),
    _s("otlp_max_body_bytes", 8 * 1024 * 1024, _parse_size, "size",
       "Largest OTLP/HTTP request body accepted (/v1/traces, /v1/metrics, /v1/logs), "
       "measured after gzip decompression (413 above it). An SDK's batch of 512 spans is "
       "well under 1 MiB."),
    _s("geoip_database", "", str, "path",
       "A MaxMind-format country database (.mmdb: GeoLite2 Country, DB-IP Country Lite...) "
       "to give RUM beacons and server events sent with an `ip` a country. Empty: no "
       "country is looked up. Addresses are never stored either way."),
    _s("network_prefix_v4", 24, _int_range(8, 32), "integer 8-32",
       "Bits of a shopper's IPv4 address kept on server-sent events (as `net_prefix`, "
       "e.g. 203.0.113.0/24); the address itself is never stored."),
    _s("network_prefix_v6", 48, _int_range(16, 128), "integer 16-128",
       "Bits of a shopper's IPv6 address kept on server-sent events (as `net_prefix`, "
       "e.g. 2001:db8:1::/48); the address itself is never stored."),
    _s("checks_enabled", True, _parse_bool, "boolean",
       "Run the projects' monitors on their schedules in `shopwatch serve`."),
    _s("checks_concurrency", 50, int, "integer",
       "Most monitor checks running at once; due checks wait for a free slot."),
    _s("checks_allow", "", str, "comma list",
       "Private or loopback addresses, networks (10.0.0.0/8) or host names that monitors "
       "run by the server may reach; all other non-public addresses are refused."),
    _s("checks_location", "local", str, "string",
       "This server's location: its check results carry it, and monitors whose "
       "`locations` name it run here (1-32 lower-case letters, digits or -; probes "
       "have other names)."),
    _s("url_query_allow", "", str, "comma list",
       "Query parameters kept in page and referrer URLs besides utm_*; all others are dropped."),
    _s("metrics_token", "", str, "secret",
       "Bearer token required by /metrics. Empty: /metrics answers loopback clients only."),
    _s("read_limit_max", 1000, int, "integer", "Largest `limit` accepted by GET /api/v1/events."),
    _s("session_idle_timeout", 12 * 3600.0, parse_duration, "duration",
       "A dashboard session unused for this long ends (the user signs in again)."),
    _s("session_lifetime", 14 * 86400.0, parse_duration, "duration",
       "A dashboard session ends this long after sign-in, however active."),
    _s("login_max_failures", 5, int, "integer",
       "Failed sign-ins, per account and per client address, that lock sign-in out for "
       "the rest of `login_failure_window`."),
    _s("login_failure_window", 300.0, parse_duration, "duration",
       "The window in which failed sign-ins are counted for the lock-out."),
    _s("cookie_secure", "auto", _choice("auto", "always", "never"), "auto|always|never",
       "The session cookie's `Secure` flag: `auto` sets it when the request came over "
       "HTTPS (directly, or `X-Forwarded-Proto: https` from a proxy on 127.0.0.1)."),
    _s("smtp_host", "", str, "string",
       "SMTP server that sends `email` notification channels' messages. Empty: no e-mail "
       "channels (Apprise `mailto://` URLs carry their own server)."),
    _s("smtp_port", 587, int, "integer",
       "TCP port of `smtp_host` (587 for starttls, 465 for tls, 25 for none)."),
    _s("smtp_username", "", str, "string", "User name to sign in to `smtp_host`; empty: none."),
    _s("smtp_password", "", str, "secret", "Password to sign in to `smtp_host`."),
    _s("smtp_from", "Shopwatch <shopwatch@localhost>", str, "string",
       "The From address of notification e-mails."),
    _s("smtp_security", "starttls", _choice("none", "starttls", "tls"), "none|starttls|tls",
       "How the SMTP connection is encrypted: `starttls` upgrades a plain connection, "
       "`tls` is TLS from the start, `none` is plain text (a relay on localhost only)."),
    _s("notify_timeout", 10.0, parse_duration, "duration",
       "How long one notification attempt (webhook, SMTP, each Apprise service) may take "
       "before it counts as failed and is retried."),
    _s("alerts_interval", 60.0, parse_duration, "duration",
       "How often `shopwatch serve` evaluates the projects' alert rules; 0 turns alert "
       "evaluation off."),
    _s("alerts_group_interval", 300.0, parse_duration, "duration",
       "How long alerts that join an incident already notified wait, so that a storm is "
       "told in one message (Alertmanager's group_interval); 0 tells each at once."),
    _s("reports_interval", 60.0, parse_duration, "duration",
       "How often `shopwatch serve` looks for scheduled reports that are due and e-mails "
       "them (docs/reports.md); 0 turns sending reports off."),
    _s("alerts_incident_window", 600.0, parse_duration, "duration",
       "How long after an incident was detected an alert that fires still joins it; a "
       "later alert opens an incident of its own."),
    _s("security_interval", 60.0, parse_duration, "duration",
       "How often `shopwatch serve` runs the security detections (brute force, "
       "credential stuffing, card testing, account takeover, bots, sign-up abuse; "
       "docs/security.md) and files their findings; 0 turns them off."),
    _s("service_level_threshold", 20.0, parse_duration, "duration",
       "Service desk: a phone or chat contact answered within this wait counts as answered "
       "in time; one abandoned within it is a short abandon, left out of the service level "
       "(docs/service-desk.md)."),
    _s("service_level_target", 0.8, _fraction, "fraction 0-1",
       "Service desk: the share of contacts to answer within `service_level_threshold` "
       "(0.8: the classic 80/20), drawn as the target line."),
    _s("customer_churn_days", 180, _int_range(1, 3650), "integer 1-3650",
       "A customer without an order in this many days (before the end of the period) "
       "counts as churned on the Customers page (docs/customers.md)."),
    _s("customer_health_weights",
       "recency=0.3,frequency=0.2,monetary=0.2,satisfaction=0.2,support=0.1",
       _health_weights, "weights",
       "Weights of the customer health score's components (recency, frequency, "
       "monetary, satisfaction, support; each 0-100, one at least above 0; a component "
       "not named weighs 0). Without a survey answer a customer's satisfaction is left "
       "out and the other weights re-normalised (docs/customers.md)."),
    _s("public_url", "", str, "string",
       "The dashboard's address as people reach it (https://shopwatch.example), for the "
       "links in notifications; empty: notifications carry no link."),
)

_BY_NAME = {s.name: s for s in SETTINGS}


@dataclass(frozen=True)
class Settings:
    """Resolved settings; attribute access by setting name (``settings.port``)."""

    values: Mapping[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def data_path(self) -> Path:
        return Path(self.values["data_dir"])

    @property
    def query_allow(self) -> frozenset[str]:
        raw: str = self.values["url_query_allow"]
        return frozenset(p.strip() for p in raw.split(",") if p.strip())

    def replace(self, **overrides: Any) -> Settings:
        """A copy with some values replaced (values are taken as already typed)."""
        unknown = set(overrides) - set(_BY_NAME)
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        return Settings({**self.values, **overrides})


def load(
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    env_file: str | Path | None = ".env",
) -> Settings:
    """Resolve every setting from overrides, environment, ``.env`` and defaults.

    ``overrides`` holds values already typed (from CLI flags); ``None`` values are
    ignored so unset flags fall through. Raises :class:`ConfigError` naming the setting,
    its source and the reason when a value does not parse.
    """
    environ = os.environ if environ is None else environ
    file_values: dict[str, str | None] = {}
    if env_file is not None and Path(env_file).is_file():
        file_values = dict(dotenv_values(env_file))
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        if overrides and overrides.get(setting.name) is not None:
            values[setting.name] = overrides[setting.name]
            continue
        raw: str | None = None
        source = ""
        if setting.env in environ:
            raw, source = environ[setting.env], f"environment variable {setting.env}"
        elif file_values.get(setting.env) is not None:
            raw, source = file_values[setting.env], f"{env_file}: {setting.env}"
        if raw is None:
            values[setting.name] = setting.default
            continue
        try:
            values[setting.name] = setting.parse(raw)
        except ValueError as exc:
            raise ConfigError(
                f"{source}={raw!r} is not a valid {setting.type_name}: {exc}"
            ) from None
    return Settings(values)


def defaults() -> Settings:
    """Every setting at its default (no environment, no .env) — for tests and docs."""
    return Settings({s.name: s.default for s in SETTINGS})


def markdown_table() -> str:
    """The settings table as Markdown, as pasted in docs/configuration.md."""
    lines = ["| setting | environment variable | type | default | meaning |",
             "|---|---|---|---|---|"]
    for s in SETTINGS:
        lines.append(f"| `{s.name}` | `{s.env}` | {s.type_name} | `{s.default!r}` | {s.help} |")
    return "\n".join(lines)
