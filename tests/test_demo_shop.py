"""The demo shop end to end: the real app under uvicorn on loopback, httpx as the shopper.

The shop reports events through its :class:`Tracker` seam; here that is
:class:`RecordingTracker`, a plain in-process list (not a mock of the network). Tests
drive the shop as the simulator does (forms, redirects, cookies, CDN headers) and assert
the HTTP answers and the exact events, and every event recorded by any test is checked
against Shopwatch's own event schema when the test ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import json
import re
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgspec
import pytest
import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from shopwatch import events as ev
from shopwatch.demo.incidents import ShopFaults
from shopwatch.demo.shop import BrowserTag, Shop, create_shop
from shopwatch.demo.shop.catalogue import CATEGORIES, PRODUCTS
from shopwatch.demo.shop.devices import describe_device
from shopwatch.demo.shop.network import LOOPBACK, client_address, networks, user_agent
from shopwatch.demo.shop.payments import DECLINE_REASONS, PaymentSandbox
from shopwatch.web import snippet

APPROVED_CARD = "4000 0000 0000 0077"  # the sandbox's always-approved test card
DECLINING_CARDS = {
    "4000000000000002": "card_declined",
    "4000000000009995": "insufficient_funds",
    "4000000000000069": "expired_card",
    "4100000000000019": "fraud_suspected",
}
IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
          "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1")
DESKTOP_CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like "
                  "Gecko) Chrome/124.0.0.0 Safari/537.36")
SHIPPING = {"name": "Jane Q. Customer", "address": "17 Rue des Lilas", "city": "Lyon",
            "country": "fr", "method": "standard"}


class RecordingTracker:
    """A :class:`Tracker` keeping every event it is sent (the server thread appends).
    ``shop`` (set once the shop exists) maps a client's session cookie to the visit's
    public id, which events carry as ``session_id``."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.shop: Shop | None = None
        self._lock = threading.Lock()

    def session_id(self, client: httpx.Client) -> str | None:
        """The ``session_id`` of the client's visit (``None`` before its first page)."""
        assert self.shop is not None, "RecordingTracker.shop is not set"
        session = self.shop.sessions.resume(client.cookies.get("demo_sid"))
        return session.public_id if session is not None else None

    def send(self, event: dict[str, Any]) -> str:
        with self._lock:
            self.events.append(json.loads(json.dumps(event)))  # a copy, as sent on the wire
        return str(event["id"])

    def of(self, client: httpx.Client) -> list[dict[str, Any]]:
        """The events of the client's session, in order."""
        sid = self.session_id(client)
        with self._lock:
            return [e for e in self.events if e["session_id"] == sid]

    def names(self, client: httpx.Client) -> list[str]:
        return [e["name"] for e in self.of(client)]

    def last(self, client: httpx.Client, name: str) -> dict[str, Any]:
        matching = [e for e in self.of(client) if e["name"] == name]
        assert matching, f"no {name} event in {self.names(client)}"
        return matching[-1]


class BrokenTracker:
    """A tracker whose every ``send`` fails, as a misconfigured client might."""

    def send(self, event: dict[str, Any]) -> str:
        raise RuntimeError("tracker down")


class Switch:
    """An ASGI app passing every request to :attr:`app`, so one uvicorn server (started
    once per module: starting and stopping it is most of a test's time) serves a new
    shop in every test."""

    def __init__(self) -> None:
        self.app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.app is not None, "no shop mounted"
        await self.app(scope, receive, send)


@dataclass
class Server:
    base_url: str
    switch: Switch


@dataclass
class RunningShop:
    base_url: str
    tracker: RecordingTracker
    faults: ShopFaults
    shop: Shop
    _clients: list[httpx.Client] = field(default_factory=list)

    def client(self, user_agent: str = DESKTOP_CHROME, **headers: str) -> httpx.Client:
        """A fresh browser: its own cookie jar, no redirects followed."""
        client = httpx.Client(base_url=self.base_url, timeout=30,
                              headers={"User-Agent": user_agent, **headers})
        self._clients.append(client)
        return client


def validate(event: dict[str, Any]) -> str | None:
    """What Shopwatch's ingest would reject the event for; ``None`` if it is accepted."""
    try:
        decoded = ev.event_decoder.decode(json.dumps(event).encode())
    except msgspec.ValidationError as exc:
        return ev.describe_error(exc)
    return ev.check_event(decoded) or ev.check_params(event.get("params") or {})


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    """uvicorn on 127.0.0.1 (a free port) serving whatever shop a test mounts."""
    switch = Switch()
    config = uvicorn.Config(switch, host="127.0.0.1", port=0, log_level="warning",
                            access_log=False, lifespan="off")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, name="demo-shop-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uv.started:
        assert thread.is_alive(), "uvicorn exited during startup"
        assert time.monotonic() < deadline, "uvicorn did not start within 30 s"
        time.sleep(0.01)
    port = uv.servers[0].sockets[0].getsockname()[1]
    yield Server(f"http://127.0.0.1:{port}", switch)
    uv.should_exit = True
    thread.join(timeout=30)
    assert not thread.is_alive(), "server thread did not stop"


@pytest.fixture
def shop(server: Server) -> Iterator[RunningShop]:
    """A new demo shop (seed 0, no faults) on the server; every event it sent must pass
    Shopwatch's validation."""
    with _serving(server, seed=0) as running:
        yield running
    errors = [(e["name"], validate(e)) for e in running.tracker.events if validate(e)]
    assert not errors, errors


@contextlib.contextmanager
def _serving(server: Server, **options: Any) -> Iterator[RunningShop]:
    """A new demo shop made with ``options``, served by ``server`` while in use."""
    tracker, faults = RecordingTracker(), ShopFaults()
    app = create_shop(tracker, faults=faults, **options)
    tracker.shop = app.state.shop
    server.switch.app = app
    running = RunningShop(server.base_url, tracker, faults, app.state.shop)
    try:
        yield running
    finally:
        for client in running._clients:
            client.close()
        server.switch.app = None


def buy(client: httpx.Client, product_id: str = "kenya-aa", quantity: int = 1,
        card: str = APPROVED_CARD, **shipping: str) -> str:
    """Put a product in the cart and pay for it; returns the order id."""
    assert client.post("/cart/add", data={"product_id": product_id,
                                          "quantity": str(quantity)}).status_code == 303
    assert client.get("/checkout").status_code == 200
    response = client.post("/checkout/shipping", data={**SHIPPING, **shipping})
    assert response.status_code == 303, response.text
    response = client.post("/checkout/payment", data={"method": "card", "card_number": card})
    assert response.status_code == 303, response.text
    return response.headers["x-order-id"]


# --- a shopper's visit ----------------------------------------------------------------


