"""The dashboard's navigation: the layers of an e-commerce business and their pages.

Every capability page plugs in here. A page whose capability is not built yet is
listed with ``built=False``: it says so plainly, names what data will fill it, and
shows how much of that data the project already sends (``event_names``), never a
made-up figure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final


@dataclass(frozen=True)
class Page:
    path: str
    title: str
    summary: str  # what the page shows (or will show)
    built: bool = False
    fills_from: str = ""  # for pages not built yet: the data that will fill them
    event_names: tuple[str, ...] = ()  # events already counted on a not-built page
    issue: int | None = None  # the issue that builds it


@dataclass(frozen=True)
class Layer:
    key: str
    title: str
    pages: tuple[Page, ...] = field(default_factory=tuple)


_COMMERCE = ("view_item", "add_to_cart", "begin_checkout", "add_payment_info", "purchase")

LAYERS: Final[tuple[Layer, ...]] = (
    Layer("overview", "Overview", (
        Page("/overview", "Overview",
             "Availability, active sessions, orders and revenue today, conversion, alerts.",
             built=True),
    )),
    Layer("reliability", "Reliability", (
        Page("/reliability/uptime", "Uptime",
             "Whether the shop answers, and how fast: every monitor's status, availability "
             "per day and over 30 and 90 days, response times and incidents.", built=True),
        Page("/reliability/checks", "Checks",
             "Scripted purchase flows (search, cart, checkout, payment), through the API or "
             "in a real browser, step by step: timings, failures and their reasons, Web "
             "Vitals, and screenshots of failures.", built=True),
        Page("/reliability/errors", "Errors",
             "JavaScript errors in shoppers' browsers, grouped, and resources that failed "
             "to load (payment provider, CDN, maps), with the sessions they hit.", built=True),
        Page("/reliability/backend", "Backend",
             "The shop's backend from its OpenTelemetry traces: throughput, error rate and "
             "latency per service and endpoint, the slowest endpoints, database operations "
             "and outgoing calls (the payment provider...) with their share of the time, "
             "backend errors grouped, and each trace as a waterfall of its spans.",
             built=True),
    )),
    Layer("behaviour", "Behaviour", (
        Page("/behaviour/real-users", "Real users",
             "Core Web Vitals and page speed as shoppers experience them.", built=True),
        Page("/behaviour/session-journeys", "Journeys",
             "One visitor at a time: page views, actions, errors and timings in order.",
             built=True),
        Page("/behaviour/funnels", "Funnels",
             "Where shoppers drop between product, cart, checkout and purchase.", built=True),
        Page("/behaviour/journeys", "Sessions",
             "Sessions and visitors: new and returning, bounce, pages, duration, carts.",
             built=True),
        Page("/behaviour/events", "Live events",
             "The latest events received, newest first.", built=True),
    )),
    Layer("marketing", "Marketing", (
        Page("/marketing/sources", "Sources",
             "Sessions, conversion, orders and revenue by channel and traffic source.",
             built=True),
        Page("/marketing/campaigns", "Campaigns",
             "Campaign performance: sessions, conversion, orders and revenue per campaign.",
             built=True),
        Page("/marketing/spend", "Spend",
             "What campaigns cost, what they brought: cost per order, ROAS, wasted spend.",
             built=True),
    )),
    Layer("business", "Business", (
        Page("/business/orders", "Orders",
             "Orders, average order value, items per order, refunds and cancellations.",
             built=True),
        Page("/business/revenue", "Revenue",
             "Gross and net revenue in the shop's currency.", built=True),
        Page("/business/customers", "Customers",
             "Who buys and comes back: new and returning customers, repeat-purchase rate, "
             "cohort retention by first-order month, churn, RFM segments and a health "
             "score, predicted lifetime value, and acquisition cost (CAC, LTV:CAC and "
             "payback) by channel and month; every customer listed.", built=True),
        Page("/business/feedback", "Feedback",
             "NPS and CSAT from survey answers: their trend, by device, country, "
             "first-touch channel and payment method, and the comments, searchable, each "
             "linked to the customer's orders, sessions, JS errors and incidents.",
             built=True),
        Page("/business/service-desk", "Service desk",
             "Contacts by channel, reason and agent: service level against its target, "
             "speed of answer, abandonment, handle time, first-contact resolution and "
             "contacts per 100 orders, per day, and today's service level live.",
             built=True),
    )),
    Layer("security", "Security", (
        Page("/security", "Security",
             "Who is attacking the shop: findings (credential stuffing, brute force, card "
             "testing, account takeover, bots, sign-up abuse) to acknowledge or resolve; "
             "sign-ins and their "
             "failure rate with the networks, user agents and accounts failing most; "
             "accounts per network; declined payments by method, gateway, reason and "
             "card; account changes (e-mail, address, password...); sign-ups by network.",
             built=True),
    )),
    Layer("alerts", "Alerts", (
        Page("/alerts", "Alerts",
             "What is firing now and since when, the alert rules and their state, recent "
             "resolved alerts, and the notification channels with their delivery history.",
             built=True),
        Page("/alerts/incidents", "Incidents",
             "Each incident's timeline of technical and business signals, the orders, "
             "revenue and ad spend it cost, and time to detect and to resolve per week.",
             built=True),
        Page("/alerts/slos", "SLOs",
             "Service level objectives: each SLI against its target, the error budget left "
             "and its trend over the window, and the burn rate of every alert tier.",
             built=True),
        Page("/alerts/reports", "Reports",
             "Technical and business reports of a day or a week, to read here or download "
             "as HTML and PDF, and their schedules: e-mailed every day or every Monday.",
             built=True),
    )),
)

PAGES: Final[dict[str, Page]] = {p.path: p for layer in LAYERS for p in layer.pages}


def layer_of(path: str) -> Layer | None:
    for layer in LAYERS:
        if any(p.path == path for p in layer.pages):
            return layer
    return None
