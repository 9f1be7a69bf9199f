"""The demo's attackers: who they are on the internet, and their live traffic.

Each attack comes from its own network (documentation ranges, RFC 5737 and RFC 3849:
never a real network's) with its own user agent and country (``CF-IPCountry``), as the
shop's CDN would see it; the simulator, in front of the shop, sends the address as
``X-Forwarded-For``. :data:`ATTACKERS` describes them; the live demo's
:class:`LiveAttacks` sends their requests to the shop, and the history
(:mod:`shopwatch.demo.history`) writes the events the same attacks sent in the past.

- ``credential_stuffing``: 40 addresses of 203.0.113.0/24; a leaked list, one login
  per account, nearly all unknown or wrong, a reused password now and then;
- ``brute_force``: 198.51.100.23; one customer's account, a password list, never right;
- ``card_testing``: 192.0.2.77; one session, the cheapest product, card number after
  generated card number;
- ``account_takeover``: 2001:db8:7a4e::/48, another country and browser; a customer's
  real password, then a new e-mail address, delivery address and often password, then
  an order;
- ``bot_traffic``: 6 addresses of 2001:db8:b07::/48; product pages and add-to-cart, tens
  a second, no images, no JavaScript;
- ``signup_abuse``: 3 addresses of 2001:db8:5167::/48; sign-ups with throwaway
  addresses, each in a fresh session.

Rates are per second at ``--speed 1`` and grow with the speed up to a cap (the shop's
password hashing costs tens of milliseconds, so logins and sign-ups are capped lower).
"""

from __future__ import annotations

import ipaddress
import random
import secrets
import string
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import httpx

from shopwatch.demo import model

if TYPE_CHECKING:
    from shopwatch.demo.simulator import Simulator

ATTACK_UA: Final = "python-requests/2.31.0"
HYDRA_UA: Final = "Mozilla/5.0 (Hydra)"
TESTER_UA: Final = "okhttp/4.12.0"
# An ordinary desktop browser, but one no customer of the shop uses (Linux Chrome).
TAKEOVER_UA: Final = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
                      "Chrome/120.0.0.0 Safari/537.36")
HEADLESS_UA: Final = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
                      "HeadlessChrome/124.0.0.0 Safari/537.36")
SCRAPY_UA: Final = "Scrapy/2.11.2 (+https://scrapy.org)"
SIGNUP_UA: Final = "python-httpx/0.27.0"

THROWAWAY_DOMAINS: Final = ("mailinator.com", "yopmail.com", "guerrillamail.com",
                            "sharklasers.com", "trashmail.com", "10minutemail.com")
LEAK_DOMAINS: Final = ("gmail.com", "yahoo.com", "hotmail.com", "outlook.com", "gmx.de",
                       "orange.fr", "web.de", "libero.it")
PASSWORDS: Final = ("123456", "password", "123456789", "qwerty", "12345678", "111111",
                    "iloveyou", "letmein", "welcome1", "Password1", "sunshine", "monkey",
                    "dragon", "football", "Summer2024!", "azerty")
# Card testers work through a few issuers' numbers at a time.
TESTER_BINS: Final = ("414720", "453978", "542523")
TESTER_VALID_SHARE: Final = 0.15  # generated numbers that pass the Luhn check
CHEAPEST: Final = "paper-filters"  # 5.90 + shipping: what card testers buy
TAKEOVER_BUY: Final = ("hand-grinder", "gooseneck-kettle")  # what a taken-over account buys
DROP: Final = {"name": "R. Kovac", "address": "Parcel locker 4471, Weena 505",
               "city": "Rotterdam", "country": "NL", "method": "express"}


@dataclass(frozen=True)
class Attacker:
    """One attack's origin: its network (CIDR), the addresses of it that it uses (drawn
    once, per kind), user agents, country and language, and its rate (per second at
    speed 1, and the cap)."""

    kind: str
    network: str
    hosts: int
    user_agents: tuple[str, ...]
    country: str
    language: str
    rate: float
    max_rate: float
    addresses: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        net = ipaddress.ip_network(self.network)
        rng = random.Random(f"attacker-{self.kind}")
        found: list[str] = []
        while len(found) < self.hosts:
            offset = (rng.randrange(1, 255) if net.version == 4
                      else (rng.randrange(1, 1 << 16) << 64) + rng.randrange(1, 1 << 32))
            text = str(net.network_address + offset)
            if text not in found:
                found.append(text)
        object.__setattr__(self, "addresses", tuple(found))

    def address(self, rng: random.Random) -> str:
        return rng.choice(self.addresses)

    def user_agent(self, rng: random.Random) -> str:
        return rng.choice(self.user_agents)

    def per_second(self, speed: float) -> float:
        return min(self.max_rate, self.rate * speed)


