"""How the demo's shoppers behave: who they are, where they come from, what they do.

Pure and seeded: :func:`plan_visit` turns a random generator into one visit — a persona
and the steps it will take — so a live run (``simulator.py``, over HTTP against the
shop) and the history backfill (``history.py``, straight to events) share one model.
The rates are plausible for a small shop (conversion ~2-3 % of visits, cart abandonment
~70 %), not measured from any real one.

Where shoppers are on the internet: every visit has a public client address
(:func:`address`), from a pool of /24 networks of its country's large access providers
(:data:`ISP_BLOCKS`), picked unevenly so some shoppers share a network. A customer has
a *home* (:func:`home`, derived from the account's e-mail address, so the live shop and
the history agree): the same country, language, device, address and payment cards at
every visit, but for an odd visit from a phone network of the same country. Staff of one
company (:data:`OFFICE_DOMAIN`) all shop from their office's two addresses
(:data:`OFFICE_ADDRESSES`): many accounts, one network, all signing in successfully, the
honest pattern a credential-stuffing detector must not flag. Attackers' networks are in
:mod:`shopwatch.demo.attacks`.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, TypeVar

# (weight, user agent, device category, browser, os): browser and os as the demo shop
# reads them from the user agent (shop/devices.py); Shopwatch's RUM reads the same user
# agents with ua-parser ("Chrome Mobile", "Mobile Safari", "Mac OS X"...).
DEVICES: Final = (
    (26, "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
         "Chrome/124.0.0.0 Safari/537.36", "desktop", "Chrome", "Windows"),
    (4, "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.80", "desktop", "Edge", "Windows"),
    (8, "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like "
        "Gecko) Version/17.4 Safari/605.1.15", "desktop", "Safari", "macOS"),
    (3, "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
     "desktop", "Firefox", "Windows"),
    (2, "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
     "desktop", "Firefox", "Linux"),
    (27, "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
         "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1", "mobile", "Safari", "iOS"),
    (19, "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
         "Chrome/124.0.0.0 Mobile Safari/537.36", "mobile", "Chrome", "Android"),
    (4, "Mozilla/5.0 (Linux; Android 14; SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) "
        "SamsungBrowser/24.0 Chrome/117.0.0.0 Mobile Safari/537.36", "mobile",
     "Samsung Internet", "Android"),
    (7, "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
        "Gecko) Version/17.4 Mobile/15E148 Safari/604.1", "tablet", "Safari", "iPadOS"),
)
# (weight, name, referrer, utm)
SOURCES: Final[tuple[tuple[int, str, str | None, dict[str, str]], ...]] = (
    (30, "direct", None, {}),
    (24, "google organic", "https://www.google.com/", {}),
    (14, "google ads", "https://www.google.com/",
     {"utm_source": "google", "utm_medium": "cpc", "utm_campaign": "winter-sale"}),
    (10, "newsletter", None,
     {"utm_source": "newsletter", "utm_medium": "email", "utm_campaign": "weekly-deals"}),
    (12, "facebook ads", "https://www.facebook.com/",
     {"utm_source": "facebook", "utm_medium": "paid_social", "utm_campaign": "new-arrivals"}),
    (6, "instagram", "https://l.instagram.com/", {}),
    (4, "price comparison", "https://www.idealo.de/",
     {"utm_source": "idealo", "utm_medium": "referral", "utm_campaign": "feed"}),
)
# (weight, country, language)
COUNTRIES: Final = ((32, "FR", "fr-FR"), (22, "DE", "de-DE"), (14, "GB", "en-GB"),
                    (12, "US", "en-US"), (8, "ES", "es-ES"), (7, "IT", "it-IT"),
                    (5, "BE", "fr-BE"))
SEARCH_TERMS: Final = ("coffee", "espresso", "green tea", "grinder", "mug", "filter",
                       "decaf", "kettle", "matcha", "beans", "gift")
SUPPORT_TOPICS: Final = ("delivery", "payment", "return", "product question", "account")
# Cards of the payment sandbox (see shop/payments.py): ordinary cards, declined only by its
# random ~6 %; the second is what a shopper tries after a decline. Every shopper has
# cards of their own (:func:`card`); these two are the default of a bare Persona.
GOOD_CARD: Final = "4242424242424242"
OTHER_CARD: Final = "5555555555554444"
# Issuer prefixes (BINs) of the shoppers' cards: Visa and Mastercard-like, none of the
# sandbox's test cards (4000..., 4100...).
CARD_BINS: Final = ("453201", "491761", "476173", "497010", "535522", "542418", "520082",
                    "513691")

# Consumer access networks per country: /16s of large providers there, as a CDN sees
# shoppers' addresses. Plausible public addresses: none private, shared (100.64/10),
# reserved or for documentation (attackers use those: see attacks.py).
ISP_BLOCKS: Final[dict[str, tuple[str, ...]]] = {
    "FR": ("90.3", "90.24", "86.246", "82.65", "88.170", "109.190", "176.180"),
    "DE": ("79.200", "84.150", "91.64", "93.202", "178.2", "87.123"),
    "GB": ("81.100", "86.128", "92.40", "109.144", "31.48"),
    "US": ("73.15", "98.210", "24.6", "71.190", "108.20", "174.62"),
    "ES": ("83.32", "88.6", "79.144", "95.127"),
    "IT": ("79.30", "93.40", "151.40", "87.10"),
    "BE": ("81.240", "84.192", "91.176", "178.116"),
}
NETWORKS_PER_COUNTRY: Final = 24
# One company's staff shop from work with their work e-mail: one office network (two NAT
# addresses), several accounts signing in from it, successfully.
OFFICE_DOMAIN: Final = "lumen-studio.example"
OFFICE_ADDRESSES: Final = ("80.12.34.10", "80.12.34.11")
OFFICE_SHARE: Final = 0.05  # of new accounts
OFFICE_STAFF: Final = 8  # of the regular customers
REGULARS: Final = 40
ROAMING_SHARE: Final = 0.15  # visits of a customer from another network (a phone's)
_FIRST: Final = ("alex", "sam", "jo", "kim", "lee", "max", "noa", "eli", "ana", "tom",
                 "lea", "ben")
_LAST: Final = ("martin", "weber", "rossi", "dubois", "smith", "garcia", "muller",
                "bernard", "moreau", "bianchi")


def _networks(country: str) -> tuple[str, ...]:
    """The /24s (``a.b.c``) of a country's pool: fixed, drawn once from its blocks."""
    rng = random.Random(f"networks-{country}")
    blocks = ISP_BLOCKS[country]
    chosen: list[str] = []
    while len(chosen) < NETWORKS_PER_COUNTRY:
        net = f"{rng.choice(blocks)}.{rng.randrange(256)}"
        if net not in chosen:
            chosen.append(net)
    return tuple(chosen)


