"""Customers: who buys, how often, for how much, who stays, what they are worth and what
they cost to win (``GET /api/v1/customers`` and ``/api/v1/customers/list``).

Contract (docs/customers.md; docs/kpis.md, "Customers"). A **customer** is a ``user_id``
with at least one order. Everything is read from the project's raw events up to the end
of the period, ``to``, which is also "now" for recency, tenure, churn and lifetime value,
so a figure recomputed later for the same period does not change.

- **Orders** are counted as in :mod:`shopwatch.analytics.kpis`: a ``purchase`` event,
  one per ``transaction_id`` (its first event: its value, currency, user and source);
  a purchase without a transaction id counts by itself. An order's customer is its
  ``user_id``; orders without one belong to no customer (``orders_without_user``).
- **Money** is converted to the project's currency with the fixed rates of
  :mod:`shopwatch.analytics.currency` (:func:`rate_sql`, as the KPIs do); an amount in a
  currency without a rate counts as 0 and is summed apart in ``unconverted``.
- **Returns**: a ``refund`` takes back its own ``value`` (a partial refund), else its
  order's value; an ``order_cancelled`` takes back its order's value (else its own). A
  return belongs to its order's customer (found by ``transaction_id`` at any time), else
  to its own ``user_id``, and counts when it happens. **Net revenue** = orders' value -
  returns.
- Per customer: first and last order, orders, gross and net revenue, **AOV** (gross ÷
  orders, as the KPIs), **purchase frequency** (orders ÷ months of tenure, a month being
  30.4375 days, tenure ``to - first order`` and at least one month), the **source** of
  the first order, health score, RFM scores and segment, predicted LTV and probability
  alive.

The shop-wide figures, the cohorts, the health score, the segments, the lifetime value
and the acquisition cost are defined in the functions below and in docs/customers.md.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, Final

from shopwatch.analytics.currency import RATES, rate_sql
from shopwatch.analytics.sessions import TS
from shopwatch.analytics.timerange import TimeRange, iso_utc
from shopwatch.errors import BadRequest
from shopwatch.store.base import EventStore
from shopwatch.store.state import Project, StateStore

if TYPE_CHECKING:  # scipy loads with ltv: only when a lifetime value is asked for
    from shopwatch.analytics.ltv import CustomerSummary, Estimate

US: Final = 1_000_000
DAY_US: Final = 86_400 * US
MONTH_DAYS: Final = 30.4375  # an average month: 365.25 / 12
MONTH_US: Final = int(MONTH_DAYS * DAY_US)
LTV_HORIZON_MONTHS: Final = 12
DEFAULT_MONTHS: Final = 12  # calendar months of the cohort and acquisition-cost tables
MAX_MONTHS: Final = 36
COMPONENTS: Final = ("recency", "frequency", "monetary", "satisfaction", "support")
DEFAULT_WEIGHTS: Final = "recency=0.3,frequency=0.2,monetary=0.2,satisfaction=0.2,support=0.1"
SUPPORT_STEP: Final = 0.25  # each support contact takes this off the support component
SEGMENTS: Final = ("champions", "loyal", "new", "at_risk", "hibernating")
SEGMENT_LABELS: Final = {"champions": "Champions", "loyal": "Loyal", "new": "New",
                         "at_risk": "At risk", "hibernating": "Hibernating / lost"}
SORTS: Final = ("net_revenue", "orders", "first_order", "last_order", "aov", "frequency",
                "health", "predicted_ltv", "probability_alive", "user_id")
MAX_LIST: Final = 500


def parse_weights(raw: str) -> dict[str, float]:
    """``"recency=0.3,frequency=0.2,..."`` as weights by component (a component not named
    weighs 0); ValueError naming the fault: an unknown component, a value that is not a
    number from 0 to 100, a component named twice, or no positive weight."""
    weights = dict.fromkeys(COMPONENTS, 0.0)
    seen: set[str] = set()
    for part in raw.split(","):
        if not part.strip():
            continue
        name, sep, value = part.partition("=")
        name = name.strip().lower()
        if not sep or name not in weights:
            raise ValueError(f"{part.strip()!r}: expected <component>=<weight> with a "
                             f"component among {', '.join(COMPONENTS)}")
        if name in seen:
            raise ValueError(f"{name}: named twice")
        seen.add(name)
        try:
            weight = float(value.strip())
        except ValueError:
            raise ValueError(f"{name}: {value.strip()!r} is not a number") from None
        if not 0 <= weight <= 100 or weight != weight:
            raise ValueError(f"{name}: the weight must be from 0 to 100")
        weights[name] = weight
    if sum(weights.values()) <= 0:
        raise ValueError("at least one weight must be above 0")
    return weights


def check_weights(raw: str) -> str:
    """The setting's parser: the text as given, once :func:`parse_weights` accepts it."""
    parse_weights(raw)
    return raw.strip()


