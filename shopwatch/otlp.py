"""OTLP decoding, pure: an ``Export*ServiceRequest`` becomes rows of :mod:`shopwatch.telemetry`.

Contract of :func:`decode`:

- ``body`` is the whole request body, already decompressed, in the binary protobuf
  encoding or in OTLP/JSON (the proto3 JSON mapping with hex trace and span ids). An
  empty body is an empty request.
- A body that does not decode as the signal's request raises :class:`BadRequest`
  (HTTP 400: the client must not retry it), naming what is wrong.
- Every span, data point and log record is then checked alone. An invalid one is
  rejected and counted, the others are kept; :attr:`Decoded.problems` names the first
  problems with their position in the request, as the OTLP/JSON field names read
  (``resourceSpans[0].scopeSpans[1].spans[3].traceId: 15 bytes, expected 16``).
- Rows are scrubbed and within the limits of :mod:`shopwatch.telemetry` (attribute
  count, value length, names, exceptions, stack traces); nothing in them is the
  client's bytes unchecked.

Mapping (docs/otlp.md says the same for users):

- ``service.name`` comes from the resource (``unknown_service`` without one, as the SDKs
  name it); the other resource attributes go into a span's ``resource``.
- The semantic-convention attributes that the analysis reads become columns of a span,
  under their current and their older names (``http.method`` for
  ``http.request.method``, ``http.status_code``, ``db.operation``, ``net.peer.name`` for
  ``server.address``...). ``http.url`` and ``http.target`` are kept as ``url.full`` and
  ``url.path`` / ``url.query``. Span events named ``exception`` become ``exceptions``
  (and the first one's type and message columns); other events and links are not kept.
- Histograms keep count, sum, min, max, bounds and bucket counts; an exponential
  histogram's buckets and a summary's quantiles are kept in ``attributes["_buckets"]``
  and ``attributes["_quantiles"]``.

Privacy (docs/privacy.md, "OpenTelemetry"): attributes that carry a client's address
(``client.address``, ``net.peer.ip``, ``network.peer.address``, forwarding headers...)
and user-agent strings are dropped; secret-named ones (cookies, authorization, tokens,
passwords: :data:`shopwatch.privacy.SECRET_KEY_RE`) are ``[redacted]``; URL attributes
keep only allowed query parameters (:func:`shopwatch.privacy.scrub_url`); identifiers
(``session.id``, ``enduser.id``, ``user.id``, ``user.email``) are pseudonymised like an
event's ids; every other text goes through :func:`shopwatch.privacy.scrub_text`.
"""

from __future__ import annotations

import base64
import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

import msgspec
from google.protobuf import json_format
from google.protobuf.any_pb2 import Any as AnyMessage
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import DecodeError, Message
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as logs_service
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as metrics_service
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as trace_service
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from shopwatch import privacy
from shopwatch.errors import BadRequest
from shopwatch.telemetry import (
    MAX_ATTRIBUTES,
    MAX_EXCEPTIONS,
    MAX_NAME,
    MAX_STACKTRACE,
    MAX_VALUE,
    SPAN_KINDS,
    STATUSES,
    LogRow,
    MetricRow,
    SpanRow,
)

MAX_PROBLEMS: Final = 5  # problems named in a partial success's error message
MAX_DEPTH: Final = 4  # nesting of array and key-value-list attribute values kept
MAX_LOG_BODY: Final = MAX_STACKTRACE  # characters of a log record's body
UNKNOWN_SERVICE: Final = "unknown_service"
_ZERO_TRACE: Final = bytes(16)
_ZERO_SPAN: Final = bytes(8)
_MAX_COUNT: Final = 2**63 - 1  # a BIGINT column; OTLP counts are unsigned 64-bit
_encode = msgspec.json.Encoder().encode


class Encoding(StrEnum):
    """The two OTLP/HTTP encodings, by their Content-Type."""

    PROTOBUF = "application/x-protobuf"
    JSON = "application/json"


