"""Business impact against the seasonal baseline: hand-computed sums and a synthetic outage."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime

import pytest

from shopwatch.alerts.anomaly import WEEK_S
from shopwatch.alerts.impact import estimate_impact

MONDAY = datetime(2026, 1, 5, tzinfo=UTC).timestamp()  # a Monday, 00:00 UTC
FIVE_MIN = 300
TEN_MIN = 600


def test_hand_computed_netting_range_and_spend() -> None:
    t = MONDAY + 4 * WEEK_S + 86400 + 11 * 3600  # the incident: two 10-minute buckets
    # Weeks 1-4 before, bucket 0: 10, 12, 14, 16; bucket 1: 20, 20, 22, 18.
    past = {0: (10, 12, 14, 16), 1: (20, 20, 22, 18)}
    orders = [(t + b * TEN_MIN - k * WEEK_S, float(v))
              for b, values in past.items() for k, v in enumerate(values, start=1)]
    orders += [(t, 4.0), (t + TEN_MIN, 23.0)]  # observed: 4, then 23 (shoppers came back)
    revenue = [(ts, 10 * v) for ts, v in orders]
    impact = estimate_impact(orders, revenue, t, t + 2 * TEN_MIN, TEN_MIN,
                             spend_per_hour=66.0)
    # expected: median(10, 12, 14, 16) = 13, median(20, 20, 22, 18) = 20 -> 33; observed 27.
    # lost = max(0, (13 - 4) + (20 - 23)) = 6, not 9 + 0 = 9 clipped bucket by bucket.
    o = impact.orders
    assert (o.expected, o.observed, o.lost) == (33.0, 27.0, 6.0)
    # Week scenarios: (10-4)+(20-23)=3, (12-4)+(20-23)=5, (14-4)+(22-23)=9, (16-4)+(18-23)=7.
    # Sorted 3, 5, 7, 9: inclusive quartiles 3 + 0.75 x 2 = 4.5 and 7 + 0.25 x 2 = 7.5.
    assert (o.low, o.high) == (4.5, 7.5)
    assert impact.revenue.lost == 60.0 and impact.revenue.low == 45.0
    # spend: 66 per hour x 20 min = 22; wasted: 22 x 6 / 33 = 4; range 22 x 4.5/33 .. 7.5/33.
    assert impact.spend == pytest.approx(22.0)
    assert impact.wasted_spend == pytest.approx(4.0)
    assert impact.wasted_spend_range == pytest.approx((3.0, 5.0))
    assert [(b.expected_orders, b.observed_orders) for b in impact.buckets] == [
        (13.0, 4.0), (20.0, 23.0)]
    assert impact.buckets_without_baseline == 0


def test_missing_history() -> None:
    t = MONDAY + 4 * WEEK_S
    # Bucket 0 has two past weeks, bucket 1 only one (< min_weeks 2): left out of the sums.
    orders = [(t - WEEK_S, 10.0), (t - 2 * WEEK_S, 14.0), (t + TEN_MIN - WEEK_S, 50.0)]
    impact = estimate_impact(orders, [], t, t + 2 * TEN_MIN, TEN_MIN)
    assert impact.buckets_without_baseline == 1
    assert impact.buckets[1].expected_orders is None
    # Nothing observed (no bucket: 0 during an outage); expected median(10, 14) = 12.
    assert (impact.orders.expected, impact.orders.lost) == (12.0, 12.0)
    # Only weeks 1 and 2 have the bucket: scenarios 10 and 14 -> quartiles 11 and 13.
    assert (impact.orders.low, impact.orders.high) == (11.0, 13.0)
    assert impact.revenue.expected == 0.0 and impact.revenue.lost == 0.0
    assert impact.spend is None and impact.wasted_spend is None
    with pytest.raises(ValueError):
        estimate_impact(orders, [], t, t, TEN_MIN)


def rate(ts: float) -> float:
    """Mean orders per 5 minutes: daily curve (peak 200 at 20:00, floor 40 %), weekend."""
    day = (ts - MONDAY) % 86400 / 86400
    weekday = int((ts - MONDAY) // 86400) % 7
    daily = 0.7 - 0.3 * math.cos(2 * math.pi * (day - 20 / 24))
    return 200 * daily * {5: 0.9, 6: 1.3}.get(weekday, 1.0)


OUTAGE = MONDAY + 4 * WEEK_S + 86400 + 11 * 3600  # Tuesday 11:00 of the fifth week
OUTAGE_END = OUTAGE + 45 * 60


def shop(seed: int) -> tuple[list[tuple[float, float]], list[tuple[float, float]], int, float]:
    """Five weeks of orders and revenue per 5 minutes (Poisson-like counts, order values
    around 60 with sd 20), with 80 % of the orders lost from 11:00 to 11:45 on the last
    Tuesday. Returns the series and the true number and value of the lost orders."""
    rng = random.Random(seed)
    orders, revenue = [], []
    lost_orders, lost_revenue = 0, 0.0
    for i in range(5 * WEEK_S // FIVE_MIN):
        ts = MONDAY + i * FIVE_MIN
        lam = rate(ts)
        n = max(0, round(rng.gauss(lam, math.sqrt(lam))))
        if OUTAGE <= ts < OUTAGE_END:
            values = [max(5.0, rng.gauss(60, 20)) for _ in range(n)]
            kept = [v for v in values if rng.random() >= 0.8]
            lost_orders += n - len(kept)
            lost_revenue += sum(values) - sum(kept)
            n, value = len(kept), sum(kept)
        else:
            value = 60 * n + rng.gauss(0, 20 * math.sqrt(n))
        orders.append((ts, float(n)))
        revenue.append((ts, value))
    return orders, revenue, lost_orders, lost_revenue


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_synthetic_outage_within_10_percent(seed: int) -> None:
    orders, revenue, true_orders, true_revenue = shop(seed)
    assert 1200 < true_orders < 1400  # 45 min x ~182 per 5 min x 80 %
    impact = estimate_impact(orders, revenue, OUTAGE, OUTAGE_END, FIVE_MIN,
                             spend_per_hour=120.0)
    assert impact.orders.lost == pytest.approx(true_orders, rel=0.10)
    assert impact.revenue.lost == pytest.approx(true_revenue, rel=0.10)
    assert impact.orders.low is not None and impact.orders.high is not None
    assert impact.orders.low <= impact.orders.lost <= impact.orders.high
    # 120 per hour x 0.75 h = 90 spent; about 80 % of its orders lost: about 72 wasted.
    assert impact.spend == pytest.approx(90.0)
    assert impact.wasted_spend == pytest.approx(72.0, rel=0.10)
    assert len(impact.buckets) == 9 and impact.buckets_without_baseline == 0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_no_outage_estimates_about_nothing(seed: int) -> None:
    orders, revenue, _, _ = shop(seed)
    start = OUTAGE + 86400 + 4 * 3600  # Wednesday 15:00, a normal afternoon
    impact = estimate_impact(orders, revenue, start, start + 45 * 60, FIVE_MIN)
    # Netted noise only (sd about 3 % of ~1 600 expected orders), never a real loss.
    assert impact.orders.lost <= 0.07 * impact.orders.expected
    assert impact.revenue.lost <= 0.07 * impact.revenue.expected