def test_a_visit_from_landing_to_order_sends_the_exact_event_sequence(
        shop: RunningShop) -> None:
    client = shop.client(IPHONE, **{"CF-IPCountry": "de",
                                    "Accept-Language": "de-DE,de;q=0.9,en;q=0.5"})
    landing = client.get("/", params={"utm_source": "newsletter", "utm_medium": "email",
                                      "utm_campaign": "spring"},
                         headers={"Referer": "https://www.google.com/"})
    assert landing.status_code == 200
    assert "text/html" in landing.headers["content-type"]
    cookies = landing.headers.get_list("set-cookie")
    sid_cookie = next(c for c in cookies if c.startswith("demo_sid="))
    aid_cookie = next(c for c in cookies if c.startswith("demo_aid="))
    assert "httponly" in sid_cookie.lower() and "max-age" not in sid_cookie.lower()
    assert "httponly" in aid_cookie.lower() and "max-age=63072000" in aid_cookie.lower()

    # Later requests come from the shop itself and carry other utm_* parameters: the
    # session keeps what it landed with.
    internal = {"Referer": f"{shop.base_url}/"}
    assert client.get("/c/coffee", headers=internal).status_code == 200
    assert client.get("/search", params={"q": "Kenya", "utm_source": "other"},
                      headers=internal).status_code == 200
    product = client.get("/p/kenya-aa", headers=internal)
    assert '<img src="/cdn/img/kenya-aa.svg"' in product.text
    assert 'action="/cart/add"' in product.text
    added = client.post("/cart/add", data={"product_id": "kenya-aa", "quantity": "2"})
    assert (added.status_code, added.headers["location"]) == (303, "/cart")
    assert "Kenya AA" in client.get("/cart").text
    assert client.get("/checkout").status_code == 200
    shipping = client.post("/checkout/shipping", data={**SHIPPING, "method": "express"})
    assert (shipping.status_code, shipping.headers["location"]) == (303, "/checkout/payment")
    assert client.get("/checkout/payment").status_code == 200
    paid = client.post("/checkout/payment", data={"method": "card",
                                                  "card_number": APPROVED_CARD})
    assert paid.status_code == 303
    order_id = paid.headers["x-order-id"]
    assert paid.headers["location"] == f"/order/{order_id}"
    confirmation = client.get(f"/order/{order_id}")
    assert confirmation.status_code == 200
    assert order_id in confirmation.text and 'action="/survey"' in confirmation.text

    events = shop.tracker.of(client)
    assert [(e["name"], e["page"]) for e in events] == [
        ("page_view", "/"),
        ("page_view", "/c/coffee"), ("view_item_list", "/c/coffee"),
        ("page_view", "/search"), ("search", "/search"), ("view_item_list", "/search"),
        ("page_view", "/p/kenya-aa"), ("view_item", "/p/kenya-aa"),
        ("add_to_cart", "/cart/add"),
        ("page_view", "/cart"), ("view_cart", "/cart"),
        ("page_view", "/checkout"), ("begin_checkout", "/checkout"),
        ("add_shipping_info", "/checkout/shipping"),
        ("page_view", "/checkout/payment"),
        ("add_payment_info", "/checkout/payment"), ("purchase", "/checkout/payment"),
        ("page_view", f"/order/{order_id}"),
    ]
    sid = shop.tracker.session_id(client)
    assert sid and sid != client.cookies["demo_sid"]  # the cookie stays a secret
    for e in events:
        assert e["session_id"] == sid
        assert e["anonymous_id"] == client.cookies["demo_aid"]
        assert (e["utm_source"], e["utm_medium"], e["utm_campaign"]) == (
            "newsletter", "email", "spring")
        assert "utm_term" not in e and "user_id" not in e
        assert e["referrer"] == "https://www.google.com/"
        assert e["device"] == {"category": "mobile", "browser": "Safari", "os": "iOS",
                               "language": "de-DE", "country": "DE"}
    assert len({e["id"] for e in events}) == len(events)

    by_name = {e["name"]: e["params"] for e in events if "params" in e}
    kenya = {"item_id": "kenya-aa", "item_name": "Kenya AA, 250 g", "item_category": "coffee",
             "price": 14.9}
    assert by_name["search"] == {"search_term": "Kenya"}
    assert by_name["view_item_list"]["items"] == [{**kenya, "index": 0}]
    coffee_list = events[2]["params"]
    assert coffee_list["item_list_name"] == "coffee"
    assert [i["item_id"] for i in coffee_list["items"]][:2] == ["yirgacheffe", "huila"]
    assert by_name["view_item"] == {"currency": "EUR", "value": 14.9,
                                    "items": [{**kenya, "quantity": 1}]}
    assert by_name["add_to_cart"] == {"currency": "EUR", "value": 29.8,
                                      "items": [{**kenya, "quantity": 2}]}
    assert by_name["view_cart"]["value"] == 29.8
    assert by_name["begin_checkout"]["items"] == [{**kenya, "quantity": 2}]
    assert by_name["add_shipping_info"]["shipping_tier"] == "express"
    assert by_name["add_payment_info"]["payment_method"] == "card"
    assert by_name["add_payment_info"]["payment_method"] == "card"
    purchase = by_name["purchase"]
    assert purchase["transaction_id"] == order_id
    assert purchase["shipping"] == 9.9
    assert purchase["value"] == round(sum(i["price"] * i["quantity"] for i in purchase["items"])
                                      + purchase["shipping"], 2) == 39.7
    assert purchase["tax"] == round(39.7 * 19 / 119, 2)
    assert purchase["currency"] == "EUR"
    assert purchase["items"] == [{**kenya, "quantity": 2}]
    # The order emptied the cart.
    assert "Your cart is empty" in client.get("/cart").text


def test_landing_from_the_shop_itself_keeps_no_referrer(shop: RunningShop) -> None:
    client = shop.client()
    client.get("/c/tea", headers={"Referer": f"{shop.base_url}/p/moka-pot"})
    client.get("/c/tea", headers={"Referer": "https://www.bing.com/"})  # not a landing
    assert [e.get("referrer") for e in shop.tracker.of(client)] == [None] * 4


def test_monitor_requests_are_served_but_not_tracked(shop: RunningShop) -> None:
    client = shop.client(**{"X-Shopwatch-Check": "1"})
    assert client.get("/p/kenya-aa").status_code == 200
    assert client.post("/cart/add", data={"product_id": "kenya-aa"}).status_code == 303
    assert "Kenya" in client.get("/cart").text
    assert shop.tracker.of(client) == []


def test_each_session_has_its_own_cart(shop: RunningShop) -> None:
    alice, bob = shop.client(), shop.client()
    alice.post("/cart/add", data={"product_id": "moka-pot"})
    bob.post("/cart/add", data={"product_id": "sencha-uji", "quantity": "3"})
    assert "Moka Pot" in alice.get("/cart").text and "Sencha" not in alice.get("/cart").text
    bob.get("/cart")
    assert shop.tracker.last(bob, "view_cart")["params"]["items"][0]["quantity"] == 3
    assert alice.cookies["demo_sid"] != bob.cookies["demo_sid"]


