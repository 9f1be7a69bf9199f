"""SLO arithmetic against hand-computed values (the sums are in the comments)."""

from __future__ import annotations

import pytest

from shopwatch.alerts.slo import (
    BURN_TIERS,
    DAY,
    HOUR,
    MINUTE,
    BurnTier,
    Slo,
    TierState,
    budget_series,
    burn_alerts,
    burn_rate,
    error_budget,
)

NOW = 1_700_006_400  # a minute boundary (multiple of 60)


def minutes(n: int, good: int, total: int, end: float = NOW) -> list[tuple[float, int, int]]:
    """``n`` one-minute buckets ending at ``end``, each ``good`` out of ``total``."""
    return [(end - (i + 1) * MINUTE, good, total) for i in range(n)]


def by_name(states: list[TierState]) -> dict[str, TierState]:
    return {s.tier.name: s for s in states}


def test_tiers_are_the_workbooks() -> None:
    assert [(t.severity, t.threshold, t.long_s, t.short_s) for t in BURN_TIERS] == [
        ("page", 14.4, 3600, 300), ("page", 6.0, 21600, 1800), ("ticket", 1.0, 259200, 21600),
    ]
    # 14.4 x 1 h / 720 h = 2 %; 6 x 6 h / 720 h = 5 %; 1 x 72 h / 720 h = 10 % of the budget.
    assert [round(t.budget_share, 6) for t in BURN_TIERS] == [0.02, 0.05, 0.1]


def test_burn_rate_hand_computed() -> None:
    # 144 bad of 10 000 = 1.44 %; / (1 - 0.999) = 0.0144 / 0.001 = 14.4, exactly.
    assert burn_rate(144, 10_000, 0.999) == 14.4
    # 100 % errors at 99.9 %: 1 / 0.001 = 1 000.
    assert burn_rate(50, 50, 0.999) == 1000.0
    # 5 of 1 000 at 99.5 %: 0.005 / 0.005 = 1 (spends the budget exactly over the window).
    assert burn_rate(5, 1000, 0.995) == 1.0
    assert burn_rate(0, 1000, 0.995) == 0.0
    assert burn_rate(0, 0, 0.999) is None  # no traffic


def test_error_budget_hand_computed() -> None:
    # 99.9 % of 10 000: allowed = 0.001 x 10 000 = 10 bad events.
    b = error_budget(9995, 10_000, 0.999)
    assert b is not None
    assert (b.allowed, b.consumed, b.remaining) == (10.0, 5.0, 0.5)  # 1 - 5/10
    spent = error_budget(9990, 10_000, 0.999)
    assert spent is not None and spent.remaining == 0.0  # 1 - 10/10
    over = error_budget(9980, 10_000, 0.999)
    assert over is not None and over.remaining == -1.0  # 1 - 20/10: overspent, negative
    untouched = error_budget(10_000, 10_000, 0.999)
    assert untouched is not None and untouched.remaining == 1.0
    allbad = error_budget(0, 200, 0.995)  # allowed 1, consumed 200: 1 - 200 = -199
    assert allbad is not None and allbad.remaining == -199.0
    assert error_budget(0, 0, 0.999) is None  # no traffic: no budget
    assert Slo(0.999).error_budget(9995, 10_000) == b


@pytest.mark.parametrize("target", [0.0, 1.0, -0.1, 1.5])
def test_target_must_be_inside_0_1(target: float) -> None:
    with pytest.raises(ValueError, match="target"):
        Slo(target)
    with pytest.raises(ValueError, match="target"):
        burn_rate(1, 10, target)


def test_bad_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="exceeds"):
        error_budget(11, 10, 0.99)
    with pytest.raises(ValueError, match="non-negative"):
        burn_alerts([(0, -1, 5)], NOW, 0.99)
    with pytest.raises(ValueError, match="window_s"):
        Slo(0.99, window_s=0)


def clean_3_days() -> list[tuple[float, int, int]]:
    """Three days of one-minute buckets, 10 000 events each, no errors."""
    return minutes(3 * 24 * 60, 10_000, 10_000)


def with_bad(buckets: list[tuple[float, int, int]], since: float, until: float,
             bad: int) -> list[tuple[float, int, int]]:
    return [(ts, total - bad, total) if since <= ts < until else (ts, good, total)
            for ts, good, total in buckets]


def test_fast_tier_fires_at_exactly_14_4() -> None:
    # The last hour: 144 bad of 10 000 a minute = 1.44 % -> burn 14.4 over 1 h and 5 min.
    series = with_bad(clean_3_days(), NOW - HOUR, NOW, 144)
    states = by_name(burn_alerts(series, NOW, 0.999))
    fast = states["fast"]
    assert (fast.long_burn, fast.short_burn, fast.firing) == (14.4, 14.4, True)  # >= fires
    # 6 h: 60 x 144 = 8 640 bad of 360 x 10 000 = 3 600 000 -> 0.0024 / 0.001 = 2.4 < 6.
    medium = states["medium"]
    assert medium.long_burn == pytest.approx(2.4) and medium.short_burn == 14.4
    assert not medium.firing
    # 3 d: 8 640 of 4 320 x 10 000 = 43 200 000 -> 0.0002 / 0.001 = 0.2 < 1.
    assert states["slow"].long_burn == pytest.approx(0.2) and not states["slow"].firing


def test_just_below_threshold_does_not_fire() -> None:
    # 143 bad a minute: 1.43 % / 0.1 % = 14.3 < 14.4.
    series = with_bad(clean_3_days(), NOW - HOUR, NOW, 143)
    fast = by_name(burn_alerts(series, NOW, 0.999))["fast"]
    assert fast.long_burn == pytest.approx(14.3) and not fast.firing