_MEDIA: Final = {"application/x-protobuf": Encoding.PROTOBUF,
                 "application/protobuf": Encoding.PROTOBUF,
                 "application/json": Encoding.JSON}


def encoding_of(content_type: str | None) -> Encoding | None:
    """The encoding a Content-Type names, or ``None`` for one OTLP does not use."""
    return _MEDIA.get((content_type or "").split(";", 1)[0].strip().lower())


@dataclass(frozen=True)
class Signal:
    """One OTLP signal: its path, messages, and what its items are called."""

    name: str  # traces | metrics | logs
    path: str
    request: type[Message]
    response: type[Message]
    rejected_field: str  # of the response's partial_success
    items: str  # what one counted item is, in messages and metric labels
    batch_field: str  # the EventBatch field its rows go to


TRACES: Final = Signal("traces", "/v1/traces", trace_service.ExportTraceServiceRequest,
                       trace_service.ExportTraceServiceResponse, "rejected_spans", "spans",
                       "spans")
METRICS: Final = Signal("metrics", "/v1/metrics", metrics_service.ExportMetricsServiceRequest,
                        metrics_service.ExportMetricsServiceResponse, "rejected_data_points",
                        "data_points", "metrics")
LOGS: Final = Signal("logs", "/v1/logs", logs_service.ExportLogsServiceRequest,
                     logs_service.ExportLogsServiceResponse, "rejected_log_records",
                     "log_records", "logs")
SIGNALS: Final = {s.path: s for s in (TRACES, METRICS, LOGS)}


@dataclass
class Decoded:
    """What :func:`decode` made of one request."""

    rows: list[Any] = field(default_factory=list)  # SpanRow | MetricRow | LogRow
    rejected: int = 0
    problems: list[str] = field(default_factory=list)  # the first MAX_PROBLEMS

    def reject(self, problem: str) -> None:
        self.rejected += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(problem)

    @property
    def error_message(self) -> str:
        """The partial success's ``error_message``: how many, and the first problems."""
        if not self.rejected:
            return ""
        more = self.rejected - len(self.problems)
        tail = f"; and {more} more" if more else ""
        total = self.rejected + len(self.rows)
        return f"{self.rejected} of {total} rejected: {'; '.join(self.problems)}{tail}"

    def payload(self) -> bytes:
        """The rows as the event store takes them (a JSON array)."""
        return _encode(self.rows)


# --- attribute roles ---------------------------------------------------------------------

# What happens to an attribute is decided by its key alone, once per key (memoised):
# OTLP batches repeat the same few dozen keys thousands of times.
_PLAIN, _COLUMN, _OLD_COLUMN, _DROP, _REDACT, _URL, _TARGET, _IDENT, _STACK = range(9)

_COLUMNS: Final = {
    "http.route": "http_route", "http.request.method": "http_method",
    "http.response.status_code": "http_status", "db.system": "db_system",
    "db.system.name": "db_system", "db.operation.name": "db_operation",
    "server.address": "server_address", "peer.service": "peer_service",
}
# Older semantic-convention names: used when the current name is absent.
_OLD_COLUMNS: Final = {"http.method": "http_method", "http.status_code": "http_status",
                       "db.operation": "db_operation", "net.peer.name": "server_address"}
# A shopper's address, or what identifies their browser: never stored.
_ADDRESS_KEYS: Final = frozenset({
    "client.address", "client.socket.address", "net.peer.ip", "net.sock.peer.addr",
    "network.peer.address", "http.client_ip", "source.address", "user_agent.original",
    "http.user_agent", "user.full_name", "url.fragment"})
_ADDRESS_HEADERS: Final = frozenset({"x_forwarded_for", "x_real_ip", "forwarded",
                                     "true_client_ip", "cf_connecting_ip", "x_client_ip",
                                     "user_agent"})
_SECRET_HEADERS: Final = frozenset({"cookie", "set_cookie", "authorization",
                                    "proxy_authorization", "x_api_key"})