# --- reading the events ------------------------------------------------------------------

# Orders of customers up to ``to`` (parameters: project, to, project, to): one row per
# order (first event per transaction id), with its value in the project's currency (NULL
# without a rate), its currency and the acquisition source of its first order: the
# purchase's utm_source, else its session's first event's utm_source, else that event's
# referrer host, else (direct).
_ORDERS: Final = f"""
WITH p AS (
    SELECT user_id, ts, id, transaction_id, value, upper(currency) AS cur, session_id,
           utm_source
    FROM events WHERE project_id = ? AND name = 'purchase' AND ts < {TS}
), o AS (
    SELECT user_id, ts, transaction_id, value, cur, session_id, utm_source FROM p
    WHERE transaction_id IS NULL
    UNION ALL
    SELECT UNNEST(arg_min({{{{'user_id': user_id, 'ts': ts, 'transaction_id': transaction_id,
                             'value': value, 'cur': cur, 'session_id': session_id,
                             'utm_source': utm_source}}}}, (ts, id)))
    FROM p WHERE transaction_id IS NOT NULL GROUP BY transaction_id
), s AS (
    SELECT session_id, arg_min_null(utm_source, ts) AS utm_source,
           arg_min_null(referrer, ts) AS referrer
    FROM events WHERE project_id = ? AND ts < {TS}
      AND session_id IN (SELECT session_id FROM o WHERE session_id IS NOT NULL)
    GROUP BY session_id
)
SELECT o.user_id, epoch_us(o.ts), o.transaction_id, COALESCE(o.value, 0), o.cur,
       {{rate}},
       lower(COALESCE(NULLIF(o.utm_source, ''), NULLIF(s.utm_source, ''),
             NULLIF(lower(regexp_extract(s.referrer, '^[a-z]+://([^/:]+)', 1)), ''),
             '(direct)'))
FROM o LEFT JOIN s USING (session_id)
ORDER BY o.ts, o.transaction_id
"""

# Returns up to ``to`` (parameters: project, to, project): name, customer, time,
# transaction id, amount, currency, rate (see the module docstring).
_RETURNS: Final = f"""
WITH r AS (
    SELECT name, user_id, ts, transaction_id, value, upper(currency) AS cur FROM events
    WHERE project_id = ? AND name IN ('refund', 'order_cancelled') AND ts < {TS}
), o AS (
    SELECT transaction_id, arg_min(user_id, (ts, id)) AS user_id,
           arg_min(value, (ts, id)) AS value, arg_min(upper(currency), (ts, id)) AS cur
    FROM events WHERE project_id = ? AND name = 'purchase'
      AND transaction_id IN (SELECT transaction_id FROM r)
    GROUP BY transaction_id
), m AS (
    SELECT r.name, COALESCE(o.user_id, r.user_id) AS user_id, r.ts, r.transaction_id,
        CASE WHEN r.name = 'refund' AND r.value IS NOT NULL THEN r.value
             ELSE COALESCE(o.value, r.value) END AS value,
        CASE WHEN r.name = 'refund' AND r.value IS NOT NULL THEN r.cur
             ELSE COALESCE(o.cur, r.cur) END AS cur
    FROM r LEFT JOIN o USING (transaction_id)
)
SELECT name, user_id, epoch_us(ts), transaction_id, COALESCE(value, 0), cur, {{rate}}
FROM m WHERE user_id IS NOT NULL
"""