ATTACKERS: Final = {a.kind: a for a in (
    Attacker("credential_stuffing", "203.0.113.0/24", 40, (ATTACK_UA,), "NL", "en-US",
             6.0, 40.0),
    Attacker("brute_force", "198.51.100.0/24", 1, (HYDRA_UA,), "US", "en-US", 3.0, 20.0),
    Attacker("card_testing", "192.0.2.0/24", 1, (TESTER_UA,), "SG", "en-US", 3.0, 20.0),
    Attacker("account_takeover", "2001:db8:7a4e::/48", 1, (TAKEOVER_UA,), "BR", "pt-BR",
             0.0, 0.0),
    Attacker("bot_traffic", "2001:db8:b07::/48", 6, (HEADLESS_UA, SCRAPY_UA), "US", "en-US",
             12.0, 60.0),
    Attacker("signup_abuse", "2001:db8:5167::/48", 3, (SIGNUP_UA,), "ID", "id-ID", 1.0, 8.0),
)}


def leaked_email(rng: random.Random) -> str:
    """An address of a leaked list (of another site): almost never one of the shop's."""
    name = "".join(rng.choices(string.ascii_lowercase, k=rng.randint(4, 9)))
    return f"{name}{rng.randrange(10, 10_000)}@{rng.choice(LEAK_DOMAINS)}"


def throwaway_email(rng: random.Random) -> str:
    """A disposable mailbox, as sign-up farms use."""
    local = "".join(rng.choices(string.ascii_lowercase + string.digits, k=10))
    return f"{local}@{rng.choice(THROWAWAY_DOMAINS)}"


def guessed_password(rng: random.Random) -> str:
    word = rng.choice(PASSWORDS)
    return word if rng.random() < 0.5 else f"{word}{rng.randrange(100)}"


def tester_card(rng: random.Random) -> str:
    """A card tester's number: a known issuer prefix and random digits, valid (Luhn) only
    now and then, as generated and bought lists are."""
    number = model.card(rng, TESTER_BINS)
    if rng.random() >= TESTER_VALID_SHARE:
        number = number[:-1] + str((int(number[-1]) + rng.randint(1, 9)) % 10)
    return number


def regular_victim(rng: random.Random, customers: model.Customers,
                   seed: int) -> tuple[str, str] | None:
    """An account to take over: a regular customer (one with a history) still in use,
    not at the office; any account if there is none."""
    regular = {email for _, email, _ in model.regulars(seed)[model.OFFICE_STAFF:]}
    chosen = [a for a in customers.accounts
              if customers.first_email.get(a[0], a[0]) in regular]
    pool = chosen or customers.accounts
    return rng.choice(pool) if pool else None