_IDENTIFIERS: Final = frozenset({"session.id", "enduser.id", "user.id", "user.email"})
_URLS: Final = {"url.full": "url.full", "http.url": "url.full", "url.query": "url.query",
                "url.path": "url.path", "url.original": "url.original"}
_MAX_ROLES: Final = 10_000
_roles: dict[str, tuple[int, str]] = {}


def _role(key: str) -> tuple[int, str]:
    """``(role, target)`` of an attribute key; target is a column or the stored key."""
    hit = _roles.get(key)
    if hit is not None:
        return hit
    last = key.rsplit(".", 1)[-1].lower().replace("-", "_")
    header = ".header." in key or ".metadata." in key
    if key in _COLUMNS:
        role = (_COLUMN, _COLUMNS[key])
    elif key in _OLD_COLUMNS:
        role = (_OLD_COLUMN, _OLD_COLUMNS[key])
    elif key in _ADDRESS_KEYS or (header and last in _ADDRESS_HEADERS):
        role = (_DROP, "")
    elif (header and last in _SECRET_HEADERS) or privacy.SECRET_KEY_RE.search(key):
        role = (_REDACT, key[:MAX_NAME])
    elif key in _IDENTIFIERS:
        role = (_IDENT, key)
    elif key in _URLS:
        role = (_URL, _URLS[key])
    elif key == "http.target":
        role = (_TARGET, "url.path")
    elif key == "exception.stacktrace":
        role = (_STACK, key)
    else:
        role = (_PLAIN, key[:MAX_NAME])
    if len(_roles) >= _MAX_ROLES:  # random keys must not grow the memo without bound
        _roles.clear()
    _roles[key] = role
    return role


# --- the decoder ---------------------------------------------------------------------------


