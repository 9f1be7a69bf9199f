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

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import duckdb
import msgspec
import pyarrow as pa

from shopwatch.errors import StoreError
from shopwatch.store.base import EVENT_COLUMNS, EVENT_SCHEMA, EventQuery

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
)

_UID = "md5(project_id::VARCHAR || ':' || id)::UUID"
_COLS = ", ".join(EVENT_COLUMNS)
_SELECT_COLS = ", ".join("COALESCE(id, uuid()::VARCHAR)" if c == "id" else c for c in EVENT_COLUMNS)
_INSERT_IDS = (f"INSERT OR IGNORE INTO event_ids SELECT {_UID}, received_at FROM incoming "
               "WHERE id IS NOT NULL RETURNING uid")
_INSERT_EVENTS = (f"INSERT INTO events ({_COLS}) SELECT {_SELECT_COLS} FROM incoming "
                  f"WHERE id IS NULL OR {_UID} IN (SELECT uid::UUID FROM fresh)")
_READ_COLS = [c for c in EVENT_COLUMNS if c not in ("ts", "received_at", "project_id")]


class DuckDBEventStore:
    """Events in ``<data_dir>/events.duckdb``; see the module docstring."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._con = duckdb.connect(str(path))
        except duckdb.IOException as exc:
            raise StoreError(
                f"cannot open {path}: {exc}. Is another `shopwatch serve` using this data "
                "directory? Stop it, or pass a different --data."
            ) from None
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

    @property
    def schema_version(self) -> int:
        row = self._cursor().execute("SELECT max(version) FROM schema_migrations").fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        with self._lock:
            return self._con.cursor()

    # --- writing (writer thread only) -----------------------------------------------------

    def write(self, columns: Mapping[str, list[Any]]) -> int:
        columns = _drop_repeated_ids(columns)
        table = pa.Table.from_pydict(dict(columns), schema=EVENT_SCHEMA)
        cur = self._writer
        cur.register("incoming", table)
        try:
            cur.execute("BEGIN")
            # .sql() (not .execute()) hands RETURNING rows to Arrow without a copy; the
            # relation is materialised exactly once, by to_arrow_table().
            fresh = cur.sql(_INSERT_IDS).to_arrow_table()
            cur.register("fresh", fresh)
            cur.execute(_INSERT_EVENTS)
            cur.execute("COMMIT")
        except duckdb.Error as exc:
            try:
                cur.execute("ROLLBACK")
            except duckdb.Error:
                pass
            raise StoreError(f"event store write failed: {exc}") from exc
        finally:
            for view in ("incoming", "fresh"):
                try:
                    cur.unregister(view)
                except duckdb.Error:
                    pass
        without_id = sum(1 for i in columns["id"] if i is None)
        return without_id + fresh.num_rows

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
        if query.names:
            where.append(f"name IN ({', '.join('?' for _ in query.names)})")
            args.extend(query.names)
        order = "DESC" if query.newest_first else "ASC"
        sql = (f"SELECT epoch_us(ts), epoch_us(received_at), {', '.join(_READ_COLS)} FROM events "
               f"WHERE {' AND '.join(where)} ORDER BY ts {order}, received_at {order} LIMIT ?")
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

    def size_bytes(self) -> int:
        total = 0
        for p in (self.path, self.path.with_name(self.path.name + ".wal")):
            if p.exists():
                total += p.stat().st_size
        return total

    def close(self) -> None:
        try:
            self._writer.close()
            self._con.close()
        except duckdb.Error:
            pass


def _drop_repeated_ids(columns: Mapping[str, list[Any]]) -> Mapping[str, list[Any]]:
    """Keep the first of several rows sharing (project, id) within one commit."""
    ids = columns["id"]
    keys = [(p, i) for p, i in zip(columns["project_id"], ids, strict=True) if i is not None]
    if len(set(keys)) == len(keys):
        return columns
    seen: set[tuple[int, str]] = set()
    keep: list[int] = []
    for row, key in enumerate(zip(columns["project_id"], ids, strict=True)):
        if key[1] is not None:
            if key in seen:
                continue
            seen.add(key)
        keep.append(row)
    return {name: [values[r] for r in keep] for name, values in columns.items()}
