"""Seasonal anomalies: a value against the same time of week over the last N weeks.

Contract (docs/kpis.md, "Alerts: SLOs, burn rates, anomalies, impact"):

- History is a sequence of ``(ts, value)`` buckets (e.g. orders per 10 minutes). A bucket
  with value 0 means "measured, nothing happened"; a *missing* bucket means "unknown"
  (tracking down, data not kept): the caller emits zeros for known-empty buckets.
- :func:`baseline` of the window ``[at - window_s, at)``: for each of the previous
  ``weeks`` weeks ``k`` it aggregates (sum, or mean) the buckets starting in
  ``[at - k*week - window_s, at - k*week)``. Weeks without any bucket there are skipped
  (a holiday with no data). ``expected`` is the **median** of the weekly values and
  ``spread`` their **MAD** scaled by 1.4826 (the standard deviation for normal data), so
  one past incident week barely moves either. Fewer than ``min_weeks`` weeks: ``None``.
- :func:`judge` calls a value anomalous only when **both** hold: the relative change
  ``|observed - expected| / expected`` is ``>= min_change`` (it matters to the business)
  **and** ``|observed - expected| > mad_k * spread`` (it is outside the series' usual
  week-to-week noise). The first alone flags every wobble of a small, noisy series; the
  second alone flags 2 % moves of a very regular one.

Pure functions over plain sequences; no I/O.
"""

from __future__ import annotations

import statistics
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

WEEK_S: Final = 7 * 86400
MAD_SCALE: Final = 1.4826

Point = tuple[float, float]
"""``(ts, value)``: one bucket of a series, starting at ``ts``."""

Aggregate = Literal["sum", "mean"]
Direction = Literal["below", "above", "both"]


class Series:
    """A series sorted by time with prefix sums: any window's sum and count in O(log n).

    Build it once and pass it to :func:`baseline` / :func:`window_value` many times
    (the impact estimate asks for one window per bucket and week).
    """

    def __init__(self, points: Sequence[Point]) -> None:
        rows = sorted(points, key=lambda p: p[0])
        self.ts = [float(t) for t, _ in rows]
        self.sums = [0.0]
        for _, value in rows:
            self.sums.append(self.sums[-1] + float(value))

    def window(self, start: float, end: float) -> tuple[int, float]:
        """(number of buckets, sum of values) of the buckets starting in ``[start, end)``."""
        i, j = bisect_left(self.ts, start), bisect_left(self.ts, end)
        j = max(i, j)
        return j - i, self.sums[j] - self.sums[i]


def _series(history: Sequence[Point] | Series) -> Series:
    return history if isinstance(history, Series) else Series(history)


def window_value(
    history: Sequence[Point] | Series, start: float, end: float, agg: Aggregate = "sum",
) -> float | None:
    """The sum (or mean) of the buckets starting in ``[start, end)``; ``None`` without any."""
    count, total = _series(history).window(start, end)
    if count == 0:
        return None
    return total if agg == "sum" else total / count


def week_values(
    history: Sequence[Point] | Series, at: float, window_s: float, weeks: int = 4,
    agg: Aggregate = "sum",
) -> dict[int, float]:
    """``{k: value of [at - k*week - window_s, at - k*week)}`` for the weeks with data."""
    series = _series(history)
    values = {}
    for k in range(1, weeks + 1):
        end = at - k * WEEK_S
        value = window_value(series, end - window_s, end, agg)
        if value is not None:
            values[k] = value
    return values


@dataclass(frozen=True)
class Baseline:
    """The usual value: the ``expected`` median and the MAD ``spread`` of ``samples``."""

    expected: float
    spread: float
    samples: list[float]
    weeks_used: int


def robust(samples: Sequence[float]) -> tuple[float, float]:
    """(median, MAD * 1.4826) of a non-empty sample."""
    median = statistics.median(samples)
    mad = statistics.median(abs(x - median) for x in samples)
    return median, MAD_SCALE * mad


def baseline(
    history: Sequence[Point] | Series, at: float, window_s: float, weeks: int = 4, *,
    agg: Aggregate = "sum", min_weeks: int = 2,
) -> Baseline | None:
    """The seasonal baseline of ``[at - window_s, at)`` from the previous ``weeks`` weeks.

    ``None`` when fewer than ``min_weeks`` of them have data (not enough history).
    """
    if weeks < 1 or min_weeks < 1 or window_s <= 0:
        raise ValueError("weeks, min_weeks and window_s must be positive")
    samples = list(week_values(history, at, window_s, weeks, agg).values())
    if len(samples) < min_weeks:
        return None
    expected, spread = robust(samples)
    return Baseline(expected, spread, samples, len(samples))


@dataclass(frozen=True)
class Judgement:
    """``observed`` against ``expected``; ``change`` is relative and signed (-0.4: 40 % below).

    ``change`` is ``None`` when ``expected`` is 0 and ``observed`` is not (no ratio).
    """

    anomalous: bool
    observed: float
    expected: float
    spread: float
    change: float | None
    direction: Direction


def judge(
    observed: float, base: Baseline, direction: Direction = "below", *,
    min_change: float = 0.3, mad_k: float = 3.0,
) -> Judgement:
    """Anomalous when ``|change| >= min_change`` and ``|observed - expected| > mad_k * spread``.

    ``direction`` keeps only drops (``below``), only rises (``above``) or both. An
    ``expected`` of 0 has no relative change: any rise from 0 that passes the spread test
    is an anomaly ``above``.
    """
    if min_change < 0 or mad_k < 0:
        raise ValueError("min_change and mad_k must be non-negative")
    expected = base.expected
    delta = observed - expected
    change: float | None
    if expected == 0:
        change = 0.0 if observed == 0 else None
        big = observed != 0
    else:
        change = delta / abs(expected)
        big = abs(change) >= min_change
    outside = abs(delta) > mad_k * base.spread
    wanted = (
        (direction in ("below", "both") and delta < 0)
        or (direction in ("above", "both") and delta > 0)
    )
    return Judgement(big and outside and wanted, observed, expected, base.spread, change,
                     direction)


def _duration(seconds: float) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds >= size and seconds % size == 0:
            n = int(seconds // size)
            return unit if n == 1 else f"{n} {unit}s"
    return f"{seconds:g} seconds"


def describe(judgement: Judgement, metric: str, window_s: float) -> str:
    """A sentence: ``"orders in the last 30 minutes are 40 % below normal"``.

    The percentage is rounded to a whole number. From an expected 0 it gives the values
    (``"… are 12 against a normal of 0"``).
    """
    head = f"{metric} in the last {_duration(window_s)}"
    if judgement.change is None:
        return f"{head} are {judgement.observed:g} against a normal of 0"
    pct = round(abs(judgement.change) * 100)
    if pct == 0:
        return f"{head} are normal"
    side = "below" if judgement.change < 0 else "above"
    return f"{head} are {pct} % {side} normal"
