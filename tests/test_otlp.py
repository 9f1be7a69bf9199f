"""The OTLP receiver: the decode core (shopwatch/otlp.py) on crafted requests, then every
OTLP/HTTP response case against a real server on loopback (shopwatch/ingest/otlp.py).

Requests are built with the official message classes (opentelemetry-proto), as an SDK
builds them; OTLP/JSON bodies follow the spec's JSON mapping (hex ids, lowerCamelCase,
enums as integers, 64-bit integers as strings).
"""

from __future__ import annotations

import base64
import gzip
import json
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest
from google.protobuf import json_format
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.metrics.v1 import metrics_pb2 as M
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from prometheus_client.parser import text_string_to_metric_families

from shopwatch import otlp, privacy
from shopwatch.errors import BadRequest
from shopwatch.runtime import open_state
from shopwatch.settings import defaults
from shopwatch.telemetry import (
    MAX_ATTRIBUTES,
    MAX_EXCEPTIONS,
    MAX_NAME,
    MAX_STACKTRACE,
    MAX_VALUE,
    LogRow,
    MetricRow,
    SpanRow,
)
from tests.conftest import Live, ServeProcess

KEY = b"k" * 32
NOW_NS = 1_790_000_000_000_000_000  # 2026-09-21
TRACE = bytes.fromhex("5b8efff798038103d269b633813fc60c")
CARD = "4111111111111111"  # a Luhn-valid test card number


# --- building requests -----------------------------------------------------------------------


def value(v: Any) -> AnyValue:
    if isinstance(v, bool):
        return AnyValue(bool_value=v)
    if isinstance(v, int):
        return AnyValue(int_value=v)
    if isinstance(v, float):
        return AnyValue(double_value=v)
    if isinstance(v, bytes):
        return AnyValue(bytes_value=v)
    if isinstance(v, list):
        return AnyValue(array_value=ArrayValue(values=[value(x) for x in v]))
    if isinstance(v, dict):
        return AnyValue(kvlist_value=KeyValueList(values=attrs(v)))
    return AnyValue(string_value=v)


def attrs(d: dict[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=k, value=value(v)) for k, v in d.items()]


def span(n: int = 1, **fields: Any) -> Span:
    """A valid server span (span id ``n``), fields overridden by ``fields``."""
    attributes = fields.pop("attributes", {})
    base: dict[str, Any] = {
        "trace_id": TRACE, "span_id": n.to_bytes(8, "big"), "name": "GET /p/{slug}",
        "kind": Span.SPAN_KIND_SERVER, "start_time_unix_nano": NOW_NS,
        "end_time_unix_nano": NOW_NS + 25_500_000}
    base.update(fields)
    return Span(attributes=attrs(attributes), **base)


def traces(*spans: Span, resource: dict[str, Any] | None = None,
           scopes: int = 1) -> ExportTraceServiceRequest:
    """One resource; the spans spread over ``scopes`` scopes (round robin)."""
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.extend(attrs({"service.name": "checkout"} if resource is None
                                        else resource))
    groups = [rs.scope_spans.add() for _ in range(scopes)]
    for i, s in enumerate(spans):
        groups[i % scopes].spans.append(s)
    return req


def decode(message: Any, signal: otlp.Signal = otlp.TRACES,
           query_allow: frozenset[str] = frozenset()) -> otlp.Decoded:
    return otlp.decode(signal, message.SerializeToString(), otlp.Encoding.PROTOBUF,
                       now_s=NOW_NS / 1e9, query_allow=query_allow, pseudonym_key=KEY)


def one_span(s: Span, **kwargs: Any) -> SpanRow:
    out = decode(traces(s, **kwargs))
    assert out.rejected == 0, out.problems
    (row,) = out.rows
    assert isinstance(row, SpanRow)
    return row


