"""Business impact of an incident: orders and revenue lost, marketing spend wasted.

Contract (docs/kpis.md, "Alerts: SLOs, burn rates, anomalies, impact"):

- The incident ``[start, end)`` is cut into buckets of ``bucket_s``. For each bucket,
  ``observed`` is the sum of the history's buckets starting in it (none: 0, since during
  an outage nothing arrives) and ``expected`` the median of the same bucket in each of
  the previous ``weeks`` weeks that have data (:mod:`shopwatch.alerts.anomaly`). A bucket
  with fewer than ``min_weeks`` such weeks has no baseline and is left out of every sum
  (``buckets_without_baseline`` counts them).
- **Lost** = ``max(0, sum(expected - observed))``: the deficit is netted over the
  incident and clipped once, at the end, not per bucket. Clipping each bucket would turn
  ordinary noise into phantom losses (about 0.4 standard deviations per bucket, so a
  healthy hour would "lose" orders), and an order that slipped from one bucket to the next
  inside the incident was deferred, not lost.
- **Range**: each past week ``k`` with data for every bucket is a scenario, "this week
  would have gone like week k": ``lost_k = max(0, sum(value_k - observed))``. The range
  is the 25th to 75th percentile of the ``lost_k`` (widened to include the estimate); with
  fewer than 2 complete weeks there is no range (``None``). It is an interquartile
  range: the truth falls inside it about half the time, not 95 %.
- **Wasted spend** = ``spend_per_hour * hours * lost_orders / expected_orders`` (clamped to
  ``[0, 1]`` as a share): the paid traffic of the incident that could not convert, in the
  proportion of the orders it should have brought. ``None`` when spend is unknown.

Pure functions over plain sequences; no I/O.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from shopwatch.alerts.anomaly import WEEK_S, Point, Series, week_values


@dataclass(frozen=True)
class BucketImpact:
    """One bucket of the incident: ``expected`` is ``None`` without enough history."""

    start: float
    expected_orders: float | None
    observed_orders: float
    expected_revenue: float | None
    observed_revenue: float


@dataclass(frozen=True)
class Loss:
    """What was lost of one measure: the estimate and its interquartile range."""

    expected: float
    observed: float
    lost: float
    low: float | None
    high: float | None

    @property
    def share(self) -> float:
        """``lost / expected`` in [0, 1] (0 when nothing was expected)."""
        return 0.0 if self.expected <= 0 else min(1.0, self.lost / self.expected)


@dataclass(frozen=True)
class Impact:
    start: float
    end: float
    orders: Loss
    revenue: Loss
    spend: float | None
    wasted_spend: float | None
    wasted_spend_range: tuple[float, float] | None
    buckets: list[BucketImpact]
    buckets_without_baseline: int


def _loss(
    series: Series, starts: list[float], bucket_s: float, weeks: int, min_weeks: int,
) -> tuple[Loss, list[float | None], list[float]]:
    expected: list[float | None] = []
    observed: list[float] = []
    per_week: dict[int, list[float]] = {k: [] for k in range(1, weeks + 1)}
    for b in starts:
        obs = series.window(b, b + bucket_s)[1]
        values = week_values(series, b + bucket_s, bucket_s, weeks)
        observed.append(obs)
        if len(values) < min_weeks:
            expected.append(None)
            continue
        expected.append(statistics.median(values.values()))
        for k in per_week:
            # A week missing this bucket cannot be a whole-incident scenario.
            per_week[k].append(values[k] - obs if k in values else float("nan"))
    used = [(e, o) for e, o in zip(expected, observed, strict=True) if e is not None]
    exp_total = sum(e for e, _ in used)
    obs_total = sum(o for _, o in used)
    lost = max(0.0, exp_total - obs_total)
    scenarios = [max(0.0, sum(d)) for d in per_week.values()
                 if d and all(x == x for x in d)]
    low = high = None
    if len(scenarios) >= 2:
        q1, _, q3 = statistics.quantiles(scenarios, n=4, method="inclusive")
        low, high = min(q1, lost), max(q3, lost)
    return Loss(exp_total, obs_total, lost, low, high), expected, observed


def estimate_impact(
    orders_history: Sequence[Point], revenue_history: Sequence[Point],
    start: float, end: float, bucket_s: float, weeks: int = 4,
    spend_per_hour: float | None = None, *, min_weeks: int = 2,
) -> Impact:
    """Orders and revenue lost in ``[start, end)`` against the seasonal baseline.

    Histories are ``(ts, value)`` buckets (orders, revenue) covering the incident and the
    previous ``weeks`` weeks, at a resolution that divides ``bucket_s``.
    """
    if end <= start or bucket_s <= 0 or weeks < 1 or min_weeks < 1:
        raise ValueError("need start < end and positive bucket_s, weeks, min_weeks")
    if bucket_s > WEEK_S:
        raise ValueError("bucket_s longer than a week")
    if spend_per_hour is not None and spend_per_hour < 0:
        raise ValueError("spend_per_hour must be non-negative")
    starts = []
    b = float(start)
    while b < end:
        starts.append(b)
        b += bucket_s
    orders, exp_o, obs_o = _loss(Series(orders_history), starts, bucket_s, weeks, min_weeks)
    revenue, exp_r, obs_r = _loss(Series(revenue_history), starts, bucket_s, weeks,
                                  min_weeks)
    rows = [BucketImpact(s, eo, oo, er, orr)
            for s, eo, oo, er, orr in zip(starts, exp_o, obs_o, exp_r, obs_r, strict=True)]
    spend = wasted = None
    wasted_range = None
    if spend_per_hour is not None:
        spend = spend_per_hour * (end - start) / 3600
        wasted = spend * orders.share
        if orders.low is not None and orders.high is not None and orders.expected > 0:
            wasted_range = (spend * min(1.0, orders.low / orders.expected),
                            spend * min(1.0, orders.high / orders.expected))
    return Impact(
        start=start, end=end, orders=orders, revenue=revenue, spend=spend,
        wasted_spend=wasted, wasted_spend_range=wasted_range, buckets=rows,
        buckets_without_baseline=sum(e is None for e in exp_o),
    )
