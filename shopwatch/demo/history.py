"""Weeks of plausible shop history, written fast into Shopwatch (``--backfill``).

Replaying the past through the shop over HTTP would take hours, so this plays the same
visits (:func:`model.plan_visit`, the same seasonality) straight into the events the
shop's instrumentation would have sent, stamped at their past times, together with what
the shoppers' browsers would have reported to real-user monitoring
(:mod:`shopwatch.demo.browsing`: page views and their timings, Web Vitals, JavaScript
errors, failed and slow resources; same session ids, so journeys join them). Both go to
a :class:`Sink`; :class:`Ingest` hands them to a running Shopwatch in-process: the events
through the ingest pipeline (what ``POST /api/v1/events`` does: validation, scrubbing,
enrichment), each batch of 1,000 with its RUM rows in one :class:`EventBatch` to the
writer. With ``spans`` (the default), the traces the shop's requests would have made
(:mod:`shopwatch.demo.traces`) go to a sink that takes them (``send_span``) too, in the
same batches. (Past RUM rows cannot go through ``POST /api/v1/rum``: it takes the device from
the request's user agent, as a browser sends it.)

Events carry what the live shop's do, ``ip`` and ``user_agent`` included: each visitor's
address (a customer's own network, :func:`model.home`), card payments' BIN and
fingerprint (under the shop's ``card_secret``, so a card has the same fingerprint in the
past as live), failed sign-ins the account tried. The regular customers
(:func:`model.regulars`) are customers from the first day, with the ids the live shop
gives them.

The past has incidents too, one of each kind a week, logged like live ones (with
``"backfill": true``): a payment-gateway outage (declined payments; the payment
provider's script fails), a slow checkout and an image-host outage (seen in real-user
data: slow first bytes, failed images), and every attack of the live demo, from the
same networks (:mod:`shopwatch.demo.past_attacks`): credential stuffing, brute force,
card testing, an account takeover, bot traffic and sign-up abuse.

Order ids of the past start with ``H-``, so they can never collide with the shop's own.
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
import secrets
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Protocol
from zoneinfo import ZoneInfo

import msgspec

from shopwatch.beacon import RumRow
from shopwatch.demo import desk, model
from shopwatch.demo.attacks import ATTACKERS
from shopwatch.demo.browsing import Browsing, Site, Windows
from shopwatch.demo.model import Customers, Step, Visit
from shopwatch.demo.past_attacks import PastShop, attack_events
from shopwatch.demo.shop.payments import GATEWAY_NAME, card_fingerprint
from shopwatch.demo.traces import PastTraces
from shopwatch.errors import Unavailable
from shopwatch.ingest import pipeline
from shopwatch.store.base import EventBatch
from shopwatch.telemetry import SpanRow

if TYPE_CHECKING:
    from shopwatch.runtime import Runtime

log = logging.getLogger(__name__)

DECLINE_REASONS = (("insufficient_funds", 5), ("card_declined", 4), ("expired_card", 2),
                   ("fraud_suspected", 1))
SHIPPING = {"standard": 4.9, "express": 9.9}
TAX_RATE = 0.2
# (kind, minutes): one of each a week, at a random time.
PAST_INCIDENTS: Final = (("gateway_errors", 40), ("credential_stuffing", 25),
                         ("slow_checkout", 45), ("image_host_down", 30), ("brute_force", 15),
                         ("card_testing", 15), ("account_takeover", 5), ("bot_traffic", 10),
                         ("signup_abuse", 15))
SHOP_ORIGIN: Final = "http://127.0.0.1:8081"
_encode = msgspec.json.Encoder().encode


class Sender(Protocol):
    """Where events go (dicts, as a shop sends them)."""

    def send(self, event: dict[str, Any]) -> str: ...


class Sink(Sender, Protocol):
    """Where events and RUM rows go. A :class:`Sender` without ``send_rum`` (such as
    :class:`Throttled`) gets the events only, and no RUM rows are made."""

    def send_rum(self, row: RumRow) -> None: ...


class Throttled:
    """Hands events to a :class:`~shopwatch.client.ShopwatchClient` without overrunning
    its queue (events only: RUM rows cannot go through the events API)."""

    def __init__(self, client: Any, max_queued: int = 100_000) -> None:
        self.client = client
        self.max_queued = max_queued

    def send(self, event: dict[str, Any]) -> str:
        while self.client.stats.queued > self.max_queued:
            time.sleep(0.01)
        return str(self.client.send(event))


class Ingest:
    """A :class:`Sink` writing into a running Shopwatch (its :class:`Runtime`) without
    HTTP: events go through the ingest pipeline in batches of up to ``batch_events``,
    each with the RUM rows sent meanwhile, to the writer; a few batches are committed
    while the next ones are made, and a full writer queue is waited out (history is
    produced far faster than it is committed, and a dropped batch is history lost).
    Call :meth:`close` at the end: it commits what is left and waits for it.
    """

    def __init__(self, runtime: Runtime, project_id: int, *, batch_events: int = 1000,
                 batch_rum: int = 2000, batch_spans: int = 4000, in_flight: int = 6) -> None:
        self.runtime = runtime
        self.project_id = project_id
        self.batch_events = min(batch_events, runtime.pipeline.max_events)
        self.batch_rum = batch_rum
        self.in_flight = in_flight
        self.events: list[dict[str, Any]] = []
        self.rum: list[RumRow] = []
        self.batch_spans = batch_spans
        self.spans: list[SpanRow] = []
        self.span_rows = 0
        self.pending: deque[Future[int]] = deque()
        self.accepted = 0  # events the pipeline accepted
        self.rejected = 0  # events it refused (logged)
        self.rum_rows = 0

    def send(self, event: dict[str, Any]) -> str:
        self.events.append(event)
        if len(self.events) >= self.batch_events:
            self.flush()
        return str(event["id"])

    def send_rum(self, row: RumRow) -> None:
        self.rum.append(row)
        if len(self.rum) >= self.batch_rum:
            self.flush()

    def send_span(self, row: SpanRow) -> None:
        self.spans.append(row)
        if len(self.spans) >= self.batch_spans:
            self.flush()

    def flush(self) -> None:
        """Hand what is buffered to the writer (without waiting for the commit)."""
        if not self.events and not self.rum and not self.spans:
            return
        now_us = time.time_ns() // 1000
        if self.events:
            outcome = pipeline.process(_encode(self.events), pipeline.Format.JSON,
                                       self.project_id, now_us, self.runtime.pipeline)
            rows = outcome.rows
            if outcome.rejected:
                if not self.rejected:
                    log.warning("history: an event was rejected: %s", outcome.rejected[0])
                self.rejected += len(outcome.rejected)
        else:
            rows = EventBatch(self.project_id, now_us, b"[]", 0, [])
        self.accepted += rows.n
        rows.rum = _encode(self.rum)
        rows.n_rum = len(self.rum)
        self.rum_rows += rows.n_rum
        rows.spans = _encode(self.spans)
        rows.n_spans = len(self.spans)
        self.span_rows += rows.n_spans
        self.events, self.rum, self.spans = [], [], []
        self._submit(rows)

    def _submit(self, rows: EventBatch) -> None:
        deadline = time.monotonic() + 120
        while True:
            try:
                self.pending.append(self.runtime.writer.submit(rows))
                break
            except Unavailable:  # the writer's queue is full: wait for a commit
                if self.pending:
                    self.pending.popleft().result()
                elif time.monotonic() > deadline:  # not full: stopping
                    raise
                else:
                    time.sleep(0.05)
        while len(self.pending) > self.in_flight:
            self.pending.popleft().result()  # raises if a commit failed

    def close(self) -> None:
        self.flush()
        while self.pending:
            self.pending.popleft().result()


@dataclass(frozen=True)
class Product:
    id: str
    name: str
    category: str
    price: float


@dataclass
class HistoryResult:
    """What was sent: events (and counts by name), visits, RUM rows (counts by kind),
    order ids and the incidents of the past."""

    events: int = 0
    visits: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    rum: int = 0
    rum_counts: Counter[str] = field(default_factory=Counter)
    spans: int = 0
    orders: list[str] = field(default_factory=list)
    incidents: list[dict[str, Any]] = field(default_factory=list)
    interrupted: bool = False  # ``should_stop`` said so before the end


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds")


def _ms(at: datetime) -> int:
    """Epoch milliseconds: what events carry as ``ts`` here (cheaper than RFC 3339 to
    make and to parse, and the ingest API takes both)."""
    return int(at.timestamp() * 1000)


def _poisson(rng: random.Random, lam: float) -> int:
    if lam > 30:  # normal approximation: exact sampling is slow for large means
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    threshold, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= threshold:
            return k
        k += 1


def backfill(sink: Sink | Sender, products: list[Product], *, days: float, now: datetime,
             seed: int = 0, visits_per_minute: float = 3.0, timezone: str = "UTC",
             currency: str = "EUR", origin: str = SHOP_ORIGIN,
             progress: Callable[[int, int], None] | None = None,
             should_stop: Callable[[], bool] | None = None,
             spans: bool = True, card_secret: bytes | None = None) -> HistoryResult:
    """Send ``days`` of history ending at ``now``, oldest first; returns what was sent.
    RUM rows go to ``sink.send_rum`` (none are made without it); ``origin`` is the
    shop's (RUM rows name its pages' images and scripts by URL). With ``spans``, each
    event's request is traced to ``sink.send_span`` (none without it).
    ``should_stop`` is asked every simulated hour: when it says so, the history ends
    there (``interrupted``; only the incidents begun by then are listed).
    ``card_secret`` is the shop's key of card fingerprints (random if ``None``)."""
    rng = random.Random(f"history-{seed}")
    rum_rng = random.Random(f"history-rum-{seed}")  # RUM draws leave the visits as they are
    attack_rng = random.Random(f"history-attacks-{seed}")  # and so do the attacks'
    tz = ZoneInfo(timezone)
    result = HistoryResult()
    customers = Customers([(email, password) for _, email, password in model.regulars(seed)])
    card_secret = card_secret or secrets.token_bytes(32)
    by_id = {p.id: p for p in products}
    ids = [p.id for p in products]
    categories = sorted({p.category for p in products})
    by_category = {c: [p.id for p in products if p.category == c] for c in categories}
    featured = [pid for c in categories for pid in by_category[c][:2]]
    start = now - timedelta(days=days)
    now_ms = _ms(now)
    now_s = now.timestamp()
    hours = math.ceil(days * 24)
    outages = _past_incidents(rng, start, now)
    result.incidents = [dict(o, backfill=True) for o in outages]
    site = Site(origin, Windows([(o["kind"], datetime.fromisoformat(o["started_at"]).timestamp(),
                                  datetime.fromisoformat(o["ended_at"]).timestamp())
                                 for o in outages]), featured, by_category)
    send_rum: Callable[[RumRow], None] | None = getattr(sink, "send_rum", None)
    browsing = (None if send_rum is None
                else lambda sid, who: Browsing(rum_rng, site, who, sid))
    send_span: Callable[[SpanRow], None] | None = (getattr(sink, "send_span", None)
                                                   if spans else None)
    # Own generator: tracing leaves the visits' draws (and so the events) as they are.
    traces = PastTraces(random.Random(f"history-spans-{seed}"), site.windows.active)
    shop = PastShop(by_id, currency, card_secret, SHIPPING, TAX_RATE, seed)

    def sent(event: dict[str, Any]) -> None:
        sink.send(event)
        result.events += 1
        result.counts[event["name"]] += 1
        # Counted when sent: a visit begun just before ``now`` may pay after it.
        if event["name"] == "purchase":
            result.orders.append(event["params"]["transaction_id"])
        if send_span is not None:
            for row in traces.of(event):
                send_span(row)
                result.spans += 1
    for h in range(hours):
        hour = start + timedelta(hours=h)
        if should_stop is not None and should_stop():
            result.interrupted = True
            result.incidents = [i for i in result.incidents if i["started_at"] < _iso(hour)]
            break
        lam = visits_per_minute * 60 * model.seasonality(hour.astimezone(tz))
        for _ in range(_poisson(rng, lam)):
            at = hour + timedelta(seconds=rng.uniform(0, 3600))
            if at >= now:
                continue
            visit = model.plan_visit(rng, customers, ids, categories)
            session = _Session(rng, visit, at, shop, customers, outages, result, browsing)
            for event in session.events():
                if event["ts"] < now_ms:
                    sent(event)
            if session.browsing is not None and send_rum is not None:
                for row in session.browsing.rows(now_s):
                    send_rum(row)
                    result.rum += 1
            result.visits += 1
        for outage in outages:
            begins = datetime.fromisoformat(outage["started_at"])
            if outage["kind"] in ATTACKERS and hour <= begins < hour + timedelta(hours=1):
                for event in attack_events(outage["kind"], attack_rng, begins,
                                           datetime.fromisoformat(outage["ended_at"]), shop,
                                           customers):
                    if event["ts"] < now_ms:
                        sent(event)
        if progress is not None:
            progress(h + 1, hours)
    result.rum_counts = site.counts
    return result