def to_json(message: Any) -> bytes:
    """OTLP/JSON of a message: the proto3 JSON mapping with hex ids, as SDKs send it."""
    obj = json_format.MessageToDict(message, use_integers_for_enums=True)

    def hexify(node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k in ("traceId", "spanId", "parentSpanId") and isinstance(v, str):
                    node[k] = base64.b64decode(v).hex()
                else:
                    hexify(v)
        elif isinstance(node, list):
            for v in node:
                hexify(v)

    hexify(obj)
    return json.dumps(obj).encode()


# --- spans: the mapping ------------------------------------------------------------------


def test_a_span_maps_to_its_columns() -> None:
    row = one_span(span(
        7, parent_span_id=(3).to_bytes(8, "big"), status=Status(code=2, message="timeout"),
        attributes={"http.route": "/p/{slug}", "http.request.method": "GET",
                    "http.response.status_code": 503, "server.address": "shop.example",
                    "session.id": "s-42", "shop.cart_items": 3, "shop.vip": True,
                    "shop.ratio": 0.5, "shop.tags": ["a", "b"]}),
        resource={"service.name": "checkout", "service.version": "1.4.2",
                  "host.name": "web-3"})
    assert row.ts == NOW_NS / 1e9
    assert row.trace_id == TRACE.hex() and len(row.trace_id) == 32
    assert row.span_id == "0000000000000007" and row.parent_span_id == "0000000000000003"
    assert (row.service, row.name, row.kind) == ("checkout", "GET /p/{slug}", "server")
    assert (row.status, row.status_message) == ("error", "timeout")
    assert row.duration_ms == 25.5
    assert (row.http_route, row.http_method, row.http_status) == ("/p/{slug}", "GET", 503)
    assert (row.server_address, row.session_id) == ("shop.example", "s-42")
    # Column attributes are not repeated in attributes; the others are kept with their type.
    assert row.attributes == {"shop.cart_items": 3, "shop.vip": True, "shop.ratio": 0.5,
                              "shop.tags": ["a", "b"]}
    assert row.resource == {"service.version": "1.4.2", "host.name": "web-3"}


def test_db_and_client_span_columns_under_current_and_old_names() -> None:
    db = one_span(span(kind=Span.SPAN_KIND_CLIENT, attributes={
        "db.system.name": "postgresql", "db.operation.name": "SELECT",
        "server.address": "db-1", "db.query.text": "SELECT 1"}))
    assert (db.kind, db.db_system, db.db_operation, db.server_address) == (
        "client", "postgresql", "SELECT", "db-1")
    assert db.attributes == {"db.query.text": "SELECT 1"}
    old = one_span(span(kind=Span.SPAN_KIND_CLIENT, attributes={
        "db.system": "mysql", "db.operation": "UPDATE", "net.peer.name": "db-2",
        "http.method": "POST", "http.status_code": "502", "peer.service": "payments"}))
    assert (old.db_system, old.db_operation, old.server_address) == ("mysql", "UPDATE", "db-2")
    assert (old.http_method, old.http_status, old.peer_service) == ("POST", 502, "payments")
    assert old.attributes is None
    # Both names: the current one wins, whatever the order.
    for order in ({"http.method": "GET", "http.request.method": "PUT"},
                  {"http.request.method": "PUT", "http.method": "GET"}):
        assert one_span(span(attributes=order)).http_method == "PUT"


def test_old_url_attributes_are_kept_under_current_names() -> None:
    row = one_span(span(kind=Span.SPAN_KIND_CLIENT, attributes={
        "http.url": "https://psp.example/v1/charge?utm_source=x&amount=5",
        "http.target": "/search?q=boots&utm_campaign=spring"}))
    assert row.attributes == {"url.full": "https://psp.example/v1/charge?utm_source=x",
                              "url.path": "/search", "url.query": "utm_campaign=spring"}


def test_service_name_defaults_to_unknown_service() -> None:
    row = one_span(span(), resource={"host.name": "web-1"})
    assert row.service == "unknown_service" and row.resource == {"host.name": "web-1"}
    assert one_span(span(), resource={}).resource is None


def test_exception_events() -> None:
    s = span(status=Status(code=2))
    s.events.add(name="request.received", time_unix_nano=NOW_NS)
    for i in range(MAX_EXCEPTIONS + 2):
        s.events.add(name="exception", time_unix_nano=NOW_NS + i, attributes=attrs({
            "exception.type": f"PaymentError{i}", "exception.message": "card declined",
            "exception.stacktrace": "Traceback\n" + "x" * (MAX_STACKTRACE + 10),
            "exception.escaped": True}))
    row = one_span(s)
    assert (row.exception_type, row.exception_message) == ("PaymentError0", "card declined")
    assert row.exceptions is not None and len(row.exceptions) == MAX_EXCEPTIONS
    first = row.exceptions[0]
    assert first["type"] == "PaymentError0" and first["escaped"] is True
    assert first["ts"] == NOW_NS / 1e9
    assert len(first["stacktrace"]) == MAX_STACKTRACE
    assert [e["type"] for e in row.exceptions] == [f"PaymentError{i}"
                                                   for i in range(MAX_EXCEPTIONS)]


def test_limits() -> None:
    many = {f"a{i:03d}": i for i in range(MAX_ATTRIBUTES + 10)}
    row = one_span(span(name="n" * (MAX_NAME + 5), attributes={
        **many, "long": "v" * (MAX_VALUE + 5), "k" * (MAX_NAME + 9): "x"}),
        resource={"service.name": "s" * (MAX_NAME + 1)})
    assert len(row.name) == MAX_NAME and len(row.service) == MAX_NAME
    assert row.attributes is not None and len(row.attributes) == MAX_ATTRIBUTES
    assert list(row.attributes) == list(many)[:MAX_ATTRIBUTES]  # the first ones, in order
    # Columns do not count against the attribute limit, and long values are cut.
    row = one_span(span(attributes={"long": "v" * (MAX_VALUE + 5), "k" * (MAX_NAME + 9): "x",
                                    "http.route": "/r" * MAX_VALUE}))
    assert row.attributes == {"long": "v" * MAX_VALUE, "k" * MAX_NAME: "x"}
    assert row.http_route is not None and len(row.http_route) == MAX_VALUE
    deep = one_span(span(attributes={"nested": {"a": {"b": {"c": {"d": {"e": 1}}}}},
                                     "list": list(range(MAX_ATTRIBUTES + 3))}))
    assert deep.attributes == {"nested": {"a": {"b": {"c": {"d": None}}}},  # MAX_DEPTH
                               "list": list(range(MAX_ATTRIBUTES))}


# --- spans: privacy ----------------------------------------------------------------------


def test_addresses_and_user_agents_are_not_stored() -> None:
    row = one_span(span(attributes={
        "client.address": "203.0.113.7", "net.peer.ip": "203.0.113.7",
        "net.sock.peer.addr": "203.0.113.7", "network.peer.address": "203.0.113.7",
        "http.client_ip": "203.0.113.7", "user_agent.original": "Mozilla/5.0",
        "http.user_agent": "Mozilla/5.0", "http.request.header.x-forwarded-for": ["203.0.113.7"],
        "http.request.header.x_real_ip": "203.0.113.7", "url.fragment": "access_token=abc",
        "net.peer.name": "customer-7.dsl.example", "shop.kept": 1}))
    assert row.attributes == {"shop.kept": 1}
    assert row.server_address is None  # net.peer.name of a server span names the shopper


def test_secrets_are_redacted() -> None:
    row = one_span(span(attributes={
        "http.request.header.cookie": "sid=abc", "http.request.header.authorization": "Bearer x",
        "http.response.header.set-cookie": "sid=abc", "db.password": "hunter2",
        "shop.api_key": "k", "rpc.grpc.request.metadata.x-api-key": "k"}))
    assert row.attributes == dict.fromkeys([
        "http.request.header.cookie", "http.request.header.authorization",
        "http.response.header.set-cookie", "db.password", "shop.api_key",
        "rpc.grpc.request.metadata.x-api-key"], "[redacted]")


def test_urls_keep_only_allowed_query_parameters() -> None:
    out = decode(traces(span(attributes={
        "url.full": "https://shop.example/c/shoes?sort=price&email=jane@example.com"
                    "&utm_source=news#top",
        "url.query": "q=jane@example.com&sort=price&utm_medium=mail",
        "url.path": "/u/jane@example.com/orders"})), query_allow=frozenset({"sort"}))
    assert out.rows[0].attributes == {
        "url.full": "https://shop.example/c/shoes?sort=price&utm_source=news",
        "url.query": "sort=price&utm_medium=mail",
        "url.path": "/u/[email]/orders"}


def test_emails_and_card_numbers_are_scrubbed_everywhere() -> None:
    s = span(name=f"charge {CARD}", status=Status(code=2, message="mail jane@example.com"),
             attributes={"shop.note": f"card {CARD} of jane@example.com",
                         "shop.list": [f"x {CARD}"], "shop.map": {"to": "jane@example.com",
                                                               "token": "abc"},
                         "exception.stacktrace": f"at pay({CARD})"})
    s.events.add(name="exception", time_unix_nano=NOW_NS, attributes=attrs(
        {"exception.type": "E", "exception.message": f"declined {CARD} jane@example.com"}))
    row = one_span(s)
    assert row.name == "charge [card]" and row.status_message == "mail [email]"
    assert row.attributes == {"shop.note": "card [card] of [email]", "shop.list": ["x [card]"],
                              "shop.map": {"to": "[email]", "token": "[redacted]"},
                              "exception.stacktrace": "at pay([card])"}
    assert row.exception_message == "declined [card] [email]"


def test_a_card_number_next_to_digit_valued_protobuf_bytes_is_found() -> None:
    # A 50-character string: its length byte is 0x32, the ASCII digit "2", so the body
    # holds the run "2" + the card number (17 digits, failing Luhn as a whole).
    text = CARD + " " + "x" * (50 - len(CARD) - 1)
    body = traces(span(attributes={"shop.note": text})).SerializeToString()
    assert (b"2" + CARD.encode()) in body and not privacy.payload_has_card(body)
    out = otlp.decode(otlp.TRACES, body, otlp.Encoding.PROTOBUF, now_s=0)
    assert out.rows[0].attributes["shop.note"].startswith("[card] ")
    assert privacy.has_digit_run(b"\x00" + b"1" * 13 + b"\xff")
    assert not privacy.has_digit_run(b"1" * 12 + b"-" + b"1" * 12)


def test_without_a_digit_run_strings_skip_the_card_scan() -> None:
    # 12 digits are no card number; the same text with a card is scrubbed (above).
    row = one_span(span(attributes={"shop.order": "order 123456789012 shipped"}))
    assert row.attributes == {"shop.order": "order 123456789012 shipped"}


def test_identifiers_are_pseudonymised() -> None:
    row = one_span(span(attributes={"session.id": "jane@example.com",
                                    "enduser.id": "web:jane@example.com",
                                    "user.email": "Jane@Example.com", "user.id": "u-1",
                                    "user.full_name": "Jane Doe"}))
    pseudonym = privacy.pseudonymize("jane@example.com", KEY)
    assert row.session_id == pseudonym and pseudonym.startswith("email:")
    assert row.attributes == {"enduser.id": f"web:{pseudonym}", "user.email": pseudonym,
                              "user.id": "u-1"}


# --- spans: rejections ---------------------------------------------------------------------


BAD_SPANS = [
    ({"trace_id": TRACE[:15]}, "traceId: 15 bytes, expected 16"),
    ({"trace_id": b""}, "traceId: 0 bytes, expected 16"),
    ({"trace_id": bytes(16)}, "traceId: all zeros, which is not a valid trace id"),
    ({"span_id": b""}, "spanId: 0 bytes, expected 8"),
    ({"span_id": bytes(8)}, "spanId: all zeros, which is not a valid span id"),
    ({"parent_span_id": b"\x01" * 4}, "parentSpanId: 4 bytes, expected 8 or none"),
    ({"start_time_unix_nano": 0}, "startTimeUnixNano: missing"),
    ({"end_time_unix_nano": 0}, "endTimeUnixNano: missing"),
    ({"end_time_unix_nano": NOW_NS - 1}, "endTimeUnixNano: before startTimeUnixNano"),
    ({"kind": 9}, "kind: 9 is not a span kind (0-5)"),
    ({"status": Status(code=7)}, "status.code: 7 is not a status code (0-2)"),
]


@pytest.mark.parametrize(("fields", "problem"), BAD_SPANS)
def test_an_invalid_span_is_rejected_naming_its_position(fields: dict[str, Any],
                                                          problem: str) -> None:
    out = decode(traces(span(1), span(2), span(3), span(4, **fields), scopes=2))
    assert out.rejected == 1 and len(out.rows) == 3
    assert out.problems == [f"resourceSpans[0].scopeSpans[1].spans[1].{problem}"]
    assert out.error_message == f"1 of 4 rejected: {out.problems[0]}"


def test_the_error_message_names_the_first_problems_and_counts_the_rest() -> None:
    out = decode(traces(*(span(i, trace_id=b"x") for i in range(1, 9)), span(99)))
    assert out.rejected == 8 and len(out.rows) == 1
    assert len(out.problems) == otlp.MAX_PROBLEMS
    assert out.error_message.startswith("8 of 9 rejected: resourceSpans[0].scopeSpans[0]."
                                        "spans[0].traceId: 1 bytes, expected 16; ")
    assert out.error_message.endswith("; and 3 more")


def test_an_empty_name_and_unset_kind_are_valid() -> None:
    row = one_span(span(name="", kind=0))
    assert (row.name, row.kind, row.status) == ("", "unspecified", "unset")


# --- OTLP/JSON -----------------------------------------------------------------------------


def test_json_decodes_like_protobuf() -> None:
    s = span(5, parent_span_id=(3).to_bytes(8, "big"), status=Status(code=1), attributes={
        "http.route": "/x", "http.response.status_code": 200, "shop.big": 2**62,
        "shop.bytes": b"\x00\x01", "shop.f": 1.5})
    s.events.add(name="exception", time_unix_nano=NOW_NS, attributes=attrs(
        {"exception.type": "E", "exception.message": "m"}))
    s.links.add(trace_id=TRACE, span_id=(9).to_bytes(8, "big"))
    req = traces(s, span(6))
    body = to_json(req)
    text = body.decode()
    assert '"traceId": "5b8efff798038103d269b633813fc60c"' in text  # hex, not base64
    assert '"kind": 2' in text and f'"startTimeUnixNano": "{NOW_NS}"' in text
    as_json = otlp.decode(otlp.TRACES, body, otlp.Encoding.JSON, now_s=0)
    as_proto = otlp.decode(otlp.TRACES, req.SerializeToString(), otlp.Encoding.PROTOBUF,
                           now_s=0)
    assert as_json.rows == as_proto.rows and len(as_json.rows) == 2
    assert as_json.rows[0].attributes["shop.bytes"] == "AAE="


def test_json_numbers_upper_case_hex_and_unknown_fields() -> None:
    body = json.dumps({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name",
                                     "value": {"stringValue": "api"}}]},
        "futureField": {"x": 1},
        "scopeSpans": [{"spans": [{
            "traceId": TRACE.hex().upper(), "spanId": "00000000000000AA", "name": "n",
            "kind": 3, "startTimeUnixNano": NOW_NS, "endTimeUnixNano": str(NOW_NS + 10**6),
            "attributes": [{"key": "http.response.status_code",
                            "value": {"intValue": "404"}}],
            "somethingNew": True}]}]}]}).encode()
    out = otlp.decode(otlp.TRACES, body, otlp.Encoding.JSON, now_s=0)
    assert out.rejected == 0
    (row,) = out.rows
    assert (row.service, row.trace_id, row.span_id) == ("api", TRACE.hex(), "00000000000000aa")
    assert (row.kind, row.duration_ms, row.http_status) == ("client", 1.0, 404)


