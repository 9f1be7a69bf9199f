"""The embedded event store: one DuckDB file.

Concurrency contract: DuckDB allows one writing process. Within it, :meth:`write` is
called by the single writer thread only (see ``ingest/writer.py``); reads open their
own cursor and may run on any thread, seeing committed data (MVCC).

Deduplication: a client-supplied event id is remembered in ``event_ids`` (a 128-bit
hash of project and id, under a primary key) for ``dedup_window``; an event whose id
is already there is acknowledged but not stored again. Keeping the index in its own
pruned table, rather than on ``events``, bounds its memory by the window instead of by
the whole history.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import duckdb
import msgspec
import pyarrow as pa

from shopwatch.analytics import rollup
from shopwatch.beacon import RUM_COLUMNS, RumRow
from shopwatch.checks.record import CHECK_COLUMNS, CheckRow
from shopwatch.errors import StoreError
from shopwatch.events import Device, Event
from shopwatch.store.base import EVENT_COLUMNS, EventBatch, EventQuery, Prelude, files_bytes
from shopwatch.telemetry import (
    LOG_COLUMNS,
    METRIC_COLUMNS,
    SPAN_COLUMNS,
    LogRow,
    MetricRow,
    SpanRow,
)

log = logging.getLogger(__name__)

MIGRATIONS: Final[tuple[tuple[int, str, tuple[str, ...]], ...]] = (
    (1, "events and the dedup index", (
        """CREATE TABLE events (
            project_id INTEGER NOT NULL,
            id VARCHAR NOT NULL,
            name VARCHAR NOT NULL,
            ts TIMESTAMP NOT NULL,
            received_at TIMESTAMP NOT NULL,
            session_id VARCHAR, anonymous_id VARCHAR, user_id VARCHAR,
            page VARCHAR, referrer VARCHAR,
            utm_source VARCHAR, utm_medium VARCHAR, utm_campaign VARCHAR,
            utm_term VARCHAR, utm_content VARCHAR,
            device_category VARCHAR, browser VARCHAR, browser_version VARCHAR,
            os VARCHAR, os_version VARCHAR, language VARCHAR, country VARCHAR,
            screen_width INTEGER, screen_height INTEGER,
            value DOUBLE, currency VARCHAR, transaction_id VARCHAR,
            params JSON,
            flags VARCHAR[]
        )""",
        "CREATE TABLE event_ids (uid UUID PRIMARY KEY, seen TIMESTAMP NOT NULL)",
    )),
    (2, "real-user monitoring rows", (
        """CREATE TABLE rum (
            project_id INTEGER NOT NULL,
            received_at TIMESTAMP NOT NULL,
            kind VARCHAR NOT NULL,
            ts TIMESTAMP NOT NULL,
            session_id VARCHAR, view_id VARCHAR, user_id VARCHAR,
            page VARCHAR, referrer VARCHAR, spa BOOLEAN,
            device_category VARCHAR, browser VARCHAR, browser_version VARCHAR, os VARCHAR,
            country VARCHAR, viewport_width INTEGER, viewport_height INTEGER,
            connection VARCHAR,
            dns_ms DOUBLE, connect_ms DOUBLE, tls_ms DOUBLE, ttfb_ms DOUBLE,
            dom_interactive_ms DOUBLE, load_ms DOUBLE,
            fcp_ms DOUBLE, lcp_ms DOUBLE, cls DOUBLE, inp_ms DOUBLE,
            lcp_target VARCHAR, cls_target VARCHAR, inp_target VARCHAR, visible_ms DOUBLE,
            error_type VARCHAR, message VARCHAR, stack VARCHAR, source VARCHAR,
            line INTEGER, col INTEGER, fingerprint VARCHAR,
            resource_url VARCHAR, resource_host VARCHAR, resource_type VARCHAR,
            duration_ms DOUBLE, failed BOOLEAN
        )""",
    )),
    (3, "monitor results", (
        """CREATE TABLE check_results (
            project_id INTEGER NOT NULL,
            received_at TIMESTAMP NOT NULL,
            ts TIMESTAMP NOT NULL,
            monitor VARCHAR NOT NULL, kind VARCHAR NOT NULL, location VARCHAR NOT NULL,
            ok BOOLEAN NOT NULL, attempts INTEGER NOT NULL, duration_ms DOUBLE NOT NULL,
            status INTEGER, dns_ms DOUBLE, connect_ms DOUBLE, tls_ms DOUBLE,
            first_byte_ms DOUBLE, transfer_ms DOUBLE, failure VARCHAR, steps JSON
        )""",
    )),
    (4, "OpenTelemetry spans, metric points and logs", (
        """CREATE TABLE spans (
            project_id INTEGER NOT NULL,
            received_at TIMESTAMP NOT NULL,
            ts TIMESTAMP NOT NULL,
            trace_id VARCHAR NOT NULL, span_id VARCHAR NOT NULL,
            service VARCHAR NOT NULL, name VARCHAR NOT NULL,
            kind VARCHAR NOT NULL, status VARCHAR NOT NULL, duration_ms DOUBLE NOT NULL,
            parent_span_id VARCHAR, status_message VARCHAR,
            http_route VARCHAR, http_method VARCHAR, http_status INTEGER,
            db_system VARCHAR, db_operation VARCHAR, server_address VARCHAR,
            peer_service VARCHAR, exception_type VARCHAR, exception_message VARCHAR,
            session_id VARCHAR, exceptions JSON, attributes JSON, resource JSON
        )""",
        """CREATE TABLE metric_points (
            project_id INTEGER NOT NULL,
            received_at TIMESTAMP NOT NULL,
            ts TIMESTAMP NOT NULL,
            service VARCHAR NOT NULL, name VARCHAR NOT NULL, kind VARCHAR NOT NULL,
            unit VARCHAR, start_ts DOUBLE, value DOUBLE, count BIGINT, sum DOUBLE,
            min DOUBLE, max DOUBLE, bounds JSON, counts JSON, monotonic BOOLEAN,
            temporality VARCHAR, attributes JSON
        )""",
        """CREATE TABLE logs (
            project_id INTEGER NOT NULL,
            received_at TIMESTAMP NOT NULL,
            ts TIMESTAMP NOT NULL,
            service VARCHAR NOT NULL, severity VARCHAR, severity_number INTEGER,
            body VARCHAR, trace_id VARCHAR, span_id VARCHAR, attributes JSON
        )""",
    )),
    # Browser to backend: the trace that served a page view or an API call (docs/rum.md).
    (5, "trace ids on real-user rows", (
        "ALTER TABLE rum ADD COLUMN trace_id VARCHAR",
    )),
    # Server-sent events on a shopper's behalf: the network of their address (never
    # the address) and their browser's user agent (docs/privacy.md, "Client networks").
    (6, "client networks and user agents on events", (
        "ALTER TABLE events ADD COLUMN net_prefix VARCHAR",
        "ALTER TABLE events ADD COLUMN net_hash VARCHAR",
        "ALTER TABLE events ADD COLUMN user_agent VARCHAR",
    )),
)

def _json_structure() -> str:
    """The ``from_json`` structure of one stored event (see EventBatch)."""
    device = {f: "INTEGER" if f.startswith("screen_") else "VARCHAR"
              for f in Device.__struct_fields__}
    fields: dict[str, object] = {}
    for name in Event.__struct_fields__:
        fields[name] = {"ts": "DOUBLE", "device": device, "params": "JSON"}.get(name, "VARCHAR")
    fields["flags"] = ["VARCHAR"]
    return msgspec.json.encode([fields]).decode()


_STRUCTURE = _json_structure()


def _structure(struct: type[msgspec.Struct]) -> str:
    """The ``from_json`` structure of one row of a struct of scalar fields (lists and
    dicts are kept as JSON)."""
    # BIGINT: a cumulative counter outgrows 32 bits; INTEGER columns take it by a cast.
    types = {int: "BIGINT", float: "DOUBLE", bool: "BOOLEAN", str: "VARCHAR"}
    fields = {}
    for f in msgspec.structs.fields(struct):
        args = getattr(f.type, "__args__", (f.type,))
        base = next((t for t in types if t in args), None)
        fields[f.name] = types[base] if base is not None else "JSON"
    return msgspec.json.encode([fields]).decode()


def _insert_sql(table: str, columns: Sequence[str], struct: type[msgspec.Struct],
                payload: str, count: str) -> str:
    """``INSERT`` of the rows in ``incoming``'s JSON column ``payload`` into ``table``."""
    fields = [c for c in columns if c not in ("project_id", "received_at")]
    select = ", ".join("make_timestamp(CAST(r.ts * 1000000 AS BIGINT))" if c == "ts"
                       else f"r.{c}" for c in fields)
    return f"""
INSERT INTO {table} ({", ".join(columns)})
SELECT project_id, received_at, {select}
FROM (SELECT project_id, received_at,
             unnest(from_json(decode({payload}), '{_structure(struct)}')) AS r
      FROM incoming WHERE {count} > 0)
"""