# Survey answers and support contacts of customers up to ``to`` (parameters: project, to).
_SURVEYS: Final = f"""
SELECT user_id, lower(params->>'$.survey'), TRY_CAST(params->>'$.score' AS DOUBLE)
FROM events WHERE project_id = ? AND name = 'survey_response' AND ts < {TS}
  AND user_id IS NOT NULL
"""
_SUPPORT: Final = f"""
SELECT user_id, count(*) FROM events
WHERE project_id = ? AND name = 'support_contact' AND ts < {TS} AND user_id IS NOT NULL
GROUP BY user_id
"""


@dataclass
class Customer:
    """One customer as of ``to`` (module docstring)."""

    user_id: str
    source: str
    first_us: int
    last_us: int = 0
    orders: int = 0
    gross: float = 0.0
    returns: float = 0.0
    order_times: list[int] = field(default_factory=list)
    satisfaction: float | None = None  # 0..1, the mean of the normalised answers
    surveys: int = 0
    contacts: int = 0
    scores: dict[str, int] = field(default_factory=dict)  # recency, frequency, monetary
    health: float = 0.0
    segment: str = ""
    predicted_ltv: float | None = None
    probability_alive: float | None = None

    @property
    def net(self) -> float:
        return self.gross - self.returns

    def tenure_months(self, now_us: int) -> float:
        return max(1.0, (now_us - self.first_us) / MONTH_US)


@dataclass
class Book:
    """Every customer of a project as of ``now_us``, with the orders and returns read."""

    now_us: int
    currency: str
    customers: dict[str, Customer]
    # (user_id, ts_us, transaction_id, converted value) per order of a customer
    orders: list[tuple[str, int, str | None, float]]
    # (user_id, ts_us, transaction_id, converted amount) per return of a customer
    returns: list[tuple[str, int, str | None, float]]
    orders_without_user: list[int]  # times of orders without a user_id
    unconverted: dict[str, float]
    ltv_method: str = "historical"
    ltv_reason: str = ""


def _money(value: float) -> float:
    return round(value, 6)


def read_book(store: EventStore, project: Project, now_us: int) -> Book:
    """Every customer's orders, returns, survey answers and support contacts up to
    ``now_us`` (module docstring)."""
    base = project.currency.upper()
    unconverted: dict[str, float] = {}

    def convert(value: float, cur: str | None, rate: float | None) -> float:
        if rate is None:
            code = cur or base
            unconverted[code] = _money(unconverted.get(code, 0.0) + float(value))
            return 0.0
        return float(value) * float(rate)

    customers: dict[str, Customer] = {}
    orders: list[tuple[str, int, str | None, float]] = []
    anonymous: list[int] = []
    rows = store.query(_ORDERS.format(rate=rate_sql(base, "o.cur")),
                       [project.id, now_us, project.id, now_us])
    for user, ts, txn, value, cur, rate, source in rows:
        ts = int(ts)
        if user is None:
            anonymous.append(ts)
            continue
        money = convert(value, cur, rate)
        c = customers.get(user)
        if c is None:
            c = customers[user] = Customer(user, source or "(direct)", ts)
        c.orders += 1
        c.gross += money
        c.last_us = max(c.last_us, ts)
        c.order_times.append(ts)
        orders.append((user, ts, txn, money))
    returns: list[tuple[str, int, str | None, float]] = []
    for _name, user, ts, txn, value, cur, rate in store.query(
            _RETURNS.format(rate=rate_sql(base)), [project.id, now_us, project.id]):
        c = customers.get(user)
        if c is None:  # a return of someone who never ordered (before to): no customer
            continue
        money = convert(value, cur, rate)
        c.returns += money
        returns.append((user, int(ts), txn, money))
    answers: dict[str, list[float]] = {}
    for user, survey, score in store.query(_SURVEYS, [project.id, now_us]):
        if user not in customers or score is None:
            continue
        if survey == "nps" and 0 <= score <= 10:
            answers.setdefault(user, []).append(score / 10)
        elif survey == "csat" and 1 <= score <= 5:
            answers.setdefault(user, []).append((score - 1) / 4)
    for user, values in answers.items():
        customers[user].satisfaction = sum(values) / len(values)
        customers[user].surveys = len(values)
    for user, n in store.query(_SUPPORT, [project.id, now_us]):
        if user in customers:
            customers[user].contacts = int(n)
    return Book(now_us, base, customers, orders, returns, anonymous, unconverted)