NETWORKS: Final = {country: _networks(country) for country in ISP_BLOCKS}


def address(rng: random.Random, country: str) -> str:
    """A shopper's address in ``country`` (FR's pool for a country without one). The
    first networks of a pool are the busiest: a few /24s hold many shoppers."""
    pool = NETWORKS.get(country) or NETWORKS["FR"]
    net = pool[int(len(pool) * rng.random() ** 2)]
    return f"{net}.{rng.randint(2, 254)}"


def luhn_complete(body: str) -> str:
    """``body`` followed by the Luhn check digit that makes it a valid card number."""
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:  # doubled: the check digit will be the rightmost
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return body + str(-total % 10)


def card(rng: random.Random, bins: Sequence[str] = CARD_BINS) -> str:
    """A valid 16-digit card number on one of ``bins``."""
    body = rng.choice(bins)
    body += "".join(str(rng.randrange(10)) for _ in range(15 - len(body)))
    return luhn_complete(body)


@dataclass(frozen=True)
class Home:
    """Where a customer shops from: country, language, device, address, payment cards."""

    country: str
    language: str
    user_agent: str
    device: str
    browser: str
    os: str
    ip: str
    cards: tuple[str, str]


def home(email: str) -> Home:
    """The :class:`Home` of the account first registered with ``email``: always the same
    for the same address (its own generator), in the live demo as in the history."""
    rng = random.Random(f"home-{email.strip().lower()}")
    if email.strip().lower().endswith("@" + OFFICE_DOMAIN):
        _, ua, device, browser, os_ = weighted(rng, [(d[0], d) for d in DEVICES
                                                     if d[2] == "desktop"])
        country, language, ip = "FR", "fr-FR", rng.choice(OFFICE_ADDRESSES)
    else:
        _, ua, device, browser, os_ = weighted(rng, [(d[0], d) for d in DEVICES])
        country, language = weighted(rng, [(w, (c, lang)) for w, c, lang in COUNTRIES])
        ip = address(rng, country)
    return Home(country, language, ua, device, browser, os_, ip, (card(rng), card(rng)))