class LiveAttacks:
    """The attacks of a running :class:`~shopwatch.demo.simulator.Simulator`, over HTTP.

    :meth:`run` plays one for about ``duration`` seconds (an account takeover takes as
    long as it takes), filling the incident's details as it goes: network, user agents,
    country, what the kind adds, and at the end the attempts. Counts go to the
    simulator's summary; orders the attackers complete go to its orders, declines to its
    ``declined_<reason>`` counts, as the shoppers' do.
    """

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.rng = sim.rng
        self.counts = sim.summary.counts

    async def run(self, kind: str, duration: float, details: dict[str, Any]) -> None:
        attacker = ATTACKERS[kind]
        plays: dict[str, Callable[[httpx.AsyncClient, Attacker, float, dict[str, Any]],
                                  Awaitable[int]]] = {
            "credential_stuffing": self._credential_stuffing,
            "brute_force": self._brute_force,
            "card_testing": self._card_testing,
            "account_takeover": self._account_takeover,
            "bot_traffic": self._bot_traffic,
            "signup_abuse": self._signup_abuse,
        }
        details.update(network=attacker.network, user_agents=list(attacker.user_agents),
                       country=attacker.country)
        async with httpx.AsyncClient(base_url=self.sim.shop_url, timeout=30, headers={
                "User-Agent": attacker.user_agents[0], "CF-IPCountry": attacker.country,
                "Accept-Language": attacker.language}) as client:
            details["attempts"] = await plays[kind](client, attacker, duration, details)

    # --- plumbing ------------------------------------------------------------------------

    async def _send(self, client: httpx.AsyncClient, method: str, path: str, ip: str,
                    user_agent: str | None = None,
                    data: dict[str, str] | None = None) -> httpx.Response | None:
        headers = {"X-Forwarded-For": ip}
        if user_agent is not None:
            headers["User-Agent"] = user_agent
        try:
            return await client.request(method, path, data=data, headers=headers)
        except httpx.HTTPError:
            return None

    async def _paced(self, attacker: Attacker, deadline: float) -> bool:
        """Wait for the next attempt; False when the incident is over or the demo stops."""
        if await self.sim.pause(1 / attacker.per_second(self.sim.speed)):
            return False
        return time.monotonic() < deadline

    async def _think(self, seconds: float) -> bool:
        """A person's pause (divided by the speed); False when the demo stops."""
        return not await self.sim.pause(seconds * self.rng.uniform(0.6, 1.4) / self.sim.speed)

    # --- the attacks ---------------------------------------------------------------------

    async def _credential_stuffing(self, client: httpx.AsyncClient, attacker: Attacker,
                                   duration: float, details: dict[str, Any]) -> int:
        """One login per account of a leaked list, from many addresses of one /24: most
        accounts unknown, some of the shop's with the wrong password, and a few with the
        right one (reused elsewhere): the attacker is in, and signs out."""
        attempts = broken_in = 0
        deadline = time.monotonic() + duration
        while not self.sim.stopping:
            accounts = self.sim.customers.accounts
            roll = self.rng.random()
            if accounts and roll < 0.02:
                email, password = self.rng.choice(accounts)
            elif accounts and roll < 0.12:
                email, password = self.rng.choice(accounts)[0], guessed_password(self.rng)
            else:
                email, password = leaked_email(self.rng), guessed_password(self.rng)
            ip = attacker.address(self.rng)
            response = await self._send(client, "POST", "/login", ip,
                                        data={"email": email, "password": password})
            attempts += 1
            self.counts["attack_logins"] += 1
            if response is not None and response.status_code == 303:
                broken_in += 1
                self.counts["attack_logins_succeeded"] += 1
                await self._send(client, "POST", "/logout", ip)
            if attempts % 25 == 0:
                client.cookies.clear()  # a new session now and then, as tools rotate them
            if not await self._paced(attacker, deadline):
                break
        details["succeeded"] = broken_in
        return attempts

    async def _brute_force(self, client: httpx.AsyncClient, attacker: Attacker,
                           duration: float, details: dict[str, Any]) -> int:
        """One account (a customer's), one address, password after password."""
        attempts = 0
        deadline = time.monotonic() + duration
        target = regular_victim(self.rng, self.sim.customers, self.sim.seed)
        email = target[0] if target else "admin@" + model.OFFICE_DOMAIN
        details["user_id"] = model.customer_id(self.sim.customers.first_email.get(email,
                                                                                  email))
        ip = attacker.address(self.rng)
        while not self.sim.stopping:
            await self._send(client, "POST", "/login", ip,
                             data={"email": email, "password": guessed_password(self.rng)})
            attempts += 1
            self.counts["brute_force_logins"] += 1
            if not await self._paced(attacker, deadline):
                break
        return attempts

    async def _cheap_checkout(self, client: httpx.AsyncClient, ip: str) -> None:
        """A one-item cart taken to the payment step, as a card tester prepares it."""
        await self._send(client, "POST", "/cart/add", ip,
                         data={"product_id": CHEAPEST, "quantity": "1"})
        await self._send(client, "GET", "/checkout", ip)
        await self._send(client, "POST", "/checkout/shipping", ip, data={
            "name": "A", "address": "1 Road", "city": "Town", "country": "SG",
            "method": "standard"})

    async def _card_testing(self, client: httpx.AsyncClient, attacker: Attacker,
                            duration: float, details: dict[str, Any]) -> int:
        """Small orders paid with one card number after another, in one session: most
        declined (invalid numbers), now and then one goes through and the tester starts
        a new cart."""
        attempts = 0
        deadline = time.monotonic() + duration
        ip = attacker.address(self.rng)
        await self._send(client, "GET", "/", ip)
        await self._cheap_checkout(client, ip)
        while not self.sim.stopping:
            response = await self._send(client, "POST", "/checkout/payment", ip, data={
                "method": "card", "card_number": tester_card(self.rng)})
            attempts += 1
            self.counts["card_tests"] += 1
            if response is not None and response.status_code == 402:
                self.counts["card_tests_declined"] += 1
            if response is not None and response.status_code == 303:
                self.counts["card_tests_approved"] += 1
                order = response.headers.get("x-order-id")
                if order:
                    self.sim.summary.orders.append(order)
                await self._cheap_checkout(client, ip)
            if not await self._paced(attacker, deadline):
                break
        return attempts

    async def _account_takeover(self, client: httpx.AsyncClient, attacker: Attacker,
                                duration: float, details: dict[str, Any]) -> int:
        """A customer's real credentials (from a phishing kit or another site's leak)
        used from another country, network and browser: sign in, change the e-mail
        address and the delivery address (and often the password), so the owner hears
        nothing and cannot get back in, then order something dear to a parcel locker.
        A minute or two at speed 1; the owner's account is then lost to the shoppers."""
        started = time.monotonic()
        target = regular_victim(self.rng, self.sim.customers, self.sim.seed)
        if target is None:
            details["note"] = "no customer account to take over yet"
            await self.sim.pause(duration)
            return 0
        email, password = target
        details["user_id"] = model.customer_id(self.sim.customers.first_email.get(email,
                                                                                  email))
        ip = attacker.address(self.rng)
        steps = 0

        async def step(seconds: float, method: str, path: str,
                       data: dict[str, str] | None = None) -> httpx.Response | None:
            nonlocal steps
            if not await self._think(seconds):
                return None
            steps += 1
            return await self._send(client, method, path, ip, data=data)

        await step(0, "GET", "/login")
        signed_in = await step(6, "POST", "/login", {"email": email, "password": password})
        if signed_in is None:  # the demo is stopping (or the shop is unreachable)
            return steps
        if signed_in.status_code != 303:
            details["note"] = "the password had changed"
            return steps
        self.counts["takeover_logins"] += 1
        await step(3, "GET", "/account")
        new_email = throwaway_email(self.rng)
        changed = await step(20, "POST", "/account/profile", {
            "email": new_email, "address": DROP["address"]})
        fields = ["email", "address"]
        new_password: str | None = None
        if changed is not None and changed.status_code == 303 and self.rng.random() < 0.7:
            new_password = "x" + secrets.token_urlsafe(12)
            moved = await step(15, "POST", "/account/password", {
                "current": password, "new": new_password})
            if moved is not None and moved.status_code == 303:
                fields.append("password")
        details["changed"] = fields
        self.sim.customers.remove(email)  # its owner is locked out
        product = self.rng.choice(TAKEOVER_BUY)
        await step(10, "GET", f"/p/{product}")
        await step(5, "POST", "/cart/add", {"product_id": product, "quantity": "2"})
        await step(4, "GET", "/checkout")
        await step(20, "POST", "/checkout/shipping", DROP)
        for _ in range(2):  # a stolen card; another if it is declined
            paid = await step(20, "POST", "/checkout/payment", {
                "method": "card", "card_number": model.card(self.rng)})
            if paid is None:
                break
            if paid.status_code == 303:
                order = paid.headers.get("x-order-id")
                if order:
                    self.sim.summary.orders.append(order)
                    self.counts["takeover_orders"] += 1
                    details["order"] = order
                break
            self.counts[f"declined_{paid.headers.get('x-payment-declined', 'unknown')}"] += 1
        rest = duration - (time.monotonic() - started)
        if rest > 0:
            await self.sim.pause(rest)
        return steps

    async def _bot_traffic(self, client: httpx.AsyncClient, attacker: Attacker,
                           duration: float, details: dict[str, Any]) -> int:
        """A scraper (a headless browser, a crawler framework): product page after
        product page and add-to-cart, faster than anyone can click, never loading an
        image or running the page's JavaScript (so no RUM beacon), a new session every
        few dozen requests."""
        requests = 0
        deadline = time.monotonic() + duration
        ip, agent = attacker.address(self.rng), attacker.user_agent(self.rng)
        while not self.sim.stopping:
            product = self.rng.choice(self.sim.products)
            if self.rng.random() < 0.3:
                await self._send(client, "POST", "/cart/add", ip, agent,
                                 {"product_id": product, "quantity": "1"})
            else:
                await self._send(client, "GET", f"/p/{product}", ip, agent)
            requests += 1
            self.counts["bot_requests"] += 1
            if requests % 40 == 0:  # another crawler instance, another session
                client.cookies.clear()
                ip, agent = attacker.address(self.rng), attacker.user_agent(self.rng)
            if not await self._paced(attacker, deadline):
                break
        return requests

    async def _signup_abuse(self, client: httpx.AsyncClient, attacker: Attacker,
                            duration: float, details: dict[str, Any]) -> int:
        """Accounts by the dozen (for a sign-up bonus, reviews, later fraud): each from a
        fresh session with a disposable mailbox."""
        attempts = 0
        deadline = time.monotonic() + duration
        while not self.sim.stopping:
            client.cookies.clear()
            ip = attacker.address(self.rng)
            await self._send(client, "GET", "/signup", ip)
            name = "".join(self.rng.choices(string.ascii_lowercase, k=7)).title()
            response = await self._send(client, "POST", "/signup", ip, data={
                "name": name, "email": throwaway_email(self.rng),
                "password": secrets.token_urlsafe(10)})
            attempts += 1
            if response is not None and response.status_code == 303:
                self.counts["abuse_signups"] += 1
            if not await self._paced(attacker, deadline):
                break
        return attempts
