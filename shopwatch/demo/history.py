"""Weeks of plausible shop history, written fast through the ingest API (``--backfill``).

Replaying the past through the shop over HTTP would take hours, so this plays the same
visits (:func:`model.plan_visit`, the same seasonality) straight into the events the
shop's instrumentation would have sent, stamped at their past times, and sends them
through :class:`shopwatch.client.ShopwatchClient` in batches of 1,000. The past has
incidents too: a payment-gateway outage and a credential-stuffing burst per week,
logged like live ones (with ``"backfill": true``).

Order ids of the past start with ``H-``, so they can never collide with the shop's own.
"""

from __future__ import annotations

import hashlib
import math
import random
import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from shopwatch.demo import model
from shopwatch.demo.model import Customers, Step, Visit

DECLINE_REASONS = (("insufficient_funds", 5), ("card_declined", 4), ("expired_card", 2),
                   ("fraud_suspected", 1))
SHIPPING = {"standard": 4.9, "express": 9.9}
TAX_RATE = 0.2


class Sender(Protocol):
    def send(self, event: dict[str, Any]) -> str: ...


class Throttled:
    """Hands events to a :class:`~shopwatch.client.ShopwatchClient` without overrunning
    its queue: history is produced far faster than any server ingests it, and a dropped
    event would be history lost."""

    def __init__(self, client: Any, max_queued: int = 100_000) -> None:
        self.client = client
        self.max_queued = max_queued

    def send(self, event: dict[str, Any]) -> str:
        while self.client.stats.queued > self.max_queued:
            time.sleep(0.01)
        return str(self.client.send(event))


@dataclass(frozen=True)
class Product:
    id: str
    name: str
    category: str
    price: float


@dataclass
class HistoryResult:
    events: int = 0
    visits: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    orders: list[str] = field(default_factory=list)
    incidents: list[dict[str, Any]] = field(default_factory=list)


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


def backfill(sender: Sender, products: list[Product], *, days: float, now: datetime,
             seed: int = 0, visits_per_minute: float = 3.0, timezone: str = "UTC",
             currency: str = "EUR",
             progress: Callable[[int, int], None] | None = None) -> HistoryResult:
    """Send ``days`` of history ending at ``now``; returns what was sent."""
    rng = random.Random(f"history-{seed}")
    tz = ZoneInfo(timezone)
    result = HistoryResult()
    customers = Customers()
    by_id = {p.id: p for p in products}
    ids = [p.id for p in products]
    categories = sorted({p.category for p in products})
    start = now - timedelta(days=days)
    now_ms = _ms(now)
    hours = math.ceil(days * 24)
    outages = _past_incidents(rng, start, now)
    result.incidents = [dict(o, backfill=True) for o in outages]
    for h in range(hours):
        hour = start + timedelta(hours=h)
        lam = visits_per_minute * 60 * model.seasonality(hour.astimezone(tz))
        for _ in range(_poisson(rng, lam)):
            at = hour + timedelta(seconds=rng.uniform(0, 3600))
            if at >= now:
                continue
            visit = model.plan_visit(rng, customers, ids, categories)
            for event in _Session(rng, visit, at, by_id, customers, currency, outages,
                                  result).events():
                if event["ts"] < now_ms:
                    sender.send(event)
                    result.events += 1
                    result.counts[event["name"]] += 1
            result.visits += 1
        for outage in outages:
            if outage["kind"] == "credential_stuffing" and _overlaps(outage, hour):
                for event in _stuffing(rng, outage, hour, customers):
                    sender.send(event)
                    result.events += 1
                    result.counts[event["name"]] += 1
        if progress is not None:
            progress(h + 1, hours)
    return result


def _past_incidents(rng: random.Random, start: datetime, now: datetime) -> list[dict[str, Any]]:
    found = []
    week = start
    while week < now - timedelta(days=1):
        for kind, minutes in (("gateway_errors", 40), ("credential_stuffing", 25)):
            at = week + timedelta(seconds=rng.uniform(0, 6 * 86400))
            if at + timedelta(minutes=minutes) < now:
                found.append({"kind": kind, "started_at": _iso(at),
                              "ended_at": _iso(at + timedelta(minutes=minutes)), "details": {}})
        week += timedelta(days=7)
    return found


def _overlaps(outage: dict[str, Any], hour: datetime) -> bool:
    begins, ends = str(outage["started_at"]), str(outage["ended_at"])
    return begins < _iso(hour + timedelta(hours=1)) and ends > _iso(hour)