def customer_id(email: str) -> str:
    """The opaque id of the demo's account first registered with ``email`` (what the
    shop sends as ``user_id``; never the address): the same in the history as in the
    live shop, for the regular customers it knows from the start."""
    return f"c-{hashlib.sha256(email.strip().lower().encode()).hexdigest()[:12]}"


def regulars(seed: int = 0, count: int = REGULARS) -> list[tuple[str, str, str]]:
    """The shop's customers from before (name, e-mail, password): known to the live
    shop from its start, and to the history from its first day. The first
    :data:`OFFICE_STAFF` work at the office (:data:`OFFICE_DOMAIN`)."""
    rng = random.Random(f"regulars-{seed}")
    found: list[tuple[str, str, str]] = []
    emails: set[str] = set()
    while len(found) < count:
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        if len(found) < OFFICE_STAFF:
            email = f"{first}.{last}@{OFFICE_DOMAIN}"
        else:
            email = f"{first}.{last}{rng.randrange(100, 1000)}@example.net"
        if email in emails:
            continue
        emails.add(email)
        found.append((f"{first.title()} {last.title()}", email,
                      f"pw-{rng.getrandbits(48):012x}"))
    return found

# Visits per hour of day (0-23, shop's local time), relative; and per weekday (Mon=0).
HOURLY: Final = (0.25, 0.15, 0.1, 0.08, 0.08, 0.12, 0.3, 0.55, 0.8, 0.95, 1.05, 1.15,
                 1.35, 1.3, 1.1, 1.0, 1.0, 1.1, 1.3, 1.55, 1.65, 1.45, 1.0, 0.55)
WEEKLY: Final = (0.95, 0.95, 1.0, 1.0, 0.95, 1.1, 1.25)


def seasonality(at: datetime) -> float:
    """The relative visit rate at local time ``at`` (averages ~1 over a week)."""
    return HOURLY[at.hour] * WEEKLY[at.weekday()] / 0.92


T = TypeVar("T")


def weighted(rng: random.Random, options: Sequence[tuple[int, T]]) -> T:
    """One of ``options`` (weight, value), chosen in proportion to the weights."""
    total = sum(w for w, _ in options)
    pick = rng.uniform(0, total)
    for weight, value in options:
        pick -= weight
        if pick <= 0:
            return value
    return options[-1][1]


@dataclass(frozen=True)
class Persona:
    """Who is visiting: device, origin, and (if returning) their account."""

    user_agent: str
    device: str
    browser: str
    os: str
    country: str
    language: str
    source: str
    referrer: str | None
    utm: dict[str, str]
    email: str | None = None  # a returning customer's account
    password: str | None = None
    ip: str = ""  # the client address the shop sees (X-Forwarded-For); "" for none
    cards: tuple[str, str] = (GOOD_CARD, OTHER_CARD)


@dataclass(frozen=True)
class Step:
    """One thing the shopper does. ``kind`` is one of the shop's actions:
    home, category, search, product, add, remove, cart, login, signup, checkout,
    shipping, payment, survey, support, profile, password, refund, cancel."""

    kind: str
    args: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Visit:
    persona: Persona
    steps: tuple[Step, ...]
    think: tuple[float, ...]  # seconds before each step (at speed 1)


