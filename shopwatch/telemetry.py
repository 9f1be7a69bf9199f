"""Backend telemetry as stored: spans, metric points and log records from OpenTelemetry.

Each struct is one row of its table in the event store (``spans``, ``metric_points``,
``logs``; migration 4 of :mod:`shopwatch.store.duckdb`), written in the same transaction
as the request's other rows (:class:`shopwatch.store.base.EventBatch`). Times are epoch
seconds (``ts``: a span's start, a point's or a record's time). Identifiers are lower-case
hex (trace 32 digits, span 16).

The attributes that the analysis reads have columns of their own (docs/otlp.md,
"Storage"): ``http_route``, ``http_method``, ``http_status``, ``db_system``,
``db_operation``, ``server_address``, ``peer_service``, the first exception's type and
message, and ``session_id`` (a span's ``session.id``, linking it to a shopper's session).
The other attributes stay in ``attributes`` (JSON), within :data:`MAX_ATTRIBUTES` of
:data:`MAX_VALUE` characters each.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

MAX_ATTRIBUTES: Final = 64  # per span, point, record or resource: the rest are dropped
MAX_VALUE: Final = 1024  # characters of a string attribute value (longer ones are cut)
MAX_NAME: Final = 256  # characters of a span, metric or service name
MAX_EXCEPTIONS: Final = 8  # exception events kept per span
MAX_STACKTRACE: Final = 8192  # characters of an exception's stack trace

SPAN_KINDS: Final = ("unspecified", "internal", "server", "client", "producer", "consumer")
STATUSES: Final = ("unset", "ok", "error")
METRIC_KINDS: Final = ("gauge", "sum", "histogram", "exponential_histogram", "summary")


class SpanRow(msgspec.Struct, omit_defaults=True, gc=False):
    """One stored span."""

    ts: float
    trace_id: str
    span_id: str
    service: str
    name: str
    kind: str  # one of SPAN_KINDS
    status: str  # one of STATUSES
    duration_ms: float
    parent_span_id: str | None = None
    status_message: str | None = None
    http_route: str | None = None
    http_method: str | None = None
    http_status: int | None = None
    db_system: str | None = None
    db_operation: str | None = None
    server_address: str | None = None
    peer_service: str | None = None
    exception_type: str | None = None
    exception_message: str | None = None
    session_id: str | None = None
    exceptions: list[dict[str, Any]] | None = None  # type, message, stacktrace, ts
    attributes: dict[str, Any] | None = None
    resource: dict[str, Any] | None = None


class MetricRow(msgspec.Struct, omit_defaults=True, gc=False):
    """One stored metric data point: ``value`` for gauges and sums; ``count``, ``sum``,
    ``min``, ``max``, ``bounds`` and ``counts`` for histograms (explicit bounds; an
    exponential histogram's buckets are kept in ``attributes["_buckets"]``)."""

    ts: float
    service: str
    name: str
    kind: str  # one of METRIC_KINDS
    unit: str | None = None
    start_ts: float | None = None
    value: float | None = None
    count: int | None = None
    sum: float | None = None
    min: float | None = None
    max: float | None = None
    bounds: list[float] | None = None
    counts: list[int] | None = None
    monotonic: bool | None = None
    temporality: str | None = None  # delta | cumulative
    attributes: dict[str, Any] | None = None


class LogRow(msgspec.Struct, omit_defaults=True, gc=False):
    """One stored log record."""

    ts: float
    service: str
    severity: str | None = None
    severity_number: int | None = None
    body: str | None = None
    trace_id: str | None = None
    span_id: str | None = None
    attributes: dict[str, Any] | None = None


SPAN_COLUMNS: Final = ("project_id", "received_at", *SpanRow.__struct_fields__)
METRIC_COLUMNS: Final = ("project_id", "received_at", *MetricRow.__struct_fields__)
LOG_COLUMNS: Final = ("project_id", "received_at", *LogRow.__struct_fields__)