def test_only_the_short_window_hot_does_not_fire() -> None:
    # The last 5 minutes at 5 % errors (500 of 10 000): short burn 0.05 / 0.001 = 50.
    # 1 h: 5 x 500 = 2 500 bad of 600 000 = 0.41667 % -> burn 4.1667 < 14.4: no page.
    # 30 min: 2 500 of 300 000 -> 8.33 >= 6, but 6 h: 2 500 of 3 600 000 -> 0.694 < 6.
    series = with_bad(clean_3_days(), NOW - 5 * MINUTE, NOW, 500)
    states = by_name(burn_alerts(series, NOW, 0.999))
    assert states["fast"].short_burn == pytest.approx(50.0)
    assert states["fast"].long_burn == pytest.approx(25 / 6)
    assert states["medium"].short_burn == pytest.approx(25 / 3)
    assert states["medium"].long_burn == pytest.approx(2500 / 3600)
    assert not any(s.firing for s in states.values())


def test_a_burn_that_stopped_resolves_on_the_short_window() -> None:
    # 288 bad a minute (burn 28.8) from 60 to 10 minutes ago, clean since:
    # 1 h: 50 x 288 = 14 400 of 600 000 = 2.4 % -> 24 >= 14.4, but 5 min: 0 -> not firing.
    series = with_bad(clean_3_days(), NOW - HOUR, NOW - 10 * MINUTE, 288)
    fast = by_name(burn_alerts(series, NOW, 0.999))["fast"]
    assert fast.long_burn == pytest.approx(24.0) and fast.short_burn == 0.0
    assert not fast.firing


def test_slow_burn_opens_a_ticket() -> None:
    # 0.1 % errors for three days at 99.9 %: burn exactly 1 over 3 d and 6 h.
    series = minutes(3 * 24 * 60, 9_990, 10_000)
    states = by_name(Slo(0.999).burn_alerts(series, NOW))
    assert states["slow"].long_burn == 1.0 and states["slow"].short_burn == 1.0
    assert states["slow"].firing
    assert not states["fast"].firing and not states["medium"].firing


def test_no_traffic_never_fires() -> None:
    states = burn_alerts([], NOW, 0.999)
    assert [(s.long_burn, s.short_burn, s.firing) for s in states] == [(None, None, False)] * 3
    # Traffic only older than the short window: long has a burn, short has none.
    series = [(NOW - 30 * MINUTE, 0, 100)]  # 100 % errors 30 minutes ago
    fast = by_name(burn_alerts(series, NOW, 0.999))["fast"]
    assert fast.long_burn == 1000.0 and fast.short_burn is None and not fast.firing


def test_all_errors_fire_every_tier() -> None:
    series = minutes(3 * 24 * 60, 0, 10)
    assert all(s.firing and s.long_burn == 1000.0 for s in burn_alerts(series, NOW, 0.999))


def test_windows_are_half_open() -> None:
    # [now - 5 min, now): the bucket starting at now - 5 min counts, the one at now does not.
    tier = BurnTier("t", "page", 1.0, 300, 300)
    inside = [(NOW - 300, 0, 10)]
    at_now = [(NOW, 0, 10)]
    before = [(NOW - 301, 0, 10)]
    assert burn_alerts(inside, NOW, 0.99, [tier])[0].long_burn == 100.0
    assert burn_alerts(at_now, NOW, 0.99, [tier])[0].long_burn is None
    assert burn_alerts(before, NOW, 0.99, [tier])[0].long_burn is None


def test_budget_series_rolling_window() -> None:
    # Hourly buckets of 100 events at 99 %, a 4-hour window, a point every hour.
    # Bad events per hour: 0, 1, 0, 0, 2, 0, 0, 0.  Allowed = 1 per hour of traffic.
    bad = [0, 1, 0, 0, 2, 0, 0, 0]
    buckets = [(h * HOUR, 100 - b, 100) for h, b in enumerate(bad)]
    points = budget_series(buckets, 0.99, 4 * HOUR, HOUR)
    assert [p.at for p in points] == [h * HOUR for h in range(1, 9)]
    # at 1 h: 0 of 1 -> 1;  2 h: 1 of 2 -> 0.5;  3 h: 1 of 3 -> 2/3;  4 h: 1 of 4 -> 0.75;
    # 5 h: hours 1-4, 3 of 4 -> 0.25;  6 h, 7 h, 8 h: 2 of 4 -> 0.5.
    expected = [1.0, 0.5, 2 / 3, 0.75, 0.25, 0.5, 0.5, 0.5]
    assert [p.remaining for p in points] == pytest.approx(expected)
    assert points[4].budget is not None and points[4].budget.consumed == 3.0


def test_budget_series_gaps_and_bounds() -> None:
    buckets = [(0, 100, 100), (3 * HOUR, 90, 100)]
    points = Slo(0.99, window_s=HOUR).budget_series(buckets, HOUR)
    # end = last start + smallest gap (3 h) = 6 h; hours 2, 3 have no traffic in [at - 1 h, at).
    assert [p.at for p in points] == [h * HOUR for h in range(1, 7)]
    assert [p.remaining for p in points] == [1.0, None, None, -9.0, None, None]
    assert budget_series([], 0.99, HOUR, HOUR) == []
    custom = budget_series(buckets, 0.99, DAY, HOUR, start=0, end=2 * HOUR)
    assert [p.at for p in custom] == [HOUR, 2 * HOUR]