def test_cart_remove_and_invalid_cart_forms(shop: RunningShop) -> None:
    client = shop.client()
    client.post("/cart/add", data={"product_id": "moka-pot", "quantity": "2"})
    removed = client.post("/cart/remove", data={"product_id": "moka-pot"})
    assert (removed.status_code, removed.headers["location"]) == (303, "/cart")
    assert shop.tracker.last(client, "remove_from_cart")["params"] == {
        "currency": "EUR", "value": 79.8,
        "items": [{"item_id": "moka-pot", "item_name": "Moka Pot, 6 cups",
                   "item_category": "brewing-gear", "price": 39.9, "quantity": 2}]}
    assert client.post("/cart/remove", data={"product_id": "moka-pot"}).status_code == 303
    assert client.post("/cart/add", data={"product_id": "moka-pot",
                                          "quantity": "0"}).status_code == 400
    assert client.post("/cart/add", data={"product_id": "nope"}).status_code == 404
    assert shop.tracker.names(client).count("remove_from_cart") == 1
    assert shop.tracker.names(client).count("add_to_cart") == 1


def test_checkout_needs_a_cart_then_shipping(shop: RunningShop) -> None:
    client = shop.client()
    empty = client.get("/checkout")
    assert (empty.status_code, empty.headers["location"]) == (303, "/cart")
    client.post("/cart/add", data={"product_id": "huila"})
    early = client.post("/checkout/payment", data={"method": "card",
                                                   "card_number": APPROVED_CARD})
    assert (early.status_code, early.headers["location"]) == (303, "/checkout")
    client.get("/checkout")
    bad = client.post("/checkout/shipping", data={**SHIPPING, "country": "France"})
    assert bad.status_code == 400 and "two-letter" in bad.text
    assert "add_shipping_info" not in shop.tracker.names(client)
    client.post("/checkout/shipping", data=SHIPPING)
    no_card = client.post("/checkout/payment", data={"method": "card", "card_number": ""})
    assert no_card.status_code == 400
    assert "add_payment_info" not in shop.tracker.names(client)


# --- payments -------------------------------------------------------------------------


@pytest.mark.parametrize(("card", "reason"), sorted(DECLINING_CARDS.items()))
def test_test_cards_are_declined_and_a_retry_keeps_the_transaction_id(
        shop: RunningShop, card: str, reason: str) -> None:
    client = shop.client()
    client.post("/cart/add", data={"product_id": "hand-grinder"})
    client.get("/checkout")
    client.post("/checkout/shipping", data=SHIPPING)
    declined = client.post("/checkout/payment", data={"method": "card", "card_number": card})
    assert declined.status_code == 402
    assert declined.headers["x-payment-declined"] == reason
    assert reason.replace("_", " ") in declined.text
    event = shop.tracker.last(client, "payment_declined")
    params = event["params"]
    assert params["reason"] == reason and params["payment_method"] == "card"
    assert params["card_bin"] == card[:6]
    assert re.fullmatch(r"fp_[0-9a-f]{16}", params["card_fingerprint"])
    assert params["gateway"] == "sandbox"
    assert (params["value"], params["currency"]) == (83.9, "EUR")  # 79.00 + 4.90 shipping

    approved = client.post("/checkout/payment", data={"method": "card",
                                                      "card_number": APPROVED_CARD})
    assert approved.status_code == 303
    assert params["transaction_id"] == approved.headers["x-order-id"]
    assert shop.tracker.last(client, "purchase")["params"]["transaction_id"] == \
        params["transaction_id"]


def test_the_same_card_has_the_same_fingerprint(shop: RunningShop) -> None:
    client = shop.client()
    client.post("/cart/add", data={"product_id": "tea-infuser"})
    client.get("/checkout")
    client.post("/checkout/shipping", data=SHIPPING)
    for card in ("4000000000000002", "4000 0000 0000 0002", "4000000000009995"):
        client.post("/checkout/payment", data={"method": "card", "card_number": card})
    prints = [e["params"]["card_fingerprint"] for e in shop.tracker.of(client)
              if e["name"] == "payment_declined"]
    assert prints[0] == prints[1] != prints[2]


def test_gateway_errors_fail_every_payment_until_repaired(shop: RunningShop) -> None:
    client = shop.client()
    client.post("/cart/add", data={"product_id": "french-press"})
    client.get("/checkout")
    client.post("/checkout/shipping", data=SHIPPING)
    shop.faults.gateway_errors = True
    for form in ({"method": "card", "card_number": APPROVED_CARD}, {"method": "paypal"}):
        failed = client.post("/checkout/payment", data=form)
        assert failed.status_code == 502
        assert failed.headers["x-payment-declined"] == "gateway_error"
        params = shop.tracker.last(client, "payment_declined")["params"]
        assert params["reason"] == "gateway_error" and params["gateway"] == "sandbox"
        assert params["payment_method"] == form["method"]
    assert "purchase" not in shop.tracker.names(client)
    shop.faults.gateway_errors = False  # flipped while the shop runs
    paid = client.post("/checkout/payment", data={"method": "card",
                                                  "card_number": APPROVED_CARD})
    assert paid.status_code == 303


def test_sandbox_declines_about_six_percent_at_random_reproducibly() -> None:
    def run(seed: int) -> list[str | None]:
        sandbox = PaymentSandbox(ShopFaults(), seed)
        return [sandbox.charge("card", "4242424242424242", 1000).reason for _ in range(4000)]

    outcomes = run(7)
    declines = [r for r in outcomes if r is not None]
    assert 0.04 < len(declines) / len(outcomes) < 0.08
    assert set(declines) == set(DECLINE_REASONS)
    assert run(7) == outcomes and run(8) != outcomes
    paypal = PaymentSandbox(ShopFaults(), 1)
    reasons = {paypal.charge("paypal", None, 1000).reason for _ in range(2000)}
    assert None in reasons and reasons - {None} <= {"insufficient_funds", "fraud_suspected"}


def test_sandbox_declines_numbers_that_are_not_cards_and_never_returns_them() -> None:
    sandbox = PaymentSandbox(ShopFaults())
    result = sandbox.charge("card", "4000000000000078", 1000)  # Luhn check fails
    assert (result.reason, result.card_bin) == ("invalid_card", "400000")
    assert "4000000000000078" not in repr(result)
    with pytest.raises(ValueError, match="needs the card"):
        sandbox.charge("card", None, 1000)


def test_card_payments_carry_the_bin_and_the_keyed_fingerprint_never_the_number(
        server: Server) -> None:
    secret = b"the shop's own secret, 32 bytes"
    with _serving(server, seed=0, card_secret=secret) as running:
        client = running.client()
        client.post("/cart/add", data={"product_id": "paper-filters"})
        client.get("/checkout")
        client.post("/checkout/shipping", data=SHIPPING)
        for number in ("4000 0000 0000 0078", "4000000000009995", APPROVED_CARD):
            client.post("/checkout/payment", data={"method": "card", "card_number": number})
        paypal = running.client()
        buy_with = {"method": "paypal"}
        paypal.post("/cart/add", data={"product_id": "paper-filters"})
        paypal.get("/checkout")
        paypal.post("/checkout/shipping", data=SHIPPING)
        assert paypal.post("/checkout/payment", data=buy_with).status_code in (303, 402)
        events = running.tracker.events
    payments = [e["params"] for e in events if e["name"] in ("payment_declined", "purchase")]
    assert [(p.get("reason"), p.get("card_bin")) for p in payments] == [
        ("invalid_card", "400000"), ("insufficient_funds", "400000"), (None, "400000"),
        (None, None)]
    for params, number in zip(payments, ("4000000000000078", "4000000000009995",
                                         "4000000000000077"), strict=False):
        assert params["card_fingerprint"] == "fp_" + hmac.new(
            secret, number.encode(), hashlib.sha256).hexdigest()[:16]
        assert params["gateway"] == "sandbox" and params["payment_method"] == "card"
    assert payments[-1]["payment_method"] == "paypal" and "card_fingerprint" not in payments[-1]
    dumped = json.dumps(events)
    for number in ("4000000000000078", "4000000000009995", "4000000000000077", "0000 00"):
        assert number not in dumped
    assert [validate(e) for e in events] == [None] * len(events)


