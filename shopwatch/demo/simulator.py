"""Simulated shoppers driving the demo shop over HTTP, and the incidents injected on them.

:class:`Simulator` starts visits at a rate that follows the shop's local time of day and
week (``model.seasonality``), times ``speed``; each visit is planned by
:func:`model.plan_visit` and played like a browser would (cookies, redirects, images,
``Referer``), with think times divided by ``speed``. The simulator stands where a
shop's CDN would: each request carries the shopper's address as ``X-Forwarded-For``
(:func:`model.address`, a customer's own from :func:`model.home`) and country as
``CF-IPCountry``. At intervals it injects an incident — a shop fault
(:class:`ShopFaults`) or attack traffic (:mod:`shopwatch.demo.attacks`) — and logs it,
start and end, to ``incidents_log`` (JSON lines) so what Shopwatch shows can be checked
against what happened. :attr:`Simulator.summary` counts what the shoppers achieved (the
orders they completed, with their ids, declines, sign-ups…) and what the attackers did.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import secrets
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo

import httpx

from shopwatch.demo import model
from shopwatch.demo.attacks import ATTACK_UA, ATTACKERS, LiveAttacks
from shopwatch.demo.incidents import FAULTS, KINDS, ShopFaults
from shopwatch.demo.model import Customers, Persona, Step, Visit

log = logging.getLogger(__name__)
__all__ = ["ATTACK_UA", "Simulator", "Summary"]


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
    """Shoppers and incidents for the shop at ``shop_url``. ``customers`` are the
    accounts the shop already has (the demo's regulars, :func:`model.regulars`); the
    shoppers add the ones they sign up for."""

    def __init__(self, shop_url: str, faults: ShopFaults, *, products: list[str],
                 categories: list[str], seed: int = 0, speed: float = 1.0,
                 visits_per_minute: float = 3.0, incident_every: float = 300.0,
                 timezone: str = "UTC", incidents_log: Path | None = None,
                 say: Callable[[str], None] = print, max_visits: int = 300,
                 customers: Customers | None = None) -> None:
        self.shop_url = shop_url.rstrip("/")
        self.faults = faults
        self.products = products
        self.categories = categories
        self.seed = seed
        self.rng = random.Random(seed)
        self.speed = max(speed, 0.01)
        self.visits_per_minute = visits_per_minute
        self.incident_every = incident_every
        self.tz = ZoneInfo(timezone)
        self.incidents_log = incidents_log
        self.say = say
        self.max_visits = max_visits
        self.customers = customers if customers is not None else Customers()
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

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- one visit, played like a browser ------------------------------------------------

    async def _play(self, visit: Visit) -> None:
        who = visit.persona
        self.summary.counts["visits"] += 1
        headers = {"User-Agent": who.user_agent, "Accept-Language": who.language,
                   "CF-IPCountry": who.country}
        if who.ip:
            headers["X-Forwarded-For"] = who.ip  # as the shop's CDN names the client
        async with httpx.AsyncClient(base_url=self.shop_url, timeout=30,
                                     headers=headers) as client:
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
        """Run one incident for ``duration`` seconds, logging its start and end (an
        attack's details: its network, user agents, country and attempts)."""
        details: dict[str, Any] = {}
        if kind == "slow_checkout":
            self.faults.checkout_delay = details["checkout_delay_s"] = 2.5
        elif kind == "gateway_errors":
            self.faults.gateway_errors = True
        elif kind == "image_host_down":
            self.faults.image_host_down = True
        started = datetime.now(UTC)
        self.say(f"incident started: {kind} (for {duration:.0f} s)")
        try:
            if kind in ATTACKERS:
                await LiveAttacks(self).run(kind, duration, details)
            else:
                await self.pause(duration)
        finally:
            if kind in FAULTS:
                self.faults.clear()
            entry = {"kind": kind, "started_at": started.isoformat(),
                     "ended_at": datetime.now(UTC).isoformat(), "details": details}
            self.summary.incidents.append(entry)
            if self.incidents_log is not None:
                with self.incidents_log.open("a") as out:
                    out.write(json.dumps(entry) + "\n")
            self.say(f"incident ended: {kind} {json.dumps(details)}")


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
        self.email = who.email  # the account signed in with (or signed up for)

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
                self.email = str(a["email"])
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
                                        "score": a["score"], "comment": a.get("comment", "")})
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
            response = await self.post("/account/profile", fields)
            self.count["profile_updates"] += 1
            saved = response.headers.get("location") == "/account"
            if saved and "email" in fields and self.email:
                self.sim.customers.replace(self.email, new_email=fields["email"])
                self.email = fields["email"]
        elif kind == "password" and self.password:
            new = f"pw-{secrets.token_hex(6)}"
            response = await self.post("/account/password", {"current": self.password,
                                                              "new": new})
            if response.status_code == 303:
                self.count["password_changes"] += 1
                if self.email:
                    self.sim.customers.replace(self.email, new_password=new)
                self.password = new
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
