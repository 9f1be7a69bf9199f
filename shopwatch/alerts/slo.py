"""Service level objectives: error budgets and multi-window, multi-burn-rate alerts.

Contract (docs/kpis.md, "Alerts: SLOs, burn rates, anomalies, impact"):

- An SLI is a pair of counts, *good* and *total* events (checks that passed ÷ runs,
  purchases ÷ ``begin_checkout``, payments accepted ÷ attempted, requests faster than a
  bound ÷ requests). ``bad = total - good``.
- An :class:`Slo` is a ``target`` in (0, 1) over a rolling ``window_s``.
- **Error budget** over a window: ``allowed = (1 - target) * total`` bad events;
  ``consumed = bad``; ``remaining = 1 - consumed ÷ allowed`` (1: untouched, 0: spent,
  negative: overspent). No traffic (``total == 0``) has no budget: ``None``.
- **Burn rate**: ``(bad ÷ total) ÷ (1 - target)``; 1 spends the budget exactly over the
  SLO window. ``None`` without traffic.
- **Alerts** (Google SRE workbook, chapter 5, for a 30-day SLO): each tier of
  :data:`BURN_TIERS` fires when the burn rate over its long window **and** over its short
  window are both ``≥`` its threshold. The long window proves the burn is significant,
  the short one that it is still going on (so the alert resolves minutes after the
  burn stops). A window without traffic has no burn rate and never fires.

Everything here is pure: functions take plain sequences of buckets
``(start_ts, good, total)`` at a fixed resolution (e.g. one minute), so the evaluator can
feed them from the event store. A bucket belongs to the window ``[now - w, now)`` when its
*start* is in it, so ``now`` should be a bucket boundary. Arithmetic is exact
(:class:`fractions.Fraction` over the decimal target), so a burn of exactly 14.4 fires a
14.4x tier instead of missing it by a rounding error.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from itertools import pairwise
from typing import Final, Literal

Bucket = tuple[float, float, float]
"""``(start_ts, good, total)``: the SLI's counts for one bucket starting at ``start_ts``."""

MINUTE: Final = 60
HOUR: Final = 3600
DAY: Final = 86400


def _check_target(target: float) -> Fraction:
    if not 0 < target < 1:
        raise ValueError(f"target must be in (0, 1), got {target!r}")
    # str() gives the shortest decimal that round-trips: 0.999 is 999/1000, not the
    # binary float just above it, so 1 - target is exactly 1/1000.
    return Fraction(str(target))


def _check_counts(good: float, total: float) -> None:
    if good < 0 or total < 0:
        raise ValueError(f"counts must be non-negative, got good={good!r} total={total!r}")
    if good > total:
        raise ValueError(f"good ({good!r}) exceeds total ({total!r})")


@dataclass(frozen=True)
class Slo:
    """An objective: ``target`` (e.g. 0.995) of events good over a rolling ``window_s``."""

    target: float
    window_s: float = 30 * DAY

    def __post_init__(self) -> None:
        _check_target(self.target)
        if self.window_s <= 0:
            raise ValueError(f"window_s must be positive, got {self.window_s!r}")

    def error_budget(self, good: float, total: float) -> ErrorBudget | None:
        """The budget of ``good`` out of ``total`` events against this target."""
        return error_budget(good, total, self.target)

    def burn_alerts(
        self, buckets: Sequence[Bucket], now: float,
        tiers: Sequence[BurnTier] | None = None,
    ) -> list[TierState]:
        """:func:`burn_alerts` at this target."""
        return burn_alerts(buckets, now, self.target, tiers)

    def budget_series(
        self, buckets: Sequence[Bucket], step_s: float,
        start: float | None = None, end: float | None = None,
    ) -> list[BudgetPoint]:
        """:func:`budget_series` over this objective's window."""
        return budget_series(buckets, self.target, self.window_s, step_s, start, end)


@dataclass(frozen=True)
class ErrorBudget:
    """``allowed`` bad events, ``consumed`` (the bad ones), ``remaining`` fraction."""

    good: float
    total: float
    allowed: float
    consumed: float
    remaining: float


def error_budget(good: float, total: float, target: float) -> ErrorBudget | None:
    """``allowed = (1 - target) * total``, ``remaining = 1 - bad ÷ allowed``.

    ``None`` when ``total`` is 0 (no traffic: nothing was promised, nothing spent).
    ``remaining`` goes negative when more than the budget was spent.
    """
    t = _check_target(target)
    _check_counts(good, total)
    return _budget(Fraction(good), Fraction(total), t)


def _budget(good: Fraction, total: Fraction, t: Fraction) -> ErrorBudget | None:
    if total == 0:
        return None
    bad = total - good
    allowed = (1 - t) * total
    return ErrorBudget(
        good=float(good), total=float(total), allowed=float(allowed), consumed=float(bad),
        remaining=float(1 - bad / allowed),
    )


def _burn(bad: Fraction, total: Fraction, t: Fraction) -> Fraction | None:
    return None if total == 0 else (bad / total) / (1 - t)