_INSERT_RUM = _insert_sql("rum", RUM_COLUMNS, RumRow, "rum", "n_rum")
_INSERT_CHECKS = _insert_sql("check_results", CHECK_COLUMNS, CheckRow, "checks", "n_checks")
_INSERT_SPANS = _insert_sql("spans", SPAN_COLUMNS, SpanRow, "spans", "n_spans")
_INSERT_METRICS = _insert_sql("metric_points", METRIC_COLUMNS, MetricRow, "metrics",
                              "n_metrics")
_INSERT_LOGS = _insert_sql("logs", LOG_COLUMNS, LogRow, "logs", "n_logs")
# Client ids come as a list per request (from the pipeline), so the dedup index is
# updated without parsing the payload; the payload is parsed once, in the events insert.
_UID = "md5(project_id::VARCHAR || ':' || {id})::UUID"
_INSERT_IDS = f"""
INSERT OR IGNORE INTO event_ids
SELECT {_UID.format(id="id")}, any_value(received_at)
FROM (SELECT project_id, received_at, unnest(ids) AS id FROM incoming)
GROUP BY ALL RETURNING uid
"""
_ROW = """project_id, COALESCE(e.id, uuid()::VARCHAR),
  e.name, COALESCE(make_timestamp(CAST(e.ts * 1000000 AS BIGINT)), received_at), received_at,
  e.session_id, e.anonymous_id, e.user_id, e.page, e.referrer,
  e.utm_source, e.utm_medium, e.utm_campaign, e.utm_term, e.utm_content,
  e.device.category, e.device.browser, e.device.browser_version, e.device.os,
  e.device.os_version, e.device.language, e.device.country,
  e.device.screen_width, e.device.screen_height,
  TRY_CAST(e.params->>'$.value' AS DOUBLE), e.params->>'$.currency',
  e.params->>'$.transaction_id', e.params, COALESCE(e.flags, []),
  e.net_prefix, e.net_hash, e.user_agent"""