# --- scores, health, segments -------------------------------------------------------------


def quintile_scores(values: Mapping[str, float]) -> dict[str, int]:
    """Scores 1-5 by quintile, higher value higher score: a value's percentile is
    ``(below + equal / 2) / n`` (``below``: values strictly lower; ``equal``: the others
    equal to it, itself included), its score ``min(5, 1 + floor(5 * percentile))``. Ties
    score alike; a lone customer, or all equal, score 3."""
    ordered = sorted(values.values())
    n = len(ordered)
    out: dict[str, int] = {}
    for key, v in values.items():
        below = bisect.bisect_left(ordered, v)
        equal = bisect.bisect_right(ordered, v) - below
        out[key] = min(5, 1 + math.floor(5 * (below + equal / 2) / n))
    return out


def segment_of(orders: int, r: int, f: int, m: int) -> str:
    """The RFM segment (docs/customers.md), the first rule that holds: champions (2+
    orders, R, F and M ≥ 4); loyal (2+ orders, R and F ≥ 3); at risk (2+ orders, R ≤ 2,
    F ≥ 3); new (R ≥ 3: recent, few orders); else hibernating / lost."""
    if orders >= 2 and r >= 4 and f >= 4 and m >= 4:
        return "champions"
    if orders >= 2 and r >= 3 and f >= 3:
        return "loyal"
    if orders >= 2 and r <= 2 and f >= 3:
        return "at_risk"
    if r >= 3:
        return "new"
    return "hibernating"


def health_of(c: Customer, weights: Mapping[str, float]) -> float:
    """0-100: the weighted mean of the components (each 0..1): recency, frequency and
    monetary ``(score - 1) ÷ 4``, satisfaction the customer's mean normalised answer
    (NPS ÷ 10, CSAT (score - 1) ÷ 4), support ``max(0, 1 - 0.25 * contacts)``. Without a
    survey answer, satisfaction is left out and the other weights re-normalised."""
    parts = {"recency": (c.scores["recency"] - 1) / 4,
             "frequency": (c.scores["frequency"] - 1) / 4,
             "monetary": (c.scores["monetary"] - 1) / 4,
             "satisfaction": c.satisfaction,
             "support": max(0.0, 1.0 - SUPPORT_STEP * c.contacts)}
    total = weight = 0.0
    for name, value in parts.items():
        w = weights.get(name, 0.0)
        if value is None or w <= 0:
            continue
        total += w * value
        weight += w
    return round(100 * total / weight, 1) if weight else 0.0


def score(book: Book, weights: Mapping[str, float]) -> None:
    """Fill every customer's RFM scores, segment and health score (as of ``now_us``)."""
    cs = book.customers
    if not cs:
        return
    recency = quintile_scores({u: -(book.now_us - c.last_us) for u, c in cs.items()})
    frequency = quintile_scores({u: float(c.orders) for u, c in cs.items()})
    monetary = quintile_scores({u: c.net for u, c in cs.items()})
    for u, c in cs.items():
        c.scores = {"recency": recency[u], "frequency": frequency[u], "monetary": monetary[u]}
        c.segment = segment_of(c.orders, recency[u], frequency[u], monetary[u])
        c.health = health_of(c, weights)


# --- lifetime value -------------------------------------------------------------------------


