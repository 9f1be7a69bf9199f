"""The demo shop's web app: routes, pages, and the events each of them sends.

Every page is server-rendered HTML; forms post ``application/x-www-form-urlencoded``.
Each route documents its answers (status, ``Location``, headers) and its events; the
simulator drives the shop with httpx and relies on both, so they are kept exact:
a page ``GET`` sends ``page_view`` first and then its own event, a ``POST`` sends only
its own event, and redirects send nothing.

Forms carry no CSRF token so the simulator can post them directly; the session cookie
is ``SameSite=Lax``, which already keeps other sites from posting with it. The cookies
are not ``Secure`` because the demo is served over plain HTTP on loopback.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from shopwatch.demo import desk
from shopwatch.demo.incidents import ShopFaults
from shopwatch.demo.shop import catalogue
from shopwatch.demo.shop.catalogue import CATEGORIES, Product
from shopwatch.demo.shop.checkout import SHIPPING_METHODS, Checkout, read_shipping, totals
from shopwatch.demo.shop.customers import (
    EMAIL_RE,
    AccountError,
    Customer,
    CustomerBook,
    check_new_password,
    hash_password,
    normalise_email,
    verify_password,
)
from shopwatch.demo.shop.money import CURRENCY_RE, format_money, parse_amount, to_amount
from shopwatch.demo.shop.network import (
    LOOPBACK,
    Network,
    Requester,
    client_address,
    networks,
    user_agent,
)
from shopwatch.demo.shop.orders import Order, OrderBook, OrderError, new_order_id
from shopwatch.demo.shop.payments import (
    GATEWAY_ERROR,
    GATEWAY_NAME,
    PAYMENT_METHODS,
    TEST_CARDS,
    PaymentResult,
    PaymentSandbox,
    card_digits,
)
from shopwatch.demo.shop.sessions import (
    SESSION_COOKIE,
    VISITOR_COOKIE,
    VISITOR_MAX_AGE,
    SessionStore,
    ShopSession,
)
from shopwatch.demo.shop.tracing import (
    SANDBOX_HOST,
    SANDBOX_ROUTE,
    SANDBOX_SERVICE,
    GatewayError,
    ShopTracing,
    fail,
    traceparent,
)
from shopwatch.demo.shop.tracking import (
    BrowserTag,
    Tracker,
    Tracking,
    cart_items,
    order_items,
    product_item,
    redact_text,
)

log = logging.getLogger(__name__)

TEMPLATES: Final = Path(__file__).with_name("templates")
MAX_SEARCH_LENGTH: Final = 200
MAX_MESSAGE_LENGTH: Final = 4000
SURVEY_SCALES: Final = {"nps": (0, 10), "csat": (1, 5)}
SUPPORT_CHANNELS: Final = ("email", "chat", "phone")
# A support topic comes from the page's list (where_is_my_order, "product question",
# ...). It goes into events, so only short words are taken, never free text (no "@",
# no long numbers), and as a slug: "product question" -> "product_question".
_TOPIC_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9 _-]{0,39}")
_QUANTITY_RE: Final = re.compile(r"\d{1,3}")
MAX_ACCOUNT_LENGTH: Final = 128  # an e-mail typed at sign-in, sent as user_id (an id's limit)

Page = Callable[[Request, ShopSession], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]


def synthetic(request: Request) -> bool:
    """Whether the request comes from a Shopwatch monitor (``X-Shopwatch-Check``): served
    like any other, but not counted in the shop's analytics, as docs/monitors.md asks."""
    return "x-shopwatch-check" in request.headers


def see_other(url: str, headers: Mapping[str, str] | None = None) -> RedirectResponse:
    """A 303 to ``url``: after a form post, the browser then GETs the next page."""
    return RedirectResponse(url, status_code=303, headers=headers)


async def read_form(request: Request) -> dict[str, str]:
    """The posted form's text fields (the first value of each); files are ignored."""
    form = await request.form()
    fields: dict[str, str] = {}
    for key, value in form.multi_items():
        if isinstance(value, str) and key not in fields:
            fields[key] = value
    return fields