@dataclass
class Customers:
    """Accounts (e-mail, password) created by earlier visits, which returning shoppers
    sign in with; ``first_email`` maps an address changed since to the one the account
    was made with (its :func:`home` stays)."""

    accounts: list[tuple[str, str]] = field(default_factory=list)
    first_email: dict[str, str] = field(default_factory=dict)

    def new(self, rng: random.Random) -> tuple[str, str]:
        n = len(self.accounts) + rng.randrange(1_000_000)
        if rng.random() < OFFICE_SHARE:
            email = f"{rng.choice(_FIRST)}.{rng.choice(_LAST)}{n}@{OFFICE_DOMAIN}"
        else:
            email = f"shopper{n}@example.net"
        return email, f"pw-{rng.getrandbits(48):012x}"

    def home_of(self, email: str) -> Home:
        return home(self.first_email.get(email, email))

    def replace(self, email: str, new_email: str | None = None,
                new_password: str | None = None) -> None:
        """The account of ``email`` now has another address and/or password."""
        for i, (known, password) in enumerate(self.accounts):
            if known == email:
                self.accounts[i] = (new_email or known, new_password or password)
                if new_email and new_email != email:
                    self.first_email[new_email] = self.first_email.pop(email, email)
                return

    def remove(self, email: str) -> None:
        """The account is gone for the shoppers (taken over: its owner gave up)."""
        self.accounts = [a for a in self.accounts if a[0] != email]


def persona(rng: random.Random, customers: Customers) -> Persona:
    _, ua, device, browser, os_ = weighted(rng, [(d[0], d) for d in DEVICES])
    country, language = weighted(rng, [(w, (c, lang)) for w, c, lang in COUNTRIES])
    source, referrer, utm = weighted(rng, [(w, (n, r, u)) for w, n, r, u in SOURCES])
    email = password = None
    ip = address(rng, country)
    cards = (card(rng), card(rng))
    if customers.accounts and rng.random() < 0.35:
        email, password = rng.choice(customers.accounts)
        at = customers.home_of(email)
        ua, device, browser, os_ = at.user_agent, at.device, at.browser, at.os
        country, language, cards = at.country, at.language, at.cards
        ip = address(rng, country) if rng.random() < ROAMING_SHARE else at.ip
    return Persona(ua, device, browser, os_, country, language, source, referrer, dict(utm),
                   email, password, ip, cards)