def _net_orders(book: Book) -> list[tuple[str, float, float]]:
    """``(user_id, ts epoch seconds, net value)`` per order: its value less the returns
    of its transaction id (a return without one, or of an order not found, is taken off
    the customer's last order). The LTV model's input."""
    by_txn: dict[str, float] = {}
    loose: dict[str, float] = {}
    txns = {t for _, _, t, _ in book.orders if t is not None}
    for user, _ts, txn, amount in book.returns:
        if txn is not None and txn in txns:
            by_txn[txn] = by_txn.get(txn, 0.0) + amount
        else:
            loose[user] = loose.get(user, 0.0) + amount
    out: list[tuple[str, float, float]] = []
    last: dict[str, int] = {}
    for user, ts, txn, value in book.orders:
        net = value - (by_txn.pop(txn, 0.0) if txn is not None else 0.0)
        last[user] = len(out)
        out.append((user, ts / US, net))
    for user, amount in loose.items():
        i = last[user]
        out[i] = (out[i][0], out[i][1], out[i][2] - amount)
    return out


# The fits take a few hundred milliseconds, and the Customers page reads the same book
# twice (figures and list): estimates are kept for the last few distinct inputs.
_ESTIMATES: OrderedDict[bytes, Estimate] = OrderedDict()
_ESTIMATES_KEPT: Final = 8
_ESTIMATES_LOCK = threading.Lock()


def _estimate(summary: CustomerSummary, horizon: float) -> Estimate:
    """``ltv.estimate(summary, horizon=horizon)``, memoised on the summary's values (the
    estimate is a pure function of them)."""
    from shopwatch.analytics import ltv

    digest = hashlib.blake2b(repr((horizon, summary.unit_days, summary.user_ids)).encode(),
                             digest_size=20)
    for values in (summary.frequency, summary.recency, summary.T, summary.monetary_value,
                   summary.average_value):
        digest.update(values.tobytes())
    key = digest.digest()
    with _ESTIMATES_LOCK:
        if key in _ESTIMATES:
            _ESTIMATES.move_to_end(key)
            return _ESTIMATES[key]
    found = ltv.estimate(summary, horizon=horizon)
    with _ESTIMATES_LOCK:
        _ESTIMATES[key] = found
        while len(_ESTIMATES) > _ESTIMATES_KEPT:
            _ESTIMATES.popitem(last=False)
    return found


def lifetime_value(book: Book) -> None:
    """Fill every customer's predicted 12-month LTV and probability alive, and the
    book's method and reason, with :func:`shopwatch.analytics.ltv.estimate` (BG/NBD +
    Gamma-Gamma, or its historical fallback, weeks as the time unit). A customer whose
    orders were all returned has no purchase for the model: predicted LTV 0. The
    probability alive comes from the BG/NBD fit only (``None`` with the fallback)."""
    from shopwatch.analytics import ltv

    if not book.customers:
        return
    summary = ltv.summarize(_net_orders(book), now=book.now_us / US, unit_days=7)
    if not summary.user_ids:
        for c in book.customers.values():
            c.predicted_ltv = 0.0
        book.ltv_method, book.ltv_reason = "historical", "no purchase left after returns"
        return
    est = _estimate(summary, LTV_HORIZON_MONTHS * MONTH_DAYS / 7)
    book.ltv_method, book.ltv_reason = est.method, est.reason
    alive = (ltv.probability_alive(est.bgnbd, summary.frequency, summary.recency, summary.T)
             if est.bgnbd is not None else None)
    for c in book.customers.values():
        c.predicted_ltv = 0.0
    for i, user in enumerate(est.user_ids):
        c = book.customers[user]
        c.predicted_ltv = _money(float(est.value[i]))
        c.probability_alive = None if alive is None else round(float(alive[i]), 6)


# --- shop-wide figures ------------------------------------------------------------------------


def _month(us: int) -> int:
    """Months since year 0 of the UTC calendar month of ``us``."""
    d = datetime.fromtimestamp(us / US, UTC)
    return d.year * 12 + d.month - 1