class Shop:
    """One demo shop: its catalogue, sessions, accounts, orders and payment sandbox.

    ``faults`` is read on every request, so whoever holds it (the simulator) can break
    and repair the shop while it runs. ``checkout_delays`` and
    ``checkout_delay_seconds`` count the requests the ``checkout_delay`` fault slowed
    down and by how much, so the effect can be observed without timing requests.
    ``tracing`` makes its spans (:mod:`shopwatch.demo.shop.tracing`); ``trusted_proxies``
    are the peers whose ``X-Forwarded-For`` is believed (:mod:`~shopwatch.demo.shop.network`);
    ``card_secret`` keys the card fingerprints.
    """

    def __init__(self, tracker: Tracker, faults: ShopFaults, seed: int, currency: str,
                 browser_tag: BrowserTag | None = None,
                 tracing: ShopTracing | None = None,
                 trusted_proxies: tuple[Network, ...] = networks(LOOPBACK),
                 card_secret: bytes | None = None) -> None:
        self.faults = faults
        self.desk_rng = random.Random()  # the service desk's waits and handling
        self.trusted_proxies = trusted_proxies
        self.tracing = tracing if tracing is not None else ShopTracing.off()
        self.currency = currency
        self.tracking = Tracking(tracker, currency)
        self.browser_tag = browser_tag
        self.sessions = SessionStore()
        self.customers = CustomerBook()
        self.orders = OrderBook()
        self.payments = PaymentSandbox(faults, seed, card_secret)
        self.checkout_delays = 0
        self.checkout_delay_seconds = 0.0
        self.templates = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True,
                                     undefined=StrictUndefined, trim_blocks=True,
                                     lstrip_blocks=True)
        self.templates.filters["money"] = lambda cents: format_money(cents, currency)

    # --- plumbing ---------------------------------------------------------------------

    def traced(self, route: str, endpoint: Endpoint) -> Endpoint:
        """Wrap a handler in its server span (``route`` is the path template).

        The span ends with the answer's status (error on 5xx, or on an exception, which
        is recorded and raised on). A ``GET`` answered with HTML gets ``Server-Timing:
        traceparent;desc="00-<trace id>-<span id>-01"`` so the page's RUM snippet can
        link the page view to this trace.
        """

        async def handle(request: Request) -> Response:
            method = request.method
            with self.tracing.shop.start_as_current_span(
                    f"{method} {route}", kind=SpanKind.SERVER, record_exception=False,
                    set_status_on_exception=False,
                    attributes={"http.request.method": method, "http.route": route}) as span:
                try:
                    response = await endpoint(request)
                except Exception as exc:
                    span.set_attribute("http.response.status_code", 500)
                    fail(span, exc)
                    raise
                span.set_attribute("http.response.status_code", response.status_code)
                if response.status_code >= 500:
                    span.set_status(Status(StatusCode.ERROR))
                parent = traceparent(span)
                if parent and method == "GET" and response.media_type == "text/html":
                    response.headers["Server-Timing"] = f'traceparent;desc="{parent}"'
                return response

        return handle

    def visit(self, page: Page) -> Endpoint:
        """Wrap a page handler: resume or start the session and set new cookies; the
        request's span gets the visit's public id as ``session.id``."""

        async def endpoint(request: Request) -> Response:
            with self.tracing.db("SELECT", "sessions"):
                session = self.sessions.resume(request.cookies.get(SESSION_COOKIE))
            new_session = new_visitor = False
            if session is None:
                with self.tracing.db("INSERT", "sessions"):
                    session, new_visitor = self.sessions.start(
                        request.cookies, request.headers, request.query_params,
                        request.headers.get("host", ""))
                new_session = True
            trace.get_current_span().set_attribute("session.id", session.public_id)
            response = await page(request, session)
            if new_session:
                response.set_cookie(SESSION_COOKIE, session.id, httponly=True,
                                    samesite="lax", path="/")
            if new_visitor:
                response.set_cookie(VISITOR_COOKIE, session.anonymous_id,
                                    max_age=VISITOR_MAX_AGE, httponly=True,
                                    samesite="lax", path="/")
            return response

        return endpoint

    def render(self, request: Request, session: ShopSession | None, template: str, *,
               status: int = 200, headers: Mapping[str, str] | None = None,
               **context: Any) -> HTMLResponse:
        """A page from ``templates/`` with the layout's context (nothing is tracked on
        the server; the page's RUM snippet reports from the browser). A monitor's page
        has no snippet: a browser flow is not a shopper."""
        customer = self.customers.get(session.customer_id) if session else None
        rum = (self.browser_tag.html(session, customer.id if customer else None)
               if self.browser_tag is not None and not synthetic(request) else "")
        html = self.templates.get_template(template).render(
            categories=CATEGORIES, customer=customer, currency=self.currency, rum=rum,
            cart_count=session.cart.count if session else 0, path=request.url.path,
            **context)
        return HTMLResponse(html, status_code=status, headers=headers)

    def requester(self, request: Request) -> Requester:
        """The request's client address and user agent, for its events."""
        peer = request.client.host if request.client else None
        forwarded = ",".join(request.headers.getlist("x-forwarded-for"))
        return Requester(client_address(peer, forwarded, self.trusted_proxies),
                         user_agent(request.headers))

    def page_view(self, request: Request, session: ShopSession) -> None:
        self.emit(request, session, "page_view", None)

    def emit(self, request: Request, session: ShopSession, name: str,
             params: dict[str, Any] | None, user_id: str | None = None) -> None:
        """Send an event of this request (none for a monitor's requests)."""
        if not synthetic(request):
            self.tracking.emit(session, name, request.url.path, params, user_id,
                               self.requester(request))

    def message(self, request: Request, session: ShopSession, status: int, title: str,
                text: str, headers: Mapping[str, str] | None = None) -> HTMLResponse:
        """A page that only says something (an error, mostly); a GET counts as a view."""
        if request.method == "GET":
            self.page_view(request, session)
        return self.render(request, session, "message.html", status=status,
                           headers=headers, title=title, text=text)

    def not_found(self, request: Request, session: ShopSession, what: str) -> HTMLResponse:
        return self.message(request, session, 404, "Not found",
                            f"We could not find this {what}.")

    def own_order(self, session: ShopSession, order_id: str) -> Order | None:
        """The order if this session or its customer may see it, else ``None`` (so
        another shopper's order id looks exactly like an unknown one)."""
        with self.tracing.db("SELECT", "orders"):
            order = self.orders.get(order_id)
        if order is None or not order.belongs_to(session.id, session.customer_id):
            return None
        return order

    def signed_in(self, session: ShopSession) -> Customer | None:
        if session.customer_id is None:
            return None
        with self.tracing.db("SELECT", "customers"):
            return self.customers.get(session.customer_id)

    def charge(self, method: str, digits: str | None, amount: int) -> PaymentResult:
        """Charge through the sandbox, traced as a real gateway call would be: a client
        span ``POST`` to :data:`SANDBOX_HOST` and, below it, the sandbox's own server
        span (service ``payments-sandbox``). A decline answers 402; a gateway error 502,
        with a :class:`GatewayError` recorded on both spans."""
        common = {"http.request.method": "POST"}
        with self.tracing.shop.start_as_current_span(
                "POST", kind=SpanKind.CLIENT, attributes={
                    **common, "server.address": SANDBOX_HOST, "server.port": 443,
                    "peer.service": SANDBOX_SERVICE,
                    "url.full": f"https://{SANDBOX_HOST}{SANDBOX_ROUTE}"}) as call:
            with self.tracing.sandbox.start_as_current_span(
                    f"POST {SANDBOX_ROUTE}", kind=SpanKind.SERVER,
                    attributes={**common, "http.route": SANDBOX_ROUTE}) as served:
                result = self.payments.charge(method, digits, amount)
                status = (200 if result.approved else 502 if result.reason == GATEWAY_ERROR
                          else 402)
                for span in (served, call):
                    span.set_attribute("http.response.status_code", status)
                    span.set_attribute("payment.method", method)
                    if result.reason is not None:
                        span.set_attribute("payment.decline_reason", result.reason)
                if status == 502:
                    fail(served, GatewayError("the payment gateway is unavailable"))
            if status == 502:
                fail(call, GatewayError(f"{SANDBOX_HOST} answered 502"))
        return result

    async def checkout_delay(self) -> None:
        """Apply the ``checkout_delay`` fault (read now: it may change at any time)."""
        delay = self.faults.checkout_delay
        if delay > 0:
            self.checkout_delays += 1
            self.checkout_delay_seconds += delay
            await asyncio.sleep(delay)

    # --- browsing ---------------------------------------------------------------------

    async def home(self, request: Request, session: ShopSession) -> Response:
        """``GET /``: categories and featured products. Events: ``page_view``."""
        self.page_view(request, session)
        return self.render(request, session, "home.html", featured=catalogue.featured())

    def _list(self, request: Request, session: ShopSession, list_id: str, list_name: str,
              products: list[Product]) -> None:
        self.emit(request, session, "view_item_list", {
            "item_list_id": list_id, "item_list_name": list_name,
            "items": [product_item(p, index=i) for i, p in enumerate(products)]})

    async def category(self, request: Request, session: ShopSession) -> Response:
        """``GET /c/{category}``: the category's products (404 if unknown).
        Events: ``page_view``, ``view_item_list`` (item_list_id and item_list_name: the
        category's slug, as ``item_category`` is)."""
        cat = catalogue.category(request.path_params["category"])
        if cat is None:
            return self.not_found(request, session, "category")
        with self.tracing.db("SELECT", "products"):
            products = catalogue.in_category(cat)
        self.page_view(request, session)
        self._list(request, session, cat.slug, cat.slug, products)
        return self.render(request, session, "list.html", title=cat.name, blurb=cat.blurb,
                           products=products, query=None)

    async def search(self, request: Request, session: ShopSession) -> Response:
        """``GET /search?q=``: matching products. Events: ``page_view``; and with a
        non-blank ``q``, ``search`` (search_term) and ``view_item_list``
        (item_list_name ``Search results``)."""
        query = request.query_params.get("q", "").strip()[:MAX_SEARCH_LENGTH]
        with self.tracing.db("SELECT", "products"):
            products = catalogue.search(query)
        self.page_view(request, session)
        if query:
            self.emit(request, session, "search", {"search_term": redact_text(query)})
            self._list(request, session, "search_results", "Search results", products)
        return self.render(request, session, "list.html", title="Search", blurb=None,
                           products=products, query=query)

    async def product(self, request: Request, session: ShopSession) -> Response:
        """``GET /p/{product_id}``: the product page (404 if unknown).
        Events: ``page_view``, ``view_item``."""
        with self.tracing.db("SELECT", "products"):
            product = catalogue.product(request.path_params["product_id"])
        if product is None:
            return self.not_found(request, session, "product")
        self.page_view(request, session)
        self.emit(request, session, "view_item", {
            **self.tracking.money(product.cents), "items": [product_item(product, 1)]})
        return self.render(request, session, "product.html", product=product,
                           category=catalogue.category(product.category))

    async def cdn(self, request: Request) -> Response:
        """``GET /cdn/img/{product_id}.svg``: a product image; 404 if unknown, and 503
        for anything under ``/cdn/`` while the ``image_host_down`` fault is on. Like a
        real CDN it sets no cookies and sends no events."""
        if self.faults.image_host_down:
            return PlainTextResponse("image host unavailable", status_code=503,
                                     headers={"Retry-After": "30"})
        match = re.fullmatch(r"img/([a-z0-9-]+)\.svg", request.path_params["path"])
        product = catalogue.product(match.group(1)) if match else None
        if product is None:
            return PlainTextResponse("not found", status_code=404)
        return Response(catalogue.product_svg(product), media_type="image/svg+xml",
                        headers={"Cache-Control": "public, max-age=86400"})

    # --- cart -------------------------------------------------------------------------

    async def cart_add(self, request: Request, session: ShopSession) -> Response:
        """``POST /cart/add`` (product_id, quantity 1 to 99, default 1): 303 to ``/cart``;
        404 for an unknown product, 400 for a bad quantity. Events: ``add_to_cart`` with
        the quantity really added (a line holds at most 99; none if nothing was added)."""
        form = await read_form(request)
        with self.tracing.db("SELECT", "products"):
            product = catalogue.product(form.get("product_id", ""))
        if product is None:
            return self.not_found(request, session, "product")
        text = form.get("quantity", "1").strip() or "1"
        quantity = int(text) if _QUANTITY_RE.fullmatch(text) else 0
        if not 1 <= quantity <= 99:
            return self.message(request, session, 400, "Invalid quantity",
                                "Please choose a quantity from 1 to 99.")
        added = session.cart.add(product, quantity)
        if added:
            self.emit(request, session, "add_to_cart", {
                **self.tracking.money(product.cents * added),
                "items": [product_item(product, added)]})
        return see_other("/cart")

    async def cart_remove(self, request: Request, session: ShopSession) -> Response:
        """``POST /cart/remove`` (product_id): 303 to ``/cart``, also when the product was
        not in the cart. Events: ``remove_from_cart`` when a line was removed."""
        form = await read_form(request)
        line = session.cart.remove(form.get("product_id", ""))
        if line is not None:
            self.emit(request, session, "remove_from_cart", {
                **self.tracking.money(line.total),
                "items": [product_item(line.product, line.quantity)]})
        return see_other("/cart")

    async def cart(self, request: Request, session: ShopSession) -> Response:
        """``GET /cart``. Events: ``page_view``, ``view_cart`` (also when empty)."""
        self.page_view(request, session)
        cart = session.cart
        self.emit(request, session, "view_cart", {
            **self.tracking.money(cart.subtotal), "items": cart_items(cart.items)})
        return self.render(request, session, "cart.html", cart=cart)

    # --- checkout ---------------------------------------------------------------------
    # Every /checkout request first waits for the checkout_delay fault. Funnel events
    # before the purchase carry the goods' value (no shipping); payment events carry
    # the amount charged (goods + shipping).

    async def checkout(self, request: Request, session: ShopSession) -> Response:
        """``GET /checkout``: the shipping form; 303 to ``/cart`` if the cart is empty.
        Starts the checkout (and fixes its order id) if none is running.
        Events: ``page_view``, ``begin_checkout``."""
        await self.checkout_delay()
        cart = session.cart
        if cart.is_empty:
            return see_other("/cart")
        if session.checkout is None:
            session.checkout = Checkout(new_order_id())
        self.page_view(request, session)
        self.emit(request, session, "begin_checkout", {
            **self.tracking.money(cart.subtotal), "items": cart_items(cart.items)})
        return self._shipping_form(request, session, [], 200)

    def _shipping_form(self, request: Request, session: ShopSession, errors: list[str],
                       status: int, form: dict[str, str] | None = None) -> HTMLResponse:
        shipping = session.checkout.shipping if session.checkout else None
        customer = self.signed_in(session)
        values = form or {
            "name": shipping.name if shipping else (customer.name if customer else ""),
            "address": shipping.address if shipping else (customer.address if customer
                                                          else ""),
            "city": shipping.city if shipping else "",
            "country": shipping.country if shipping else "",
            "method": shipping.method.id if shipping else "standard",
        }
        return self.render(request, session, "checkout_shipping.html", status=status,
                           errors=errors, values=values, methods=SHIPPING_METHODS.values(),
                           cart=session.cart)

    async def checkout_shipping(self, request: Request, session: ShopSession) -> Response:
        """``POST /checkout/shipping`` (name, address, city, country, method): 303 to
        ``/checkout/payment``; 400 with the form again if a field is wrong; 303 to
        ``/cart`` if the cart is empty, to ``/checkout`` if checkout was not begun.
        Events: ``add_shipping_info`` (shipping_tier)."""
        await self.checkout_delay()
        form = await read_form(request)
        if session.cart.is_empty:
            return see_other("/cart")
        if session.checkout is None:
            return see_other("/checkout")
        shipping, errors = read_shipping(form)
        if shipping is None:
            return self._shipping_form(request, session, errors, 400, form)
        session.checkout.shipping = shipping
        self.emit(request, session, "add_shipping_info", {
            **self.tracking.money(session.cart.subtotal), "shipping_tier": shipping.method.id,
            "items": cart_items(session.cart.items)})
        return see_other("/checkout/payment")

    def _payment_form(self, request: Request, session: ShopSession, status: int,
                      error: str | None = None, headers: Mapping[str, str] | None = None,
                      reason: str | None = None) -> HTMLResponse:
        checkout = session.checkout
        assert checkout is not None and checkout.shipping is not None
        return self.render(request, session, "checkout_payment.html", status=status,
                           headers=headers, cart=session.cart, shipping=checkout.shipping,
                           totals=totals(session.cart.subtotal, checkout.shipping.method),
                           error=error, reason=reason, test_cards=TEST_CARDS)

    def _payment_precondition(self, session: ShopSession) -> Response | None:
        if session.cart.is_empty:
            return see_other("/cart")
        if session.checkout is None or session.checkout.shipping is None:
            return see_other("/checkout")
        return None

    async def payment_page(self, request: Request, session: ShopSession) -> Response:
        """``GET /checkout/payment``: the payment form; 303 to ``/cart`` if the cart is
        empty, to ``/checkout`` without shipping details. Events: ``page_view``."""
        await self.checkout_delay()
        redirect = self._payment_precondition(session)
        if redirect is not None:
            return redirect
        self.page_view(request, session)
        return self._payment_form(request, session, 200)

    async def pay(self, request: Request, session: ShopSession) -> Response:
        """``POST /checkout/payment`` (method=card|paypal, card_number for card, email
        optional). Answers:

        - approved: 303 to ``/order/{id}``, header ``X-Order-Id``; the cart is emptied;
        - declined: 402, header ``X-Payment-Declined: <reason>``;
        - gateway error: 502, header ``X-Payment-Declined: gateway_error``;
        - a form without a valid method, card number or e-mail: 400 (nothing charged);
        - 303 to ``/cart`` or ``/checkout`` as for the payment page.

        Events: ``add_payment_info`` (payment_method) once the form is valid, then
        ``purchase`` or ``payment_declined`` (the checkout's order id as transaction_id,
        so a retry that succeeds has the same id; payment_method and gateway; a decline's
        reason; for a card, ``card_bin`` and ``card_fingerprint``, never the number)."""
        await self.checkout_delay()
        form = await read_form(request)
        redirect = self._payment_precondition(session)
        if redirect is not None:
            return redirect
        checkout = session.checkout
        assert checkout is not None and checkout.shipping is not None
        method = form.get("method", "")
        if method not in PAYMENT_METHODS:
            return self._payment_form(request, session, 400, "Please choose card or PayPal.")
        digits = card_digits(form.get("card_number", "")) if method == "card" else None
        if method == "card" and not digits:
            return self._payment_form(request, session, 400, "Please enter your card number.")
        email = form.get("email", "").strip() or None
        if email is not None and not EMAIL_RE.fullmatch(email):
            return self._payment_form(request, session, 400,
                                      "Please enter a valid e-mail address or none.")
        cart = session.cart
        amounts = totals(cart.subtotal, checkout.shipping.method)
        self.emit(request, session, "add_payment_info", {
            **self.tracking.money(cart.subtotal), "payment_method": method,
            "items": cart_items(cart.items)})
        result = self.charge(method, digits, amounts.total)
        if not result.approved:
            reason = result.reason or ""
            params: dict[str, Any] = {
                "transaction_id": checkout.order_id, **self.tracking.money(amounts.total),
                "payment_method": method, "gateway": GATEWAY_NAME, "reason": reason,
                **_card(result)}
            self.emit(request, session, "payment_declined", params)
            status = 502 if reason == GATEWAY_ERROR else 402
            return self._payment_form(request, session, status,
                                      headers={"X-Payment-Declined": reason}, reason=reason)
        with self.tracing.db("INSERT", "orders"):
            order = self.orders.place(checkout.order_id, session.id, session.customer_id,
                                      cart.items, checkout.shipping, amounts,
                                      self.currency, method, email)
        cart.clear()
        session.checkout = None
        self.emit(request, session, "purchase", {
            "transaction_id": order.id, **self.tracking.money(amounts.total),
            "tax": to_amount(amounts.tax), "shipping": to_amount(amounts.shipping),
            "payment_method": method, "gateway": GATEWAY_NAME, **_card(result),
            "items": order_items(order)})
        return see_other(f"/order/{order.id}", headers={"X-Order-Id": order.id})

    # --- orders -----------------------------------------------------------------------

    async def order(self, request: Request, session: ShopSession) -> Response:
        """``GET /order/{order_id}``: the confirmation, with a survey form; 404 unless
        this session or its customer placed the order. Events: ``page_view``."""
        order = self.own_order(session, request.path_params["order_id"])
        if order is None:
            return self.not_found(request, session, "order")
        self.page_view(request, session)
        return self.render(request, session, "order.html", order=order)

    async def refund(self, request: Request, session: ShopSession) -> Response:
        """``POST /orders/{order_id}/refund`` (amount optional, e.g. ``12.50``; all that
        is left by default): 303 to ``/order/{id}``; 400 for a bad amount, 409 for a
        cancelled or fully refunded order, 404 as for the order page.
        Events: ``refund`` (value = the amount refunded now)."""
        form = await read_form(request)
        order = self.own_order(session, request.path_params["order_id"])
        if order is None:
            return self.not_found(request, session, "order")
        text = form.get("amount", "").strip()
        amount = parse_amount(text) if text else None
        if text and amount is None:
            return self.message(request, session, 400, "Invalid amount",
                                "Please enter the amount to refund, such as 12.50.")
        try:
            with self.tracing.db("UPDATE", "orders"):
                refunded = self.orders.refund(order, amount)
        except OrderError as exc:
            return self.message(request, session, exc.status, "Refund not possible",
                                exc.message)
        self.emit(request, session, "refund", {
            "transaction_id": order.id, **self.tracking.money(refunded)})
        return see_other(f"/order/{order.id}")

    async def cancel(self, request: Request, session: ShopSession) -> Response:
        """``POST /orders/{order_id}/cancel``: 303 to ``/order/{id}``; 409 unless the
        order is placed and nothing of it refunded; 404 as for the order page.
        Events: ``order_cancelled`` (value = the order's total)."""
        order = self.own_order(session, request.path_params["order_id"])
        if order is None:
            return self.not_found(request, session, "order")
        try:
            with self.tracing.db("UPDATE", "orders"):
                self.orders.cancel(order)
        except OrderError as exc:
            return self.message(request, session, exc.status, "Cancellation not possible",
                                exc.message)
        self.emit(request, session, "order_cancelled", {
            "transaction_id": order.id, **self.tracking.money(order.totals.total),
            "reason": "customer_request"})
        return see_other(f"/order/{order.id}")

    # --- accounts ---------------------------------------------------------------------

    async def login_page(self, request: Request, session: ShopSession) -> Response:
        """``GET /login``. Events: ``page_view``."""
        self.page_view(request, session)
        return self.render(request, session, "login.html", error=None, email="")

    async def login(self, request: Request, session: ShopSession) -> Response:
        """``POST /login`` (email, password): 303 to ``/account``; else 401 with header
        ``X-Login-Failed: unknown_account|wrong_password``. The page itself does not say
        which (as shops should not); the header is for the simulator.
        Events: ``login`` or ``login_failed`` (reason; ``user_id`` the account tried: its
        opaque id for a wrong password, else the e-mail address typed, trimmed and in
        lower case (Shopwatch pseudonymises it on arrival), so both an attack on one
        account and many accounts tried from one network show; nothing when what was
        typed is not an e-mail address, as it may be a password in the wrong field)."""
        form = await read_form(request)
        email = form.get("email", "")
        with self.tracing.db("SELECT", "customers"):
            customer = self.customers.by_email(email)
        if customer is None:
            reason = "unknown_account"
        elif await asyncio.to_thread(verify_password, form.get("password", ""),
                                     customer.password_hash):
            session.customer_id = customer.id
            self.emit(request, session, "login", {"method": "password"})
            return see_other("/account")
        else:
            reason = "wrong_password"
        params = {"method": "password", "reason": reason}
        tried = normalise_email(email)
        if customer is not None:
            tried = customer.id
        elif not EMAIL_RE.fullmatch(tried) or len(tried) > MAX_ACCOUNT_LENGTH:
            tried = ""
        self.emit(request, session, "login_failed", params, tried or None)
        return self.render(request, session, "login.html", status=401,
                           headers={"X-Login-Failed": reason}, email=email.strip(),
                           error="The e-mail address or the password is wrong.")

    async def signup_page(self, request: Request, session: ShopSession) -> Response:
        """``GET /signup``. Events: ``page_view``."""
        self.page_view(request, session)
        return self.render(request, session, "signup.html", error=None, values={})

    async def signup(self, request: Request, session: ShopSession) -> Response:
        """``POST /signup`` (name, email, password ≥ 8 characters): 303 to ``/account``,
        signed in; 400 for an incomplete form, 409 if the e-mail address has an account.
        Events: ``sign_up`` (method ``password``; ``user_id`` the new customer id)."""
        form = await read_form(request)
        name, email, password = (form.get(k, "") for k in ("name", "email", "password"))
        try:
            CustomerBook.check_signup(name, email, password)
            with self.tracing.db("SELECT", "customers"):
                taken = self.customers.by_email(email) is not None
            if taken:  # checked before the costly hash
                raise AccountError(409, "There is already an account with this e-mail "
                                        "address.")
            password_hash = await asyncio.to_thread(hash_password, password)
            with self.tracing.db("INSERT", "customers"):
                customer = self.customers.add(name, email, password_hash)
        except AccountError as exc:
            return self.render(request, session, "signup.html", status=exc.status,
                               error=exc.message, values={"name": name, "email": email})
        session.customer_id = customer.id
        self.emit(request, session, "sign_up", {"method": "password"})
        return see_other("/account")

    async def account(self, request: Request, session: ShopSession) -> Response:
        """``GET /account``: profile, password and orders; 303 to ``/login`` when not
        signed in. Events: ``page_view``."""
        customer = self.signed_in(session)
        if customer is None:
            return see_other("/login")
        self.page_view(request, session)
        with self.tracing.db("SELECT", "orders"):
            orders = self.orders.of_customer(customer.id)
        return self.render(request, session, "account.html", orders=orders)

    async def profile(self, request: Request, session: ShopSession) -> Response:
        """``POST /account/profile`` (any of name, email, address, phone): 303 to
        ``/account``; 400 for an invalid field, 409 for another account's e-mail; 303 to
        ``/login`` when not signed in. Events: ``profile_updated`` with ``fields``, the
        names of the fields that changed (never their values); none if nothing changed."""
        form = await read_form(request)
        customer = self.signed_in(session)
        if customer is None:
            return see_other("/login")
        try:
            with self.tracing.db("UPDATE", "customers"):
                changed = self.customers.update_profile(customer, form)
        except AccountError as exc:
            return self.message(request, session, exc.status, "Profile not saved",
                                exc.message)
        if changed:
            self.emit(request, session, "profile_updated", {"fields": changed})
        return see_other("/account")

    async def password(self, request: Request, session: ShopSession) -> Response:
        """``POST /account/password`` (current, new): 303 to ``/account``; 403 if
        ``current`` is wrong, 400 if ``new`` is too short; 303 to ``/login`` when not
        signed in. Events: ``password_changed`` (method ``change``)."""
        form = await read_form(request)
        customer = self.signed_in(session)
        if customer is None:
            return see_other("/login")
        if not await asyncio.to_thread(verify_password, form.get("current", ""),
                                       customer.password_hash):
            return self.message(request, session, 403, "Password not changed",
                                "The current password is wrong.")
        new = form.get("new", "")
        try:
            check_new_password(new)
        except AccountError as exc:
            return self.message(request, session, exc.status, "Password not changed",
                                exc.message)
        customer.password_hash = await asyncio.to_thread(hash_password, new)
        self.emit(request, session, "password_changed", {"method": "change"})
        return see_other("/account")

    async def logout(self, request: Request, session: ShopSession) -> Response:
        """``POST /logout``: 303 to ``/``. The visit (and its cart) goes on signed out;
        the checkout is dropped, as its shipping details belong to the customer."""
        session.customer_id = None
        session.checkout = None
        return see_other("/")

    # --- feedback ---------------------------------------------------------------------

    async def survey(self, request: Request, session: ShopSession) -> Response:
        """``POST /survey`` (kind=nps|csat, score 0-10 or 1-5, comment, order_id
        optional): 303 to ``/thanks``; 400 for a bad kind or score, 404 for an order this
        shopper may not see. Events: ``survey_response`` (kind, also as ``survey``;
        score; comment with e-mail addresses and long numbers removed; transaction_id)."""
        form = await read_form(request)
        kind = form.get("kind", "")
        scale = SURVEY_SCALES.get(kind)
        text = form.get("score", "").strip()
        score = int(text) if text.isdigit() and len(text) <= 2 else -1
        if scale is None or not scale[0] <= score <= scale[1]:
            return self.message(request, session, 400, "Survey not saved",
                                "Please choose NPS (0 to 10) or CSAT (1 to 5) and a score.")
        # docs/events.md calls the kind `survey`; the brief and the simulator's
        # backfilled history call it `kind`: both are sent until one is chosen.
        params: dict[str, Any] = {"survey": kind, "score": score}
        comment = form.get("comment", "").strip()
        if comment:
            params["comment"] = redact_text(comment)
        order_id = form.get("order_id", "").strip()
        if order_id:
            if self.own_order(session, order_id) is None:
                return self.not_found(request, session, "order")
            params["transaction_id"] = order_id
        self.emit(request, session, "survey_response", params)
        return see_other("/thanks")

    async def support_page(self, request: Request, session: ShopSession) -> Response:
        """``GET /support``: the contact form. Events: ``page_view``."""
        self.page_view(request, session)
        return self.render(request, session, "support.html", error=None,
                           order_id=request.query_params.get("order_id", ""))

    async def support(self, request: Request, session: ShopSession) -> Response:
        """``POST /support`` (topic: up to 40 letters, digits, spaces, ``_`` or ``-``;
        channel=email|chat|phone; message; order_id optional): 303 to ``/thanks``; 400
        for a bad topic, channel or message, 404 for an order this shopper may not see.
        Events: ``support_contact`` (topic as a lower-case slug, as ``reason``;
        channel; transaction_id; the message itself is never sent), with how the desk
        handled it (:mod:`shopwatch.demo.desk`: queued, answered or abandoned, talk,
        hold and after-contact work, agent, resolved at first contact; waits grow while
        a fault is on)."""
        form = await read_form(request)
        topic = form.get("topic", "").strip()
        channel = form.get("channel", "")
        message = form.get("message", "").strip()
        if (not _TOPIC_RE.fullmatch(topic) or channel not in SUPPORT_CHANNELS
                or not message or len(message) > MAX_MESSAGE_LENGTH):
            return self.render(request, session, "support.html", status=400,
                               order_id=form.get("order_id", ""),
                               error="Please choose a topic and a channel, and write a "
                                     f"message (at most {MAX_MESSAGE_LENGTH} characters).")
        slug = re.sub(r"[^a-z0-9]+", "_", topic.lower()).strip("_")
        # docs/events.md names the topic `reason`; the brief and the simulator's
        # backfilled history name it `topic`: both are sent until one is chosen.
        busy = 4.0 if (self.faults.gateway_errors or self.faults.checkout_delay
                       or self.faults.image_host_down) else 1.0
        params: dict[str, Any] = {"reason": slug, **desk.contact(
            self.desk_rng, channel, datetime.now(UTC), busy=busy)}
        order_id = form.get("order_id", "").strip()
        if order_id:
            if self.own_order(session, order_id) is None:
                return self.not_found(request, session, "order")
            params["transaction_id"] = order_id
        self.emit(request, session, "support_contact", params)
        return see_other("/thanks")

    async def thanks(self, request: Request, session: ShopSession) -> Response:
        """``GET /thanks``: after a survey or a support message. Events: ``page_view``."""
        return self.message(request, session, 200, "Thank you",
                            "We have received your message.")

    # --- the app ----------------------------------------------------------------------

    async def healthz(self, request: Request) -> Response:
        """``GET /healthz``: 200 ``ok`` (no session, no events)."""
        return PlainTextResponse("ok")

    async def http_error(self, request: Request, exc: Exception) -> Response:
        """Starlette's own errors (no such route, wrong method) as an HTML page."""
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        headers = exc.headers if isinstance(exc, HTTPException) else None
        title = "Not found" if status == 404 else "Request not possible"
        return self.render(request, None, "message.html", status=status, headers=headers,
                           title=title, text=f"The shop cannot answer this ({status}).")

    def routes(self) -> list[Route]:
        get, post = ["GET"], ["POST"]
        pages: list[tuple[str, Page, list[str]]] = [
            ("/", self.home, get),
            ("/c/{category}", self.category, get),
            ("/search", self.search, get),
            ("/p/{product_id}", self.product, get),
            ("/cart", self.cart, get),
            ("/cart/add", self.cart_add, post),
            ("/cart/remove", self.cart_remove, post),
            ("/checkout", self.checkout, get),
            ("/checkout/shipping", self.checkout_shipping, post),
            ("/checkout/payment", self.payment_page, get),
            ("/checkout/payment", self.pay, post),
            ("/order/{order_id}", self.order, get),
            ("/orders/{order_id}/refund", self.refund, post),
            ("/orders/{order_id}/cancel", self.cancel, post),
            ("/login", self.login_page, get),
            ("/login", self.login, post),
            ("/signup", self.signup_page, get),
            ("/signup", self.signup, post),
            ("/account", self.account, get),
            ("/account/profile", self.profile, post),
            ("/account/password", self.password, post),
            ("/logout", self.logout, post),
            ("/survey", self.survey, post),
            ("/support", self.support_page, get),
            ("/support", self.support, post),
            ("/thanks", self.thanks, get),
        ]
        routes = [Route(path, self.traced(path, self.visit(page)), methods=methods)
                  for path, page, methods in pages]
        routes += [Route("/cdn/{path:path}", self.traced("/cdn/{path}", self.cdn),
                         methods=get),
                   Route("/healthz", self.traced("/healthz", self.healthz), methods=get)]
        return routes