def plan_visit(rng: random.Random, customers: Customers, products: list[str],
               categories: list[str]) -> Visit:
    """One visit: a persona and its steps. Shoppers browse, search, add, abandon at every
    step with plausible rates, buy, and sometimes come back to complain or refund."""
    who = persona(rng, customers)
    steps: list[Step] = []
    landing = "home"
    if who.source in ("facebook ads", "instagram"):
        landing = "category"
    elif who.source in ("google ads", "price comparison"):
        landing = "product"
    if landing == "home":
        steps.append(Step("home"))
    elif landing == "category":
        steps.append(Step("category", {"slug": rng.choice(categories)}))
    else:
        steps.append(Step("product", {"id": rng.choice(products)}))
    if rng.random() < 0.5:  # bounce
        return _visit(rng, who, steps)
    if who.email and rng.random() < 0.7:
        if rng.random() < 0.06:  # mistyped once
            steps.append(Step("login", {"email": who.email, "password": "wrong-" + (
                who.password or "")}))
        steps.append(Step("login", {"email": who.email, "password": who.password}))
    for _ in range(rng.choice((1, 1, 2, 3))):
        if rng.random() < 0.35:
            steps.append(Step("search", {"q": rng.choice(SEARCH_TERMS)}))
        else:
            steps.append(Step("category", {"slug": rng.choice(categories)}))
        for _ in range(rng.choice((1, 1, 2, 3))):
            steps.append(Step("product", {"id": rng.choice(products)}))
    in_cart = [s.args["id"] for s in steps if s.kind == "product"]
    if not in_cart or rng.random() > 0.2:
        return _visit(rng, who, _afterthoughts(rng, who, steps))
    added = rng.sample(in_cart, k=min(len(in_cart), rng.choice((1, 1, 1, 2, 3))))
    for pid in added:
        steps.append(Step("add", {"id": pid, "qty": rng.choice((1, 1, 1, 2, 3))}))
    steps.append(Step("cart"))
    if len(added) > 1 and rng.random() < 0.12:
        steps.append(Step("remove", {"id": added[-1]}))
    if rng.random() > 0.5:  # cart abandoned
        return _visit(rng, who, steps)
    if not who.email and rng.random() < 0.25:
        email, password = customers.new(rng)
        steps.append(Step("signup", {"email": email, "password": password}))
    signed_in = any(s.kind == "login" and s.args["password"] == who.password for s in steps)
    if signed_in and rng.random() < 0.1:  # moved: the new address, then the order
        steps.append(Step("profile", {"fields": ["address"]}))
    steps.append(Step("checkout"))
    if rng.random() > 0.8:
        return _visit(rng, who, steps)
    steps.append(Step("shipping", {"method": rng.choice(("standard", "standard", "express")),
                                   "country": who.country}))
    if rng.random() > 0.85:
        return _visit(rng, who, steps)
    method = "paypal" if rng.random() < 0.22 else "card"
    steps.append(Step("payment", {"method": method, "card": who.cards[0],
                                  "retry_card": who.cards[1] if rng.random() < 0.5 else None}))
    if rng.random() < 0.25:
        kind = rng.choice(("nps", "nps", "csat"))
        score = _score(rng, kind)
        steps.append(Step("survey", {"kind": kind, "score": score,
                                     "comment": survey_comment(rng, kind, score)}))
    if rng.random() < 0.04:
        steps.append(Step("refund"))
    elif rng.random() < 0.01:
        steps.append(Step("cancel"))
    return _visit(rng, who, _afterthoughts(rng, who, steps))


def _afterthoughts(rng: random.Random, who: Persona, steps: list[Step]) -> list[Step]:
    if rng.random() < 0.03:
        steps.append(Step("support", {"topic": rng.choice(SUPPORT_TOPICS),
                                      "channel": rng.choice(("email", "chat", "phone"))}))
    logged_in = any(s.kind in ("login", "signup") for s in steps)
    if logged_in and rng.random() < 0.05:
        steps.append(Step("profile", {"fields": rng.sample(
            ["name", "email", "address", "phone"], k=rng.choice((1, 1, 2)))}))
    if logged_in and rng.random() < 0.01:
        steps.append(Step("password"))
    return steps


# What shoppers write next to a score, by how they feel (about half write nothing).
_COMMENTS: Final = {
    "low": ("The payment page kept failing, I almost gave up.", "Delivery took far too long.",
            "Checkout was very slow.", "Pictures of the products did not load.",
            "Support never answered my e-mail."),
    "mid": ("Fine, but shipping is expensive.", "OK. The site could be faster.",
            "Good products, the checkout is a bit clumsy."),
    "high": ("Fast delivery, great coffee!", "Easy to order, will come back.",
             "Friendly support, quick answer.", "Love the beans, perfect roast."),
}


def survey_comment(rng: random.Random, kind: str, score: int) -> str:
    """A comment to go with ``score`` (empty about half the time)."""
    if rng.random() < 0.5:
        return ""
    low, high = (2, 4) if kind == "csat" else (6, 9)
    band = "low" if score <= low else "high" if score >= high else "mid"
    return rng.choice(_COMMENTS[band])


def _score(rng: random.Random, kind: str) -> int:
    if kind == "csat":
        return weighted(rng, [(4, 1), (5, 2), (12, 3), (35, 4), (44, 5)])
    return weighted(rng, [(3, 0), (2, 2), (4, 4), (6, 6), (12, 7), (20, 8), (25, 9),
                          (28, 10)])


def _visit(rng: random.Random, who: Persona, steps: list[Step]) -> Visit:
    # Think times: seconds before each step, long-tailed like real reading times.
    think = tuple(0.0 if i == 0 else min(120.0, rng.lognormvariate(math.log(8), 0.8))
                  for i in range(len(steps)))
    return Visit(who, tuple(steps), think)