def test_checkout_delay_slows_every_checkout_request_and_only_those(
        shop: RunningShop) -> None:
    client = shop.client()
    client.post("/cart/add", data={"product_id": "huila"})
    shop.faults.checkout_delay = 0.01
    client.get("/")
    client.get("/checkout")
    client.post("/checkout/shipping", data=SHIPPING)
    client.get("/checkout/payment")
    client.post("/checkout/payment", data={"method": "card", "card_number": APPROVED_CARD})
    assert shop.shop.checkout_delays == 4
    assert shop.shop.checkout_delay_seconds == pytest.approx(0.04)
    shop.faults.checkout_delay = 0.0
    client.get("/checkout")
    assert shop.shop.checkout_delays == 4


def test_image_host_down_answers_503_for_everything_under_cdn(shop: RunningShop) -> None:
    client = shop.client()
    image = client.get("/cdn/img/moka-pot.svg")
    assert image.status_code == 200
    assert image.headers["content-type"] == "image/svg+xml"
    assert ET.fromstring(image.text).tag == "{http://www.w3.org/2000/svg}svg"
    assert client.get("/cdn/img/nope.svg").status_code == 404
    shop.faults.image_host_down = True
    assert client.get("/cdn/img/moka-pot.svg").status_code == 503
    assert client.get("/cdn/fonts/any.woff2").status_code == 503
    assert client.get("/p/moka-pot").status_code == 200  # the shop itself still works
    shop.faults.image_host_down = False
    assert client.get("/cdn/img/moka-pot.svg").status_code == 200
    assert "set-cookie" not in image.headers


# --- the RUM snippet in the shop's pages ------------------------------------------------

SHOPWATCH_URL = "http://127.0.0.1:9/shopwatch"
INGEST_KEY = "sw_ingest_demo-key"
_TAG_RE = re.compile(r'<script async src="([^"]+)" data-key="([^"]*)" data-traceparent="on"'
                     r'(?: data-session-id="([^"]*)")?></script>')


@pytest.fixture
def tagged(server: Server) -> Iterator[RunningShop]:
    """A shop whose pages carry the RUM snippet of Shopwatch at :data:`SHOPWATCH_URL`."""
    with _serving(server, browser_tag=BrowserTag(SHOPWATCH_URL, INGEST_KEY)) as running:
        yield running


def snippet_of(html: str) -> tuple[str, str, str | None]:
    """``(src, data-key, data-session-id)`` of the page's one snippet tag, which must
    sit in ``<head>`` after Shopwatch's queueing stub."""
    head = html.split("</head>", 1)[0]
    found = _TAG_RE.findall(head)
    assert len(found) == 1, head
    assert len(_TAG_RE.findall(html)) == 1
    stub = snippet.tag(SHOPWATCH_URL, INGEST_KEY).split("\n", 1)[0]
    assert head.index(stub) < head.index("/rum.js")
    src, key, sid = found[0]
    return src, key, sid or None


def test_every_page_carries_the_snippet_with_the_key_and_the_visit_session(
        tagged: RunningShop) -> None:
    client = tagged.client()
    pages = ["/", "/c/coffee", "/search?q=tea", "/p/kenya-aa", "/cart", "/login", "/signup",
             "/support", "/thanks", "/p/no-such-product"]
    for path in pages:
        response = client.get(path)
        assert response.status_code in (200, 404), path
        src, key, sid = snippet_of(response.text)
        assert (src, key) == (f"{SHOPWATCH_URL}/rum.js", INGEST_KEY), path
        # The browser's RUM rows and the server's events share the visit's id...
        assert sid == tagged.tracker.session_id(client), path
    assert {e["session_id"] for e in tagged.tracker.of(client)} == {sid}
    # ... which is not the session cookie: that stays HttpOnly, out of pages.
    assert client.cookies["demo_sid"] not in client.get("/").text
    # Checkout pages too, and the order confirmation.
    client.post("/cart/add", data={"product_id": "kenya-aa"})
    assert snippet_of(client.get("/checkout").text)[2] == sid
    client.post("/checkout/shipping", data=SHIPPING)
    assert snippet_of(client.get("/checkout/payment").text)[2] == sid
    paid = client.post("/checkout/payment", data={"method": "card",
                                                  "card_number": APPROVED_CARD})
    assert snippet_of(client.get(paid.headers["location"]).text)[2] == sid
    # Another visit, another id.
    other = tagged.client()
    assert snippet_of(other.get("/").text)[2] not in (None, sid)


def test_pages_outside_a_visit_carry_the_snippet_without_a_session(
        tagged: RunningShop) -> None:
    client = tagged.client()
    response = client.get("/no/such/route")  # Starlette's own 404: no visit starts
    assert response.status_code == 404
    assert snippet_of(response.text) == (f"{SHOPWATCH_URL}/rum.js", INGEST_KEY, None)


def test_a_signed_in_customer_is_identified_to_the_snippet(tagged: RunningShop) -> None:
    client = tagged.client()
    assert "identify" not in client.get("/").text
    sign_up(client)
    customer_id = tagged.tracker.last(client, "sign_up")["user_id"]
    html = client.get("/account").text
    assert f"<script>shopwatch('identify', \"{customer_id}\")</script>" in html
    assert html.index("shopwatch('identify'") < html.index("</head>")
    client.post("/logout")
    assert "identify" not in client.get("/").text


def test_without_a_browser_tag_pages_have_no_snippet(shop: RunningShop) -> None:
    html = shop.client().get("/").text
    assert "rum.js" not in html and "shopwatch(" not in html


def test_browser_tag_escapes_what_it_writes() -> None:
    tag = BrowserTag('http://x.example/"a', 'k"<')
    session = Shop(RecordingTracker(), ShopFaults(), 0, "EUR").sessions.start(
        {}, {}, {}, "shop.example")[0]
    html = str(tag.html(session, customer_id='c"</script>'))
    assert 'data-key="k&quot;&lt;"' in html and "x.example/&quot;a/rum.js" in html
    assert f'data-session-id="{session.public_id}"' in html
    assert "</script>\")" not in html and "\\u003c/script>" in html


# --- accounts -------------------------------------------------------------------------