def _card(result: PaymentResult) -> dict[str, str]:
    """``card_bin`` and ``card_fingerprint`` of a card payment (nothing for PayPal)."""
    if result.card_bin is None or result.card_fingerprint is None:
        return {}
    return {"card_bin": result.card_bin, "card_fingerprint": result.card_fingerprint}


def create_shop(tracker: Tracker, *, faults: ShopFaults | None = None, seed: int = 0,
                currency: str = "EUR", browser_tag: BrowserTag | None = None,
                tracing: ShopTracing | None = None,
                trusted_proxies: tuple[str, ...] = LOOPBACK,
                card_secret: bytes | None = None) -> Starlette:
    """The demo shop as an ASGI app, sending its events to ``tracker``.

    ``faults`` is read on every request (a fresh, all-off one if ``None``); ``seed``
    fixes the payment sandbox's random declines; ``currency`` (ISO 4217, e.g. ``EUR``)
    is the shop's and its events' currency; with ``browser_tag`` every page carries
    Shopwatch's RUM snippet; with ``tracing`` (:meth:`ShopTracing.otlp`) it sends its
    spans (untraced, with no-op tracers, if ``None``). ``trusted_proxies`` (networks, as
    text) are the peers whose ``X-Forwarded-For`` names the client (by default loopback,
    where the simulator plays the shop's CDN; a real shop lists its own proxies);
    ``card_secret`` keys card fingerprints (random if ``None``: the same card then has
    another fingerprint after a restart). The :class:`Shop` is ``app.state.shop`` and
    the faults ``app.state.faults``.
    """
    if not CURRENCY_RE.fullmatch(currency):
        raise ValueError(f"currency must be an upper-case ISO 4217 code, not {currency!r}")
    faults = faults if faults is not None else ShopFaults()
    shop = Shop(tracker, faults, seed, currency, browser_tag, tracing,
                networks(trusted_proxies), card_secret)
    app = Starlette(routes=shop.routes(),
                    exception_handlers={HTTPException: shop.http_error})
    app.state.shop = shop
    app.state.faults = faults
    return app