_PARSED = f"""(SELECT project_id, received_at,
                unnest(from_json(decode(payload), '{_STRUCTURE}')) AS e FROM incoming)"""
_INSERT_ALL = f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) SELECT {_ROW} FROM {_PARSED}"
# Only when some id was seen before (or twice in this commit): keep the fresh ones, once.
_INSERT_FRESH = f"""
INSERT INTO events ({", ".join(EVENT_COLUMNS)})
SELECT {_ROW} FROM {_PARSED} WHERE e.id IS NULL
UNION ALL
SELECT * EXCLUDE (uid) FROM (
    SELECT {_ROW}, {_UID.format(id="e.id")} AS uid FROM {_PARSED}
    WHERE e.id IS NOT NULL AND {_UID.format(id="e.id")} IN (SELECT uid::UUID FROM fresh)
    QUALIFY row_number() OVER (PARTITION BY uid) = 1)
"""
_READ_COLS = [c for c in EVENT_COLUMNS if c not in ("ts", "received_at", "project_id")]
_INCOMING = pa.schema([("project_id", pa.int32()), ("received_at", pa.timestamp("us")),
                       ("payload", pa.binary()), ("ids", pa.list_(pa.string())),
                       ("rum", pa.binary()), ("n_rum", pa.int32()),
                       ("checks", pa.binary()), ("n_checks", pa.int32()),
                       ("spans", pa.binary()), ("n_spans", pa.int32()),
                       ("metrics", pa.binary()), ("n_metrics", pa.int32()),
                       ("logs", pa.binary()), ("n_logs", pa.int32())])


def duckdb_config(*, threads: int, checkpoint_threshold: int,
                  memory_limit: int) -> dict[str, str | bool | int | float | list[str]]:
    """The connection configuration of the event store. Another connection to the same
    file in the same process must pass the same one (DuckDB shares the database only
    between matching configurations)."""
    config: dict[str, str | bool | int | float | list[str]] = {
        "checkpoint_threshold": f"{checkpoint_threshold}B",
        "memory_limit": f"{memory_limit}B"}
    if threads > 0:
        config["threads"] = threads
    return config


