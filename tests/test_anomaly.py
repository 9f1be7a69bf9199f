"""Seasonal anomalies on crafted series: weekly pattern, noise, incidents, holidays."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime

import pytest

from shopwatch.alerts.anomaly import (
    WEEK_S,
    Baseline,
    Series,
    baseline,
    describe,
    judge,
    window_value,
)

MONDAY = datetime(2026, 1, 5, tzinfo=UTC).timestamp()  # a Monday, 00:00 UTC
TEN_MIN = 600
HALF_HOUR = 1800


def rate(ts: float) -> float:
    """Mean orders per 10 minutes: a daily curve (peak 200 at 20:00, floor 40 %) and a
    weekly one (Sunday +30 %, Saturday -10 %)."""
    day = (ts - MONDAY) % 86400 / 86400
    weekday = int((ts - MONDAY) // 86400) % 7
    daily = 0.7 - 0.3 * math.cos(2 * math.pi * (day - 20 / 24))
    weekly = {5: 0.9, 6: 1.3}.get(weekday, 1.0)
    return 200 * daily * weekly


def poisson(rng: random.Random, lam: float) -> int:
    """Poisson-like counts: the normal approximation, fine for these rates (>= 50)."""
    return max(0, round(rng.gauss(lam, math.sqrt(lam))))


def history(weeks: int = 5, seed: int = 7) -> list[tuple[float, float]]:
    rng = random.Random(seed)
    n = weeks * WEEK_S // TEN_MIN
    return [(MONDAY + i * TEN_MIN, float(poisson(rng, rate(MONDAY + i * TEN_MIN))))
            for i in range(n)]


# Tuesday 14:00 of the fifth week: the window is 13:30-14:00.
AT = MONDAY + 4 * WEEK_S + 86400 + 14 * 3600


def test_a_40_percent_drop_is_detected_with_its_percentage() -> None:
    data = history()
    # The shop loses 40 % of its orders from 13:30 to 14:00 in the last week.
    hit = [(ts, v * 0.6 if AT - HALF_HOUR <= ts < AT else v) for ts, v in data]
    base = baseline(hit, AT, HALF_HOUR)
    assert base is not None and base.weeks_used == 4
    # The model's mean for the window: three 10-minute buckets near 0.73 of the peak.
    expected = sum(rate(AT - HALF_HOUR + i * TEN_MIN) for i in range(3))
    assert base.expected == pytest.approx(expected, rel=0.08)  # median of 4 noisy weeks
    observed = window_value(hit, AT - HALF_HOUR, AT)
    assert observed is not None
    j = judge(observed, base)
    assert j.anomalous and j.change is not None
    # This week's own noise (about 5 % of ~440 orders) rides on the 40 % drop.
    assert j.change == pytest.approx(-0.4, abs=0.1)
    assert j.change == pytest.approx(observed / base.expected - 1)
    pct = round(-j.change * 100)
    assert describe(j, "orders", HALF_HOUR) == (
        f"orders in the last 30 minutes are {pct} % below normal")
    # Exactly 60 % of the usual value reads "40 % below normal".
    exact = judge(0.6 * base.expected, base)
    assert exact.anomalous
    assert describe(exact, "orders", HALF_HOUR) == (
        "orders in the last 30 minutes are 40 % below normal")
    # Without the drop the same window is normal.
    clean = window_value(data, AT - HALF_HOUR, AT)
    assert clean is not None and not judge(clean, base).anomalous


def test_normal_times_are_not_flagged() -> None:
    data = history()
    series = Series(data)  # built once, read 1 006 times
    flagged = []
    # Every 30-minute window of the fifth week, ending Monday 00:30 ... next Monday 00:00.
    for i in range(WEEK_S // TEN_MIN - 2):
        at = MONDAY + 4 * WEEK_S + (i + 3) * TEN_MIN
        base = baseline(series, at, HALF_HOUR)
        observed = window_value(series, at - HALF_HOUR, at)
        assert base is not None and observed is not None
        if judge(observed, base, "both").anomalous:
            flagged.append(at)
    assert flagged == []


def test_one_past_incident_week_barely_moves_the_median() -> None:
    data = history()
    clean = baseline(data, AT, HALF_HOUR)
    # Two weeks ago the shop was down at that time: zero orders.
    incident_end = AT - 2 * WEEK_S
    broken = [(ts, 0.0 if incident_end - HALF_HOUR <= ts < incident_end else v)
              for ts, v in data]
    hurt = baseline(broken, AT, HALF_HOUR)
    assert clean is not None and hurt is not None
    assert 0.0 in hurt.samples and hurt.weeks_used == 4
    # The median of 4 moves from the mean of the middle two to the mean of the lower two
    # of the other three: it stays inside the healthy weeks' range, within a few percent,
    # where a mean drops by a quarter.
    healthy = [v for v in hurt.samples if v != 0.0]
    assert min(healthy) <= hurt.expected <= max(healthy)
    assert hurt.expected == pytest.approx(clean.expected, rel=0.12)
    mean = sum(hurt.samples) / 4
    assert mean < 0.8 * clean.expected
    # The MAD grows (n = 4: the zero becomes one of the two middle deviations) but stays a
    # small fraction of the level, so a real drop still stands out of it.
    assert hurt.spread < 0.25 * hurt.expected
    assert judge(0.5 * clean.expected, hurt).anomalous


def test_a_holiday_without_data_is_skipped() -> None:
    data = history()
    # Three weeks before, the whole day is missing (tracking was off over a holiday).
    day_start = AT - 3 * WEEK_S - 14 * 3600
    holed = [(ts, v) for ts, v in data if not day_start <= ts < day_start + 86400]
    base = baseline(holed, AT, HALF_HOUR)
    full = baseline(data, AT, HALF_HOUR)
    assert base is not None and full is not None
    assert base.weeks_used == 3 and len(base.samples) == 3
    assert sorted(base.samples) == sorted(  # the other three weeks' values, unchanged
        v for k, v in enumerate(full.samples, start=1) if k != 3)


def test_not_enough_history() -> None:
    data = history(weeks=2)  # the window's week plus one before it
    at = MONDAY + WEEK_S + 86400 + 14 * 3600
    assert baseline(data, at, HALF_HOUR) is None  # 1 week < min_weeks 2
    one = baseline(data, at, HALF_HOUR, min_weeks=1)
    assert one is not None and one.weeks_used == 1 and one.spread == 0.0
    assert baseline([], at, HALF_HOUR) is None


def test_median_and_mad_hand_computed() -> None:
    # Samples 10, 20, 30, 40 (weeks 1-4 at 13:30-14:00, one bucket each).
    data = [(AT - k * WEEK_S - TEN_MIN, float(v)) for k, v in zip(range(1, 5), (10, 20, 30, 40),
                                                                      strict=True)]
    base = baseline(data, AT, HALF_HOUR)
    assert base is not None
    # median = (20 + 30) / 2 = 25; |x - 25| = 15, 5, 5, 15 -> median 10 -> x 1.4826 = 14.826
    assert base.expected == 25.0 and base.spread == pytest.approx(14.826)
    mean = baseline(data, AT, HALF_HOUR, agg="mean")
    assert mean is not None and mean.expected == 25.0  # one bucket a week: mean = sum


def test_both_conditions_are_needed() -> None:
    noisy = Baseline(expected=25.0, spread=14.826, samples=[10, 20, 30, 40], weeks_used=4)
    # 15 is 40 % below 25, but |15 - 25| = 10 < 3 x 14.826 = 44.5: within the noise.
    assert not judge(15, noisy).anomalous
    steady = Baseline(expected=100.0, spread=0.7413, samples=[100, 101, 99, 100],
                      weeks_used=4)
    # 97 is outside 3 x 0.7413 = 2.22, but only 3 % below: not worth an alert.
    assert not judge(97, steady).anomalous
    # 60: 40 % below and 40 > 2.22.
    assert judge(60, steady).anomalous
    # exactly min_change (30 % below) counts; the direction filters.
    assert judge(70, steady).anomalous
    assert not judge(69.9, steady, "above").anomalous
    assert judge(140, steady, "above").anomalous
    assert judge(140, steady, "both").anomalous
    assert not judge(140, steady).anomalous  # "below" by default


def test_expected_zero() -> None:
    zero = Baseline(expected=0.0, spread=0.0, samples=[0, 0, 0], weeks_used=3)
    j = judge(12, zero, "above")
    assert j.anomalous and j.change is None
    assert describe(j, "declined payments", 600) == (
        "declined payments in the last 10 minutes are 12 against a normal of 0")
    same = judge(0, zero, "both")
    assert not same.anomalous and same.change == 0.0


def test_describe() -> None:
    base = Baseline(expected=100.0, spread=5.0, samples=[95, 100, 105], weeks_used=3)
    assert describe(judge(60, base), "orders", 1800) == (
        "orders in the last 30 minutes are 40 % below normal")
    assert describe(judge(125, base), "sessions", 3600) == (
        "sessions in the last hour are 25 % above normal")
    assert describe(judge(100.2, base), "orders", 7200) == (
        "orders in the last 2 hours are normal")
