"""The store seams: what the rest of Shopwatch may ask of the event and state stores.

The embedded engines are DuckDB (events) and SQLite (state); ClickHouse and PostgreSQL
implement the same protocols when a shop outgrows one machine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol


@dataclass
class EventBatch:
    """Validated events of one request, for one project, as the event store takes them.

    ``payload`` is a JSON array of events, each with the fields of
    :class:`shopwatch.events.Event` (already validated and scrubbed), ``ts`` as epoch
    seconds (a float; absent: received time) and optionally ``flags`` (a list of strings).
    ``ids`` lists the client-supplied event ids in the payload (the dedup keys).

    ``rum`` is a JSON array of ``n_rum`` real-user-monitoring rows for the ``rum`` table
    (:class:`shopwatch.beacon.RumRow`, already scrubbed), written in the same transaction;
    ``checks`` likewise holds ``n_checks`` monitor results
    (:class:`shopwatch.checks.record.CheckRow`), and ``spans``, ``metrics`` and ``logs``
    OpenTelemetry rows (:mod:`shopwatch.telemetry`).
    """

    project_id: int
    received_at_us: int
    payload: bytes
    n: int
    ids: list[str]
    rum: bytes = b"[]"
    n_rum: int = 0
    checks: bytes = b"[]"
    n_checks: int = 0
    spans: bytes = b"[]"
    n_spans: int = 0
    metrics: bytes = b"[]"
    n_metrics: int = 0
    logs: bytes = b"[]"
    n_logs: int = 0

    @property
    def size(self) -> int:
        """Rows of every kind: what queue and batch limits count."""
        return self.n + self.n_rum + self.n_checks + self.n_spans + self.n_metrics + self.n_logs


@dataclass(frozen=True)
class Prelude:
    """A query parameter taken from the first row of the query's prelude (column
    ``index``): see :meth:`EventStore.query`."""

    index: int


# The stored columns of ``events``, in table order (types: store/duckdb.py, MIGRATIONS).
EVENT_COLUMNS: Final = (
    "project_id",
    "id",
    "name",
    "ts",
    "received_at",
    "session_id",
    "anonymous_id",
    "user_id",
    "page",
    "referrer",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "device_category",
    "browser",
    "browser_version",
    "os",
    "os_version",
    "language",
    "country",
    "screen_width",
    "screen_height",
    "value",
    "currency",
    "transaction_id",
    "params",
    "flags",
    "net_prefix",
    "net_hash",
    "user_agent",
)


@dataclass(frozen=True)
class EventQuery:
    """A read of stored events for one project. Times are epoch microseconds."""

    project_id: int
    since_us: int | None = None
    until_us: int | None = None
    names: Sequence[str] = ()
    limit: int = 100
    newest_first: bool = True
    received_since_us: int | None = None  # inclusive, on the server's receive time
    by_received: bool = False  # order by receive time instead of event time


def files_bytes(path: Path, *suffixes: str) -> int:
    """Bytes on disk of ``path`` and of its companions ``path + suffix`` that exist."""
    total = 0
    for p in (path, *(path.with_name(path.name + s) for s in suffixes)):
        if p.exists():
            total += p.stat().st_size
    return total


class EventStore(Protocol):
    """Append-only analytical store. ``write`` is called from one writer thread only."""

    @property
    def path(self) -> Path:
        """The database file."""
        ...

    @property
    def schema_version(self) -> int:
        """The last migration applied."""
        ...

    def write(self, batches: Sequence[EventBatch]) -> int:
        """Commit the batches in one transaction; return how many events were new.

        Raises :class:`~shopwatch.errors.StoreError` (nothing committed) on failure.
        """
        ...

    def query_events(self, query: EventQuery) -> list[dict[str, Any]]:
        """Stored events matching ``query``, safe to call from any thread."""
        ...

    def count(self, project_id: int | None = None) -> int:
        """Stored events, of one project or all."""
        ...

    def query(self, sql: str, params: Sequence[Any] = (), *,
              prelude: tuple[str, Sequence[Any]] | None = None) -> list[tuple[Any, ...]]:
        """Rows of a read-only SQL query over ``events`` (DuckDB dialect, ``?`` parameters).

        For Shopwatch's own analytics modules: the SQL is always theirs, never a user's,
        and every query filters on ``project_id``. Safe to call from any thread.

        With a ``prelude`` (a query and its parameters), the prelude runs first and the
        query's :class:`Prelude` parameters are replaced by columns of its first row, both
        in one transaction: the query sees the same data as the prelude. (Values as
        constants, not a subquery, let the engine prune scans with them.)
        """
        ...

    def checkpoint(self) -> None:
        """Fold the write-ahead log into the database file (writer thread only)."""
        ...

    def prune_dedup(self, older_than_us: int) -> int:
        """Forget client event ids first seen before ``older_than_us``."""
        ...

    def refresh_rollups(self, budget_s: float) -> int:
        """Bring the rollups up to date for about ``budget_s`` seconds (writer thread only);
        return the hours still pending (:mod:`shopwatch.analytics.rollup`)."""
        ...

    def size_bytes(self) -> int:
        """Bytes the store occupies on disk."""
        ...

    def healthy(self) -> bool:
        """Whether the store can take writes (its process is running, say)."""
        ...

    def close(self) -> None:
        """Flush and release the files."""
        ...