def sign_up(client: httpx.Client, email: str = "jane.customer@example.com",
            password: str = "correct horse 1", name: str = "Jane Q. Customer") -> None:
    response = client.post("/signup", data={"name": name, "email": email,
                                            "password": password})
    assert (response.status_code, response.headers["location"]) == (303, "/account")


def test_sign_up_then_login_ok_wrong_password_and_unknown_account(shop: RunningShop) -> None:
    client = shop.client()
    assert client.get("/account").headers["location"] == "/login"
    sign_up(client)
    customer_id = shop.tracker.last(client, "sign_up")["user_id"]
    assert customer_id.startswith("cus_")
    assert shop.tracker.last(client, "sign_up")["params"] == {"method": "password"}
    assert "Jane Q. Customer" in client.get("/account").text
    again = shop.client().post("/signup", data={"name": "J", "password": "another pw 2",
                                                "email": "JANE.customer@example.com "})
    assert again.status_code == 409
    out = client.post("/logout")
    assert (out.status_code, out.headers["location"]) == (303, "/")
    assert client.get("/account").status_code == 303

    wrong = client.post("/login", data={"email": "jane.customer@example.com",
                                        "password": "wrong password"})
    assert (wrong.status_code, wrong.headers["x-login-failed"]) == (401, "wrong_password")
    failed = shop.tracker.last(client, "login_failed")
    assert failed["params"] == {"method": "password", "reason": "wrong_password"}
    assert failed["user_id"] == customer_id
    unknown = client.post("/login", data={"email": "nobody@example.com", "password": "x"})
    assert (unknown.status_code, unknown.headers["x-login-failed"]) == (401, "unknown_account")
    failed = shop.tracker.last(client, "login_failed")
    # The account tried: the address typed (Shopwatch pseudonymises it on arrival).
    assert failed["params"]["reason"] == "unknown_account"
    assert failed["user_id"] == "nobody@example.com"
    assert "wrong" in unknown.text and "unknown" not in unknown.text.lower()

    ok = client.post("/login", data={"email": "Jane.Customer@example.com",
                                     "password": "correct horse 1"})
    assert (ok.status_code, ok.headers["location"]) == (303, "/account")
    assert shop.tracker.last(client, "login")["user_id"] == customer_id
    client.get("/")
    assert shop.tracker.of(client)[-1]["user_id"] == customer_id


def test_passwords_are_hashed_not_stored(shop: RunningShop) -> None:
    sign_up(shop.client())
    customer = shop.shop.customers.by_email("jane.customer@example.com")
    assert customer is not None
    assert customer.password_hash.startswith("scrypt$")
    assert "correct horse 1" not in customer.password_hash


def test_profile_update_reports_changed_field_names_only(shop: RunningShop) -> None:
    client = shop.client()
    assert client.post("/account/profile", data={"name": "X"}).headers["location"] == "/login"
    sign_up(client)
    response = client.post("/account/profile", data={
        "name": "Jane Q. Customer", "phone": "+33 1 23 45 67 89", "address": "3 Rue Neuve"})
    assert (response.status_code, response.headers["location"]) == (303, "/account")
    assert shop.tracker.last(client, "profile_updated")["params"] == {
        "fields": ["address", "phone"]}
    client.post("/account/profile", data={"phone": "+33 1 23 45 67 89"})  # no change
    client.post("/account/profile", data={"email": "jane.new@example.com"})
    assert [e["params"]["fields"] for e in shop.tracker.of(client)
            if e["name"] == "profile_updated"] == [["address", "phone"], ["email"]]
    sign_up(shop.client(), email="other@example.com")
    taken = client.post("/account/profile", data={"email": "other@example.com"})
    assert taken.status_code == 409
    assert "+33" not in json.dumps(shop.tracker.events)


def test_password_change(shop: RunningShop) -> None:
    client = shop.client()
    sign_up(client)
    wrong = client.post("/account/password", data={"current": "nope", "new": "new password 9"})
    assert wrong.status_code == 403
    short = client.post("/account/password", data={"current": "correct horse 1",
                                                    "new": "short"})
    assert short.status_code == 400
    assert "password_changed" not in shop.tracker.names(client)
    ok = client.post("/account/password", data={"current": "correct horse 1",
                                                 "new": "new password 9"})
    assert (ok.status_code, ok.headers["location"]) == (303, "/account")
    assert shop.tracker.last(client, "password_changed")["params"] == {"method": "change"}
    other = shop.client()
    assert other.post("/login", data={"email": "jane.customer@example.com",
                                      "password": "correct horse 1"}).status_code == 401
    assert other.post("/login", data={"email": "jane.customer@example.com",
                                      "password": "new password 9"}).status_code == 303


# --- after the order ------------------------------------------------------------------


def test_partial_and_full_refund_then_nothing_left(shop: RunningShop) -> None:
    client = shop.client()
    order_id = buy(client, "gooseneck-kettle")  # 59.00 + 4.90
    partial = client.post(f"/orders/{order_id}/refund", data={"amount": "5.50"})
    assert (partial.status_code, partial.headers["location"]) == (303, f"/order/{order_id}")
    rest = client.post(f"/orders/{order_id}/refund")
    assert rest.status_code == 303
    refunds = [e["params"] for e in shop.tracker.of(client) if e["name"] == "refund"]
    assert refunds == [{"transaction_id": order_id, "value": 5.5, "currency": "EUR"},
                       {"transaction_id": order_id, "value": 58.4, "currency": "EUR"}]
    assert client.post(f"/orders/{order_id}/refund").status_code == 409
    assert client.post(f"/orders/{order_id}/cancel").status_code == 409
    assert "refunded" in client.get(f"/order/{order_id}").text


def test_refund_amounts_are_checked(shop: RunningShop) -> None:
    client = shop.client()
    order_id = buy(client, "paper-filters")  # 5.90 + 4.90
    for amount in ("abc", "-1", "0", "10.81", "1.001"):
        answer = client.post(f"/orders/{order_id}/refund", data={"amount": amount})
        assert answer.status_code == 400, amount
    assert "refund" not in shop.tracker.names(client)


def test_cancel_then_no_refund(shop: RunningShop) -> None:
    client = shop.client()
    order_id = buy(client, "ceramic-mug", quantity=2)  # 28.00 + 4.90
    cancelled = client.post(f"/orders/{order_id}/cancel")
    assert (cancelled.status_code, cancelled.headers["location"]) == (303, f"/order/{order_id}")
    assert shop.tracker.last(client, "order_cancelled")["params"] == {
        "transaction_id": order_id, "value": 32.9, "currency": "EUR",
        "reason": "customer_request"}
    assert client.post(f"/orders/{order_id}/refund").status_code == 409
    assert client.post(f"/orders/{order_id}/cancel").status_code == 409