def burn_rate(bad: float, total: float, target: float) -> float | None:
    """``(bad ÷ total) ÷ (1 - target)``; ``None`` when ``total`` is 0.

    At 99.9 %, 1.44 % bad events is a burn of 14.4; 100 % bad is 1 000.
    """
    t = _check_target(target)
    _check_counts(total - bad, total)
    burn = _burn(Fraction(bad), Fraction(total), t)
    return None if burn is None else float(burn)


@dataclass(frozen=True)
class BurnTier:
    """Fire ``severity`` when the burn over ``long_s`` and over ``short_s`` are ≥ ``threshold``.

    ``budget_share`` is the share of a 30-day budget the threshold spends over the long
    window (``threshold * long_s ÷ 30 days``), which is how the workbook picks them.
    """

    name: str
    severity: Literal["page", "ticket"]
    threshold: float
    long_s: int
    short_s: int

    @property
    def budget_share(self) -> float:
        return self.threshold * self.long_s / (30 * DAY)


BURN_TIERS: Final[tuple[BurnTier, ...]] = (
    # 2 % of a 30-day budget in one hour: page.
    BurnTier("fast", "page", 14.4, 1 * HOUR, 5 * MINUTE),
    # 5 % in six hours: page.
    BurnTier("medium", "page", 6.0, 6 * HOUR, 30 * MINUTE),
    # 10 % in three days: ticket.
    BurnTier("slow", "ticket", 1.0, 3 * DAY, 6 * HOUR),
)
"""The SRE workbook's recommended tiers for a 30-day SLO (short window = long ÷ 12)."""


@dataclass(frozen=True)
class TierState:
    """One tier at one time: the burn rates of both windows (``None``: no traffic)."""

    tier: BurnTier
    long_burn: float | None
    short_burn: float | None
    firing: bool


class _Counts:
    """Prefix sums of good and total over buckets sorted by start, for O(log n) windows."""

    def __init__(self, buckets: Iterable[Bucket]) -> None:
        rows = sorted(buckets, key=lambda b: b[0])
        self.starts = [float(b[0]) for b in rows]
        self.good = [Fraction(0)]
        self.total = [Fraction(0)]
        for _, good, total in rows:
            _check_counts(good, total)
            self.good.append(self.good[-1] + Fraction(good))
            self.total.append(self.total[-1] + Fraction(total))

    def window(self, start: float, end: float) -> tuple[Fraction, Fraction]:
        """(good, total) of the buckets starting in ``[start, end)``."""
        i, j = bisect_left(self.starts, start), bisect_left(self.starts, end)
        j = max(i, j)
        return self.good[j] - self.good[i], self.total[j] - self.total[i]


def burn_alerts(
    buckets: Sequence[Bucket], now: float, target: float,
    tiers: Sequence[BurnTier] | None = None,
) -> list[TierState]:
    """Each tier's long- and short-window burn rates at ``now`` and whether it fires.

    Windows are ``[now - long_s, now)`` and ``[now - short_s, now)``; a tier fires when
    both burn rates are ≥ its threshold (an empty window never fires).
    """
    t = _check_target(target)
    counts = _Counts(buckets)
    states = []
    for tier in BURN_TIERS if tiers is None else tiers:
        burns: list[Fraction | None] = []
        for width in (tier.long_s, tier.short_s):
            good, total = counts.window(now - width, now)
            burns.append(_burn(total - good, total, t))
        threshold = Fraction(str(tier.threshold))
        firing = all(b is not None and b >= threshold for b in burns)
        long_burn, short_burn = (None if b is None else float(b) for b in burns)
        states.append(TierState(tier, long_burn, short_burn, firing))
    return states


@dataclass(frozen=True)
class BudgetPoint:
    """The budget of the rolling window ``[at - window_s, at)`` (``None``: no traffic)."""

    at: float
    budget: ErrorBudget | None

    @property
    def remaining(self) -> float | None:
        return None if self.budget is None else self.budget.remaining


def budget_series(
    buckets: Sequence[Bucket], target: float, window_s: float, step_s: float,
    start: float | None = None, end: float | None = None,
) -> list[BudgetPoint]:
    """The remaining error budget over time: one point every ``step_s``.

    Points are at ``start + step_s, start + 2·step_s, …`` up to and including ``end``;
    each is the budget of the rolling window ``[at - window_s, at)``, counting only the
    buckets given (a window reaching before the first bucket is partial). ``start``
    defaults to the first bucket's start, ``end`` to the last bucket's end (its start
    plus the smallest gap between bucket starts, or plus ``step_s`` for a single bucket).
    """
    t = _check_target(target)
    if window_s <= 0 or step_s <= 0:
        raise ValueError("window_s and step_s must be positive")
    counts = _Counts(buckets)
    if not counts.starts:
        return []
    starts = counts.starts
    if start is None:
        start = starts[0]
    if end is None:
        gaps = [b - a for a, b in pairwise(starts) if b > a]
        end = starts[-1] + (min(gaps) if gaps else step_s)
    points = []
    k = 1
    while (at := start + k * step_s) <= end:
        good, total = counts.window(at - window_s, at)
        points.append(BudgetPoint(at, _budget(good, total, t)))
        k += 1
    return points
