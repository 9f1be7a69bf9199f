"""The demo shop's past traces, for the backfill (:mod:`shopwatch.demo.history`).

The live shop makes real spans with the OpenTelemetry SDK
(:mod:`shopwatch.demo.shop.tracing`); the past cannot be replayed through it, so
:class:`PastTraces` turns each backfilled event into the trace the shop's request that
sent it would have made, with the same services, names, routes and attributes:

- a ``page_view`` is a ``GET`` of its page's route; an event a form post sends
  (``add_to_cart``, ``login``, ``purchase``, ...) is the ``POST`` of its route; events a
  page sends after its ``page_view`` (``view_item``, ``view_cart``...) belong to that
  same request and make no trace of their own;
- each request has its store calls below it (``db.system`` ``in-memory``), and a payment
  (``purchase`` or ``payment_declined``) the client span to the sandbox and the
  sandbox's own server span;
- the past incidents show as they do live: during a slow checkout every ``/checkout``
  request takes the delay longer; during a gateway outage payments end in 502 with a
  ``GatewayError`` recorded on the three spans.

Rows are :class:`shopwatch.telemetry.SpanRow`, as the OTLP receiver stores them.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterator
from typing import Any, Final

from shopwatch.demo.shop.tracing import (
    DB_SYSTEM,
    SANDBOX_HOST,
    SANDBOX_ROUTE,
    SANDBOX_SERVICE,
    SHOP_SERVICE,
)
from shopwatch.telemetry import SpanRow

_SHOP: Final = {"service.name": SHOP_SERVICE}
_SANDBOX: Final = {"service.name": SANDBOX_SERVICE}
_GATEWAY_ERROR: Final = "shopwatch.demo.shop.tracing.GatewayError"

# Page -> route template, first match wins.
_ROUTES: Final = ((re.compile(r"/c/[^/]+"), "/c/{category}"),
                  (re.compile(r"/p/[^/]+"), "/p/{product_id}"),
                  (re.compile(r"/order/[^/]+"), "/order/{order_id}"),
                  (re.compile(r"/orders/[^/]+/refund"), "/orders/{order_id}/refund"),
                  (re.compile(r"/orders/[^/]+/cancel"), "/orders/{order_id}/cancel"))
# Event -> (route, status, store calls after the session lookup) of the POST that sends it.
_POSTS: Final[dict[str, tuple[str | None, int, tuple[tuple[str, str], ...]]]] = {
    "add_to_cart": ("/cart/add", 303, (("SELECT", "products"),)),
    "remove_from_cart": ("/cart/remove", 303, ()),
    "add_shipping_info": ("/checkout/shipping", 303, ()),
    "login": ("/login", 303, (("SELECT", "customers"),)),
    "login_failed": ("/login", 401, (("SELECT", "customers"),)),
    "sign_up": ("/signup", 303, (("SELECT", "customers"), ("INSERT", "customers"))),
    "profile_updated": ("/account/profile", 303, (("SELECT", "customers"),
                                                  ("UPDATE", "customers"))),
    "password_changed": ("/account/password", 303, (("SELECT", "customers"),)),
    "survey_response": ("/survey", 303, (("SELECT", "orders"),)),
    "support_contact": ("/support", 303, ()),
    "refund": (None, 303, (("SELECT", "orders"), ("UPDATE", "orders"))),
    "order_cancelled": (None, 303, (("SELECT", "orders"), ("UPDATE", "orders"))),
}
# A page's store calls after the session lookup.
_PAGE_CALLS: Final[dict[str, tuple[tuple[str, str], ...]]] = {
    "/c/{category}": (("SELECT", "products"),), "/search": (("SELECT", "products"),),
    "/p/{product_id}": (("SELECT", "products"),), "/order/{order_id}": (("SELECT", "orders"),),
    "/account": (("SELECT", "customers"), ("SELECT", "orders")),
}

Windows = Callable[[str, float], bool]  # (incident kind, epoch seconds) -> under way


def route_of(page: str) -> str:
    """The route template a page's path matches (the path itself if it has no part)."""
    for pattern, route in _ROUTES:
        if pattern.fullmatch(page):
            return route
    return page