def test_orders_are_private_to_their_session_or_customer(shop: RunningShop) -> None:
    owner = shop.client()
    sign_up(owner)
    order_id = buy(owner)
    stranger = shop.client()
    assert stranger.get(f"/order/{order_id}").status_code == 404
    assert stranger.post(f"/orders/{order_id}/refund").status_code == 404
    assert stranger.post("/survey", data={"order_id": order_id, "kind": "nps",
                                          "score": "1"}).status_code == 404
    # The same customer on another device sees it.
    device = shop.client()
    device.post("/login", data={"email": "jane.customer@example.com",
                                "password": "correct horse 1"})
    assert device.get(f"/order/{order_id}").status_code == 200
    assert order_id in device.get("/account").text


def test_survey(shop: RunningShop) -> None:
    client = shop.client()
    order_id = buy(client)
    sent = client.post("/survey", data={
        "order_id": order_id, "kind": "nps", "score": "9",
        "comment": "Great! Write to jane@example.com or call 0151 2345 6789"})
    assert (sent.status_code, sent.headers["location"]) == (303, "/thanks")
    assert shop.tracker.last(client, "survey_response")["params"] == {
        "survey": "nps", "score": 9, "transaction_id": order_id,
        "comment": "Great! Write to [email] or call [number]"}
    assert client.post("/survey", data={"kind": "csat", "score": "4"}).status_code == 303
    assert shop.tracker.last(client, "survey_response")["params"] == {
        "survey": "csat", "score": 4}
    for bad in ({"kind": "csat", "score": "7"}, {"kind": "nps", "score": "11"},
                {"kind": "ces", "score": "3"}, {"kind": "nps", "score": "high"}):
        assert client.post("/survey", data=bad).status_code == 400, bad
    assert shop.tracker.names(client).count("survey_response") == 2


def test_support_contact(shop: RunningShop) -> None:
    client = shop.client()
    order_id = buy(client)
    assert client.get("/support", params={"order_id": order_id}).status_code == 200
    sent = client.post("/support", data={"topic": "Product question", "channel": "chat",
                                         "message": "My e-mail is jane@example.com",
                                         "order_id": order_id})
    assert (sent.status_code, sent.headers["location"]) == (303, "/thanks")
    params = shop.tracker.last(client, "support_contact")["params"]
    desk = {k: params.pop(k) for k in list(params) if k not in (
        "reason", "channel", "transaction_id")}
    assert params == {"reason": "product_question", "channel": "chat",
                      "transaction_id": order_id}
    # How the desk handled it: queued, then answered (with handling times) or abandoned.
    assert desk["contact_id"].startswith("C-") and desk["queued_at"].endswith("Z")
    assert ("answered_at" in desk) != ("abandoned_at" in desk)
    if "answered_at" in desk:
        assert desk["answered_at"] >= desk["queued_at"]
        assert desk["talk_s"] > 0 and desk["acw_s"] > 0 and desk["agent"]
        assert isinstance(desk["first_contact_resolved"], bool)
    for bad in ({"topic": "delivery", "channel": "fax", "message": "hi"},
                {"topic": "jane@example.com", "channel": "chat", "message": "hi"},
                {"topic": "delivery", "channel": "chat", "message": " "}):
        assert client.post("/support", data=bad).status_code == 400, bad
    assert shop.tracker.names(client).count("support_contact") == 1
    assert "jane@example.com" not in json.dumps(shop.tracker.events)


# --- privacy and robustness -----------------------------------------------------------


def test_no_personal_data_in_any_event(shop: RunningShop) -> None:
    client = shop.client()
    sign_up(client, email="jane.customer@example.com", name="Jane Q. Customer")
    client.post("/account/profile", data={"address": "17 Rue des Lilas",
                                          "phone": "+33 6 12 34 56 78"})
    client.post("/cart/add", data={"product_id": "moka-pot"})
    client.get("/checkout")
    client.post("/checkout/shipping", data=SHIPPING)
    client.post("/checkout/payment", data={"method": "card", "card_number": "4000000000000002",
                                           "email": "jane.customer@example.com"})
    client.post("/checkout/payment", data={"method": "card", "card_number": APPROVED_CARD,
                                           "email": "jane.customer@example.com"})
    client.get("/search", params={"q": "jane.customer@example.com"})
    client.post("/login", data={"email": "jane.customer@example.com", "password": "bad one"})
    dumped = json.dumps(shop.tracker.events)
    assert "purchase" in dumped and "payment_declined" in dumped  # the journey happened
    digits_only = re.sub(r"\D", "", APPROVED_CARD)
    for secret in ("jane", "Jane", "example.com", "Lilas", "Lyon", "+33", "12 34 56",
                   "4000000000000002", digits_only, APPROVED_CARD, "correct horse"):
        assert secret not in dumped, secret


def test_every_event_passes_shopwatch_validation(shop: RunningShop) -> None:
    client = shop.client(IPHONE, **{"CF-IPCountry": "T1", "Accept-Language": "*"})
    client.get("/", params={"utm_source": "x" * 400})
    order_id = buy(client)
    client.post(f"/orders/{order_id}/refund", data={"amount": "1"})
    events = shop.tracker.of(client)
    assert len(events) == 8
    assert [validate(e) for e in events] == [None] * len(events)
    assert len(events[0]["utm_source"]) == 256
    assert "country" not in events[0]["device"] and "language" not in events[0]["device"]


# --- security signals: who sent each event ----------------------------------------------


def test_events_carry_the_address_the_proxy_names_and_the_user_agent(
        shop: RunningShop) -> None:
    client = shop.client(IPHONE, **{"X-Forwarded-For": "90.3.17.42"})
    client.get("/")
    client.post("/cart/add", data={"product_id": "huila"})
    # The same session from another network (as an account taken over mid-visit is):
    # the address is the request's, not the session's.
    client.get("/p/huila", headers={"X-Forwarded-For": "2001:db8:7a4e::5"})
    events = shop.tracker.of(client)
    assert [(e["name"], e["ip"]) for e in events] == [
        ("page_view", "90.3.17.42"), ("add_to_cart", "90.3.17.42"),
        ("page_view", "2001:db8:7a4e::5"), ("view_item", "2001:db8:7a4e::5")]
    assert {e["user_agent"] for e in events} == {IPHONE}
    direct = shop.client(DESKTOP_CHROME)  # nothing in front of the shop: the peer itself
    direct.get("/")
    (event,) = shop.tracker.of(direct)
    assert (event["ip"], event["user_agent"]) == ("127.0.0.1", DESKTOP_CHROME)
    # A monitor's requests send nothing at all.
    shop.client(**{"X-Shopwatch-Check": "1", "X-Forwarded-For": "90.3.17.43"}).get("/")
    assert "90.3.17.43" not in json.dumps(shop.tracker.events)


