"""The demo shop's traces, made with the OpenTelemetry Python SDK and sent over OTLP.

What is traced (docs/demo.md, "Backend traces"):

- every shop request: a ``SERVER`` span of service ``demo-shop`` named
  ``<METHOD> <route template>`` with ``http.request.method``, ``http.route``,
  ``http.response.status_code`` and the visit's ``session.id`` (its public id, the one
  its events carry); status error on a 5xx answer or an exception (recorded);
- its store calls: ``CLIENT`` spans ``<OPERATION> <collection>`` with ``db.system``
  ``in-memory`` (the shop keeps everything in Python dicts: it is no SQL database and
  is not called one), ``db.operation.name`` and ``db.collection.name``;
- each payment: a ``CLIENT`` span ``POST`` to :data:`SANDBOX_HOST` (``server.address``)
  and, as the sandbox runs in-process, its own ``SERVER`` span of service
  ``payments-sandbox`` below it, so the provider shows as a dependency by host and as
  a service of its own.

``ShopTracing.shutdown`` flushes both providers: call it after the shop has stopped
serving and before Shopwatch stops, so no span is lost.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

SHOP_SERVICE: Final = "demo-shop"
SANDBOX_SERVICE: Final = "payments-sandbox"
# The sandbox is in-process; this is the host a real gateway would have (beside the
# js.payments-sandbox.example of its script in real-user data), so the
# Backend page's dependencies name the payment provider by host.
SANDBOX_HOST: Final = "api.payments-sandbox.example"
SANDBOX_ROUTE: Final = "/v1/charges"
DB_SYSTEM: Final = "in-memory"


class GatewayError(Exception):
    """The payment gateway failed (the ``gateway_errors`` fault): recorded on spans."""


@dataclass
class ShopTracing:
    """The shop's tracer and the sandbox's (each its own service); no-op tracers and
    no providers when the shop is not traced (tests that do not look at spans)."""

    shop: Tracer
    sandbox: Tracer
    providers: tuple[TracerProvider, ...] = ()

    @classmethod
    def off(cls) -> ShopTracing:
        return cls(trace.NoOpTracer(), trace.NoOpTracer())

    @classmethod
    def otlp(cls, shopwatch_url: str, ingest_key: str) -> ShopTracing:
        """Spans sent in batches to ``<shopwatch_url>/v1/traces`` (OTLP http/protobuf)
        with the project's ingest key."""
        headers = {"Authorization": f"Bearer {ingest_key}"}
        endpoint = shopwatch_url.rstrip("/") + "/v1/traces"
        return cls.with_exporters(lambda: OTLPSpanExporter(endpoint=endpoint, headers=headers))

    @classmethod
    def with_exporters(cls, exporter: Callable[[], SpanExporter]) -> ShopTracing:
        """Two providers, each with a :class:`BatchSpanProcessor` around a fresh
        exporter from ``exporter()`` (a zero-argument factory)."""
        providers = []
        for service in (SHOP_SERVICE, SANDBOX_SERVICE):
            provider = TracerProvider(resource=Resource.create({"service.name": service}))
            provider.add_span_processor(BatchSpanProcessor(exporter()))
            providers.append(provider)
        return cls(providers[0].get_tracer("shopwatch.demo.shop"),
                   providers[1].get_tracer("shopwatch.demo.payments"), tuple(providers))

    def shutdown(self) -> None:
        """Export what is still queued and stop (blocks until sent or timed out)."""
        for provider in self.providers:
            provider.shutdown()

    @contextmanager
    def db(self, operation: str, collection: str) -> Iterator[Span]:
        """A span around one call to the shop's store (``SELECT``/``INSERT``/``UPDATE``)."""
        with self.shop.start_as_current_span(
                f"{operation} {collection}", kind=SpanKind.CLIENT, attributes={
                    "db.system": DB_SYSTEM, "db.system.name": DB_SYSTEM,
                    "db.operation.name": operation, "db.collection.name": collection,
                }) as span:
            yield span


def fail(span: Span, exc: BaseException) -> None:
    """Mark ``span`` failed by ``exc``: the exception event and an error status."""
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))


def traceparent(span: Span) -> str | None:
    """The W3C ``traceparent`` of ``span`` (sampled), or ``None`` for a no-op span."""
    context = span.get_span_context()
    if not context.is_valid:
        return None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-01"