class _Rows:
    """Builds rows from decoded messages; one per request (``deep`` is per body)."""

    def __init__(self, query_allow: frozenset[str], pseudonym_key: bytes, deep: bool,
                 now_s: float) -> None:
        self.query_allow = query_allow
        self.pseudonym_key = pseudonym_key
        # Without a run of 13+ digits anywhere in the body, no string can hold a card
        # number: skip the digit scan of every string (emails are always looked for).
        self.deep = deep
        self.now_s = now_s
        self.out = Decoded()
        self.urls: dict[tuple[str, bool], str] = {}

    # --- values

    def text(self, value: str, limit: int = MAX_VALUE) -> str:
        if "@" in value or (self.deep and len(value) >= 13):
            value = privacy.scrub_text(value)
        return value if len(value) <= limit else value[:limit]

    def value(self, v: AnyValue, depth: int = 0) -> Any:
        """An attribute value as JSON-ready Python, strings scrubbed and cut."""
        which = v.WhichOneof("value")
        if which == "string_value":
            return self.text(v.string_value)
        if which is None or depth >= MAX_DEPTH:
            return None
        if which == "array_value":
            return [self.value(x, depth + 1) for x in v.array_value.values[:MAX_ATTRIBUTES]]
        if which == "kvlist_value":
            return {kv.key[:MAX_NAME]: "[redacted]" if privacy.SECRET_KEY_RE.search(kv.key)
                    else self.value(kv.value, depth + 1)
                    for kv in v.kvlist_value.values[:MAX_ATTRIBUTES]}
        if which == "bytes_value":
            return base64.b64encode(v.bytes_value[:MAX_VALUE]).decode()
        return getattr(v, which)  # bool, int or double

    def url(self, raw: Any, query_only: bool = False) -> str:
        """A URL attribute scrubbed (memoised per request: batches repeat their URLs)."""
        text = str(raw)
        hit = self.urls.get((text, query_only))
        if hit is None:
            # url.query alone: read as the query of a URL, so the same parameters stay.
            hit = privacy.scrub_url(f"?{text}", self.query_allow)[1:] if query_only \
                else privacy.scrub_url(text, self.query_allow)
            hit = hit[:MAX_VALUE]
            self.urls[text, query_only] = hit
        return hit

    def attributes(self, kvs: Iterable[KeyValue], cols: dict[str, Any] | None = None,
                   server: bool = False) -> dict[str, Any] | None:
        """The stored attributes; with ``cols`` (spans), column attributes go there.

        The hot loop of OTLP ingest (a dozen attributes a span): plain strings and
        string columns are handled inline, everything else by :meth:`special`.
        """
        out: dict[str, Any] = {}
        roles = _roles
        deep = self.deep
        for kv in kvs:
            key = kv.key
            rule = roles.get(key) or _role(key)
            role = rule[0]
            if role == _DROP:
                continue
            v = kv.value
            if role == _PLAIN or (role == _COLUMN and cols is not None
                                  and rule[1] != "http_status"):
                s = v.string_value
                if not s:  # not a string (or empty): the general path
                    self.special(role, rule[1], key, v, out, cols, server)
                    continue
                if "@" in s or (deep and len(s) >= 13):
                    s = privacy.scrub_text(s)
                if len(s) > MAX_VALUE:
                    s = s[:MAX_VALUE]
                if cols is not None and role == _COLUMN:
                    cols[rule[1]] = s
                elif len(out) < MAX_ATTRIBUTES:
                    out[rule[1]] = s
                continue
            self.special(role, rule[1], key, v, out, cols, server)
        return out or None

    def special(self, role: int, target: str, key: str, v: AnyValue, out: dict[str, Any],
                cols: dict[str, Any] | None, server: bool) -> None:
        """One attribute of any role and type into ``out`` or ``cols``."""
        if role in (_PLAIN, _STACK):
            if len(out) < MAX_ATTRIBUTES:
                s = v.string_value
                out[target] = self.text(s, MAX_STACKTRACE) if s else self.value(v)
            return
        # Identifiers and URLs are scrubbed by their own rules, from the raw text.
        value = v.string_value or self.value(v)
        if value is None:
            return
        if role in (_COLUMN, _OLD_COLUMN):
            if cols is None:  # metrics and logs have no such columns
                if len(out) < MAX_ATTRIBUTES:
                    out[key[:MAX_NAME]] = self.text(value) if isinstance(value, str) else value
                return
            if target == "http_status":
                value = _status_code(value)
                if value is None:
                    return
            else:
                value = self.text(value if isinstance(value, str) else str(value))
            if role == _COLUMN:
                cols[target] = value
            elif not (server and target == "server_address"):
                # net.peer.name on a server span names the shopper's host: not kept.
                cols.setdefault(target, value)
            return
        if role == _IDENT:
            value = privacy.pseudonymize(str(value), self.pseudonym_key)[:MAX_VALUE]
            if cols is not None and key == "session.id":
                cols["session_id"] = value
                return
        elif role == _REDACT:
            value = "[redacted]"
        elif role == _URL:
            value = self.url(value, query_only=target == "url.query")
        elif role == _TARGET:  # http.target: the path and the query of the request
            path, _, query = self.url(value).partition("?")
            if len(out) < MAX_ATTRIBUTES:
                out["url.path"] = path
            if query and len(out) < MAX_ATTRIBUTES:
                out["url.query"] = query
            return
        if len(out) < MAX_ATTRIBUTES:
            out[target] = value

    def resource(self, resource: Resource) -> tuple[str, dict[str, Any] | None]:
        """``(service name, the other resource attributes)``."""
        service = next((kv.value.string_value for kv in resource.attributes
                        if kv.key == "service.name"), "")
        attrs = self.attributes(kv for kv in resource.attributes if kv.key != "service.name")
        return self.text(service, MAX_NAME) if service else UNKNOWN_SERVICE, attrs

    def exceptions(self, span: Span, cols: dict[str, Any]) -> list[dict[str, Any]] | None:
        found: list[dict[str, Any]] = []
        for event in span.events:
            if event.name != "exception":
                continue
            exc: dict[str, Any] = {"ts": event.time_unix_nano / 1e9}
            for kv in event.attributes:
                key = kv.key
                if key in ("exception.type", "exception.message", "exception.stacktrace"):
                    limit = MAX_STACKTRACE if key == "exception.stacktrace" else MAX_VALUE
                    value = kv.value.string_value or str(self.value(kv.value))
                    exc[key[10:]] = self.text(value, limit)
                elif key == "exception.escaped":
                    exc["escaped"] = kv.value.bool_value
            if not found:
                cols["exception_type"] = exc.get("type")
                cols["exception_message"] = exc.get("message")
            found.append(exc)
            if len(found) >= MAX_EXCEPTIONS:
                break
        return found or None

    # --- spans

    def span(self, s: Span, service: str, resource: dict[str, Any] | None) -> SpanRow | str:
        """The row of one span, or the problem (``field: reason``) that rejects it."""
        trace_id = s.trace_id
        if len(trace_id) != 16:
            return f"traceId: {len(trace_id)} bytes, expected 16"
        if trace_id == _ZERO_TRACE:
            return "traceId: all zeros, which is not a valid trace id"
        span_id = s.span_id
        if len(span_id) != 8:
            return f"spanId: {len(span_id)} bytes, expected 8"
        if span_id == _ZERO_SPAN:
            return "spanId: all zeros, which is not a valid span id"
        parent = s.parent_span_id
        if parent and len(parent) != 8:
            return f"parentSpanId: {len(parent)} bytes, expected 8 or none"
        start = s.start_time_unix_nano
        end = s.end_time_unix_nano
        if not start:
            return "startTimeUnixNano: missing"
        if end < start:
            return "endTimeUnixNano: before startTimeUnixNano" if end else \
                "endTimeUnixNano: missing"
        kind = s.kind
        if not 0 <= kind < len(SPAN_KINDS):
            return f"kind: {kind} is not a span kind (0-5)"
        status = s.status
        code = status.code
        if not 0 <= code < len(STATUSES):
            return f"status.code: {code} is not a status code (0-2)"
        cols: dict[str, Any] = {}
        server = kind == Span.SPAN_KIND_SERVER
        attributes = self.attributes(s.attributes, cols, server) if s.attributes else None
        exceptions = self.exceptions(s, cols) if s.events else None
        name = s.name
        message = status.message
        return SpanRow(
            ts=start / 1e9, trace_id=trace_id.hex(), span_id=span_id.hex(), service=service,
            name=self.text(name, MAX_NAME) if name else "", kind=SPAN_KINDS[kind],
            status=STATUSES[code], duration_ms=(end - start) / 1e6,
            parent_span_id=parent.hex() if parent else None,
            status_message=self.text(message) if message else None,
            exceptions=exceptions, attributes=attributes, resource=resource, **cols)

    def traces(self, req: trace_service.ExportTraceServiceRequest,
               bad_ids: dict[tuple[int, ...], str]) -> None:
        rows = self.out.rows
        for i, rs in enumerate(req.resource_spans):
            service, resource = self.resource(rs.resource)
            for j, ss in enumerate(rs.scope_spans):
                for k, s in enumerate(ss.spans):
                    row: SpanRow | str | None = bad_ids.get((i, j, k)) if bad_ids else None
                    if row is None:
                        row = self.span(s, service, resource)
                    if isinstance(row, str):
                        self.out.reject(f"resourceSpans[{i}].scopeSpans[{j}].spans[{k}].{row}")
                    else:
                        rows.append(row)

    # --- metrics

    def metrics(self, req: metrics_service.ExportMetricsServiceRequest) -> None:
        for i, rm in enumerate(req.resource_metrics):
            service, _ = self.resource(rm.resource)
            for j, sm in enumerate(rm.scope_metrics):
                for k, metric in enumerate(sm.metrics):
                    kind = metric.WhichOneof("data")
                    if kind is None:
                        continue  # no data points, nothing to store or reject
                    data = getattr(metric, kind)
                    where = f"resourceMetrics[{i}].scopeMetrics[{j}].metrics[{k}]"
                    name = metric.name
                    common: dict[str, Any] = {
                        "service": service, "name": self.text(name, MAX_NAME),
                        "kind": kind, "unit": self.text(metric.unit, MAX_NAME) or None}
                    temporality = getattr(data, "aggregation_temporality", 0)
                    if temporality:
                        common["temporality"] = _TEMPORALITIES.get(temporality)
                    if kind == "sum":
                        common["monotonic"] = data.is_monotonic
                    for p, point in enumerate(data.data_points):
                        if not name:
                            self.out.reject(f"{where}.name: empty")
                            continue
                        row = self.point(kind, point, common)
                        if isinstance(row, str):
                            self.out.reject(f"{where}.{_CAMEL[kind]}.dataPoints[{p}].{row}")
                        else:
                            self.out.rows.append(row)

    def point(self, kind: str, p: Any, common: dict[str, Any]) -> MetricRow | str:
        """One data point's row, or the problem that rejects it."""
        if not p.time_unix_nano:
            return "timeUnixNano: missing"
        attributes = self.attributes(p.attributes) or {}
        values: dict[str, Any] = {}
        if kind in ("gauge", "sum"):
            which = p.WhichOneof("value")
            if which is None:
                return "value: neither asDouble nor asInt"
            values["value"] = getattr(p, which)
        elif kind == "summary":  # its sum is not optional
            values["count"], values["sum"] = p.count, p.sum
        else:
            values["count"] = p.count
            if p.HasField("sum"):
                values["sum"] = p.sum
            if p.HasField("min"):
                    values["min"] = p.min
            if p.HasField("max"):
                values["max"] = p.max
        if values.get("count", 0) > _MAX_COUNT:
            return f"count: {p.count} is over the largest count stored (2^63 - 1)"
        if kind == "histogram":
            bounds, counts = list(p.explicit_bounds), list(p.bucket_counts)
            if counts and len(counts) != len(bounds) + 1:
                return (f"bucketCounts: {len(counts)} counts for {len(bounds)} bounds, "
                        f"expected {len(bounds) + 1}")
            if any(b >= c for b, c in itertools.pairwise(bounds)):
                return "explicitBounds: not strictly increasing"
            if counts and sum(counts) != p.count:
                return f"count: {p.count}, but the buckets hold {sum(counts)}"
            if counts:
                values["bounds"], values["counts"] = bounds, counts
        elif kind == "exponential_histogram":
            attributes["_buckets"] = {
                "scale": p.scale, "zero_count": p.zero_count,
                "zero_threshold": p.zero_threshold,
                "positive": {"offset": p.positive.offset,
                             "counts": list(p.positive.bucket_counts)},
                "negative": {"offset": p.negative.offset,
                             "counts": list(p.negative.bucket_counts)}}
        elif kind == "summary":
            attributes["_quantiles"] = [[q.quantile, q.value] for q in p.quantile_values]
        return MetricRow(ts=p.time_unix_nano / 1e9,
                         start_ts=p.start_time_unix_nano / 1e9 if p.start_time_unix_nano
                         else None, attributes=attributes or None, **common, **values)

    # --- logs

    def logs(self, req: logs_service.ExportLogsServiceRequest,
             bad_ids: dict[tuple[int, ...], str]) -> None:
        for i, rl in enumerate(req.resource_logs):
            service, _ = self.resource(rl.resource)
            for j, sl in enumerate(rl.scope_logs):
                for k, r in enumerate(sl.log_records):
                    row: LogRow | str | None = bad_ids.get((i, j, k)) if bad_ids else None
                    if row is None:
                        row = self.log(r, service)
                    if isinstance(row, str):
                        self.out.reject(f"resourceLogs[{i}].scopeLogs[{j}].logRecords[{k}].{row}")
                    else:
                        self.out.rows.append(row)

    def log(self, r: Any, service: str) -> LogRow | str:
        trace_id, span_id = r.trace_id, r.span_id
        if trace_id and len(trace_id) != 16:
            return f"traceId: {len(trace_id)} bytes, expected 16 or none"
        if span_id and len(span_id) != 8:
            return f"spanId: {len(span_id)} bytes, expected 8 or none"
        severity = r.severity_number
        if not 0 <= severity <= 24:
            return f"severityNumber: {severity} is not a severity number (0-24)"
        attributes = self.attributes(r.attributes) or {}
        if r.event_name and len(attributes) < MAX_ATTRIBUTES:
            attributes["event.name"] = self.text(r.event_name, MAX_NAME)
        body: str | None = None
        if r.HasField("body"):
            which = r.body.WhichOneof("value")
            if which == "string_value":
                body = self.text(r.body.string_value, MAX_LOG_BODY)
            elif which is not None:
                body = _encode(self.value(r.body)).decode()[:MAX_LOG_BODY]
        ns = r.time_unix_nano or r.observed_time_unix_nano
        return LogRow(ts=ns / 1e9 if ns else self.now_s, service=service,
                      severity=self.text(r.severity_text, MAX_NAME) or None,
                      severity_number=severity or None, body=body,
                      trace_id=trace_id.hex() if trace_id else None,
                      span_id=span_id.hex() if span_id else None,
                      attributes=attributes or None)