def _stuffing(rng: random.Random, outage: dict[str, Any], hour: datetime,
              customers: Customers) -> Iterator[dict[str, Any]]:
    begin = max(datetime.fromisoformat(outage["started_at"]), hour)
    end = min(datetime.fromisoformat(outage["ended_at"]), hour + timedelta(hours=1))
    at = begin
    device = {"category": "desktop", "browser": "Other", "os": "Other", "country": "NL"}
    while at < end:
        known = customers.accounts and rng.random() < 0.1
        yield {"id": secrets.token_hex(16), "name": "login_failed", "ts": _ms(at),
               "session_id": secrets.token_hex(8), "page": "/login", "device": device,
               "params": {"reason": "wrong_password" if known else "unknown_account",
                          "method": "password"}}
        at += timedelta(seconds=rng.expovariate(6.0))


class _Session:
    """Turns one planned visit into the events the shop would have sent."""

    def __init__(self, rng: random.Random, visit: Visit, at: datetime,
                 products: dict[str, Product], customers: Customers, currency: str,
                 outages: list[dict[str, Any]], result: HistoryResult) -> None:
        self.rng = rng
        self.visit = visit
        self.at = at
        self.products = products
        self.customers = customers
        self.currency = currency
        self.outages = outages
        self.result = result
        who = visit.persona
        self.base: dict[str, Any] = {
            "session_id": secrets.token_hex(8),
            "anonymous_id": _opaque("a", who.email) if who.email else secrets.token_hex(8),
            "device": {"category": who.device, "browser": who.browser, "os": who.os,
                       "language": who.language, "country": who.country}}
        if who.referrer:
            self.base["referrer"] = who.referrer
        self.base.update(who.utm)
        self.cart: dict[str, int] = {}
        self.order: tuple[str, float] | None = None
        self.shipping = "standard"

    def _event(self, name: str, page: str | None = None, **params: Any) -> dict[str, Any]:
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
            if str(a["password"]).startswith("wrong-"):
                yield self._event("login_failed", "/login", reason="wrong_password",
                                  method="password")
            else:
                self.base["user_id"] = _opaque("c", str(a["email"]))
                yield self._event("login", "/login", method="password")
        elif kind == "signup":
            self.customers.accounts.append((str(a["email"]), str(a["password"])))
            self.base["user_id"] = _opaque("c", str(a["email"]))
            yield self._event("sign_up", "/signup", method="password")
        elif kind == "checkout" and self.cart:
            yield self._event("page_view", "/checkout")
            yield self._event("begin_checkout", "/checkout", currency=cur, value=self._value(),
                              items=[self._item(p, q) for p, q in self.cart.items()])
        elif kind == "shipping" and self.cart:
            self.shipping = str(a["method"])
            yield self._event("add_shipping_info", "/checkout/shipping", currency=cur,
                              value=self._value(), shipping_tier=self.shipping)
        elif kind == "payment" and self.cart:
            yield from self._pay(str(a["method"]), a.get("retry_card") is not None)
        elif kind == "survey" and self.order:
            yield self._event("survey_response", "/survey", survey=a["kind"], score=a["score"],
                              transaction_id=self.order[0])
        elif kind == "support":
            params: dict[str, Any] = {"reason": str(a["topic"]).replace(" ", "_"),
                                      "channel": a["channel"]}
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

    def _pay(self, method: str, may_retry: bool) -> Iterator[dict[str, Any]]:
        cur = self.currency
        down = any(o["kind"] == "gateway_errors" and o["started_at"] <= _iso(self.at)
                   < o["ended_at"] for o in self.outages)
        for attempt in range(2 if may_retry and method == "card" else 1):
            self.at += timedelta(seconds=self.rng.uniform(5, 25) if attempt else 0)
            yield self._event("add_payment_info", "/checkout/payment", currency=cur,
                              value=self._value(), payment_method=method)
            attempt_id = f"H-{secrets.token_hex(5).upper()}"
            if down or self.rng.random() < 0.06:
                reason = "gateway_error" if down else model.weighted(
                    self.rng, [(w, r) for r, w in DECLINE_REASONS])
                yield self._event("payment_declined", "/checkout/payment", currency=cur,
                                  value=self._value(), reason=reason, payment_method=method,
                                  transaction_id=attempt_id)
                if down:
                    return
                continue
            goods = self._value()
            shipping = SHIPPING.get(self.shipping, 4.9)
            value = round(goods + shipping, 2)
            yield self._event("purchase", f"/order/{attempt_id}", transaction_id=attempt_id,
                              currency=cur, value=value, shipping=shipping,
                              tax=round(goods * TAX_RATE / (1 + TAX_RATE), 2),
                              payment_method=method,
                              items=[self._item(p, q) for p, q in self.cart.items()])
            self.order = (attempt_id, value)
            self.result.orders.append(attempt_id)
            self.cart.clear()
            return


def _opaque(prefix: str, text: str) -> str:
    """A stable opaque id for an account (what a shop sends as user_id: never the e-mail)."""
    return f"{prefix}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"
