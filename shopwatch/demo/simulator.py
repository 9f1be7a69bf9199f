"""Simulated shoppers driving the demo shop over HTTP, and the incidents injected on them.

:class:`Simulator` starts visits at a rate that follows the shop's local time of day and
week (``model.seasonality``), times ``speed``; each visit is planned by
:func:`model.plan_visit` and played like a browser would (cookies, redirects, images,
``Referer``), with think times divided by ``speed``. At intervals it injects an
incident — a shop fault (:class:`ShopFaults`) or attack traffic — and logs it, start
and end, to ``incidents_log`` (JSON lines) so what Shopwatch shows can be checked
against what happened. :attr:`Simulator.summary` counts what the shoppers achieved (the
orders they completed, with their ids, declines, sign-ups…).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import secrets
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo

import httpx

from shopwatch.demo import model
from shopwatch.demo.incidents import KINDS, ShopFaults
from shopwatch.demo.model import Customers, Persona, Step, Visit

log = logging.getLogger(__name__)
ATTACK_UA = "python-requests/2.31.0"


@dataclass
class Summary:
    """What the simulated shoppers did (``orders``: ids of the orders they completed)."""

    counts: Counter[str] = field(default_factory=Counter)
    orders: list[str] = field(default_factory=list)
    refunded: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    incidents: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"counts": dict(self.counts), "orders": self.orders, "refunded": self.refunded,
                "cancelled": self.cancelled, "incidents": self.incidents}


class Simulator:
    def __init__(self, shop_url: str, faults: ShopFaults, *, products: list[str],
                 categories: list[str], seed: int = 0, speed: float = 1.0,
                 visits_per_minute: float = 3.0, incident_every: float = 300.0,
                 timezone: str = "UTC", incidents_log: Path | None = None,
                 say: Callable[[str], None] = print, max_visits: int = 300) -> None:
        self.shop_url = shop_url.rstrip("/")
        self.faults = faults
        self.products = products
        self.categories = categories
        self.rng = random.Random(seed)
        self.speed = max(speed, 0.01)
        self.visits_per_minute = visits_per_minute
        self.incident_every = incident_every
        self.tz = ZoneInfo(timezone)
        self.incidents_log = incidents_log
        self.say = say
        self.max_visits = max_visits
        self.customers = Customers()
        self.summary = Summary()
        self._tasks: set[asyncio.Task[None]] = set()
        # Set when the demo stops: visits and attacks end after the request in flight,
        # so every request the shop answered is counted (summary == what was stored).
        self._stop = asyncio.Event()

    async def pause(self, seconds: float) -> bool:
        """Sleep, or return early (True) when the simulator is stopping."""
        try:
            await asyncio.wait_for(self._stop.wait(), timeout=max(seconds, 0.0))
        except TimeoutError:
            return False
        return True

    # --- the arrival of visits -----------------------------------------------------------

    async def run(self) -> None:
        """Start visits and incidents until cancelled; visits in flight are cancelled too."""
        incidents = asyncio.create_task(self._incidents())
        try:
            while True:
                rate = (self.visits_per_minute / 60 * self.speed
                        * model.seasonality(datetime.now(self.tz)))
                if await self.pause(self.rng.expovariate(rate)):
                    break
                if len(self._tasks) >= self.max_visits:
                    self.summary.counts["visits_skipped"] += 1
                    continue
                visit = model.plan_visit(self.rng, self.customers, self.products,
                                         self.categories)
                self._spawn(self._play(visit))
        finally:
            self._stop.set()
            # Let requests in flight finish (a slow checkout takes seconds), then give up.
            pending = [incidents, *self._tasks]
            _done, stragglers = await asyncio.wait(pending, timeout=20)
            for task in stragglers:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            self.faults.clear()

    def stop(self) -> None:
        """Ask :meth:`run` to finish: no new request starts, those in flight complete."""
        self._stop.set()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- one visit, played like a browser ------------------------------------------------

    async def _play(self, visit: Visit) -> None:
        who = visit.persona
        self.summary.counts["visits"] += 1
        async with httpx.AsyncClient(base_url=self.shop_url, timeout=30, headers={
                "User-Agent": who.user_agent, "Accept-Language": who.language,
                "CF-IPCountry": who.country}) as client:
            player = _Player(client, who, self)
            try:
                for step, think in zip(visit.steps, visit.think, strict=True):
                    if await self.pause(think / self.speed):
                        break
                    if not await player.do(step):
                        break
            except httpx.HTTPError as exc:
                self.summary.counts["shop_unreachable"] += 1
                log.debug("visit ended: %r", exc)

    # --- incidents -----------------------------------------------------------------------

    async def _incidents(self) -> None:
        kinds: list[str] = []
        if await self.pause(min(90.0, self.incident_every / 3) / self.speed):
            return
        while not self._stop.is_set():
            if not kinds:
                kinds = list(KINDS)
                self.rng.shuffle(kinds)
            kind = kinds.pop()
            duration = self.rng.uniform(60, 180) / self.speed
            await self.incident(kind, duration)
            if await self.pause(self.rng.uniform(0.6, 1.4) * self.incident_every / self.speed):
                return

    async def incident(self, kind: str, duration: float) -> None:
        """Run one incident for ``duration`` seconds, logging its start and end."""
        details: dict[str, Any] = {}
        if kind == "slow_checkout":
            self.faults.checkout_delay = details["checkout_delay_s"] = 2.5
        elif kind == "gateway_errors":
            self.faults.gateway_errors = True
        elif kind == "image_host_down":
            self.faults.image_host_down = True
        started = datetime.now(UTC)
        before = self.summary.counts["attack_logins"] + self.summary.counts["card_tests"]
        self.say(f"incident started: {kind} (for {duration:.0f} s)")
        attack: asyncio.Task[int] | None = None
        if kind == "credential_stuffing":
            attack = asyncio.create_task(self._credential_stuffing(duration))
        elif kind == "card_testing":
            attack = asyncio.create_task(self._card_testing(duration))
        try:
            if attack is not None:
                await attack
            else:
                await self.pause(duration)
        finally:
            if attack is not None:
                attack.cancel()  # when the demo stops mid-incident
                details["attempts"] = (self.summary.counts["attack_logins"]
                                       + self.summary.counts["card_tests"] - before)
            if kind in ("slow_checkout", "gateway_errors", "image_host_down"):
                self.faults.clear()
            entry = {"kind": kind, "started_at": started.isoformat(),
                     "ended_at": datetime.now(UTC).isoformat(), "details": details}
            self.summary.incidents.append(entry)
            if self.incidents_log is not None:
                with self.incidents_log.open("a") as out:
                    out.write(json.dumps(entry) + "\n")
            self.say(f"incident ended: {kind} {json.dumps(details)}")

    async def _credential_stuffing(self, duration: float) -> int:
        """Logins from one automated client with leaked e-mail/password pairs: nearly all
        fail, a known address now and then."""
        attempts = 0
        deadline = time.monotonic() + duration
        async with httpx.AsyncClient(base_url=self.shop_url, timeout=30, headers={
                "User-Agent": ATTACK_UA, "CF-IPCountry": "NL"}) as client:
            while time.monotonic() < deadline and not self._stop.is_set():
                if self.customers.accounts and self.rng.random() < 0.1:
                    email = self.rng.choice(self.customers.accounts)[0]
                else:
                    email = f"{secrets.token_hex(4)}@mail.example"
                await _quiet(client.post("/login", data={
                    "email": email, "password": secrets.token_urlsafe(9)}))
                attempts += 1
                self.summary.counts["attack_logins"] += 1
                await self.pause(1 / min(40.0, 6 * self.speed))
        return attempts

    async def _cheap_checkout(self, client: httpx.AsyncClient) -> None:
        """A one-item cart taken to the payment step, as a card tester prepares it."""
        await _quiet(client.post("/cart/add", data={
            "product_id": self.products[0], "quantity": "1"}))
        await _quiet(client.get("/checkout"))
        await _quiet(client.post("/checkout/shipping", data={
            "name": "A", "address": "1 Road", "city": "Town", "country": "NL",
            "method": "standard"}))

    async def _card_testing(self, duration: float) -> int:
        """Small orders paid with one stolen card number after another: most declined."""
        attempts = 0
        deadline = time.monotonic() + duration
        async with httpx.AsyncClient(base_url=self.shop_url, timeout=30, headers={
                "User-Agent": ATTACK_UA, "CF-IPCountry": "NL"}) as client:
            await _quiet(client.get("/"))
            await self._cheap_checkout(client)
            while time.monotonic() < deadline and not self._stop.is_set():
                card = "4" + "".join(str(self.rng.randrange(10)) for _ in range(15))
                response = await _quiet(client.post("/checkout/payment", data={
                    "method": "card", "card_number": card}))
                attempts += 1
                self.summary.counts["card_tests"] += 1
                if response is not None and response.status_code == 402:
                    self.summary.counts["card_tests_declined"] += 1
                if response is not None and response.status_code == 303:
                    # A card worked: the fraudster starts again with a new cart.
                    self.summary.counts["card_tests_approved"] += 1
                    order = response.headers.get("x-order-id")
                    if order:
                        self.summary.orders.append(order)
                    await self._cheap_checkout(client)
                await self.pause(1 / min(20.0, 3 * self.speed))
        return attempts


async def _quiet(request: Any) -> httpx.Response | None:
    try:
        response: httpx.Response = await request
        return response
    except httpx.HTTPError:
        return None


_NAMES = ("Alex Martin", "Sam Weber", "Jo Rossi", "Kim Dubois", "Lee Smith", "Max Garcia")


class _Player:
    """Plays one visit's steps against the shop, as a browser would."""

    def __init__(self, client: httpx.AsyncClient, who: Persona, sim: Simulator) -> None:
        self.client = client
        self.who = who
        self.sim = sim
        self.count = sim.summary.counts
        self.referer: str | None = who.referrer
        self.first = True
        self.order: str | None = None
        self.password = who.password

    async def get(self, path: str) -> httpx.Response:
        params = dict(self.who.utm) if self.first else None
        headers = {"Referer": self.referer} if self.referer else {}
        response = await self.client.get(path, params=params, headers=headers)
        self.first = False
        self.referer = str(response.request.url)
        self.count["requests"] += 1
        if response.status_code >= 500:
            self.count["server_errors"] += 1
        return response

    async def post(self, path: str, data: dict[str, Any]) -> httpx.Response:
        headers = {"Referer": self.referer} if self.referer else {}
        response = await self.client.post(path, data=data, headers=headers)
        self.count["requests"] += 1
        if response.status_code >= 500:
            self.count["server_errors"] += 1
        if response.status_code == 303 and "location" in response.headers:
            await self.get(response.headers["location"])  # the browser follows it
        return response

    async def do(self, step: Step) -> bool:
        """Take one step; False when the visit cannot go on (the shopper leaves)."""
        a = step.args
        kind = step.kind
        if kind == "home":
            await self.get("/")
        elif kind == "category":
            await self.get(f"/c/{a['slug']}")
        elif kind == "search":
            await self.get("/search?" + str(httpx.QueryParams({"q": str(a["q"])})))
        elif kind == "product":
            page = await self.get(f"/p/{a['id']}")
            for src in re.findall(r'<img[^>]+src="(/cdn/[^"]+)"', page.text)[:3]:
                image = await self.client.get(src)
                if image.status_code >= 500:
                    self.count["images_failed"] += 1
        elif kind == "add":
            await self.post("/cart/add", {"product_id": a["id"], "quantity": a["qty"]})
        elif kind == "remove":
            await self.post("/cart/remove", {"product_id": a["id"]})
        elif kind == "cart":
            await self.get("/cart")
        elif kind == "login":
            response = await self.post("/login", {"email": a["email"], "password": a["password"]})
            self.count["logins" if response.status_code == 303 else "logins_failed"] += 1
        elif kind == "signup":
            response = await self.post("/signup", {
                "name": self.sim.rng.choice(_NAMES), "email": a["email"],
                "password": a["password"]})
            if response.status_code == 303:
                self.count["signups"] += 1
                self.sim.customers.accounts.append((str(a["email"]), str(a["password"])))
                self.password = str(a["password"])
        elif kind == "checkout":
            response = await self.get("/checkout")
            self.count["checkouts"] += 1
            return response.status_code < 400
        elif kind == "shipping":
            await self.post("/checkout/shipping", {
                "name": self.sim.rng.choice(_NAMES), "address": "12 Example Street",
                "city": "Lyon", "country": a["country"], "method": a["method"]})
        elif kind == "payment":
            return await self.pay(str(a["method"]), str(a["card"]), a.get("retry_card"))
        elif kind == "survey":
            await self.post("/survey", {"order_id": self.order or "", "kind": a["kind"],
                                        "score": a["score"], "comment": ""})
            self.count["surveys"] += 1
        elif kind == "support":
            await self.post("/support", {"topic": a["topic"], "channel": a["channel"],
                                         "message": "Hello, I have a question.",
                                         "order_id": self.order or ""})
            self.count["support_contacts"] += 1
        elif kind == "profile":
            values = {"name": "New Name", "email": f"new{secrets.token_hex(3)}@example.net",
                      "address": "3 Other Street", "phone": "+33 1 23 45 67 89"}
            fields = {f: values[f] for f in cast(list[str], a["fields"])}
            await self.post("/account/profile", fields)
            self.count["profile_updates"] += 1
        elif kind == "password" and self.password:
            new = f"pw-{secrets.token_hex(6)}"
            response = await self.post("/account/password", {"current": self.password,
                                                              "new": new})
            if response.status_code == 303:
                self.count["password_changes"] += 1
                accounts = self.sim.customers.accounts
                for i, (email, pw) in enumerate(accounts):
                    if pw == self.password:
                        accounts[i] = (email, new)
        elif kind in ("refund", "cancel") and self.order:
            response = await self.post(f"/orders/{self.order}/{kind}", {})
            if response.status_code == 303:
                (self.sim.summary.refunded if kind == "refund"
                 else self.sim.summary.cancelled).append(self.order)
        return True

    async def pay(self, method: str, card: str, retry_card: object) -> bool:
        for attempt in (card, retry_card):
            if attempt is None:
                return False
            response = await self.post("/checkout/payment", {
                "method": method, "card_number": attempt if method == "card" else ""})
            if response.status_code == 303:
                self.order = response.headers.get("x-order-id")
                if self.order:
                    self.sim.summary.orders.append(self.order)
                    self.count["orders"] += 1
                return True
            reason = response.headers.get("x-payment-declined", f"http_{response.status_code}")
            self.count[f"declined_{reason}"] += 1
            if reason == "gateway_error" or method != "card":
                return False
        return False