@pytest.mark.parametrize(("peer", "forwarded", "expected"), [
    ("127.0.0.1", "90.3.17.42", "90.3.17.42"),  # our proxy names the client
    ("127.0.0.1", "6.6.6.6, 90.3.17.42", "90.3.17.42"),  # what the client wrote is not taken
    ("127.0.0.1", "90.3.17.42, 127.0.0.1", "90.3.17.42"),  # through two proxies of ours
    ("203.0.113.9", "90.3.17.42", "203.0.113.9"),  # not our proxy: its header is not believed
    ("127.0.0.1", "", "127.0.0.1"),
    ("127.0.0.1", "unknown", "127.0.0.1"),
    ("127.0.0.1", "[2001:db8::1]:443", "2001:db8::1"),
    ("127.0.0.1", "90.3.17.42:51234", "90.3.17.42"),
    ("::ffff:127.0.0.1", "::ffff:90.3.17.42", "90.3.17.42"),
    (None, "90.3.17.42", None),
    ("testclient", "", None),
])
def test_client_address_believes_only_the_shops_own_proxies(
        peer: str | None, forwarded: str, expected: str | None) -> None:
    assert client_address(peer, forwarded, networks(LOOPBACK)) == expected


def test_user_agent_is_trimmed_and_cut() -> None:
    assert user_agent({"user-agent": "  curl/8.5.0 "}) == "curl/8.5.0"
    assert user_agent({"user-agent": "x" * 600}) == "x" * 512
    assert user_agent({"user-agent": "  "}) is None and user_agent({}) is None


def test_account_events_name_who_sent_them_and_the_account_tried(shop: RunningShop) -> None:
    client = shop.client(DESKTOP_CHROME, **{"X-Forwarded-For": "90.3.17.42"})
    sign_up(client)
    client.post("/account/profile", data={"email": "jane.new@example.com",
                                          "address": "3 Rue Neuve"})
    client.post("/account/password", data={"current": "correct horse 1",
                                           "new": "new password 9"})
    client.post("/logout")
    client.post("/login", data={"email": "jane.new@example.com", "password": "nope nope"})
    client.post("/login", data={"email": " Someone.Else@Example.com ", "password": "x"})
    client.post("/login", data={"email": "hunter2", "password": "x"})  # not an address
    events = [e for e in shop.tracker.of(client) if e["name"] != "page_view"]
    assert [e["name"] for e in events] == ["sign_up", "profile_updated", "password_changed",
                                           "login_failed", "login_failed", "login_failed"]
    assert all(e["ip"] == "90.3.17.42" and e["user_agent"] == DESKTOP_CHROME for e in events)
    assert events[1]["params"] == {"fields": ["email", "address"]}
    assert events[2]["params"] == {"method": "change"}
    customer_id = events[0]["user_id"]
    assert [e["params"]["reason"] for e in events[3:]] == [
        "wrong_password", "unknown_account", "unknown_account"]
    assert [e.get("user_id") for e in events[3:]] == [customer_id, "someone.else@example.com",
                                                      None]
    assert "hunter2" not in json.dumps(shop.tracker.events)


def _in(network: str, address: str) -> bool:
    return ipaddress.ip_address(address) in ipaddress.ip_network(network)


def test_live_attacks_send_what_docs_demo_md_says(server: Server) -> None:
    from shopwatch.demo import attacks, model
    from shopwatch.demo.model import Customers
    from shopwatch.demo.shop.customers import hash_password
    from shopwatch.demo.simulator import Simulator

    regulars = model.regulars(0)[: model.OFFICE_STAFF + 3]
    with _serving(server, seed=0) as running:
        for name, email, password in regulars:
            running.shop.customers.add(name, email, hash_password(password),
                                       customer_id=model.customer_id(email))
        sim = Simulator(running.base_url, running.faults,
                        products=[p.id for p in PRODUCTS], categories=[c.slug for c in CATEGORIES],
                        seed=4, speed=100, say=lambda _: None,
                        customers=Customers([(e, p) for _, e, p in regulars]))
        sent: dict[str, list[dict[str, Any]]] = {}

        async def play() -> None:  # one loop: the simulator's stop event belongs to it
            for kind in attacks.ATTACKERS:
                before = len(running.tracker.events)
                await sim.incident(kind, 1.0)
                sent[kind] = running.tracker.events[before:]

        asyncio.run(play())
    details = {i["kind"]: i["details"] for i in sim.summary.incidents}
    for kind, events in sent.items():
        attacker = attacks.ATTACKERS[kind]
        assert events, kind
        assert all(_in(attacker.network, e["ip"]) for e in events), kind
        assert {e["user_agent"] for e in events} <= set(attacker.user_agents), kind
        assert {e["device"]["country"] for e in events} == {attacker.country}, kind
        assert details[kind]["network"] == attacker.network
        assert [validate(e) for e in events] == [None] * len(events), kind

    stuffing = [e for e in sent["credential_stuffing"] if e["name"] == "login_failed"]
    assert len(stuffing) >= 8
    assert len({e["user_id"] for e in stuffing}) > 0.8 * len(stuffing)  # one try per account
    assert len({e["ip"] for e in stuffing}) > 5  # many addresses, one /24
    assert {e["device"]["category"] for e in stuffing} == {"bot"}

    brute = sent["brute_force"]
    assert len(brute) >= 5 and {e["name"] for e in brute} == {"login_failed"}
    assert {e["user_id"] for e in brute} == {details["brute_force"]["user_id"]}
    assert {e["params"]["reason"] for e in brute} == {"wrong_password"}
    assert len({e["ip"] for e in brute}) == 1

    declined = [e for e in sent["card_testing"] if e["name"] == "payment_declined"]
    assert len(declined) >= 5 and len({e["session_id"] for e in sent["card_testing"]}) == 1
    assert len({e["params"]["card_fingerprint"] for e in declined}) == len(declined)
    assert {e["params"]["value"] for e in declined} == {10.8}  # 5.90 + 4.90 shipping
    assert [e["params"]["reason"] for e in declined].count("invalid_card") > len(declined) / 2

    takeover = sent["account_takeover"]
    names = [e["name"] for e in takeover]
    assert names[:3] == ["page_view", "login", "page_view"]
    assert "purchase" in names or "payment_declined" in names
    victim = details["account_takeover"]["user_id"]
    assert victim in {model.customer_id(email) for _, email, _ in regulars}
    assert {e.get("user_id") for e in takeover[1:]} == {victim}
    changed = next(e for e in takeover if e["name"] == "profile_updated")
    assert changed["params"]["fields"] == ["email", "address"]
    assert ("password_changed" in names) == ("password" in details["account_takeover"]["changed"])
    assert len({e["session_id"] for e in takeover}) == 1
    victim_email = next(email for _, email, _ in regulars if model.customer_id(email) == victim)
    assert victim_email not in {email for email, _ in sim.customers.accounts}

    bots = sent["bot_traffic"]
    assert {e["name"] for e in bots} == {"page_view", "view_item", "add_to_cart"}
    assert {e["device"]["category"] for e in bots} == {"bot"}
    spread = (bots[-1]["ts"] - bots[0]["ts"]) / 1000
    assert len(bots) >= 15 and len(bots) > 5 * spread  # faster than anyone clicks
    assert sim.summary.counts["bot_requests"] == details["bot_traffic"]["attempts"]

    signups = [e for e in sent["signup_abuse"] if e["name"] == "sign_up"]
    assert len(signups) >= 2 and len({e["session_id"] for e in signups}) == len(signups)
    assert sim.summary.counts["abuse_signups"] == len(signups)