@pytest.mark.parametrize(("trace_id", "problem"), [
    ("zz" * 21, "traceId: 'zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz...' is not an even number of "
                "hex digits"),
    ("abc", "traceId: 'abc' is not an even number of hex digits"),
    ("ab cd", "traceId: 'ab cd' is not an even number of hex digits"),
    ("abcd", "traceId: 2 bytes, expected 16"),
])
def test_json_bad_ids_reject_the_span_alone(trace_id: str, problem: str) -> None:
    obj = json.loads(to_json(traces(span(1), span(2))))
    obj["resourceSpans"][0]["scopeSpans"][0]["spans"][1]["traceId"] = trace_id
    out = otlp.decode(otlp.TRACES, json.dumps(obj).encode(), otlp.Encoding.JSON, now_s=0)
    assert out.rejected == 1 and len(out.rows) == 1
    assert out.problems == [f"resourceSpans[0].scopeSpans[0].spans[1].{problem}"]


@pytest.mark.parametrize(("body", "encoding", "message"), [
    (b"\x0a\xff\xff\xff", otlp.Encoding.PROTOBUF, "not an OTLP traces request in protobuf"),
    (b"not protobuf at all", otlp.Encoding.PROTOBUF, "not an OTLP traces request in protobuf"),
    (b'{"resourceSpans": [', otlp.Encoding.JSON, "body is not JSON"),
    (b"[1, 2]", otlp.Encoding.JSON, "expected a JSON object"),
    (b'{"resourceSpans": 5}', otlp.Encoding.JSON, "not an OTLP traces request"),
    (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": "soon"}]}]}]}',
     otlp.Encoding.JSON, "not an OTLP traces request"),
])
def test_undecodable_bodies_are_bad_requests(body: bytes, encoding: otlp.Encoding,
                                             message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        otlp.decode(otlp.TRACES, body, encoding, now_s=0)


@pytest.mark.parametrize("body", [b"", b"{}"])
def test_empty_requests_decode_to_nothing(body: bytes) -> None:
    for kind in otlp.SIGNALS.values():
        out = otlp.decode(kind, body, otlp.Encoding.JSON, now_s=0)
        assert (out.rows, out.rejected) == ([], 0)
    assert otlp.decode(otlp.TRACES, b"", otlp.Encoding.PROTOBUF, now_s=0).rows == []


# --- metrics -----------------------------------------------------------------------------


def metrics_request(*metrics: M.Metric) -> ExportMetricsServiceRequest:
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.resource.attributes.extend(attrs({"service.name": "checkout"}))
    rm.scope_metrics.add().metrics.extend(metrics)
    return req


def metric_rows(*metrics: M.Metric) -> list[MetricRow]:
    out = decode(metrics_request(*metrics), otlp.METRICS)
    assert out.rejected == 0, out.problems
    return out.rows


def test_gauges_and_sums() -> None:
    gauge = M.Metric(name="queue.depth", unit="{job}", gauge=M.Gauge(data_points=[
        M.NumberDataPoint(time_unix_nano=NOW_NS, as_int=7, attributes=attrs({"q": "mail"}))]))
    total = M.Metric(name="orders", sum=M.Sum(
        is_monotonic=True, aggregation_temporality=M.AGGREGATION_TEMPORALITY_CUMULATIVE,
        data_points=[M.NumberDataPoint(time_unix_nano=NOW_NS, start_time_unix_nano=NOW_NS - 10**9,
                                       as_double=12.5)]))
    g, s = metric_rows(gauge, total)
    assert (g.service, g.name, g.kind, g.unit, g.value, g.attributes) == (
        "checkout", "queue.depth", "gauge", "{job}", 7, {"q": "mail"})
    assert g.ts == NOW_NS / 1e9 and g.start_ts is None and g.temporality is None
    assert (s.kind, s.value, s.monotonic, s.temporality, s.start_ts) == (
        "sum", 12.5, True, "cumulative", NOW_NS / 1e9 - 1)


def test_histograms() -> None:
    hist = M.Metric(name="http.server.request.duration", unit="s", histogram=M.Histogram(
        aggregation_temporality=M.AGGREGATION_TEMPORALITY_DELTA, data_points=[
            M.HistogramDataPoint(time_unix_nano=NOW_NS, count=6, sum=1.25, min=0.01, max=0.9,
                                 explicit_bounds=[0.1, 0.5], bucket_counts=[3, 2, 1],
                                 attributes=attrs({"http.route": "/cart"})),
            M.HistogramDataPoint(time_unix_nano=NOW_NS, count=2)]))
    expo = M.Metric(name="latency", exponential_histogram=M.ExponentialHistogram(data_points=[
        M.ExponentialHistogramDataPoint(
            time_unix_nano=NOW_NS, count=3, sum=0.3, scale=2, zero_count=1,
            positive=M.ExponentialHistogramDataPoint.Buckets(offset=-3, bucket_counts=[1, 1]))]))
    summary = M.Metric(name="gc", summary=M.Summary(data_points=[M.SummaryDataPoint(
        time_unix_nano=NOW_NS, count=4, sum=2.0, quantile_values=[
            M.SummaryDataPoint.ValueAtQuantile(quantile=0.5, value=0.4)])]))
    h, bare, e, q = metric_rows(hist, expo, summary)
    assert (h.kind, h.count, h.sum, h.min, h.max, h.bounds, h.counts, h.temporality) == (
        "histogram", 6, 1.25, 0.01, 0.9, [0.1, 0.5], [3, 2, 1], "delta")
    assert h.attributes == {"http.route": "/cart"}  # no span columns for metrics
    assert (bare.count, bare.sum, bare.min, bare.bounds) == (2, None, None, None)
    assert (e.kind, e.count, e.sum) == ("exponential_histogram", 3, 0.3)
    assert e.attributes == {"_buckets": {"scale": 2, "zero_count": 1, "zero_threshold": 0.0,
                                         "positive": {"offset": -3, "counts": [1, 1]},
                                         "negative": {"offset": 0, "counts": []}}}
    assert (q.kind, q.count, q.sum, q.attributes) == ("summary", 4, 2.0,
                                                      {"_quantiles": [[0.5, 0.4]]})


def test_invalid_data_points_are_rejected_naming_their_position() -> None:
    ok = M.NumberDataPoint(time_unix_nano=NOW_NS, as_int=1)
    out = decode(metrics_request(
        M.Metric(name="g", gauge=M.Gauge(data_points=[ok, M.NumberDataPoint(as_int=1),
                                                      M.NumberDataPoint(time_unix_nano=1)])),
        M.Metric(name="", sum=M.Sum(data_points=[ok])),
        M.Metric(name="h", histogram=M.Histogram(data_points=[
            M.HistogramDataPoint(time_unix_nano=NOW_NS, count=3, explicit_bounds=[1.0, 2.0],
                                 bucket_counts=[1, 2]),
            M.HistogramDataPoint(time_unix_nano=NOW_NS, count=3, explicit_bounds=[2.0, 1.0],
                                 bucket_counts=[1, 1, 1]),
            M.HistogramDataPoint(time_unix_nano=NOW_NS, count=5, explicit_bounds=[1.0],
                                 bucket_counts=[1, 1]),
            M.HistogramDataPoint(time_unix_nano=NOW_NS, count=2**64 - 1)])),
        M.Metric(name="no data")), otlp.METRICS)
    where = "resourceMetrics[0].scopeMetrics[0].metrics"
    assert out.rejected == 7 and len(out.rows) == 1
    assert out.problems == [
        f"{where}[0].gauge.dataPoints[1].timeUnixNano: missing",
        f"{where}[0].gauge.dataPoints[2].value: neither asDouble nor asInt",
        f"{where}[1].name: empty",
        f"{where}[2].histogram.dataPoints[0].bucketCounts: 2 counts for 2 bounds, expected 3",
        f"{where}[2].histogram.dataPoints[1].explicitBounds: not strictly increasing"]
    assert out.error_message.endswith("; and 2 more")
    everything = otlp.Decoded()
    for problem in ("a", "b"):
        everything.reject(problem)
    assert everything.error_message == "2 of 2 rejected: a; b"
    big = decode(metrics_request(M.Metric(name="h", histogram=M.Histogram(data_points=[
        M.HistogramDataPoint(time_unix_nano=NOW_NS, count=2**64 - 1)]))), otlp.METRICS)
    assert big.problems == [f"{where}[0].histogram.dataPoints[0].count: {2**64 - 1} is over "
                            "the largest count stored (2^63 - 1)"]


def test_metrics_in_json() -> None:
    req = metrics_request(M.Metric(name="orders", sum=M.Sum(data_points=[
        M.NumberDataPoint(time_unix_nano=NOW_NS, as_int=2**40)])))
    body = json_format.MessageToJson(req).encode()
    assert f'"asInt": "{2**40}"' in body.decode()  # 64-bit integers as strings
    out = otlp.decode(otlp.METRICS, body, otlp.Encoding.JSON, now_s=0)
    assert [r.value for r in out.rows] == [2**40]


# --- logs --------------------------------------------------------------------------------


def logs_request(*records: LogRecord) -> ExportLogsServiceRequest:
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    rl.resource.attributes.extend(attrs({"service.name": "worker"}))
    rl.scope_logs.add().log_records.extend(records)
    return req


def test_log_records() -> None:
    out = decode(logs_request(
        LogRecord(time_unix_nano=NOW_NS, severity_number=17, severity_text="ERROR",
                  body=value(f"payment of jane@example.com failed: {CARD}"), trace_id=TRACE,
                  span_id=(7).to_bytes(8, "big"), attributes=attrs({"client.address": "1.2.3.4",
                                                                    "job": "mail"})),
        LogRecord(observed_time_unix_nano=NOW_NS + 1, body=value({"order": 7})),
        LogRecord(body=value("x" * (otlp.MAX_LOG_BODY + 3)), event_name="shop.checkout")),
        otlp.LOGS)
    first, second, third = out.rows
    assert isinstance(first, LogRow)
    assert (first.ts, first.service, first.severity, first.severity_number) == (
        NOW_NS / 1e9, "worker", "ERROR", 17)
    assert first.body == "payment of [email] failed: [card]"
    assert (first.trace_id, first.span_id) == (TRACE.hex(), "0000000000000007")
    assert first.attributes == {"job": "mail"}
    assert (second.ts, second.body, second.severity, second.trace_id) == (
        (NOW_NS + 1) / 1e9, '{"order":7}', None, None)
    assert third.ts == NOW_NS / 1e9  # no time at all: the time received
    assert third.body is not None and len(third.body) == otlp.MAX_LOG_BODY
    assert third.attributes == {"event.name": "shop.checkout"}


def test_invalid_log_records_are_rejected() -> None:
    out = decode(logs_request(LogRecord(time_unix_nano=NOW_NS),
                              LogRecord(trace_id=b"\x01" * 5),
                              LogRecord(span_id=b"\x01" * 9),
                              LogRecord(severity_number=30)), otlp.LOGS)
    where = "resourceLogs[0].scopeLogs[0].logRecords"
    assert out.rejected == 3 and len(out.rows) == 1
    assert out.problems == [f"{where}[1].traceId: 5 bytes, expected 16 or none",
                            f"{where}[2].spanId: 9 bytes, expected 8 or none",
                            f"{where}[3].severityNumber: 30 is not a severity number (0-24)"]
    obj = json.loads(to_json(logs_request(LogRecord(time_unix_nano=NOW_NS, trace_id=TRACE))))
    obj["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]["traceId"] = "nothex"
    out = otlp.decode(otlp.LOGS, json.dumps(obj).encode(), otlp.Encoding.JSON, now_s=0)
    assert out.problems == [f"{where}[0].traceId: 'nothex' is not an even number of hex digits"]


# --- response bodies -------------------------------------------------------------------------


def test_response_bodies() -> None:
    full = otlp.Decoded(rows=[1])
    assert otlp.response_body(otlp.TRACES, full, otlp.Encoding.PROTOBUF) == b""
    assert otlp.response_body(otlp.TRACES, full, otlp.Encoding.JSON) == b"{}"
    partial = otlp.Decoded(rows=[1], rejected=2, problems=["a: b", "c: d"])
    response = ExportMetricsServiceResponse.FromString(
        otlp.response_body(otlp.METRICS, partial, otlp.Encoding.PROTOBUF))
    assert response.partial_success.rejected_data_points == 2
    assert response.partial_success.error_message == "2 of 3 rejected: a: b; c: d"
    assert json.loads(otlp.response_body(otlp.LOGS, partial, otlp.Encoding.JSON)) == {
        "partialSuccess": {"rejectedLogRecords": "2", "errorMessage": partial.error_message}}


def test_status_bodies() -> None:
    status = status_pb2.Status.FromString(
        otlp.status_body(503, "overloaded", otlp.Encoding.PROTOBUF, retry_after=7))
    assert (status.code, status.message) == (14, "overloaded")
    info = error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(info) and info.retry_delay.seconds == 7
    body = json.loads(otlp.status_body(400, "body is not JSON", otlp.Encoding.JSON))
    assert body["code"] == 3 and body["message"] == "body is not JSON"
    assert body["details"][0]["@type"].endswith("google.rpc.BadRequest")


# --- over HTTP: every OTLP/HTTP response case ------------------------------------------------


PROTOBUF = {"Content-Type": "application/x-protobuf"}
JSON_TYPE = {"Content-Type": "application/json"}


def post(live: Live, key: str | None, path: str, body: bytes,
         headers: dict[str, str] | None = None) -> httpx.Response:
    return live.client(key).post(path, content=body, headers=headers or PROTOBUF)


def stored_spans(live: Live, project_id: int) -> list[dict[str, Any]]:
    columns = ["span_id", "service", "name", "kind", "status", "duration_ms", "http_route",
               "session_id", "attributes"]
    rows = live.runtime.events.query(
        f"SELECT {', '.join(columns)} FROM spans WHERE project_id = ? ORDER BY span_id",
        [project_id])
    return [dict(zip(columns, row, strict=True)) for row in rows]


def status_of(response: httpx.Response) -> status_pb2.Status:
    """The google.rpc.Status of an error answer, in the encoding it was sent in."""
    if response.headers["content-type"] == "application/x-protobuf":
        return status_pb2.Status.FromString(response.content)
    return json_format.Parse(response.text, status_pb2.Status())


def metric_samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_protobuf_request_is_stored_and_answered_in_protobuf(live: Live) -> None:
    project = live.create_project()
    req = traces(span(1, attributes={"http.route": "/cart", "session.id": "s-1",
                                     "client.address": "203.0.113.9"}), span(2))
    response = post(live, project.ingest_key, "/v1/traces", req.SerializeToString())
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-protobuf"
    assert not ExportTraceServiceResponse.FromString(response.content).HasField(
        "partial_success")
    rows = stored_spans(live, project.id)
    assert [(r["span_id"], r["service"], r["kind"], r["duration_ms"], r["http_route"])
            for r in rows] == [("0000000000000001", "checkout", "server", 25.5, "/cart"),
                               ("0000000000000002", "checkout", "server", 25.5, None)]
    assert rows[0]["session_id"] == "s-1" and rows[0]["attributes"] is None
    samples = metric_samples(live.client().get("/metrics").text)
    assert samples[("shopwatch_otlp_accepted_total", (("signal", "traces"),))] == 2


def test_json_request_is_answered_in_json(live: Live) -> None:
    project = live.create_project()
    response = post(live, project.ingest_key, "/v1/traces", to_json(traces(span(1))),
                    {"Content-Type": "application/json; charset=utf-8"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {}
    assert len(stored_spans(live, project.id)) == 1


def test_gzip_and_the_x_shopwatch_key_header(live: Live) -> None:
    project = live.create_project()
    body = gzip.compress(traces(span(1), span(2)).SerializeToString())
    response = live.client().post("/v1/traces", content=body, headers={
        **PROTOBUF, "Content-Encoding": "gzip", "X-Shopwatch-Key": project.ingest_key})
    assert response.status_code == 200
    assert len(stored_spans(live, project.id)) == 2


def test_partly_invalid_is_200_with_partial_success(live: Live) -> None:
    project = live.create_project()
    req = traces(span(1), span(2, trace_id=TRACE[:15]), span(3, end_time_unix_nano=1))
    response = post(live, project.ingest_key, "/v1/traces", req.SerializeToString())
    assert response.status_code == 200
    partial = ExportTraceServiceResponse.FromString(response.content).partial_success
    assert partial.rejected_spans == 2
    assert partial.error_message == (
        "2 of 3 rejected: resourceSpans[0].scopeSpans[0].spans[1].traceId: 15 bytes, "
        "expected 16; resourceSpans[0].scopeSpans[0].spans[2].endTimeUnixNano: before "
        "startTimeUnixNano")
    assert [r["span_id"] for r in stored_spans(live, project.id)] == ["0000000000000001"]
    # In JSON too.
    body = json.loads(to_json(req))
    body["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["spanId"] = "x"
    answer = post(live, project.ingest_key, "/v1/traces", json.dumps(body).encode(), JSON_TYPE)
    assert answer.status_code == 200
    assert answer.json()["partialSuccess"]["rejectedSpans"] == "3"
    samples = metric_samples(live.client().get("/metrics").text)
    assert samples[("shopwatch_otlp_rejected_total", (("signal", "traces"),))] == 5


@pytest.mark.parametrize(("body", "headers", "message"), [
    (b"\x0a\xff\xff\xff\x0f", PROTOBUF, "not an OTLP traces request in protobuf"),
    (b"{nope", JSON_TYPE, "body is not JSON"),
])
def test_undecodable_is_400_with_a_status_in_the_request_encoding(
        live: Live, body: bytes, headers: dict[str, str], message: str) -> None:
    project = live.create_project()
    response = post(live, project.ingest_key, "/v1/traces", body, headers)
    assert response.status_code == 400
    assert response.headers["content-type"] == headers["Content-Type"]
    status = status_of(response)
    assert status.code == 3 and message in status.message
    assert stored_spans(live, project.id) == []


def test_body_over_the_limit_after_decompression_is_413(server: Callable[..., Live]) -> None:
    live = server(otlp_max_body_bytes=4096)
    project = live.create_project()
    big = traces(*(span(i, attributes={"pad": "x" * 200}) for i in range(1, 40)))
    raw = big.SerializeToString()
    compressed = gzip.compress(raw)
    assert len(compressed) < 4096 < len(raw)
    response = post(live, project.ingest_key, "/v1/traces", compressed,
                    {**PROTOBUF, "Content-Encoding": "gzip"})
    assert response.status_code == 413
    assert "otlp_max_body_bytes" in status_of(response).message
    assert stored_spans(live, project.id) == []


@pytest.mark.parametrize("content_type", ["text/plain", "application/grpc", ""])
def test_other_content_types_are_415(live: Live, content_type: str) -> None:
    project = live.create_project()
    response = post(live, project.ingest_key, "/v1/traces",
                    traces(span()).SerializeToString(), {"Content-Type": content_type})
    assert response.status_code == 415
    assert response.headers["content-type"] == "application/json"
    assert "application/x-protobuf" in status_of(response).message


def test_an_unsupported_content_encoding_is_415(live: Live) -> None:
    project = live.create_project()
    response = post(live, project.ingest_key, "/v1/traces", b"x",
                    {**PROTOBUF, "Content-Encoding": "br"})
    assert response.status_code == 415


@pytest.mark.parametrize("key", [None, "swpub_unknown"])
def test_no_key_or_an_unknown_key_is_401(live: Live, key: str | None) -> None:
    live.create_project()
    response = post(live, key, "/v1/traces", traces(span()).SerializeToString())
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/x-protobuf"
    assert status_of(response).code == 16


def test_the_secret_key_may_send_too(live: Live) -> None:
    project = live.create_project()
    response = post(live, project.secret_key, "/v1/traces", traces(span()).SerializeToString())
    assert response.status_code == 200


def test_rate_limit_is_429_with_retry_after(server: Callable[..., Live]) -> None:
    live = server(ingest_rate_limit=1)  # one item per second per project
    project = live.create_project()
    first = post(live, project.ingest_key, "/v1/traces",
                 traces(*(span(i) for i in range(1, 30))).SerializeToString())
    assert first.status_code == 200  # a full bucket admits one request, leaving a debt
    second = post(live, project.ingest_key, "/v1/traces", traces(span(99)).SerializeToString())
    assert second.status_code == 429
    assert int(second.headers["Retry-After"]) >= 1
    status = status_of(second)
    assert "rate" in status.message
    info = error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(info) and info.retry_delay.seconds >= 1
    assert len(stored_spans(live, project.id)) == 29


def test_an_overloaded_writer_is_503_with_retry_after(server: Callable[..., Live]) -> None:
    live = server(writer_queue_events=5, retry_after=7)
    project = live.create_project()
    response = post(live, project.ingest_key, "/v1/traces",
                    traces(*(span(i) for i in range(1, 11))).SerializeToString())
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "7"
    assert "overloaded" in status_of(response).message
    assert stored_spans(live, project.id) == []


def test_a_stopped_writer_is_503_with_retry_after(live: Live) -> None:
    project = live.create_project()
    live.runtime.writer.stop()
    response = post(live, project.ingest_key, "/v1/metrics", to_json(metrics_request(
        M.Metric(name="g", gauge=M.Gauge(data_points=[
            M.NumberDataPoint(time_unix_nano=NOW_NS, as_int=1)])))), JSON_TYPE)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert "shutting down" in status_of(response).message


@pytest.mark.parametrize(("path", "body", "headers"), [
    ("/v1/traces", b"", PROTOBUF),
    ("/v1/metrics", ExportMetricsServiceRequest().SerializeToString(), PROTOBUF),
    ("/v1/logs", b"{}", JSON_TYPE),
    ("/v1/traces", b"", JSON_TYPE),
])
def test_an_empty_request_is_a_success(live: Live, path: str, body: bytes,
                                       headers: dict[str, str]) -> None:
    project = live.create_project()
    response = post(live, project.ingest_key, path, body, headers)
    assert response.status_code == 200
    assert response.content == (b"" if headers is PROTOBUF else b"{}")


def test_metrics_and_logs_over_http(live: Live) -> None:
    project = live.create_project()
    metric = M.Metric(name="orders", sum=M.Sum(is_monotonic=True, data_points=[
        M.NumberDataPoint(time_unix_nano=NOW_NS, as_int=3)]))
    assert post(live, project.ingest_key, "/v1/metrics",
                metrics_request(metric).SerializeToString()).status_code == 200
    answer = post(live, project.ingest_key, "/v1/logs", to_json(logs_request(
        LogRecord(time_unix_nano=NOW_NS, body=value("hello")), LogRecord(span_id=b"x"))),
        JSON_TYPE)
    assert answer.status_code == 200
    assert answer.json()["partialSuccess"]["rejectedLogRecords"] == "1"
    assert live.runtime.events.query(
        "SELECT name, kind, value, monotonic FROM metric_points WHERE project_id = ?",
        [project.id]) == [("orders", "sum", 3.0, True)]
    assert live.runtime.events.query(
        "SELECT service, body FROM logs WHERE project_id = ?", [project.id]) == [
        ("worker", "hello")]


def test_other_methods_are_405(live: Live) -> None:
    assert live.client().get("/v1/traces").status_code == 405


@pytest.mark.parametrize("api_only", [False, True])
def test_the_front_door_and_fastapi_answer_alike(server: Callable[..., Live],
                                                 api_only: bool) -> None:
    live = server(api_only=api_only)
    project = live.create_project()
    req = traces(span(1), span(2, span_id=b""))
    ok = post(live, project.ingest_key, "/v1/traces", req.SerializeToString())
    assert ok.status_code == 200 and ok.headers["content-type"] == "application/x-protobuf"
    assert ExportTraceServiceResponse.FromString(ok.content).partial_success.rejected_spans == 1
    bad = post(live, None, "/v1/traces", b"", JSON_TYPE)
    assert bad.status_code == 401 and status_of(bad).code == 16


def test_openapi_describes_the_otlp_routes(live: Live) -> None:
    project = live.create_project()
    spec = live.client(project.secret_key).get("/openapi.json").json()
    for path in ("/v1/traces", "/v1/metrics", "/v1/logs"):
        operation = spec["paths"][path]["post"]
        assert {"200", "400", "401", "413", "415", "429", "503"} <= set(operation["responses"])
        assert "application/x-protobuf" in operation["requestBody"]["content"]


def test_the_stored_time_is_the_span_start(live: Live) -> None:
    project = live.create_project()
    now = time.time_ns()
    req = traces(span(1, start_time_unix_nano=now, end_time_unix_nano=now + 10**6))
    assert post(live, project.ingest_key, "/v1/traces", req.SerializeToString()).status_code == 200
    ((ts,),) = live.runtime.events.query(
        "SELECT epoch_us(ts) FROM spans WHERE project_id = ?", [project.id])
    assert abs(ts - now // 1000) <= 1  # microseconds, through a double


@pytest.mark.slow
def test_no_acknowledged_span_is_lost_on_sigkill(
        tmp_path: Path, serve_process: Callable[[Path], ServeProcess]) -> None:
    """Exporters post batches with unique span ids; SIGKILL the server mid-stream; every
    span of a batch answered 200 is in the store afterwards."""
    data = tmp_path / "data"
    state = open_state(defaults().replace(data_dir=str(data)))
    project = state.create_project("crash shop")
    state.close()
    server = serve_process(data)
    acked: list[str] = []
    lock = threading.Lock()
    killed = threading.Event()

    def exporter(t: int) -> None:
        with httpx.Client(base_url=server.base_url, timeout=30, headers={
                **PROTOBUF, "Authorization": f"Bearer {project.ingest_key}"}) as http:
            seq = 0
            while not killed.is_set():
                ids = [(t << 48 | seq << 16 | i) + 1 for i in range(100)]
                seq += 1
                body = traces(*(span(n) for n in ids)).SerializeToString()
                try:
                    response = http.post("/v1/traces", content=body)
                except httpx.HTTPError:
                    continue
                if response.status_code == 200:
                    with lock:
                        acked.extend(f"{n:016x}" for n in ids)

    threads = [threading.Thread(target=exporter, args=(t,), daemon=True) for t in range(4)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 120
    while len(acked) < 3000 and time.monotonic() < deadline:
        time.sleep(0.05)
    server.proc.send_signal(signal.SIGKILL)  # requests are in flight
    server.proc.wait(timeout=30)
    killed.set()
    for thread in threads:
        thread.join(timeout=60)
    assert len(acked) >= 3000
    restarted = serve_process(data)  # replays the WAL; then stop it cleanly
    restarted.proc.send_signal(signal.SIGTERM)
    restarted.proc.wait(timeout=60)
    with duckdb.connect(str(data / "events.duckdb"), read_only=True) as con:
        stored = {row[0] for row in con.execute(
            "SELECT span_id FROM spans WHERE project_id = ?", [project.id]).fetchall()}
    missing = set(acked) - stored
    assert not missing, f"{len(missing)} of {len(acked)} acknowledged spans lost"