class PastTraces:
    """Makes the spans of past requests; ``during(kind, ts)`` says whether an incident
    of ``kind`` (``slow_checkout``, ``gateway_errors``) was under way at ``ts``;
    ``checkout_delay_s`` is what a slow checkout adds to each ``/checkout`` request."""

    def __init__(self, rng: random.Random, during: Windows,
                 checkout_delay_s: float = 2.5) -> None:
        self.rng = rng
        self.during = during
        self.checkout_delay_ms = checkout_delay_s * 1000

    def _id(self, bits: int) -> str:
        return f"{self.rng.getrandbits(bits):0{bits // 4}x}"

    def of(self, event: dict[str, Any]) -> Iterator[SpanRow]:
        """The spans of the request that sent ``event`` (none if it sent no request of
        its own); ``event["ts"]`` (epoch ms) is when the request ended."""
        name, page = str(event["name"]), str(event.get("page", ""))
        payment = name in ("purchase", "payment_declined")
        if name == "page_view":
            method, route, status = "GET", route_of(page), 200
            calls = _PAGE_CALLS.get(route, ())
        elif payment:
            method, route = "POST", "/checkout/payment"
            reason = (event.get("params") or {}).get("reason")
            status = 303 if name == "purchase" else 502 if reason == "gateway_error" else 402
            calls = (("INSERT", "orders"),) if name == "purchase" else ()
        elif name in _POSTS:
            post, status, calls = _POSTS[name]
            method, route = "POST", post or route_of(page)
        else:
            return
        end = float(event["ts"]) / 1000
        trace_id, root_id = self._id(128), self._id(64)
        # Children are made with ``ts`` in ms from the request's start, made absolute
        # once the request's duration (and so its start) is known.
        spans: list[SpanRow] = []
        offset = self.rng.uniform(0.5, 2.0)
        for operation, collection in (("SELECT", "sessions"), *calls):
            took = self.rng.uniform(0.02, 0.3)
            spans.append(SpanRow(
                ts=offset, trace_id=trace_id, span_id=self._id(64), parent_span_id=root_id,
                service=SHOP_SERVICE, name=f"{operation} {collection}", kind="client",
                status="unset", duration_ms=took, db_system=DB_SYSTEM,
                db_operation=operation, resource=_SHOP,
                attributes={"db.collection.name": collection}))
            offset += took + self.rng.uniform(0.05, 0.5)
        if payment:
            offset += self._payment(spans, trace_id, root_id, status, offset, end)
        offset += self.rng.lognormvariate(2.5, 0.5)  # rendering, mostly
        if route.startswith("/checkout") and self.during("slow_checkout", end):
            offset += self.checkout_delay_ms  # the delay comes first: children move
            for span in spans:
                span.ts += self.checkout_delay_ms
        start = end - offset / 1000
        for span in spans:
            span.ts = start + span.ts / 1000
        yield SpanRow(
            ts=start, trace_id=trace_id, span_id=root_id, service=SHOP_SERVICE,
            name=f"{method} {route}", kind="server",
            status="error" if status >= 500 else "unset", duration_ms=offset,
            http_route=route, http_method=method, http_status=status,
            session_id=event.get("session_id"), resource=_SHOP)
        yield from spans

    def _payment(self, spans: list[SpanRow], trace_id: str, parent: str, status: int,
                 offset: float, end: float) -> float:
        """Append the payment's client span and the sandbox's server span (``offset``
        ms into the request, relative times as in :meth:`of`); returns the call's
        duration. A gateway error (``status`` 502) fails both, with the exception."""
        down = status == 502
        gateway = 200 if status == 303 else status
        took = self.rng.uniform(800, 3000) if down else self.rng.lognormvariate(5.3, 0.35)
        inner = took * self.rng.uniform(0.8, 0.95)
        call_id = self._id(64)
        for span_id, parent_id, at, duration, service, message in (
                (call_id, parent, offset, took, SHOP_SERVICE, f"{SANDBOX_HOST} answered 502"),
                (self._id(64), call_id, offset + (took - inner) / 2, inner, SANDBOX_SERVICE,
                 "the payment gateway is unavailable")):
            shop = service == SHOP_SERVICE
            spans.append(SpanRow(
                ts=at, trace_id=trace_id, span_id=span_id, parent_span_id=parent_id,
                service=service, name="POST" if shop else f"POST {SANDBOX_ROUTE}",
                kind="client" if shop else "server", duration_ms=duration,
                status="error" if down else "unset",
                status_message=f"GatewayError: {message}" if down else None,
                http_method="POST", http_status=gateway,
                http_route=None if shop else SANDBOX_ROUTE,
                server_address=SANDBOX_HOST if shop else None,
                peer_service=SANDBOX_SERVICE if shop else None,
                exception_type=_GATEWAY_ERROR if down else None,
                exception_message=message if down else None,
                exceptions=([{"type": _GATEWAY_ERROR, "message": message, "ts": end}]
                            if down else None),
                resource=_SHOP if shop else _SANDBOX))
        return took
