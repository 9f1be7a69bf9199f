"""The attacks of the demo's history: the events they made the shop send.

The live attacks (:mod:`shopwatch.demo.attacks`) drive the shop over HTTP; the history
(:mod:`shopwatch.demo.history`) cannot, so :func:`attack_events` yields the events the
same attack would have made the shop send between two past times, exactly as the live
shop words them (same networks and user agents, ``device`` as the shop reads it from
the headers, ``ip`` and ``user_agent`` on every event, accounts tried as ``user_id``,
cards by BIN and fingerprint). Attackers run no JavaScript: no real-user rows.

Rates are those of the live attacks at ``--speed 1``. Orders the attackers complete
(card tests that went through, the taken-over account's order) are ``purchase`` events
with ``H-`` ids like the past shoppers' orders.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Protocol

from shopwatch.demo import model
from shopwatch.demo.attacks import (
    ATTACKERS,
    CHEAPEST,
    DROP,
    TAKEOVER_BUY,
    Attacker,
    leaked_email,
    regular_victim,
    tester_card,
    throwaway_email,
)
from shopwatch.demo.model import Customers
from shopwatch.demo.shop.devices import describe_device
from shopwatch.demo.shop.payments import (
    DECLINE_REASONS,
    GATEWAY_NAME,
    INVALID_CARD,
    RANDOM_DECLINE_RATE,
    card_fingerprint,
    luhn_ok,
)


class Goods(Protocol):
    """A product as the history knows it."""

    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def category(self) -> str: ...
    @property
    def price(self) -> float: ...


@dataclass(frozen=True)
class PastShop:
    """What the past attacks need of the shop: products, currency, the card secret,
    shipping prices and the tax rate included in prices; ``seed`` names the regulars."""

    products: Mapping[str, Goods]
    currency: str
    card_secret: bytes
    shipping: Mapping[str, float]
    tax_rate: float
    seed: int = 0


SESSION_ROTATION: Final = 25  # attempts per session of a stuffing tool (as live)
BOT_SESSION: Final = 40  # requests per session of a scraper (as live)


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


class _Actor:
    """One attacker's session: what its events share (as the shop would send them)."""

    def __init__(self, attacker: Attacker, rng: random.Random, ip: str | None = None,
                 user_agent: str | None = None) -> None:
        agent = user_agent or attacker.user_agent(rng)
        self.base: dict[str, Any] = {
            "session_id": secrets.token_hex(8), "anonymous_id": secrets.token_hex(8),
            "ip": ip or attacker.address(rng), "user_agent": agent,
            "device": describe_device({"user-agent": agent, "cf-ipcountry": attacker.country,
                                       "accept-language": attacker.language})}

    def event(self, name: str, page: str, at: datetime, user_id: str | None = None,
              **params: Any) -> dict[str, Any]:
        event = {"id": secrets.token_hex(16), "name": name, "ts": _ms(at), "page": page,
                 **self.base}
        if user_id is not None:
            event["user_id"] = user_id
        elif "user_id" in self.base:
            event["user_id"] = self.base["user_id"]
        if params:
            event["params"] = params
        return event


def attack_events(kind: str, rng: random.Random, start: datetime, end: datetime,
                  shop: PastShop, customers: Customers) -> Iterator[dict[str, Any]]:
    """The events of a past ``kind`` attack from ``start`` to ``end`` (an account
    takeover, a short sequence, may end a few minutes after ``end``)."""
    plays: dict[str, Callable[[_Past], Iterator[dict[str, Any]]]] = {
        "credential_stuffing": _Past.credential_stuffing,
        "brute_force": _Past.brute_force,
        "card_testing": _Past.card_testing,
        "account_takeover": _Past.account_takeover,
        "bot_traffic": _Past.bot_traffic,
        "signup_abuse": _Past.signup_abuse,
    }
    return plays[kind](_Past(ATTACKERS[kind], rng, start, end, shop, customers))


