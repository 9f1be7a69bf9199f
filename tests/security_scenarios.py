"""Labelled security scenarios mixed into a shop's normal traffic.

:func:`build` makes three days of ordinary traffic (the detections' baselines), then
eight hours in which honest situations that look suspicious and attacks happen, each a
:class:`Scenario` with the events it adds and a label: the detection kind that must find
it (``None`` for an honest one, which must produce no finding) and the finding subjects
that name it. Used by tests/test_security_scenarios.py and benchmarks/security.py, which
run the detections over it as ``shopwatch serve`` would and score the findings
(:func:`score`).

Addresses are of the networks :func:`net` numbers (``81.<b>.<c>.0/24``), user agents
are real browsers' and tools', and every event has an id, so each finding's evidence
can be checked against the events of its scenario.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec

from shopwatch.beacon import RumRow
from shopwatch.runtime import Runtime
from shopwatch.security.watch import Watch
from shopwatch.store.base import EventBatch
from shopwatch.store.findings import Finding

HOUR: Final = 3600.0
CHROME_WIN: Final = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, "
                     "like Gecko) Chrome/130.0.0.0 Safari/537.36")
SAFARI_MAC: Final = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 "
                     "(KHTML, like Gecko) Version/18.0 Safari/605.1.15")
IPHONE: Final = ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 "
                 "(KHTML, like Gecko) Version/18.0 Mobile/15E148 Safari/604.1")
ANDROID: Final = ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like "
                  "Gecko) Chrome/130.0.0.0 Mobile Safari/537.36")
FIREFOX_LINUX: Final = ("Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 "
                        "Firefox/132.0")
HEADLESS: Final = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
                   "HeadlessChrome/130.0.0.0 Safari/537.36")
SCRIPT: Final = "python-requests/2.32.3"
BROWSERS: Final = (CHROME_WIN, CHROME_WIN, SAFARI_MAC, IPHONE, IPHONE, ANDROID, FIREFOX_LINUX)
COUNTRIES: Final = ("DE", "DE", "DE", "FR", "NL", "AT")


def net(i: int) -> str:
    """The prefix of network ``i`` (0 ≤ i < 62,500)."""
    return f"81.{i // 250 + 1}.{i % 250 + 1}.0/24"


def ip(i: int, host: int) -> str:
    return net(i).replace(".0/24", f".{host % 254 + 1}")


@dataclass
class Customer:
    id: str
    network: int
    host: int
    agent: str
    country: str
    card: str


@dataclass
class Scenario:
    """One labelled situation: ``kind`` is the detection that must find it (``None``:
    honest, nothing may be found about its ``subjects``)."""

    name: str
    kind: str | None
    start: float
    end: float
    subjects: set[str]
    events: list[dict[str, Any]] = field(default_factory=list)
    description: str = ""

    @property
    def ids(self) -> set[str]:
        return {e["id"] for e in self.events}


@dataclass
class World:
    """All traffic: ``events`` (ordinary traffic and every scenario's), the sessions
    whose browsers report real-user monitoring (``rum``: session id → times), the
    scenarios, and the period the detections run over (``start``, ``end``)."""

    start: float
    end: float
    events: list[dict[str, Any]]
    rum: dict[str, list[float]]
    scenarios: list[Scenario]


class _Maker:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.customers = [
            Customer(f"c{n:04d}", self.rng.randrange(300), self.rng.randrange(254),
                     self.rng.choice(BROWSERS), self.rng.choice(COUNTRIES),
                     f"fp_{uuid.UUID(int=self.rng.getrandbits(128)).hex[:16]}")
            for n in range(400)]
        self.rum: dict[str, list[float]] = {}

    def event(self, name: str, ts: float, *, session: str, address: str, agent: str,
              country: str | None = None, user_id: str | None = None,
              **params: Any) -> dict[str, Any]:
        event: dict[str, Any] = {
            "id": uuid.UUID(int=self.rng.getrandbits(128)).hex, "name": name,
            "ts": int(ts * 1000), "session_id": session, "ip": address, "user_agent": agent,
            "page": f"https://shop.example/{name}"}
        if country is not None:
            event["device"] = {"country": country}
        if user_id is not None:
            event["user_id"] = user_id
        if params:
            event["params"] = params
        return event

    def session(self) -> str:
        return uuid.UUID(int=self.rng.getrandbits(128)).hex[:20]

    def visit(self, t: float, *, guest_networks: int = 300) -> Iterator[dict[str, Any]]:
        """One ordinary visit from ``t``: browsing, perhaps a sign-in (now and then
        after a mistyped password), a cart and an order (now and then after a declined
        card), now and then a sign-up; most browsers report RUM."""
        rng = self.rng
        sid = self.session()
        known = rng.random() < 0.7
        if known:
            c = rng.choice(self.customers)
            address, agent, country, user = ip(c.network, c.host), c.agent, c.country, c.id
            card = c.card
        else:
            address = ip(rng.randrange(guest_networks), rng.randrange(254))
            agent, country, user = rng.choice(BROWSERS), rng.choice(COUNTRIES), None
            card = f"fp_{uuid.UUID(int=rng.getrandbits(128)).hex[:16]}"
        if rng.random() < 0.92:
            self.rum[sid] = [t]
        kw: dict[str, Any] = {"session": sid, "address": address, "agent": agent,
                              "country": country}
        for _ in range(rng.randint(1, 4)):
            yield self.event(rng.choice(("page_view", "view_item")), t, **kw)
            t += rng.uniform(5, 60)
        if user is not None and rng.random() < 0.4:
            if rng.random() < 0.05:
                yield self.event("login_failed", t, user_id=user, reason="wrong_password",
                                 **kw)
                t += rng.uniform(5, 20)
            yield self.event("login", t, user_id=user, method="password", **kw)
            t += rng.uniform(5, 30)
        elif user is None and rng.random() < 0.05:
            user = f"n{uuid.UUID(int=rng.getrandbits(128)).hex[:10]}"
            yield self.event("sign_up", t, user_id=user, method="password", **kw)
            t += rng.uniform(5, 30)
        if rng.random() < 0.25:
            value = round(rng.uniform(20, 200), 2)
            yield self.event("add_to_cart", t, user_id=user, value=value, currency="EUR", **kw)
            t += rng.uniform(20, 120)
            pay = {"payment_method": "card", "gateway": "stripe", "card_fingerprint": card,
                   "card_bin": "424242", "value": value, "currency": "EUR"}
            if rng.random() < 0.06:
                yield self.event("payment_declined", t, user_id=user,
                                 reason="insufficient_funds", **pay, **kw)
                t += rng.uniform(20, 60)
            yield self.event("purchase", t, user_id=user, transaction_id=uuid.UUID(
                int=rng.getrandbits(128)).hex[:12], **pay, **kw)

    def traffic(self, start: float, end: float, per_hour: float) -> list[dict[str, Any]]:
        n = int((end - start) / HOUR * per_hour)
        out: list[dict[str, Any]] = []
        for _ in range(n):
            out.extend(self.visit(self.rng.uniform(start, end)))
        return [e for e in out if e["ts"] < end * 1000]


def build(end: float, seed: int = 7, *, hard: bool = False, per_hour: float = 60.0) -> World:
    """The world whose detection period is the 8 hours before ``end`` (epoch seconds),
    preceded by 3 days of ordinary traffic (``per_hour`` visits an hour in the period,
    two thirds of that before). ``hard`` adds two situations the detections are known
    to get wrong (docs/security.md, "Limits"): a brute force slower than any window,
    and a traveller abroad who changes the delivery address and orders."""
    m = _Maker(seed)
    rng = m.rng
    t0 = end - 8 * HOUR
    events = m.traffic(t0 - 3 * 24 * HOUR, t0, per_hour * 2 / 3)
    events += m.traffic(t0, end, per_hour)
    scenarios: list[Scenario] = []

    def add(s: Scenario, made: Iterable[dict[str, Any]]) -> None:
        s.events = list(made)
        scenarios.append(s)

    # --- honest situations ------------------------------------------------------------
    sale = Scenario("busy sale day", None, t0 + 1 * HOUR, t0 + 3 * HOUR, {"global"},
                    description="eight times the usual visits for two hours: sign-ins, "
                    "orders, declines and sign-ups all up, in the usual proportions")
    add(sale, m.traffic(sale.start, sale.end, 420))

    office_net = 400
    office = Scenario("shared office network", None, t0 + 4 * HOUR, t0 + 4.5 * HOUR,
                      {f"network:{net(office_net)}"},
                      description="40 colleagues sign in from one office network within "
                      "half an hour; three mistype their password once first")

    def office_events() -> Iterator[dict[str, Any]]:
        for n in range(40):
            sid = m.session()
            t = rng.uniform(office.start, office.end - 300)
            m.rum[sid] = [t]
            kw = {"session": sid, "address": ip(office_net, n), "agent": CHROME_WIN,
                  "country": "DE", "user_id": f"office{n:02d}"}
            if n < 3:
                yield m.event("login_failed", t, reason="wrong_password", **kw)
                t += 15
            yield m.event("login", t, method="password", **kw)
            if n % 5 == 0:
                yield m.event("purchase", t + 200, payment_method="invoice", value=80.0,
                              currency="EUR", transaction_id=f"office-{n}", **kw)
    add(office, office_events())

    def history(c: Customer, before: float, times: int) -> Iterator[dict[str, Any]]:
        """Earlier sign-ins of ``c`` from home, so that its usual network and device are
        known."""
        for k in range(times):
            t = before - (k + 1) * 20 * HOUR
            yield m.event("login", t, session=m.session(), address=ip(c.network, c.host),
                          agent=c.agent, country=c.country, user_id=c.id, method="password")

    mover = Customer("honest-mover", 120, 9, SAFARI_MAC, "DE", "f00dfeedf00dfeed")
    moves = Scenario("customer changes address and orders", None, t0 + 5 * HOUR,
                     t0 + 5.3 * HOUR, {f"account:{mover.id}"},
                     description="a customer signs in from home, changes e-mail and address, "
                     "and orders ten minutes later")

    def moving() -> Iterator[dict[str, Any]]:
        yield from history(mover, moves.start, 3)
        sid = m.session()
        m.rum[sid] = [moves.start]
        kw = {"session": sid, "address": ip(mover.network, mover.host), "agent": mover.agent,
              "country": "DE", "user_id": mover.id}
        yield m.event("login", moves.start, method="password", **kw)
        yield m.event("profile_updated", moves.start + 120, fields=["email", "address"], **kw)
        yield m.event("purchase", moves.start + 600, payment_method="card", value=64.0,
                      currency="EUR", transaction_id="mover-1", card_fingerprint=mover.card,
                      **kw)
    add(moves, moving())

    commuter = Customer("honest-commuter", 121, 40, IPHONE, "DE", "0123456789abcdef")
    mobile = Scenario("customer on mobile data changes address and orders", None,
                      t0 + 6 * HOUR, t0 + 6.3 * HOUR, {f"account:{commuter.id}"},
                      description="a customer on a network never seen before (mobile data), "
                      "with the usual phone, in the usual country, changes the delivery "
                      "address and orders")

    def commuting() -> Iterator[dict[str, Any]]:
        yield from history(commuter, mobile.start, 4)
        sid = m.session()
        m.rum[sid] = [mobile.start]
        kw = {"session": sid, "address": ip(777, 3), "agent": commuter.agent,
              "country": "DE", "user_id": commuter.id}
        yield m.event("login", mobile.start, method="password", **kw)
        yield m.event("profile_updated", mobile.start + 60, fields=["address"], **kw)
        yield m.event("purchase", mobile.start + 400, payment_method="card", value=31.0,
                      currency="EUR", transaction_id="commuter-1",
                      card_fingerprint=commuter.card, **kw)
    add(mobile, commuting())

    forgetful = Customer("honest-forgetful", 122, 41, ANDROID, "FR", "aaaabbbbccccdddd")
    forgot = Scenario("customer forgets the password and resets it", None, t0 + 2 * HOUR,
                      t0 + 2.2 * HOUR, {f"account:{forgetful.id}"},
                      description="four wrong passwords, a reset (password_changed), then "
                      "a sign-in, from the usual network and phone")

    def forgetting() -> Iterator[dict[str, Any]]:
        yield from history(forgetful, forgot.start, 2)
        sid = m.session()
        m.rum[sid] = [forgot.start]
        kw = {"session": sid, "address": ip(forgetful.network, forgetful.host),
              "agent": forgetful.agent, "country": "FR", "user_id": forgetful.id}
        for k in range(4):
            yield m.event("login_failed", forgot.start + 20 * k, reason="wrong_password", **kw)
        yield m.event("password_changed", forgot.start + 300, **kw)
        yield m.event("login", forgot.start + 330, method="password", **kw)
    add(forgot, forgetting())

    browser = Scenario("quick shopper with an ad blocker", None, t0 + 1.5 * HOUR,
                       t0 + 1.5 * HOUR + 300, {f"network:{net(409)}"},
                       description="20 product pages in 4 minutes, each sending a page view "
                       "and a product view at the same moment; the ad blocker stops RUM")

    def browsing() -> Iterator[dict[str, Any]]:
        kw = {"session": m.session(), "address": ip(409, 3), "agent": SAFARI_MAC,
              "country": "AT"}
        for k in range(20):
            t = browser.start + 12 * k
            yield m.event("page_view", t, **kw)
            yield m.event("view_item", t, **kw)
    add(browser, browsing())

    # --- attacks ----------------------------------------------------------------------
    victim_bf = rng.choice(m.customers)
    brute = Scenario("brute force on one account", "brute_force", t0 + 2 * HOUR,
                     t0 + 2 * HOUR + 600, {f"account:{victim_bf.id}"},
                     description="25 passwords tried on one account in 10 minutes, during "
                     "the sale")

    def bruting() -> Iterator[dict[str, Any]]:
        sid = m.session()
        for k in range(25):
            yield m.event("login_failed", brute.start + 24 * k, session=sid,
                          address=ip(900, 5), agent=CHROME_WIN, user_id=victim_bf.id,
                          reason="wrong_password")
    add(brute, bruting())

    stuffing_net = 901
    stuffing = Scenario("credential stuffing from one network", "credential_stuffing",
                        t0 + 3.5 * HOUR, t0 + 3.5 * HOUR + 900,
                        {f"network:{net(stuffing_net)}"},
                        description="200 sign-ins with leaked e-mail/password pairs from "
                        "one /24 in 15 minutes, 150 accounts, 5 of them successful")

    def stuffing_events() -> Iterator[dict[str, Any]]:
        accounts = [f"email:{uuid.UUID(int=rng.getrandbits(128)).hex[:16]}"
                    for _ in range(145)] + [c.id for c in m.customers[:5]]
        for k in range(200):
            t = stuffing.start + k * 4.5
            kw = {"session": m.session(), "address": ip(stuffing_net, k), "agent": CHROME_WIN}
            if k % 40 == 39:
                yield m.event("login", t, user_id=m.customers[k // 40].id, **kw)
            else:
                yield m.event("login_failed", t, user_id=accounts[k % len(accounts)],
                              reason="unknown_account", **kw)
    add(stuffing, stuffing_events())

    spread = Scenario("credential stuffing spread over many networks", "credential_stuffing",
                      t0 + 6.5 * HOUR, t0 + 6.5 * HOUR + 900, {"global"},
                      description="300 failed sign-ins from 150 networks (2 each, as from a "
                      "residential proxy pool) in 15 minutes")

    def spread_events() -> Iterator[dict[str, Any]]:
        for k in range(300):
            yield m.event("login_failed", spread.start + k * 3, session=m.session(),
                          address=ip(1000 + k // 2, k), agent=rng.choice(BROWSERS),
                          user_id=f"email:{uuid.UUID(int=rng.getrandbits(128)).hex[:16]}",
                          reason="unknown_account")
    add(spread, spread_events())

    tester_sid = "card-tester-session"
    cards = Scenario("card testing from one session", "card_testing", t0 + 2.5 * HOUR,
                     t0 + 2.5 * HOUR + 1200,
                     {f"network:{net(902)}", f"session:{tester_sid}"},
                     description="30 payments of 1.00 EUR with 25 different cards from one "
                     "session in 20 minutes, 27 declined, during the sale")

    def testing() -> Iterator[dict[str, Any]]:
        kw = {"session": tester_sid, "address": ip(902, 7), "agent": CHROME_WIN,
              "country": "NL"}
        for k in range(30):
            card = f"fp_tester_{k % 25:02d}"
            t = cards.start + 40 * k
            if k % 10 == 9:
                yield m.event("purchase", t, payment_method="card", gateway="stripe",
                              value=1.0, currency="EUR", card_fingerprint=card,
                              card_bin="411111", transaction_id=f"test-{k}", **kw)
            else:
                yield m.event("payment_declined", t, payment_method="card", gateway="stripe",
                              value=1.0, currency="EUR", card_fingerprint=card,
                              card_bin="411111", reason="do_not_honor", **kw)
    add(cards, testing())

    spread_cards = Scenario("card testing spread over many networks", "card_testing",
                            t0 + 7 * HOUR, t0 + 7 * HOUR + 1500, {"global"},
                            description="60 declined payments from 40 networks and sessions "
                            "(one or two each) in 25 minutes")

    def spread_testing() -> Iterator[dict[str, Any]]:
        for k in range(60):
            yield m.event("payment_declined", spread_cards.start + 25 * k,
                          session=f"spread-tester-{k % 40}", address=ip(1200 + k % 40, k),
                          agent=rng.choice(BROWSERS), payment_method="card", gateway="adyen",
                          value=2.0, currency="EUR", card_fingerprint=f"fp_spread_{k:02d}",
                          reason="invalid_card")
    add(spread_cards, spread_testing())

    victim = Customer("victim-ato", 123, 12, CHROME_WIN, "DE", "fp_victim")
    takeover = Scenario("account takeover", "account_takeover", t0 + 6.8 * HOUR,
                        t0 + 6.8 * HOUR + 900, {f"account:{victim.id}"},
                        description="a customer's password used from a new network, device "
                        "and country; the e-mail and address are changed, then an order")

    def taking_over() -> Iterator[dict[str, Any]]:
        yield from history(victim, takeover.start, 5)
        kw = {"session": "ato-session", "address": ip(903, 77), "agent": FIREFOX_LINUX,
              "country": "RO", "user_id": victim.id}
        yield m.event("login", takeover.start, method="password", **kw)
        yield m.event("profile_updated", takeover.start + 90, fields=["email", "address"], **kw)
        yield m.event("purchase", takeover.start + 400, payment_method="card", value=899.0,
                      currency="EUR", transaction_id="ato-1",
                      card_fingerprint="feedfacefeedface", **kw)
    add(takeover, taking_over())

    scraper = Scenario("headless scraper", "bot_traffic", t0 + 4.5 * HOUR,
                       t0 + 4.5 * HOUR + 120, {f"network:{net(904)}"},
                       description="a headless browser fetches 200 product pages in two "
                       "minutes; its pages never run the RUM snippet")

    def scraping() -> Iterator[dict[str, Any]]:
        for k in range(200):
            yield m.event("view_item", scraper.start + 0.6 * k, session="scraper-session",
                          address=ip(904, 2), agent=HEADLESS)
    add(scraper, scraping())

    sneaky = Scenario("bot with a browser's user agent", "bot_traffic", t0 + 7.5 * HOUR,
                      t0 + 7.5 * HOUR + 18, {f"network:{net(905)}"},
                      description="a script with a Chrome user agent adds to cart 60 times "
                      "in 18 seconds")

    def sneaking() -> Iterator[dict[str, Any]]:
        for k in range(60):
            yield m.event("add_to_cart", sneaky.start + 0.3 * k, session="sneaky-session",
                          address=ip(905, 2), agent=CHROME_WIN, value=10.0, currency="EUR")
    add(sneaky, sneaking())

    signups = Scenario("sign-up abuse from one network", "signup_abuse", t0 + 5.5 * HOUR,
                       t0 + 6 * HOUR, {f"network:{net(906)}"},
                       description="25 accounts created with throwaway addresses from one "
                       "network in 30 minutes")

    def signing_up() -> Iterator[dict[str, Any]]:
        for k in range(25):
            yield m.event("sign_up", signups.start + 70 * k, session=m.session(),
                          address=ip(906, k), agent=CHROME_WIN, user_id=f"throwaway{k}",
                          method="password")
    add(signups, signing_up())

    if hard:
        slow_victim = m.customers[-1]
        slow = Scenario("slow brute force (known miss)", "brute_force", t0 + 1 * HOUR,
                        t0 + 3 * HOUR, {f"account:{slow_victim.id}"},
                        description="one password every 4 minutes on one account for two "
                        "hours: 30 tries, never 10 in one 15-minute window")
        add(slow, (m.event("login_failed", slow.start + 240 * k, session=m.session(),
                           address=ip(907, k), agent=CHROME_WIN, user_id=slow_victim.id,
                           reason="wrong_password") for k in range(30)))
        traveller = Customer("honest-traveller", 124, 5, IPHONE, "DE", "fp_traveller")
        abroad = Scenario("traveller abroad changes address and orders (known false "
                          "positive)", None, t0 + 3 * HOUR, t0 + 3.3 * HOUR,
                          {f"account:{traveller.id}"},
                          description="a customer on holiday: hotel network, usual phone, "
                          "another country; changes the delivery address and orders")

        def travelling() -> Iterator[dict[str, Any]]:
            yield from history(traveller, abroad.start, 4)
            sid = m.session()
            m.rum[sid] = [abroad.start]
            kw = {"session": sid, "address": ip(908, 4), "agent": traveller.agent,
                  "country": "ES", "user_id": traveller.id}
            yield m.event("login", abroad.start, method="password", **kw)
            yield m.event("profile_updated", abroad.start + 60, fields=["address"], **kw)
            yield m.event("purchase", abroad.start + 500, payment_method="card", value=45.0,
                          currency="EUR", transaction_id="traveller-1",
                          card_fingerprint=traveller.card, **kw)
        add(abroad, travelling())

    for s in scenarios:
        events.extend(s.events)
    events.sort(key=lambda e: e["ts"])
    return World(t0, end, events, m.rum, scenarios)


@dataclass
class Score:
    """How the findings compare with the labels."""

    true_positives: list[tuple[Finding, Scenario]]
    false_positives: list[Finding]
    found: dict[str, list[Finding]]  # attack scenario name → findings naming it
    honest_hits: dict[str, list[Finding]]  # honest scenario name → findings naming it

    @property
    def precision(self) -> float:
        total = len(self.true_positives) + len(self.false_positives)
        return len(self.true_positives) / total if total else 1.0

    @property
    def recall(self) -> float:
        return sum(1 for f in self.found.values() if f) / len(self.found) if self.found else 1.0


def score(world: World, findings: list[Finding], grace: float = HOUR) -> Score:
    """A finding is a true positive when an attack scenario of its kind names its subject
    and it was active during the scenario (plus ``grace``, the longest window)."""
    attacks = [s for s in world.scenarios if s.kind is not None]
    honest = [s for s in world.scenarios if s.kind is None]
    tps: list[tuple[Finding, Scenario]] = []
    fps: list[Finding] = []
    found: dict[str, list[Finding]] = {s.name: [] for s in attacks}
    hits: dict[str, list[Finding]] = {s.name: [] for s in honest}
    for f in findings:
        match = next((s for s in attacks if s.kind == f.kind and f.subject in s.subjects
                      and f.last_seen >= s.start and f.first_seen <= s.end + grace), None)
        if match is not None:
            tps.append((f, match))
            found[match.name].append(f)
            continue
        fps.append(f)
        for s in honest:
            if f.subject in s.subjects and f.last_seen >= s.start and f.first_seen <= s.end:
                hits[s.name].append(f)
    return Score(tps, fps, found, hits)


def rum_batches(project_id: int, world: World, size: int = 5000) -> list[EventBatch]:
    """The RUM rows of the sessions whose browsers report it (a page view each), as the
    RUM endpoint would store them, in batches of ``size`` rows."""
    rows = [RumRow(kind="view", ts=t, session_id=sid, page="/")
            for sid, times in world.rum.items() for t in times]
    batches = []
    for i in range(0, len(rows), size):
        batch = EventBatch(project_id, time.time_ns() // 1000, b"[]", 0, [])
        batch.rum = msgspec.json.encode(rows[i:i + size])
        batch.n_rum = len(rows[i:i + size])
        batches.append(batch)
    return batches


def run_watch(runtime: Runtime, world: World, every: float = 600.0) -> Watch:
    """Run the detections over the world's period as ``shopwatch serve`` would (every
    ``every`` seconds of event time), with the built-in rules; the findings are in the
    state store."""
    watch = Watch(runtime.state, runtime.events, lambda: [], lambda n, ids: None)
    at = world.start + every
    while at <= world.end:
        watch.run(at)
        at += every
    return watch
