"""What the browsers of the demo's past shoppers reported: real-user-monitoring history.

:mod:`shopwatch.demo.history` plays past visits straight into the events the shop's
server would have sent; for each visit a :class:`Browsing` makes the rows Shopwatch's
RUM snippet would have stored from that shopper's browser, exactly as
:func:`shopwatch.beacon.parse` makes them from live beacons (:class:`RumRow`):

- ``view`` for every page loaded, with its navigation timings, and ``vitals`` when it
  is left: FCP, LCP, CLS, INP (when the shopper interacted), their elements, the time
  the page was visible;
- ``error``: a few JavaScript error groups (:data:`ERRORS`), each one message, stack
  and source, on the pages and browsers it belongs to (a ``TypeError`` of
  ``checkout.js`` on Safari, another in ``shop.js`` on Chromium browsers, a
  cross-origin ``Script error.``...);
- ``resource``: loads that failed or took over a second — product images from the
  shop's ``/cdn/``, the payment provider's script (:data:`PAYMENT_SDK`) on the payment
  page, the maps script (:data:`MAPS`) of the shipping form.

Distributions are log-normal, shaped after public Chrome UX Report figures, not
measured from any real shop: most page views are good by Google's thresholds (LCP
2.5 s / 4 s, INP 200 / 500 ms, CLS 0.1 / 0.25, FCP 1.8 / 3 s, TTFB 0.8 / 1.8 s) and a
tail is poor. Phones are slower than desktops (longer round trips, slower CPUs), 3G
slower still; pages whose largest paint is a product image have later LCP and more
layout shift; the payment form's interactions are the slowest. Incidents of the past
show as they would have: while the image host is down every product image fails (LCP
falls back to the heading); while checkout is slow its pages' first byte comes 2.5 s
late; while the payment gateway is down its script fails and the checkout code that
needs it throws.

Columns follow the live snippet: ``page`` is the path (the landing page keeps its
``utm_*``), device, browser and operating system are what ua-parser reads from the
visitor's user agent, ``connection`` is set for Chromium browsers only (others have no
``navigator.connection``), ``user_id`` once the shopper signed in (the shop's pages
call ``shopwatch('identify', ...)``). About one visitor in twelve blocks the snippet
(an ad blocker) and reports nothing.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlencode, urlsplit

from msgspec.structs import replace

from shopwatch.beacon import MAX_STACK, RumRow, fingerprint
from shopwatch.demo.model import Persona
from shopwatch.useragent import parse_agent

BLOCKED_SHARE: Final = 0.08
PAYMENT_SDK: Final = "https://js.payments-sandbox.example/v3/sdk.js"
MAPS: Final = "https://maps.googleapis.com/maps/api/js"
CHROMIUM: Final = frozenset({"Chrome", "Chrome Mobile", "Edge", "Samsung Internet"})
SAFARI: Final = frozenset({"Safari", "Mobile Safari"})
SLOW_CHECKOUT_MS: Final = 2500.0  # as the live incident (simulator.py)


@dataclass(frozen=True)
class Device:
    """Medians of one device class: network round trip, first byte to first paint,
    first paint to the largest image, interaction latency; CLS scale; viewports."""

    rtt_ms: float
    render_ms: float
    image_ms: float
    inp_ms: float
    cpu: float
    cls_scale: float
    viewports: tuple[tuple[int, int], ...]


DEVICES: Final = {
    "desktop": Device(28, 430, 420, 52, 1.0, 1.0,
                      ((1920, 947), (1536, 730), (1440, 789), (1366, 657))),
    "tablet": Device(45, 640, 560, 84, 1.5, 1.3, ((810, 1010), (820, 1106), (1024, 1238))),
    "mobile": Device(80, 850, 720, 104, 2.2, 1.7, ((390, 664), (393, 659), (412, 783),
                                                   (360, 664), (384, 740))),
}


@dataclass(frozen=True)
class Page:
    """One kind of page: how long the shop takes to answer it (median), whether its
    largest paint is an image and which element, its layout shift and interactions."""

    server_ms: float
    lcp_image: str | None  # the LCP element when images load (None: text)
    lcp_text: str
    cls_scale: float
    cls_target: str
    inp_scale: float
    inp_targets: tuple[str, ...]


PAGES: Final = {
    "home": Page(95, "a>img", "main>h1", 1.4, "div.grid>div.card", 1.0, ("nav>a", "a>img")),
    "category": Page(110, "a>img", "main>h1", 1.3, "div.grid>div.card", 1.0,
                     ("a>img", "div.card>a")),
    "search": Page(190, "a>img", "main>h1", 1.1, "div.grid>div.card", 1.2,
                   ("form>input", "a>img")),
    "product": Page(105, "div.grid>img", "div>h1", 1.8, "div.grid>div", 1.3,
                    ("form.stack>button", "label>input")),
    "cart": Page(80, None, "main>h1", 0.4, "main>table", 1.1, ("p>a", "form>button.link")),
    "checkout": Page(160, None, "main>h1", 0.6, "div.grid>form.stack", 1.25,
                     ("label>input", "form.stack>button")),
    "payment": Page(140, None, "main>h1", 0.8, "div.grid>div", 1.6,
                    ("form.stack>button", "label>input", "span>input")),
    "order": Page(120, None, "main>h1", 0.4, "main>p", 1.0, ("form.stack>button",)),
    "account": Page(100, None, "main>h1", 0.4, "main>p", 1.0, ("form.stack>button",)),
    "other": Page(90, None, "main>h1", 0.4, "main>p", 1.0, ("form.stack>button",)),
}


def page_kind(path: str) -> str:
    """The :data:`PAGES` key of a path."""
    if path == "/":
        return "home"
    if path.startswith("/c/"):
        return "category"
    if path.startswith("/p/"):
        return "product"
    if path.startswith("/checkout/payment"):
        return "payment"
    if path.startswith("/order/"):
        return "order"
    head = path.split("/", 2)[1]
    return {"search": "search", "cart": "cart", "checkout": "checkout", "login": "account",
            "signup": "account", "account": "account"}.get(head, "other")


@dataclass(frozen=True)
class ErrorGroup:
    """One JavaScript error as browsers report it (``{origin}``: the shop's origin):
    where it happens (page kinds, browsers; ``None``: all) and how often per page view."""

    error_type: str
    message: str
    stack: str | None
    source: str | None
    line: int | None
    col: int | None
    pages: frozenset[str]
    browsers: frozenset[str] | None
    share: float
    mobile_only: bool = False


ERRORS: Final = (
    ErrorGroup("error", "TypeError: undefined is not an object (evaluating "
               "'form.dataset.method')",
               "selectMethod@{origin}/static/checkout.js:41:23\n"
               "init@{origin}/static/checkout.js:88:5", "{origin}/static/checkout.js", 41, 23,
               frozenset({"payment"}), SAFARI, 0.07),
    ErrorGroup("error", "Uncaught TypeError: Cannot read properties of null (reading "
               "'addEventListener')",
               "TypeError: Cannot read properties of null (reading 'addEventListener')\n"
               "    at initGallery ({origin}/static/shop.js:17:9)\n"
               "    at {origin}/static/shop.js:60:1", "{origin}/static/shop.js", 17, 9,
               frozenset({"product"}), CHROMIUM, 0.012),
    ErrorGroup("error", "Script error.", None, None, 0, 0,
               frozenset({"product", "category"}), None, 0.004),
    ErrorGroup("error", "ResizeObserver loop completed with undelivered notifications.",
               None, None, None, None, frozenset(PAGES), CHROMIUM, 0.006, mobile_only=True),
    ErrorGroup("rejection", "Failed to fetch",
               "TypeError: Failed to fetch\n    at submitPayment "
               "({origin}/static/checkout.js:73:11)", None, None, None,
               frozenset({"payment"}), CHROMIUM, 0.004),
)
# When the payment provider's script failed, the checkout code that uses it throws; the
# message is each engine's own.
SDK_MISSING: Final = (
    ErrorGroup("error", "Uncaught ReferenceError: PaymentsSandbox is not defined",
               "ReferenceError: PaymentsSandbox is not defined\n"
               "    at mountCardField ({origin}/static/checkout.js:12:18)",
               "{origin}/static/checkout.js", 12, 18, frozenset({"payment"}), CHROMIUM, 1.0),
    ErrorGroup("error", "ReferenceError: Can't find variable: PaymentsSandbox",
               "mountCardField@{origin}/static/checkout.js:12:18",
               "{origin}/static/checkout.js", 12, 18, frozenset({"payment"}), SAFARI, 1.0),
    ErrorGroup("error", "ReferenceError: PaymentsSandbox is not defined",
               "mountCardField@{origin}/static/checkout.js:12:18",
               "{origin}/static/checkout.js", 12, 18, frozenset({"payment"}), None, 1.0),
)


class _Error:
    """An :class:`ErrorGroup` for one origin, with its fingerprint computed once."""

    def __init__(self, group: ErrorGroup, origin: str) -> None:
        self.group = group
        self.message = group.message
        self.stack = group.stack.format(origin=origin)[:MAX_STACK] if group.stack else None
        self.source = group.source.format(origin=origin) if group.source else None
        self.fingerprint = fingerprint(group.error_type, group.message, self.stack,
                                       self.source)

    def fits(self, browser: str | None, mobile: bool) -> bool:
        g = self.group
        return ((g.browsers is None or browser in g.browsers)
                and (mobile or not g.mobile_only))


class Windows:
    """The past incidents' time windows (epoch seconds) by kind."""

    def __init__(self, incidents: list[tuple[str, float, float]]) -> None:
        self.by_kind: dict[str, list[tuple[float, float]]] = {}
        for kind, start, end in incidents:
            self.by_kind.setdefault(kind, []).append((start, end))

    def active(self, kind: str, at: float) -> bool:
        return any(start <= at < end for start, end in self.by_kind.get(kind, ()))


class Site:
    """What every visit shares: the shop's origin, its images, the incidents, the
    error groups (fingerprinted once) and the counts of rows made."""

    def __init__(self, origin: str, windows: Windows, featured: list[str],
                 by_category: dict[str, list[str]]) -> None:
        self.origin = origin.rstrip("/")
        parts = urlsplit(self.origin)
        self.host = parts.hostname or ""
        self.https = parts.scheme == "https"
        self.windows = windows
        self.featured = featured
        self.by_category = by_category
        self.errors = [_Error(g, self.origin) for g in ERRORS]
        self.sdk_missing = [_Error(g, self.origin) for g in SDK_MISSING]
        self.counts: Counter[str] = Counter()

    def images(self, path: str, kind: str) -> list[str]:
        """The product images a page shows (URLs on the shop's ``/cdn/``)."""
        if kind == "home":
            ids = self.featured
        elif kind == "category":
            ids = self.by_category.get(path[3:], [])
        elif kind == "product":
            ids = [path[3:]]
        else:
            return []
        return [f"{self.origin}/cdn/img/{pid}.svg" for pid in ids]


def _lognormal(rng: random.Random, median: float, sigma: float) -> float:
    return median * math.exp(rng.gauss(0.0, sigma))


class Browsing:
    """The RUM rows of one visit: call :meth:`view` for every page the browser loads,
    in order, then :meth:`rows` once."""

    def __init__(self, rng: random.Random, site: Site, persona: Persona,
                 session_id: str) -> None:
        self.rng = rng
        self.site = site
        self.blocked = rng.random() < BLOCKED_SHARE
        agent = parse_agent(persona.user_agent)
        self.device = DEVICES.get(agent.category, DEVICES["desktop"])
        self.mobile = agent.category in ("mobile", "tablet")
        self.browser = agent.browser
        width, height = rng.choice(self.device.viewports)
        connection = None
        if agent.browser in CHROMIUM:
            connection = "3g" if agent.category == "mobile" and rng.random() < 0.1 else "4g"
        self.slow_network = 2.8 if connection == "3g" else 1.0
        # What every row of the visit carries.
        self.base = RumRow(kind="", ts=0.0, session_id=session_id,
                           device_category=agent.category, browser=agent.browser,
                           browser_version=agent.browser_version, os=agent.os,
                           country=persona.country, viewport_width=width,
                           viewport_height=height, connection=connection)
        self.referrer = persona.referrer
        self.landing_query = "?" + urlencode(persona.utm) if persona.utm else ""
        # (path, navigation start, user id, when the shop was asked for the page)
        self.views: list[tuple[str, float, str | None, float]] = []

    def view(self, path: str, at: float, user_id: str | None = None) -> None:
        """The browser loaded ``path`` at ``at`` (epoch seconds; navigation start), or
        half a second after the page before if that was later."""
        if not self.blocked:
            requested = at
            if self.views:
                at = max(at, self.views[-1][1] + 0.5)
            self.views.append((path, at, user_id, requested))

    def rows(self, until: float) -> list[RumRow]:
        """Every row of the visit stamped before ``until`` (epoch seconds). A page the
        shop was asked for before ``until`` always has its ``view`` row (stamped just
        before ``until`` if its load ended after), so every page view the shop's events
        tell of is seen by the browser too."""
        out: list[RumRow] = []
        views = self.views
        previous: str | None = None
        for i, (path, at, user_id, requested) in enumerate(views):
            left = views[i + 1][1] if i + 1 < len(views) else None
            first = len(out)
            self._page(out, i, path, at, left, user_id, previous)
            previous = path
            if requested < until:
                for j in range(first, len(out)):
                    if out[j].kind == "view" and out[j].ts >= until:
                        out[j] = replace(out[j], ts=until - 0.001)
        kept = [row for row in out if row.ts < until]
        counts = self.site.counts
        for row in kept:
            counts[row.kind] += 1
        return kept

    def _page(self, out: list[RumRow], index: int, path: str, at: float,
              left: float | None, user_id: str | None, previous: str | None) -> None:
        rng, dev, site = self.rng, self.device, self.site
        kind = page_kind(path)
        page = PAGES[kind]
        net = self.slow_network
        view_id = f"{rng.getrandbits(64):x}"
        common = replace(self.base, view_id=view_id, user_id=user_id,
                         page=path + self.landing_query if index == 0 else path)
        # Navigation: a new connection for the first page only.
        dns = tcp = tls = 0.0
        if index == 0:
            dns = 0.0 if rng.random() < 0.3 else round(_lognormal(rng, 18, 0.8))
            tcp = round(_lognormal(rng, dev.rtt_ms * net, 0.4))
            tls = round(_lognormal(rng, dev.rtt_ms * net * 1.3, 0.4)) if site.https else 0.0
        tail = rng.uniform(2.0, 4.0) if rng.random() < 0.04 else 1.0  # a bad load
        ttfb = (dns + tcp + tls + _lognormal(rng, dev.rtt_ms * net, 0.5)
                + _lognormal(rng, page.server_ms, 0.45))
        if kind in ("checkout", "payment") and site.windows.active("slow_checkout", at):
            ttfb += SLOW_CHECKOUT_MS * rng.uniform(0.98, 1.08)
        dom = ttfb + _lognormal(rng, 70 * dev.cpu, 0.4)
        fcp = ttfb + _lognormal(rng, dev.render_ms * net, 0.4) * tail
        images = site.images(path, kind)
        images_down = bool(images) and site.windows.active("image_host_down", at)
        if page.lcp_image is not None and not images_down:
            lcp = fcp + _lognormal(rng, dev.image_ms * net, 0.6) * tail
            lcp_target = page.lcp_image
        else:
            lcp = fcp + rng.uniform(0, 60)
            lcp_target = page.lcp_text
        load = max(lcp, dom) + _lognormal(rng, 90 * dev.cpu, 0.5)
        referrer = self.referrer if index == 0 else f"{site.origin}{previous}"
        out.append(replace(common, kind="view", ts=at + load / 1000, referrer=referrer,
                           spa=False, dns_ms=dns, connect_ms=tcp, tls_ms=tls,
                           ttfb_ms=round(ttfb), dom_interactive_ms=round(dom),
                           load_ms=round(load)))
        # Failed and slow resources, JavaScript errors.
        loaded = at + rng.uniform(0.05, 0.4) + fcp / 1000
        if images_down:
            for url in images:
                out.append(_resource(common, loaded, url, site.host, "img", failed=True,
                                     ms=_lognormal(rng, 40 + dev.rtt_ms, 0.4)))
        elif images and rng.random() < (0.3 if net > 1 else 0.02 if self.mobile else 0.005):
            out.append(_resource(common, loaded, rng.choice(images), site.host, "img",
                                 ms=1000 + _lognormal(rng, 600 * net, 0.7)))
        if kind == "payment":
            self._payment(out, at, loaded, common)
        elif kind == "checkout":
            roll = rng.random()
            if roll < 0.01:  # blocked or unreachable: no address autocomplete
                out.append(_resource(common, loaded, MAPS, "maps.googleapis.com", "script",
                                     failed=True))
            elif roll < 0.07:
                out.append(_resource(common, loaded, MAPS, "maps.googleapis.com", "script",
                                     ms=1000 + _lognormal(rng, 500 * net, 0.8)))
        for error in site.errors:
            if (kind in error.group.pages and rng.random() < error.group.share
                    and error.fits(self.browser, self.mobile)):
                self._error(out, error, loaded + rng.uniform(0, 2), common)
        # Vitals when the page is left (or, for the last page, some time later).
        dwell = (left - at) if left is not None else _lognormal(rng, 25, 0.9)
        dwell = max(0.5, min(dwell, 1800.0))
        interacted = rng.random() < (0.85 if left is not None else 0.3)
        inp = None
        inp_target = None
        if interacted:
            inp_tail = rng.uniform(3.0, 6.0) if rng.random() < 0.03 else 1.0
            inp = round(_lognormal(rng, dev.inp_ms * page.inp_scale, 0.5) * inp_tail)
            inp_target = rng.choice(page.inp_targets)
        cls = 0.0
        cls_target = None
        if rng.random() < 0.45:
            cls = round(_lognormal(rng, 0.035 * page.cls_scale * dev.cls_scale, 0.9), 4)
            cls_target = page.cls_target
        out.append(replace(common, kind="vitals", ts=at + dwell - 0.05, fcp_ms=round(fcp),
                           lcp_ms=round(lcp), cls=cls, inp_ms=inp, lcp_target=lcp_target,
                           cls_target=cls_target, inp_target=inp_target,
                           visible_ms=round(dwell * 1000 * rng.uniform(0.85, 1.0))))

    def _payment(self, out: list[RumRow], at: float, loaded: float,
                 common: RumRow) -> None:
        """The payment provider's script: fails while the gateway is down (and rarely
        otherwise), then the checkout code that needs it throws; sometimes slow."""
        rng = self.rng
        host = urlsplit(PAYMENT_SDK).hostname or ""
        if self.site.windows.active("gateway_errors", at) or rng.random() < 0.003:
            out.append(_resource(common, loaded, PAYMENT_SDK, host, "script", failed=True))
            error = next(e for e in self.site.sdk_missing if e.fits(self.browser, True))
            self._error(out, error, loaded + 0.01, common)
        elif rng.random() < 0.03:
            out.append(_resource(common, loaded, PAYMENT_SDK, host, "script",
                                 ms=1000 + _lognormal(rng, 700 * self.slow_network, 0.7)))

    def _error(self, out: list[RumRow], error: _Error, ts: float,
               common: RumRow) -> None:
        g = error.group
        out.append(replace(common, kind="error", ts=ts, error_type=g.error_type,
                           message=error.message, stack=error.stack, source=error.source,
                           line=g.line, col=g.col, fingerprint=error.fingerprint))


def _resource(common: RumRow, ts: float, url: str, host: str, element: str, *,
              failed: bool = False, ms: float | None = None) -> RumRow:
    """A failed or slow resource load of a page view."""
    return replace(common, kind="resource", ts=ts, resource_url=url, resource_host=host,
                   resource_type=element, duration_ms=None if ms is None else round(ms),
                   failed=failed)