_TEMPORALITIES: Final = {1: "delta", 2: "cumulative"}
_CAMEL: Final = {"gauge": "gauge", "sum": "sum", "histogram": "histogram",
                 "exponential_histogram": "exponentialHistogram", "summary": "summary"}


def _status_code(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value < 1000 else None
    if isinstance(value, str) and value.isdigit() and len(value) == 3:
        return int(value)
    return None


# --- OTLP/JSON -----------------------------------------------------------------------------

_HEX_RE: Final = re.compile(r"[0-9a-fA-F]*")
_ID_KEYS: Final = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")
# Where the items of each signal are in a request, with their OTLP/JSON names.
_ITEM_PATHS: Final = {"traces": ("resourceSpans", "scopeSpans", "spans"),
                      "logs": ("resourceLogs", "scopeLogs", "logRecords")}


def _list(obj: Any, key: str) -> list[Any]:
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, list) else []


def _hex_ids(obj: Any, bad: dict[tuple[int, ...], str] | None, at: tuple[int, ...]) -> None:
    """Turn an item's hex ids into base64 (what the protobuf JSON parser reads), in place.

    A value that is not hex is cleared; with ``bad``, the item is rejected for it.
    """
    if not isinstance(obj, dict):
        return
    for key in _ID_KEYS:
        value = obj.get(key)
        if not isinstance(value, str):
            continue
        if len(value) % 2 == 0 and _HEX_RE.fullmatch(value):
            obj[key] = base64.b64encode(bytes.fromhex(value)).decode()
            continue
        obj[key] = ""
        if bad is not None and at not in bad:
            shown = value if len(value) <= 40 else value[:40] + "..."
            bad[at] = f"{key}: {shown!r} is not an even number of hex digits"