def _past_incidents(rng: random.Random, start: datetime, now: datetime) -> list[dict[str, Any]]:
    found = []
    week = start
    while week < now - timedelta(days=1):
        for kind, minutes in PAST_INCIDENTS:
            at = week + timedelta(seconds=rng.uniform(0, 6 * 86400))
            if at + timedelta(minutes=minutes) < now:
                details = {"checkout_delay_s": 2.5} if kind == "slow_checkout" else {}
                found.append({"kind": kind, "started_at": _iso(at),
                              "ended_at": _iso(at + timedelta(minutes=minutes)),
                              "details": details})
        week += timedelta(days=7)
    return found


class _Session:
    """Turns one planned visit into the events the shop would have sent, and tells its
    :class:`Browsing` which pages the shopper's browser loaded and when."""

    def __init__(self, rng: random.Random, visit: Visit, at: datetime, shop: PastShop,
                 customers: Customers, outages: list[dict[str, Any]], result: HistoryResult,
                 browsing: Callable[[str, model.Persona], Browsing] | None) -> None:
        self.rng = rng
        self.visit = visit
        self.at = at
        self.shop = shop
        self.products = shop.products
        self.customers = customers
        self.currency = shop.currency
        self.outages = outages
        self.result = result
        who = visit.persona
        self.base: dict[str, Any] = {
            "session_id": secrets.token_hex(8),
            "anonymous_id": _opaque("a", who.email) if who.email else secrets.token_hex(8),
            "device": {"category": who.device, "browser": who.browser, "os": who.os,
                       "language": who.language, "country": who.country},
            "user_agent": who.user_agent}
        if who.ip:
            self.base["ip"] = who.ip
        if who.referrer:
            self.base["referrer"] = who.referrer
        self.base.update(who.utm)
        self.browsing = browsing(self.base["session_id"], who) if browsing else None
        self.cart: dict[str, int] = {}
        self.order: tuple[str, float] | None = None
        self.shipping = "standard"

    def _view(self, page: str, after: float = 0.0) -> None:
        """The browser loaded ``page`` (``after`` seconds from now: a redirect's target)."""
        if self.browsing is not None:
            self.browsing.view(page, self.at.timestamp() + after, self.base.get("user_id"))

    def _event(self, name: str, page: str | None = None, **params: Any) -> dict[str, Any]:
        if name == "page_view" and page:
            self._view(page)
        event = {"id": secrets.token_hex(16), "name": name, "ts": _ms(self.at), **self.base}
        if page:
            event["page"] = page
        if params:
            event["params"] = params
        return event

    def _item(self, pid: str, qty: int = 1) -> dict[str, Any]:
        p = self.products[pid]
        return {"item_id": p.id, "item_name": p.name, "item_category": p.category,
                "price": p.price, "quantity": qty}

    def _value(self) -> float:
        return round(sum(self.products[p].price * q for p, q in self.cart.items()), 2)

    def events(self) -> Iterator[dict[str, Any]]:
        for step, think in zip(self.visit.steps, self.visit.think, strict=True):
            self.at += timedelta(seconds=think)
            yield from self._step(step)

    def _step(self, step: Step) -> Iterator[dict[str, Any]]:
        a, kind, cur = step.args, step.kind, self.currency
        if kind == "home":
            yield self._event("page_view", "/")
        elif kind == "category":
            slug = str(a["slug"])
            yield self._event("page_view", f"/c/{slug}")
            items = [self._item(p.id) for p in self.products.values() if p.category == slug][:6]
            yield self._event("view_item_list", f"/c/{slug}", item_list_name=slug, items=items)
        elif kind == "search":
            yield self._event("page_view", "/search")
            yield self._event("search", "/search", search_term=str(a["q"]))
        elif kind == "product":
            pid = str(a["id"])
            yield self._event("page_view", f"/p/{pid}")
            yield self._event("view_item", f"/p/{pid}", currency=cur,
                              value=self.products[pid].price, items=[self._item(pid)])
        elif kind == "add":
            pid, qty = str(a["id"]), int(str(a["qty"]))
            self.cart[pid] = self.cart.get(pid, 0) + qty
            yield self._event("add_to_cart", "/cart/add", currency=cur,
                              value=round(self.products[pid].price * qty, 2),
                              items=[self._item(pid, qty)])
        elif kind == "remove":
            pid = str(a["id"])
            qty = self.cart.pop(pid, 1)
            yield self._event("remove_from_cart", "/cart/remove", currency=cur,
                              value=round(self.products[pid].price * qty, 2),
                              items=[self._item(pid, qty)])
        elif kind == "cart":
            yield self._event("page_view", "/cart")
            yield self._event("view_cart", "/cart", currency=cur, value=self._value(),
                              items=[self._item(p, q) for p, q in self.cart.items()])
        elif kind == "login":
            self._view("/login", -5.0)
            if str(a["password"]).startswith("wrong-"):
                failed = self._event("login_failed", "/login", reason="wrong_password",
                                     method="password")
                failed["user_id"] = model.customer_id(str(a["email"]))  # the account tried
                yield failed
            else:
                self.base["user_id"] = model.customer_id(str(a["email"]))
                yield self._event("login", "/login", method="password")
                self._view("/account", 0.5)
        elif kind == "signup":
            self._view("/signup", -8.0)
            self.customers.accounts.append((str(a["email"]), str(a["password"])))
            self.base["user_id"] = model.customer_id(str(a["email"]))
            yield self._event("sign_up", "/signup", method="password")
            self._view("/account", 0.5)
        elif kind == "checkout" and self.cart:
            yield self._event("page_view", "/checkout")
            yield self._event("begin_checkout", "/checkout", currency=cur, value=self._value(),
                              items=[self._item(p, q) for p, q in self.cart.items()])
        elif kind == "shipping" and self.cart:
            self.shipping = str(a["method"])
            yield self._event("add_shipping_info", "/checkout/shipping", currency=cur,
                              value=self._value(), shipping_tier=self.shipping)
            self._view("/checkout/payment", 0.5)
        elif kind == "payment" and self.cart:
            cards = [str(c) for c in (a["card"], a.get("retry_card")) if c is not None]
            yield from self._pay(str(a["method"]), cards)
        elif kind == "survey" and self.order:
            comment = {"comment": a["comment"]} if a.get("comment") else {}
            yield self._event("survey_response", "/survey", survey=a["kind"], score=a["score"],
                              transaction_id=self.order[0], **comment)
        elif kind == "support":
            self._view("/support", -30.0)
            busy = 4.0 if any(o["started_at"] <= _iso(self.at) < o["ended_at"]
                              for o in self.outages) else 1.0
            # Its own generator: the desk's draws leave the visits' as they are.
            params: dict[str, Any] = {"reason": str(a["topic"]).replace(" ", "_"),
                                      **desk.contact(random.Random(self.rng.random()),
                                                     str(a["channel"]), self.at, busy=busy)}
            if self.order:
                params["transaction_id"] = self.order[0]
            yield self._event("support_contact", "/support", **params)
        elif kind == "profile":
            yield self._event("profile_updated", "/account/profile", fields=a["fields"])
        elif kind == "password":
            yield self._event("password_changed", "/account/password")
        elif kind == "refund" and self.order:
            yield self._event("refund", f"/orders/{self.order[0]}/refund", currency=cur,
                              transaction_id=self.order[0], value=self.order[1])
        elif kind == "cancel" and self.order:
            yield self._event("order_cancelled", f"/orders/{self.order[0]}/cancel",
                              transaction_id=self.order[0])

    def _pay(self, method: str, cards: list[str]) -> Iterator[dict[str, Any]]:
        """Card payments try each card (a second after a decline); PayPal once."""
        cur = self.currency
        down = any(o["kind"] == "gateway_errors" and o["started_at"] <= _iso(self.at)
                   < o["ended_at"] for o in self.outages)
        for attempt, number in enumerate(cards if method == "card" else cards[:1]):
            self.at += timedelta(seconds=self.rng.uniform(5, 25) if attempt else 0)
            yield self._event("add_payment_info", "/checkout/payment", currency=cur,
                              value=self._value(), payment_method=method)
            attempt_id = f"H-{secrets.token_hex(5).upper()}"
            card: dict[str, str] = {}
            if method == "card":
                card = {"card_bin": number[:6],
                        "card_fingerprint": card_fingerprint(self.shop.card_secret, number)}
            if down or self.rng.random() < 0.06:
                reason = "gateway_error" if down else model.weighted(
                    self.rng, [(w, r) for r, w in DECLINE_REASONS])
                yield self._event("payment_declined", "/checkout/payment", currency=cur,
                                  value=self._value(), reason=reason, payment_method=method,
                                  gateway=GATEWAY_NAME, transaction_id=attempt_id, **card)
                self._view("/checkout/payment", 0.5)  # the form again, with the reason
                if down:
                    return
                continue
            goods = self._value()
            shipping = SHIPPING.get(self.shipping, 4.9)
            value = round(goods + shipping, 2)
            yield self._event("purchase", f"/order/{attempt_id}", transaction_id=attempt_id,
                              currency=cur, value=value, shipping=shipping,
                              tax=round(goods * TAX_RATE / (1 + TAX_RATE), 2),
                              payment_method=method, gateway=GATEWAY_NAME, **card,
                              items=[self._item(p, q) for p, q in self.cart.items()])
            self._view(f"/order/{attempt_id}", 0.5)
            self.order = (attempt_id, value)
            self.cart.clear()
            return


def _opaque(prefix: str, text: str) -> str:
    """A stable opaque id for an account (what a shop sends as user_id: never the e-mail)."""
    return f"{prefix}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"