class DuckDBEventStore:
    """Events in ``<data_dir>/events.duckdb``; see the module docstring."""

    def __init__(self, path: Path, *, threads: int = 1,
                 checkpoint_threshold: int = 256 * 1024 * 1024,
                 memory_limit: int = 256 * 1024 * 1024,
                 lock_wait: float = 3.0) -> None:
        self._path = path
        config = duckdb_config(threads=threads, checkpoint_threshold=checkpoint_threshold,
                               memory_limit=memory_limit)
        # A store process whose parent was killed may hold the file lock for a moment
        # while it exits: wait for it rather than fail a restart.
        deadline = time.monotonic() + lock_wait
        while True:
            try:
                self._con = duckdb.connect(str(path), config=config)
                break
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower() or time.monotonic() >= deadline:
                    raise StoreError(
                        f"cannot open {path}: {exc}. Is another `shopwatch serve` using this "
                        "data directory? Stop it, or pass a different --data.") from None
                time.sleep(0.2)
        self._writer = self._con.cursor()
        self._lock = threading.Lock()  # guards cursor creation only
        self._migrate()

    def _migrate(self) -> None:
        con = self._con
        con.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
                    " name VARCHAR, applied_at TIMESTAMP DEFAULT current_timestamp)")
        done = {row[0] for row in con.execute("SELECT version FROM schema_migrations").fetchall()}
        for version, name, statements in MIGRATIONS:
            if version in done:
                continue
            con.execute("BEGIN")
            for sql in statements:
                con.execute(sql)
            con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)",
                        [version, name])
            con.execute("COMMIT")
        rollup.ensure_schema(self._run)
        rollup.mark_pending(self._run)  # so the pending count is right from the start

    def _run(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """One statement on the writer's cursor (for the rollup maintenance)."""
        rows: list[tuple[Any, ...]] = self._writer.execute(sql, list(params)).fetchall()
        return rows

    @property
    def path(self) -> Path:
        return self._path

    @property
    def schema_version(self) -> int:
        row = self._cursor().execute("SELECT max(version) FROM schema_migrations").fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        with self._lock:
            return self._con.cursor()

    # --- writing (writer thread only) -----------------------------------------------------

    def write(self, batches: Sequence[EventBatch]) -> int:
        table = pa.Table.from_arrays([
            pa.array([b.project_id for b in batches], pa.int32()),
            pa.array([b.received_at_us for b in batches], pa.timestamp("us")),
            pa.array([b.payload for b in batches], pa.binary()),
            pa.array([b.ids for b in batches], pa.list_(pa.string())),
            pa.array([b.rum for b in batches], pa.binary()),
            pa.array([b.n_rum for b in batches], pa.int32()),
            pa.array([b.checks for b in batches], pa.binary()),
            pa.array([b.n_checks for b in batches], pa.int32()),
            pa.array([b.spans for b in batches], pa.binary()),
            pa.array([b.n_spans for b in batches], pa.int32()),
            pa.array([b.metrics for b in batches], pa.binary()),
            pa.array([b.n_metrics for b in batches], pa.int32()),
            pa.array([b.logs for b in batches], pa.binary()),
            pa.array([b.n_logs for b in batches], pa.int32()),
        ], schema=_INCOMING)
        n_events = sum(b.n for b in batches)
        n_ids = sum(len(b.ids) for b in batches)
        cur = self._writer
        cur.register("incoming", table)
        try:
            cur.execute("BEGIN")
            # .sql() (not .execute()) hands RETURNING rows to Arrow without a copy; the
            # relation is materialised exactly once, by to_arrow_table().
            fresh = cur.sql(_INSERT_IDS).to_arrow_table() if n_ids else None
            if fresh is None or fresh.num_rows == n_ids:
                cur.execute(_INSERT_ALL)
                stored = n_events
            else:
                cur.register("fresh", fresh)
                row = cur.execute(_INSERT_FRESH).fetchone()
                stored = int(row[0]) if row else 0
            if any(b.n_rum for b in batches):
                cur.execute(_INSERT_RUM)
            if any(b.n_checks for b in batches):
                cur.execute(_INSERT_CHECKS)
            if any(b.n_spans for b in batches):
                cur.execute(_INSERT_SPANS)
            if any(b.n_metrics for b in batches):
                cur.execute(_INSERT_METRICS)
            if any(b.n_logs for b in batches):
                cur.execute(_INSERT_LOGS)
            cur.execute("COMMIT")
        except duckdb.Error as exc:
            with contextlib.suppress(duckdb.Error):
                cur.execute("ROLLBACK")
            raise StoreError(f"event store write failed: {exc}") from exc
        finally:
            for view in ("incoming", "fresh"):
                with contextlib.suppress(duckdb.Error):
                    cur.unregister(view)
        return stored

    def checkpoint(self) -> None:
        """Fold the WAL into the database file (the writer calls it when idle). Skipped,
        not failed, while another connection's write transaction is open (a check result
        or RUM batch being written): DuckDB refuses a checkpoint then, and the next idle
        moment folds the WAL instead (a forced checkpoint would abort that write)."""
        try:
            self._writer.execute("CHECKPOINT")
        except duckdb.TransactionException as exc:
            log.debug("checkpoint skipped: %s", exc)

    def refresh_rollups(self, budget_s: float) -> int:
        try:
            return rollup.refresh(self._run, budget_s=budget_s)
        except duckdb.Error as exc:
            with contextlib.suppress(duckdb.Error):
                self._writer.execute("ROLLBACK")
            raise StoreError(f"rollup refresh failed: {exc}") from exc

    def prune_dedup(self, older_than_us: int) -> int:
        cur = self._writer
        row = cur.execute("DELETE FROM event_ids WHERE seen < make_timestamp(?::BIGINT) "
                          "RETURNING 1", [older_than_us]).fetchall()
        return len(row)

    # --- reading (any thread) -------------------------------------------------------------

    def query_events(self, query: EventQuery) -> list[dict[str, Any]]:
        where = ["project_id = ?"]
        args: list[Any] = [query.project_id]
        if query.since_us is not None:
            where.append("ts >= make_timestamp(?::BIGINT)")
            args.append(query.since_us)
        if query.until_us is not None:
            where.append("ts < make_timestamp(?::BIGINT)")
            args.append(query.until_us)
        if query.received_since_us is not None:
            where.append("received_at >= make_timestamp(?::BIGINT)")
            args.append(query.received_since_us)
        if query.names:
            where.append(f"name IN ({', '.join('?' for _ in query.names)})")
            args.extend(query.names)
        order = "DESC" if query.newest_first else "ASC"
        keys = ("received_at", "ts") if query.by_received else ("ts", "received_at")
        sql = (f"SELECT epoch_us(ts), epoch_us(received_at), {', '.join(_READ_COLS)} FROM events "
               f"WHERE {' AND '.join(where)} "
               f"ORDER BY {keys[0]} {order}, {keys[1]} {order}, id {order} LIMIT ?")
        args.append(query.limit)
        rows = self._cursor().execute(sql, args).fetchall()
        out = []
        for row in rows:
            record = dict(zip(["ts_us", "received_at_us", *_READ_COLS], row, strict=True))
            if record["params"] is not None:
                record["params"] = msgspec.json.decode(record["params"])
            out.append(record)
        return out

    def count(self, project_id: int | None = None) -> int:
        """Stored events (of one project, or all)."""
        if project_id is None:
            row = self._cursor().execute("SELECT count(*) FROM events").fetchone()
        else:
            row = self._cursor().execute(
                "SELECT count(*) FROM events WHERE project_id = ?", [project_id]).fetchone()
        return int(row[0]) if row else 0

    def query(self, sql: str, params: Sequence[Any] = (), *,
              prelude: tuple[str, Sequence[Any]] | None = None) -> list[tuple[Any, ...]]:
        cursor = self._cursor()
        try:
            if prelude is None:
                rows: list[tuple[Any, ...]] = cursor.execute(sql, list(params)).fetchall()
                return rows
            # One transaction: one snapshot for both statements.
            cursor.execute("BEGIN TRANSACTION")
            first = cursor.execute(prelude[0], list(prelude[1])).fetchone()
            if first is None:
                raise StoreError("the prelude query returned no row")
            bound = [first[p.index] if isinstance(p, Prelude) else p for p in params]
            rows = cursor.execute(sql, bound).fetchall()
            cursor.execute("COMMIT")
            return rows
        finally:
            cursor.close()  # a transaction left open is rolled back

    def size_bytes(self) -> int:
        return files_bytes(self.path, ".wal")

    def healthy(self) -> bool:
        return True

    def close(self) -> None:
        try:
            self._writer.close()
            self._con.close()
        except duckdb.Error:
            pass