def _parse_json(signal: Signal, body: bytes, message: Message) -> dict[tuple[int, ...], str]:
    """Parse OTLP/JSON into ``message``; returns the items whose ids were not hex."""
    try:
        obj = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise BadRequest(f"body is not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise BadRequest(f"body: expected a JSON object (an OTLP {signal.name} request)")
    bad: dict[tuple[int, ...], str] = {}
    if signal.name in _ITEM_PATHS:
        outer, middle, inner = _ITEM_PATHS[signal.name]
        for i, resource in enumerate(_list(obj, outer)):
            for j, scope in enumerate(_list(resource, middle)):
                for k, item in enumerate(_list(scope, inner)):
                    _hex_ids(item, bad, (i, j, k))
                    for link in _list(item, "links"):  # links are not stored
                        _hex_ids(link, None, ())
    else:  # metrics: ids only in exemplars, which are not stored
        for resource in _list(obj, "resourceMetrics"):
            for scope in _list(resource, "scopeMetrics"):
                for metric in _list(scope, "metrics"):
                    for kind in _CAMEL.values():
                        for point in _list(metric.get(kind) if isinstance(metric, dict)
                                           else None, "dataPoints"):
                            for exemplar in _list(point, "exemplars"):
                                _hex_ids(exemplar, None, ())
    try:
        json_format.ParseDict(obj, message, ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise BadRequest(f"body is not an OTLP {signal.name} request: {exc}") from None
    return bad


# --- the entry points ------------------------------------------------------------------------


def decode(signal: Signal, body: bytes, encoding: Encoding, *, now_s: float,
           query_allow: frozenset[str] = frozenset(), pseudonym_key: bytes = b"") -> Decoded:
    """Decode one request body into rows, as the module docstring says.

    ``now_s`` (epoch seconds) stamps log records that carry no time; ``query_allow`` and
    ``pseudonym_key`` are the privacy settings of event ingest.
    """
    # JSON may spell digits as \u escapes, so only a protobuf body can rule out cards.
    deep = encoding is Encoding.JSON or privacy.has_digit_run(body)
    rows = _Rows(query_allow, pseudonym_key, deep, now_s)
    if signal is TRACES:
        traces = trace_service.ExportTraceServiceRequest()
        rows.traces(traces, _parse(signal, body, encoding, traces))
    elif signal is METRICS:
        metrics = metrics_service.ExportMetricsServiceRequest()
        _parse(signal, body, encoding, metrics)
        rows.metrics(metrics)
    else:
        logs = logs_service.ExportLogsServiceRequest()
        rows.logs(logs, _parse(signal, body, encoding, logs))
    return rows.out


def _parse(signal: Signal, body: bytes, encoding: Encoding,
           message: Message) -> dict[tuple[int, ...], str]:
    """Fill ``message`` from the body; returns the items rejected for their ids (JSON)."""
    if not body:
        return {}  # an empty body is an empty request (OTLP: a success)
    if encoding is Encoding.JSON:
        return _parse_json(signal, body, message)
    try:
        message.ParseFromString(body)
    except DecodeError as exc:
        raise BadRequest(f"body is not an OTLP {signal.name} request in protobuf: "
                         f"{exc}") from None
    return {}


def response_body(signal: Signal, decoded: Decoded | None, encoding: Encoding) -> bytes:
    """The 200 answer: the signal's ``Export*ServiceResponse``, with ``partial_success``
    set only when something was rejected (OTLP: unset on full success)."""
    response = signal.response()
    if decoded is not None and decoded.rejected:
        partial = response.partial_success  # type: ignore[attr-defined]
        setattr(partial, signal.rejected_field, decoded.rejected)
        partial.error_message = decoded.error_message
    if encoding is Encoding.PROTOBUF:
        return response.SerializeToString()
    return json_format.MessageToJson(response, indent=None).encode()


# google.rpc.Code of each HTTP status OTLP answers with; the spec leaves the code to the
# server, clients go by the HTTP status.
_RPC_CODES: Final = {400: 3, 401: 16, 403: 7, 404: 5, 413: 8, 415: 3, 429: 8, 500: 13,
                     503: 14}


def status_body(http_status: int, message: str, encoding: Encoding,
                retry_after: int | None = None) -> bytes:
    """An error answer's body: a ``google.rpc.Status``, as the OTLP/HTTP spec requires,
    with a ``RetryInfo`` detail when there is a Retry-After and a ``BadRequest`` one
    for undecodable data."""
    details: list[Message] = []
    if retry_after is not None:
        details.append(error_details_pb2.RetryInfo(retry_delay=Duration(seconds=retry_after)))
    if http_status == 400:
        details.append(error_details_pb2.BadRequest(field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field="body", description=message)]))
    packed: list[AnyMessage] = []
    for detail in details:
        any_message = AnyMessage()
        any_message.Pack(detail)
        packed.append(any_message)
    status = status_pb2.Status(code=_RPC_CODES.get(http_status, 2), message=message,
                               details=packed)
    if encoding is Encoding.PROTOBUF:
        return status.SerializeToString()
    return json_format.MessageToJson(status, indent=None).encode()
