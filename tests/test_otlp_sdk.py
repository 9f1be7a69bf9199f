"""The real OpenTelemetry Python SDK and its OTLP/HTTP exporters against a running server.

Configured as docs/otlp.md tells users to (``OTEL_EXPORTER_OTLP_ENDPOINT`` and
``OTEL_EXPORTER_OTLP_HEADERS``), the SDK's own exporters send spans and metrics in
http/protobuf; the test then reads what the event store holds. Durations are checked
against the SDK's own record of each span (an in-memory exporter next to OTLP), so the
percentiles the store computes are compared with those of the raw durations.
"""

from __future__ import annotations

import json
import random
import statistics
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricExportResult
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from shopwatch.store.state import Project
from tests.conftest import Live

RESOURCE = Resource.create({"service.name": "shop-api", "service.version": "2.1.0",
                            "deployment.environment.name": "test"})


@pytest.fixture
def sdk_env(live: Live, project: Project, monkeypatch: pytest.MonkeyPatch) -> Project:
    """The environment docs/otlp.md gives: endpoint, key header, http/protobuf."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", live.base_url)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS",
                       f"Authorization=Bearer%20{project.ingest_key}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    return project


@pytest.fixture
def tracer() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    """A tracer provider that keeps every finished span in memory (the raw record)."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    yield provider, memory
    provider.shutdown()


def spans_of(live: Live, project: Project, where: str = "true") -> list[dict[str, Any]]:
    columns = ["trace_id", "span_id", "parent_span_id", "service", "name", "kind", "status",
               "status_message", "duration_ms", "http_route", "http_method", "http_status",
               "db_system", "db_operation", "server_address", "peer_service",
               "exception_type", "exception_message", "session_id", "exceptions",
               "attributes", "resource"]
    rows = live.runtime.events.query(
        f"SELECT {', '.join(columns)} FROM spans WHERE project_id = ? AND {where} "
        "ORDER BY ts, span_id", [project.id])
    return [dict(zip(columns, row, strict=True)) for row in rows]


def test_a_trace_from_the_sdk_is_stored(live: Live, sdk_env: Project,
                                        tracer: tuple[TracerProvider, Any]) -> None:
    provider, memory = tracer
    t = provider.get_tracer("shop.checkout")
    with t.start_as_current_span("POST /checkout", kind=SpanKind.SERVER, attributes={
            "http.request.method": "POST", "http.route": "/checkout",
            "url.path": "/checkout", "url.query": "email=jane@example.com&utm_source=mail",
            "http.response.status_code": 500, "client.address": "203.0.113.7",
            "user_agent.original": "Mozilla/5.0", "session.id": "s-77"}) as server:
        with t.start_as_current_span("SELECT shop.carts", kind=SpanKind.CLIENT, attributes={
                "db.system.name": "postgresql", "db.operation.name": "SELECT",
                "server.address": "db-1.internal", "db.query.text": "SELECT * FROM carts"}):
            pass
        with t.start_as_current_span("POST", kind=SpanKind.CLIENT, attributes={
                "http.request.method": "POST", "peer.service": "payments",
                "server.address": "psp.example", "http.response.status_code": 502,
                "url.full": "https://psp.example/charge?card=4111111111111111"}) as call:
            try:
                raise TimeoutError("payment gateway timed out for jane@example.com")
            except TimeoutError as exc:
                call.record_exception(exc)
                call.set_status(Status(StatusCode.ERROR, "gateway timeout"))
        server.set_status(Status(StatusCode.ERROR))
    finished = memory.get_finished_spans()
    assert OTLPSpanExporter().export(finished) is SpanExportResult.SUCCESS

    rows = spans_of(live, sdk_env)
    assert [r["name"] for r in rows] == ["POST /checkout", "SELECT shop.carts", "POST"]
    root, db, call_row = rows
    trace_id = f"{finished[0].context.trace_id:032x}"
    assert {r["trace_id"] for r in rows} == {trace_id}
    assert root["parent_span_id"] is None
    assert db["parent_span_id"] == call_row["parent_span_id"] == root["span_id"]
    assert (root["service"], root["kind"], root["status"]) == ("shop-api", "server", "error")
    assert (root["http_route"], root["http_method"], root["http_status"]) == (
        "/checkout", "POST", 500)
    assert root["session_id"] == "s-77"
    assert root["attributes"] is not None
    assert '"url.query":"utm_source=mail"' in root["attributes"]
    assert "203.0.113.7" not in root["attributes"] and "Mozilla" not in root["attributes"]
    assert '"service.version":"2.1.0"' in root["resource"]
    assert (db["kind"], db["db_system"], db["db_operation"], db["server_address"]) == (
        "client", "postgresql", "SELECT", "db-1.internal")
    assert (call_row["peer_service"], call_row["http_status"], call_row["status"],
            call_row["status_message"]) == ("payments", 502, "error", "gateway timeout")
    assert call_row["exception_type"] == "TimeoutError"
    assert call_row["exception_message"] == "payment gateway timed out for [email]"
    assert "Traceback" in call_row["exceptions"] and "jane@" not in call_row["exceptions"]
    assert '"url.full":"https://psp.example/charge"' in call_row["attributes"]
    # Durations are the SDK's own, to the nanosecond (as milliseconds).
    by_id = {f"{s.context.span_id:016x}": s for s in finished}
    for row in rows:
        raw = by_id[row["span_id"]]
        assert row["duration_ms"] == pytest.approx((raw.end_time - raw.start_time) / 1e6,
                                                   rel=1e-12)