def _month_name(index: int) -> str:
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def _month_start(index: int) -> date:
    return date(index // 12, index % 12 + 1, 1)


def _ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def kpis(book: Book, rng: TimeRange, churn_days: int) -> dict[str, Any]:
    """The period's customer KPIs (docs/customers.md)."""
    start, end = rng.start_us, rng.end_us
    cs = book.customers.values()
    active = {u for u, ts, _, _ in book.orders if start <= ts < end}
    new = {c.user_id for c in cs if start <= c.first_us < end}
    period_orders = [v for _, ts, _, v in book.orders if start <= ts < end]
    period_returns = sum(v for _, ts, _, v in book.returns if start <= ts < end)
    repeat = sum(1 for c in cs if c.orders >= 2)
    horizon = end - churn_days * DAY_US
    eligible = [c for c in cs if c.first_us <= horizon]
    churned = sum(1 for c in eligible if c.last_us < horizon)
    total = len(book.customers)
    net = sum(period_orders) - period_returns
    return {
        "customers": len(active), "new_customers": len(new),
        "returning_customers": len(active - new),
        "orders": len(period_orders),
        "orders_without_user": sum(1 for ts in book.orders_without_user if start <= ts < end),
        "net_revenue": _money(net),
        "revenue_per_customer": _money(net / len(active)) if active else None,
        "customers_to_date": total, "repeat_customers": repeat,
        "repeat_purchase_rate": _ratio(repeat, total),
        "orders_per_customer": _ratio(sum(c.orders for c in cs), total),
        "purchase_frequency": _ratio(sum(c.orders / c.tenure_months(end) for c in cs), total),
        "churn_days": churn_days, "churn_eligible": len(eligible), "churned": churned,
        "churn_rate": _ratio(churned, len(eligible)),
    }


def cohorts(book: Book, months: int) -> dict[str, Any]:
    """Cohorts by first-order month, the ``months`` calendar months ending with the month
    of ``to``: size, and per month +1, +2... the share of the cohort with an order in
    that calendar month (months not begun by ``to`` are left out; the month of ``to`` is
    counted as far as it has gone)."""
    last = _month(book.now_us - 1)
    first = last - months + 1
    members: dict[int, set[str]] = {}
    for c in book.customers.values():
        m = _month(c.first_us)
        if m >= first:
            members.setdefault(m, set()).add(c.user_id)
    ordered: dict[tuple[int, int], set[str]] = {}
    for user, ts, _, _ in book.orders:
        cohort = _month(book.customers[user].first_us)
        if cohort >= first:
            ordered.setdefault((cohort, _month(ts) - cohort), set()).add(user)
    rows = []
    for m in range(first, last + 1):
        size = len(members.get(m, ()))
        retention = [(len(ordered.get((m, k), ())) / size) if size else None
                     for k in range(1, last - m + 1)]
        rows.append({"month": _month_name(m), "customers": size, "retention": retention})
    return {"months": months, "max_offset": months - 1, "rows": rows}


def segments(book: Book) -> list[dict[str, Any]]:
    """Customers and net revenue per RFM segment, in :data:`SEGMENTS` order."""
    total = len(book.customers)
    revenue = sum(c.net for c in book.customers.values())
    out = []
    for key in SEGMENTS:
        members = [c for c in book.customers.values() if c.segment == key]
        net = sum(c.net for c in members)
        out.append({"segment": key, "label": SEGMENT_LABELS[key], "customers": len(members),
                    "share": _ratio(len(members), total), "net_revenue": _money(net),
                    "revenue_share": _ratio(net, revenue) if revenue > 0 else None,
                    "avg_health": round(sum(c.health for c in members) / len(members), 1)
                    if members else None})
    return out


def ltv_summary(book: Book) -> dict[str, Any]:
    values = [c.predicted_ltv for c in book.customers.values() if c.predicted_ltv is not None]
    alive = [c.probability_alive for c in book.customers.values()
             if c.probability_alive is not None]
    n = len(book.customers)
    return {"method": book.ltv_method, "reason": book.ltv_reason,
            "horizon_months": LTV_HORIZON_MONTHS, "customers": n,
            "average_predicted_ltv": _money(sum(values) / len(values)) if values else None,
            "average_probability_alive": round(sum(alive) / len(alive), 6) if alive else None,
            "average_historical_value": _money(sum(c.net for c in book.customers.values()) / n)
            if n else None}


def acquisition_cost(book: Book, spend: Iterable[Any], months: int) -> dict[str, Any]:
    """CAC by month and channel over the ``months`` calendar months ending with the month
    of ``to``: a new customer is one whose first order is in the month, its channel the
    source of that order; the spend is the uploaded marketing spend of the month whose
    channel (the ad platform as in ``utm_source``) is that source, converted like
    revenue. CAC = spend ÷ new customers. Per channel also LTV:CAC (the average predicted
    LTV of its new customers ÷ its CAC) and the payback month (module docs)."""
    last = _month(book.now_us - 1)
    first = last - months + 1
    base_rate = RATES.get(book.currency)
    cost: dict[tuple[int, str], float] = {}
    unconverted: dict[str, float] = {}
    for row in spend:
        rate = RATES.get(row.currency)
        m = row.day.year * 12 + row.day.month - 1
        if not first <= m <= last:
            continue
        if rate is None or base_rate is None:
            unconverted[row.currency] = _money(unconverted.get(row.currency, 0.0) + row.cost)
            continue
        key = (m, row.channel.lower())
        cost[key] = cost.get(key, 0.0) + row.cost * base_rate / rate
    new: dict[tuple[int, str], list[Customer]] = {}
    for c in book.customers.values():
        m = _month(c.first_us)
        if first <= m <= last:
            new.setdefault((m, c.source), []).append(c)
    rows = []
    for key in sorted(set(cost) | set(new), key=lambda k: (-k[0], k[1])):
        n, spent = len(new.get(key, ())), cost.get(key, 0.0)
        rows.append({"month": _month_name(key[0]), "channel": key[1], "new_customers": n,
                     "spend": _money(spent), "cac": _money(spent / n) if n and spent else None})
    # Net revenue of each new customer per month since the first order, for payback.
    revenue: dict[tuple[str, int], float] = {}
    for user, ts, _, v in book.orders:
        k = (user, _month(ts) - _month(book.customers[user].first_us))
        revenue[k] = revenue.get(k, 0.0) + v
    for user, ts, _, v in book.returns:
        k = (user, _month(ts) - _month(book.customers[user].first_us))
        revenue[k] = revenue.get(k, 0.0) - v

    def channel_row(channel: str, members: list[Customer], spent: float) -> dict[str, Any]:
        n = len(members)
        cac = spent / n if n and spent else None
        ltvs = [c.predicted_ltv for c in members if c.predicted_ltv is not None]
        avg_ltv = sum(ltvs) / len(ltvs) if ltvs else None
        payback = None
        if cac is not None:
            for k in range(0, last - first + 1):
                seen = [c for c in members if _month(c.first_us) + k <= last]
                if not seen:
                    break
                per = sum(sum(revenue.get((c.user_id, j), 0.0) for j in range(k + 1))
                          for c in seen) / len(seen)
                if per >= cac:
                    payback = k
                    break
        return {"channel": channel, "new_customers": n, "spend": _money(spent),
                "cac": _money(cac) if cac is not None else None,
                "avg_ltv": _money(avg_ltv) if avg_ltv is not None else None,
                "ltv_cac": round(avg_ltv / cac, 6) if avg_ltv is not None and cac else None,
                "payback_month": payback}

    channels = sorted({k[1] for k in cost} | {k[1] for k in new})
    by_channel = []
    for ch in channels:
        members = [c for (m, s), cs in new.items() if s == ch for c in cs]
        spent = sum(v for (m, s), v in cost.items() if s == ch)
        by_channel.append(channel_row(ch, members, spent))
    by_channel.sort(key=lambda r: (-r["spend"], -r["new_customers"], r["channel"]))
    everyone = [c for cs in new.values() for c in cs]
    total = channel_row("(all)", everyone, sum(cost.values()))
    out: dict[str, Any] = {"months": months, "from_month": _month_name(first),
                           "to_month": _month_name(last), "by_channel": by_channel,
                           "by_month": rows, "total": total}
    if unconverted:
        out["unconverted_spend"] = unconverted
    return out


def spend_days(book: Book, months: int) -> tuple[date, date]:
    """The first and last day of the months the acquisition-cost table covers."""
    last = _month(book.now_us - 1)
    first_day = _month_start(last - months + 1)
    nxt = last + 1
    return first_day, date.fromordinal(_month_start(nxt).toordinal() - 1)


# --- the whole section ----------------------------------------------------------------------


def load(store: EventStore, project: Project, now_us: int, weights: Mapping[str, float],
         ) -> Book:
    """The book of customers as of ``now_us``, scored and valued."""
    book = read_book(store, project, now_us)
    score(book, weights)
    lifetime_value(book)
    return book


def customers(store: EventStore, state: StateStore, project: Project, rng: TimeRange, *,
              churn_days: int, weights: Mapping[str, float],
              months: int = DEFAULT_MONTHS) -> dict[str, Any]:
    """Every figure of the Customers page but the list (docs/customers.md)."""
    from shopwatch.spend import spend_between

    if not 1 <= months <= MAX_MONTHS:
        raise BadRequest(f"months: from 1 to {MAX_MONTHS}")
    book = load(store, project, rng.end_us, weights)
    first, last = spend_days(book, months)
    spend = spend_between(state, project.id, first, last)
    return {"range": rng.as_dict(), "currency": book.currency, "as_of": iso_utc(book.now_us),
            "weights": dict(weights), "kpis": kpis(book, rng, churn_days),
            "cohorts": cohorts(book, months), "segments": segments(book),
            "ltv": ltv_summary(book), "cac": acquisition_cost(book, spend, months),
            "unconverted": book.unconverted}


def row_of(c: Customer, now_us: int) -> dict[str, Any]:
    return {"user_id": c.user_id, "first_order": iso_utc(c.first_us),
            "last_order": iso_utc(c.last_us), "orders": c.orders,
            "gross_revenue": _money(c.gross), "returns": _money(c.returns),
            "net_revenue": _money(c.net), "aov": _money(c.gross / c.orders),
            "frequency": round(c.orders / c.tenure_months(now_us), 6),
            "days_since_last_order": round((now_us - c.last_us) / DAY_US, 2),
            "source": c.source, "rfm": dict(c.scores), "segment": c.segment,
            "health": c.health, "satisfaction": None if c.satisfaction is None
            else round(c.satisfaction, 6), "surveys": c.surveys,
            "support_contacts": c.contacts, "predicted_ltv": c.predicted_ltv,
            "probability_alive": c.probability_alive}


def customer_list(store: EventStore, project: Project, rng: TimeRange, *,
                  weights: Mapping[str, float], sort: str = "net_revenue",
                  order: str = "desc", segment: str | None = None, limit: int = 50,
                  offset: int = 0) -> dict[str, Any]:
    """Customers as of ``to`` (one row each, :func:`row_of`), sorted by ``sort``
    (:data:`SORTS`; ties by user id), of one ``segment`` if given, ``limit`` from
    ``offset``."""
    if sort not in SORTS:
        raise BadRequest(f"sort: one of {', '.join(SORTS)}")
    if order not in ("asc", "desc"):
        raise BadRequest("order: asc or desc")
    if segment is not None and segment not in SEGMENTS:
        raise BadRequest(f"segment: one of {', '.join(SEGMENTS)}")
    book = load(store, project, rng.end_us, weights)
    rows = [row_of(c, book.now_us) for c in book.customers.values()
            if segment is None or c.segment == segment]
    key = {"first_order": "first_order", "last_order": "last_order"}.get(sort, sort)
    rows.sort(key=lambda r: r["user_id"])
    if sort != "user_id":
        present = [r for r in rows if r[key] is not None]
        missing = [r for r in rows if r[key] is None]
        present.sort(key=lambda r: r[key], reverse=order == "desc")
        rows = present + missing  # no value: last either way
    elif order == "desc":
        rows.reverse()
    return {"as_of": iso_utc(book.now_us), "currency": book.currency, "total": len(rows),
            "sort": sort, "order": order, "segment": segment, "limit": limit,
            "offset": offset, "ltv_method": book.ltv_method,
            "rows": rows[offset:offset + limit]}