def test_a_failing_tracker_never_fails_the_shop(server: Server,
                                                caplog: pytest.LogCaptureFixture) -> None:
    server.switch.app = create_shop(BrokenTracker())
    with httpx.Client(base_url=server.base_url) as client:
        assert client.get("/").status_code == 200
        assert client.post("/cart/add", data={"product_id": "huila"}).status_code == 303
        assert client.get("/cart").status_code == 200
    assert "the tracker failed to take a view_cart event" in caplog.text


def test_create_shop_refuses_a_bad_currency() -> None:
    with pytest.raises(ValueError, match="ISO 4217"):
        create_shop(RecordingTracker(), currency="eur")


def test_the_shop_currency_is_used_in_events(server: Server) -> None:
    tracker = RecordingTracker()
    app = create_shop(tracker, currency="USD")
    tracker.shop = app.state.shop
    server.switch.app = app
    with httpx.Client(base_url=server.base_url) as client:
        assert "$11.50" in client.get("/p/huila").text
        assert tracker.last(client, "view_item")["params"]["currency"] == "USD"


# --- catalogue, pages, devices --------------------------------------------------------


def test_catalogue_every_product_has_a_page_and_an_image(shop: RunningShop) -> None:
    assert len(PRODUCTS) == 24
    assert 4 <= len(CATEGORIES) <= 5
    assert len({p.id for p in PRODUCTS}) == 24
    client = shop.client()
    for cat in CATEGORIES:
        page = client.get(f"/c/{cat.slug}")
        assert page.status_code == 200
        ids = [p.id for p in PRODUCTS if p.category == cat.slug]
        assert len(ids) >= 4
        assert all(f'href="/p/{pid}"' in page.text for pid in ids)
    for p in PRODUCTS:
        assert p.cents > 0 and p.price == p.cents / 100 and p.description
        assert f'<img src="/cdn/img/{p.id}.svg"' in client.get(f"/p/{p.id}").text
        ET.fromstring(client.get(f"/cdn/img/{p.id}.svg").text)  # well-formed XML


def test_unknown_pages_are_html_404s(shop: RunningShop) -> None:
    client = shop.client()
    for path in ("/p/nope", "/c/nope", "/order/DS-NOPE", "/no/such/page"):
        page = client.get(path)
        assert page.status_code == 404, path
        assert "text/html" in page.headers["content-type"], path
    assert [e["page"] for e in shop.tracker.of(client)] == ["/p/nope", "/c/nope",
                                                             "/order/DS-NOPE"]
    assert client.post("/").status_code == 405
    health = client.get("/healthz")
    assert (health.status_code, health.text) == (200, "ok")


def test_blank_search_sends_no_search_event(shop: RunningShop) -> None:
    client = shop.client()
    assert client.get("/search", params={"q": "  "}).status_code == 200
    client.get("/search", params={"q": "zzz"})
    assert shop.tracker.names(client) == ["page_view", "page_view", "search",
                                          "view_item_list"]
    assert shop.tracker.last(client, "view_item_list")["params"]["items"] == []


@pytest.mark.parametrize(("ua", "expected"), [
    (IPHONE, ("mobile", "Safari", "iOS")),
    ("Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/17.4 Mobile/15E148 Safari/604.1", ("tablet", "Safari", "iOS")),
    ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/124.0.0.0 Mobile Safari/537.36", ("mobile", "Chrome", "Android")),
    ("Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/124.0.0.0 Safari/537.36", ("tablet", "Chrome", "Android")),
    (DESKTOP_CHROME + " Edg/124.0.0.0", ("desktop", "Edge", "Windows")),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14.4; rv:125.0) Gecko/20100101 Firefox/125.0",
     ("desktop", "Firefox", "macOS")),
    ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/124.0.0.0 Safari/537.36", ("desktop", "Chrome", "Linux")),
    ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
     ("bot", "Other", "Other")),
    ("python-httpx/0.28.1", ("bot", "Other", "Other")),
    ("", ("other", "Other", "Other")),
])
def test_device_from_user_agent(ua: str, expected: tuple[str, str, str]) -> None:
    device = describe_device({"user-agent": ua})
    assert (device["category"], device["browser"], device["os"]) == expected


@pytest.mark.parametrize(("language", "country", "expected"), [
    ("fr-BE,fr;q=0.9", "be", {"language": "fr-BE", "country": "BE"}),
    ("en", "XX", {"language": "en"}),
    ("*", "T1", {}),
    ("", "DEU", {}),
])
def test_device_language_and_country(language: str, country: str,
                                     expected: dict[str, str]) -> None:
    device = describe_device({"accept-language": language, "cf-ipcountry": country})
    assert {k: v for k, v in device.items() if k in ("language", "country")} == expected


def test_cart_add_caps_a_line_at_99(shop: RunningShop) -> None:
    client = shop.client()
    client.post("/cart/add", data={"product_id": "huila", "quantity": "98"})
    client.post("/cart/add", data={"product_id": "huila", "quantity": "5"})
    client.post("/cart/add", data={"product_id": "huila", "quantity": "5"})
    added = [e["params"]["items"][0]["quantity"] for e in shop.tracker.of(client)
             if e["name"] == "add_to_cart"]
    assert added == [98, 1]



def test_the_demo_inbox_keeps_signed_notifications_and_refuses_forged_ones(
        server: Server, tmp_path: Any) -> None:
    from shopwatch.alerts import channels as kinds
    from shopwatch.alerts.channels import Environment, Notification
    from shopwatch.alerts.delivery import Outbox
    from shopwatch.checks.safety import AddressPolicy
    from shopwatch.demo.inbox import HOOK_PATH, PAGE_PATH, Inbox, with_inbox
    from shopwatch.store.state import StateStore

    state = StateStore(tmp_path / "state.sqlite")
    project = state.create_project("demo")
    env = Environment(policy=AddressPolicy.parse(["127.0.0.1"]))
    channel = kinds.create(state, project.id, "demo inbox", "webhook",
                           {"url": server.base_url + HOOK_PATH}, env)
    inbox = Inbox(channel.config["secret"])
    server.switch.app = with_inbox(create_shop(RecordingTracker()), inbox)
    try:
        outcome = Outbox(state, env).send_now(channel.id, Notification(
            project_id=project.id, event="firing", severity="critical",
            title="[firing] payments failing", text="declined_rate is 0.8 (> 0.5 over 10m)"))
        assert outcome.ok, outcome
        (item,) = inbox.items
        assert item["notification"]["title"] == "[firing] payments failing"
        with httpx.Client(base_url=server.base_url, timeout=10) as client:
            forged = client.post(HOOK_PATH, content=b'{"title": "x"}', headers={
                "X-Shopwatch-Timestamp": "1", "X-Shopwatch-Signature": "sha256=00"})
            assert forged.status_code == 401 and len(inbox.items) == 1
            page = client.get(PAGE_PATH)
            assert page.status_code == 200
            assert "[firing] payments failing" in page.text
            assert "declined_rate is 0.8" in page.text
            assert client.get("/healthz").text == "ok"  # the shop behind it still answers
    finally:
        server.switch.app = None
        state.close()