def test_percentiles_of_stored_spans_match_the_raw_durations(
        live: Live, sdk_env: Project, tracer: tuple[TracerProvider, Any]) -> None:
    provider, memory = tracer
    t = provider.get_tracer("shop.web")
    rng = random.Random(7)
    start = 1_790_000_000_000_000_000
    for i in range(1200):  # more than one SDK batch (512)
        duration = int(rng.lognormvariate(17.5, 0.8))  # ns: median ~40 ms, long tail
        span = t.start_span("GET /p/{slug}", kind=SpanKind.SERVER, start_time=start + i,
                            attributes={"http.route": "/p/{slug}"})
        span.end(end_time=start + i + duration)
    finished = memory.get_finished_spans()
    exporter = OTLPSpanExporter(compression=Compression.Gzip)
    for i in range(0, len(finished), 512):  # the batch span processor's default batch
        assert exporter.export(finished[i:i + 512]) is SpanExportResult.SUCCESS

    raw_ms = [(s.end_time - s.start_time) / 1e6 for s in finished]
    # statistics' "inclusive" method interpolates linearly between closest ranks, as
    # numpy's default and DuckDB's quantile_cont do.
    cuts = statistics.quantiles(raw_ms, n=100, method="inclusive")
    expected = [cuts[49], cuts[94], cuts[98]]
    ((count, stored),) = live.runtime.events.query(
        "SELECT count(*), quantile_cont(duration_ms, [0.5, 0.95, 0.99]) FROM spans "
        "WHERE project_id = ? AND http_route = '/p/{slug}'", [sdk_env.id])
    assert count == len(raw_ms) == 1200
    assert stored == pytest.approx(expected, rel=1e-9)
    assert expected[0] < expected[1] < expected[2]


def test_metrics_from_the_sdk_are_stored(live: Live, sdk_env: Project) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(resource=RESOURCE, metric_readers=[reader])
    meter = provider.get_meter("shop.web")
    histogram = meter.create_histogram("http.server.request.duration", unit="s")
    orders = meter.create_counter("shop.orders", unit="{order}")
    rng = random.Random(3)
    values = [rng.uniform(0.001, 3.0) for _ in range(300)]
    for v in values:
        histogram.record(v, {"http.route": "/checkout", "client.address": "203.0.113.7"})
    orders.add(5, {"payment.method": "card"})
    data = reader.get_metrics_data()
    assert data is not None
    assert OTLPMetricExporter().export(data) is MetricExportResult.SUCCESS
    provider.shutdown()

    rows = live.runtime.events.query(
        "SELECT service, name, kind, unit, count, sum, min, max, bounds, counts, value, "
        "monotonic, temporality, attributes FROM metric_points WHERE project_id = ? "
        "ORDER BY name", [sdk_env.id])
    assert len(rows) == 2
    hist, counter = rows
    (service, name, kind, unit, count, total, low, high, bounds, counts, _, _, temporality,
     attributes) = hist
    assert (service, name, kind, unit, temporality) == (
        "shop-api", "http.server.request.duration", "histogram", "s", "cumulative")
    assert count == 300 and total == pytest.approx(sum(values))
    assert (low, high) == (min(values), max(values))
    assert attributes == '{"http.route":"/checkout"}'  # the address is not stored
    sdk_point = data.resource_metrics[0].scope_metrics[0].metrics[0].data.data_points[0]
    assert json.loads(bounds) == list(sdk_point.explicit_bounds)
    assert json.loads(counts) == list(sdk_point.bucket_counts) and sum(json.loads(counts)) == 300
    assert counter[1:3] == ("shop.orders", "sum") and counter[10] == 5.0
    assert counter[11] is True and counter[13] == '{"payment.method":"card"}'