class _Past:
    def __init__(self, attacker: Attacker, rng: random.Random, start: datetime,
                 end: datetime, shop: PastShop, customers: Customers) -> None:
        self.attacker = attacker
        self.rng = rng
        self.at = start
        self.end = end
        self.shop = shop
        self.customers = customers

    def tick(self) -> bool:
        """On to the next attempt, at the attacker's rate; False once the attack ends."""
        self.at += timedelta(seconds=self.rng.expovariate(self.attacker.rate))
        return self.at < self.end

    def item(self, pid: str, qty: int = 1) -> dict[str, Any]:
        p = self.shop.products[pid]
        return {"item_id": p.id, "item_name": p.name, "item_category": p.category,
                "price": p.price, "quantity": qty}

    def card(self, number: str) -> dict[str, str]:
        return {"card_bin": number[:6],
                "card_fingerprint": card_fingerprint(self.shop.card_secret, number)}

    def charge(self, number: str) -> str | None:
        """The sandbox's answer to a card (its rules, with this generator)."""
        if not luhn_ok(number):
            return INVALID_CARD
        if self.rng.random() < RANDOM_DECLINE_RATE:
            return self.rng.choice(DECLINE_REASONS)
        return None

    def pay(self, actor: _Actor, order_id: str, pid: str, qty: int, method: str,
            number: str) -> Iterator[dict[str, Any]]:
        """``add_payment_info`` then ``payment_declined`` or ``purchase``; the last event
        is the purchase when the card went through."""
        goods = round(self.shop.products[pid].price * qty, 2)
        shipping = self.shop.shipping[method]
        value = round(goods + shipping, 2)
        cur = self.shop.currency
        yield actor.event("add_payment_info", "/checkout/payment", self.at, currency=cur,
                          value=goods, payment_method="card", items=[self.item(pid, qty)])
        reason = self.charge(number)
        if reason is not None:
            yield actor.event("payment_declined", "/checkout/payment", self.at,
                              transaction_id=order_id, currency=cur, value=value,
                              payment_method="card", gateway=GATEWAY_NAME, reason=reason,
                              **self.card(number))
            return
        yield actor.event("purchase", "/checkout/payment", self.at, transaction_id=order_id,
                          currency=cur, value=value, shipping=shipping,
                          tax=round(goods * self.shop.tax_rate / (1 + self.shop.tax_rate), 2),
                          payment_method="card", gateway=GATEWAY_NAME, **self.card(number),
                          items=[self.item(pid, qty)])

    # --- the attacks ---------------------------------------------------------------------

    def credential_stuffing(self) -> Iterator[dict[str, Any]]:
        actor = _Actor(self.attacker, self.rng)
        attempts = 0
        while self.tick():
            accounts = self.customers.accounts
            roll = self.rng.random()
            actor.base["ip"] = self.attacker.address(self.rng)
            if accounts and roll < 0.02:  # a password reused here: the attacker is in
                email = self.rng.choice(accounts)[0]
                yield actor.event("login", "/login", self.at, model.customer_id(email),
                                  method="password")
            elif accounts and roll < 0.12:
                email = self.rng.choice(accounts)[0]
                yield actor.event("login_failed", "/login", self.at,
                                  model.customer_id(email), method="password",
                                  reason="wrong_password")
            else:
                yield actor.event("login_failed", "/login", self.at,
                                  leaked_email(self.rng), method="password",
                                  reason="unknown_account")
            attempts += 1
            if attempts % SESSION_ROTATION == 0:
                actor = _Actor(self.attacker, self.rng)

    def brute_force(self) -> Iterator[dict[str, Any]]:
        actor = _Actor(self.attacker, self.rng)
        target = regular_victim(self.rng, self.customers, self.shop.seed)
        if target is None:
            return
        account = model.customer_id(target[0])
        while self.tick():
            yield actor.event("login_failed", "/login", self.at, account, method="password",
                              reason="wrong_password")

    def card_testing(self) -> Iterator[dict[str, Any]]:
        actor = _Actor(self.attacker, self.rng)
        cur = self.shop.currency
        yield actor.event("page_view", "/", self.at)

        def checkout() -> Iterator[dict[str, Any]]:
            item = self.item(CHEAPEST)
            price = item["price"]
            yield actor.event("add_to_cart", "/cart/add", self.at, currency=cur, value=price,
                              items=[item])
            yield actor.event("page_view", "/checkout", self.at)
            yield actor.event("begin_checkout", "/checkout", self.at, currency=cur,
                              value=price, items=[item])
            yield actor.event("add_shipping_info", "/checkout/shipping", self.at,
                              currency=cur, value=price, shipping_tier="standard",
                              items=[item])

        yield from checkout()
        order_id = f"H-{secrets.token_hex(5).upper()}"
        while self.tick():
            last: dict[str, Any] = {}
            for last in self.pay(actor, order_id, CHEAPEST, 1, "standard",
                                 tester_card(self.rng)):
                yield last
            if last.get("name") == "purchase":  # a card works: a new cart
                order_id = f"H-{secrets.token_hex(5).upper()}"
                yield from checkout()

    def account_takeover(self) -> Iterator[dict[str, Any]]:
        target = regular_victim(self.rng, self.customers, self.shop.seed)
        if target is None:
            return
        actor = _Actor(self.attacker, self.rng)
        cur = self.shop.currency

        def wait(seconds: float) -> datetime:
            self.at += timedelta(seconds=seconds * self.rng.uniform(0.6, 1.4))
            return self.at

        yield actor.event("page_view", "/login", self.at)
        actor.base["user_id"] = model.customer_id(target[0])  # signed in from now on
        yield actor.event("login", "/login", wait(6), method="password")
        yield actor.event("page_view", "/account", wait(1))
        fields = ["email", "address"]
        yield actor.event("profile_updated", "/account/profile", wait(20), fields=fields)
        if self.rng.random() < 0.7:
            yield actor.event("password_changed", "/account/password", wait(15),
                              method="change")
        pid = self.rng.choice(TAKEOVER_BUY)
        qty = 2
        item = self.item(pid, qty)
        yield actor.event("page_view", f"/p/{pid}", wait(10))
        yield actor.event("view_item", f"/p/{pid}", self.at, currency=cur,
                          value=self.shop.products[pid].price, items=[self.item(pid)])
        yield actor.event("add_to_cart", "/cart/add", wait(5), currency=cur,
                          value=round(item["price"] * qty, 2), items=[item])
        yield actor.event("page_view", "/checkout", wait(4))
        yield actor.event("begin_checkout", "/checkout", self.at, currency=cur,
                          value=round(item["price"] * qty, 2), items=[item])
        yield actor.event("add_shipping_info", "/checkout/shipping", wait(20), currency=cur,
                          value=round(item["price"] * qty, 2), shipping_tier=DROP["method"],
                          items=[item])
        order_id = f"H-{secrets.token_hex(5).upper()}"
        for _ in range(2):
            wait(20)
            last: dict[str, Any] = {}
            for last in self.pay(actor, order_id, pid, qty, DROP["method"],
                                 model.card(self.rng)):
                yield last
            if last.get("name") == "purchase":
                break

    def bot_traffic(self) -> Iterator[dict[str, Any]]:
        actor = _Actor(self.attacker, self.rng)
        cur = self.shop.currency
        ids = sorted(self.shop.products)
        requests = 0
        while self.tick():
            pid = self.rng.choice(ids)
            price = self.shop.products[pid].price
            if self.rng.random() < 0.3:
                yield actor.event("add_to_cart", "/cart/add", self.at, currency=cur,
                                  value=price, items=[self.item(pid)])
            else:
                yield actor.event("page_view", f"/p/{pid}", self.at)
                yield actor.event("view_item", f"/p/{pid}", self.at, currency=cur,
                                  value=price, items=[self.item(pid)])
            requests += 1
            if requests % BOT_SESSION == 0:
                actor = _Actor(self.attacker, self.rng)

    def signup_abuse(self) -> Iterator[dict[str, Any]]:
        while self.tick():
            actor = _Actor(self.attacker, self.rng)
            yield actor.event("page_view", "/signup", self.at)
            account = model.customer_id(throwaway_email(self.rng))
            self.at += timedelta(seconds=self.rng.uniform(0.2, 1.0))
            yield actor.event("sign_up", "/signup", self.at, account, method="password")
