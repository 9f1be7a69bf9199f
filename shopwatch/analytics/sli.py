"""Service level indicators: each objective's good and total events per bucket.

Contract (docs/kpis.md, "SLIs"; docs/alerts.md, "SLOs"):

- :func:`buckets` cuts ``[start, end)`` (whole epoch seconds) into buckets of ``bucket_s``
  from ``start`` and gives ``(bucket start, good, total)`` for the buckets with traffic,
  in one parametrised query, by event time:

  - ``availability``: check runs that passed ÷ check runs (each location's run counts),
    of the objective's monitors (all without a filter) and ``location``;
  - ``checkout``: orders (``purchase`` events, each ``transaction_id`` counted once, at
    its first event in the range) ÷ checkouts begun (sessions with a ``begin_checkout``,
    each counted once, at its first one in the range; a ``begin_checkout`` without a
    session id counts on its own), ``device`` of each event;
  - ``payment``: orders ÷ (orders + ``payment_declined`` events), ``payment_method`` and
    ``gateway`` of each event (as ``declined_rate``, whose complement it is);
  - ``latency``: RUM page views (a ``view_id``; its metric the largest of its rows, its
    page and device its first row's, its time its first row's) of the page or page group
    with the metric at or under the threshold ÷ page views with that metric.

- **Clamped**: ``good ≤ total`` in every bucket. Only ``checkout`` needs it: an order
  whose checkout began in the bucket before (or before the range) is good, never a
  negative failure, so a bucket with more orders than checkouts is all good.
- **Maintenance windows are left out**: events, page-view rows and check runs whose time
  falls in one of the given ``maintenance`` spans count neither good nor total.
- :func:`tier_state` is a burn tier's reading at ``now`` (whole seconds): buckets as long
  as its short window, aligned to ``now``, over its long window, so the short window is
  exactly the last bucket. :func:`reading` is what the tier's alert rule reads.
- :func:`status` is an objective's figures at ``now``: its counts, SLI and error budget over
  its window, its tiers, and the budget's trend (one point every :func:`trend_step`,
  each the budget of the window ending there, from hourly buckets over two windows).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Self

from shopwatch.alerts.objectives import METRICS, Objective
from shopwatch.alerts.slo import (
    HOUR,
    Bucket,
    BudgetPoint,
    BurnTier,
    ErrorBudget,
    TierState,
    budget_series,
    burn_alerts,
    error_budget,
)
from shopwatch.analytics.alert_series import BUCKET, IN_RANGE, Sql
from shopwatch.analytics.uptime import OUTSIDE, span_params
from shopwatch.analytics.vitals import GROUP_SQL
from shopwatch.store.base import EventStore

Spans = Sequence[tuple[float, float]]  # maintenance: [from, to) in epoch seconds
TREND_POINTS: Final = 120  # about this many points on the budget trend


class _Sql(Sql):
    """:class:`Sql` that can leave out the rows inside maintenance windows."""

    def outside(self, spans: Spans) -> Self:
        """Leave out the rows in maintenance (nothing to add without windows)."""
        return self.add(f"AND {OUTSIDE}", *span_params(spans)) if spans else self


def _sql(project_id: int, o: Objective, start_us: int, end_us: int, bucket_us: int,
         spans: Spans) -> _Sql:
    """Rows ``(b, good, total)`` per bucket ``b`` with data."""
    q = _Sql()
    rng = (project_id, start_us, end_us)
    if o.sli == "availability":
        q.add(f"SELECT {BUCKET} AS b, count(*) FILTER (WHERE ok), count(*) "
              "FROM check_results", start_us, bucket_us)
        q.add(f"WHERE {IN_RANGE}", *rng)
        if o.monitors:
            q.add(f"AND monitor IN ({', '.join('?' for _ in o.monitors)})", *o.monitors)
        if (location := o.text("location")) is not None:
            q.add("AND location = ?", location)
        q.outside(spans).add("GROUP BY b")
    elif o.sli == "checkout":
        # Each order once (its transaction id's first purchase in the range), each
        # checkout once (its session's first begin_checkout in the range).
        q.add(f"""SELECT b, count(*) FILTER (WHERE name = 'purchase'),
       count(*) FILTER (WHERE name = 'begin_checkout')
FROM (SELECT {BUCKET} AS b, name FROM events""", start_us, bucket_us)
        q.add(f"WHERE {IN_RANGE} AND name IN ('purchase', 'begin_checkout')", *rng)
        if (device := o.text("device")) is not None:
            q.add("AND device_category = ?", device)
        q.outside(spans)
        q.add("""QUALIFY row_number() OVER (PARTITION BY name, CASE
          WHEN name = 'purchase' THEN 't:' || COALESCE(transaction_id, 'event:' || id)
          ELSE 's:' || COALESCE(session_id, 'event:' || id) END ORDER BY ts, id) = 1)
GROUP BY b""")
    elif o.sli == "payment":
        q.add(f"""SELECT b, count(*) FILTER (WHERE name = 'purchase'), count(*)
FROM (SELECT {BUCKET} AS b, name, params->>'$.payment_method' AS pm,
             params->>'$.gateway' AS gw FROM events""", start_us, bucket_us)
        q.add(f"WHERE {IN_RANGE} AND name IN ('purchase', 'payment_declined')", *rng)
        q.outside(spans)
        q.add("""QUALIFY name <> 'purchase' OR transaction_id IS NULL OR row_number() OVER (
          PARTITION BY name, transaction_id ORDER BY ts, id) = 1)
WHERE true""")
        if (method := o.text("payment_method")) is not None:
            q.add("AND pm = ?", method)
        if (gateway := o.text("gateway")) is not None:
            q.add("AND gw = ?", gateway)
        q.add("GROUP BY b")
    else:  # latency
        metric = o.metric
        if metric not in METRICS:  # checked when loaded; the column name is SQL
            raise ValueError(f"filter.metric: {metric!r} is not one of {', '.join(METRICS)}")
        q.add(f"""WITH pv AS (
    SELECT view_id, min(ts) AS ts, arg_min(page, ts) AS page,
           arg_min(device_category, ts) AS device, max({metric}_ms) AS v
    FROM rum""")
        q.add(f"    WHERE {IN_RANGE} AND kind IN ('view', 'vitals') AND view_id IS NOT NULL",
              *rng)
        q.outside(spans)
        q.add("    GROUP BY view_id)")
        q.add(f"SELECT {BUCKET} AS b, count(*) FILTER (WHERE v <= ?), count(*)",
              start_us, bucket_us, o.threshold_ms)
        q.add(f"FROM (SELECT *, {GROUP_SQL} AS grp FROM pv) WHERE v IS NOT NULL "
              "AND (page = ? OR grp = ?)", o.text("page"), o.text("page"))
        if (device := o.text("device")) is not None:
            q.add("AND device = ?", device)
        q.add("GROUP BY b")
    return q


def buckets(store: EventStore, project_id: int, objective: Objective, start: int, end: int,
            bucket_s: int, maintenance: Spans = ()) -> list[Bucket]:
    """``(bucket start, good, total)`` of the buckets of ``bucket_s`` from ``start`` to
    ``end`` (epoch seconds; the last bucket may be shorter) that have traffic, in order;
    ``good ≤ total`` (see the module docstring)."""
    if end <= start:
        raise ValueError(f"range: end {end} must be after start {start}")
    if bucket_s <= 0:
        raise ValueError(f"bucket_s: {bucket_s} must be positive")
    q = _sql(project_id, objective, start * 1_000_000, end * 1_000_000, bucket_s * 1_000_000,
             maintenance)
    out = []
    for b, good, total in sorted(store.query(q.text, q.params)):
        if total:
            out.append((float(start + int(b) * bucket_s), float(min(good, total)),
                        float(total)))
    return out


def tier_state(store: EventStore, project_id: int, objective: Objective, tier: BurnTier,
               now: int, maintenance: Spans = ()) -> TierState:
    """The tier's burn rates over ``[now - long, now)`` and ``[now - short, now)``."""
    found = buckets(store, project_id, objective, now - tier.long_s, now, tier.short_s,
                    maintenance)
    return burn_alerts(found, now, objective.ratio, [tier])[0]


def reading(state: TierState) -> float | None:
    """What a tier's alert rule reads: ``min(long burn, short burn)``, which is at or
    above the threshold exactly when both are. A short window without traffic reads 0
    (nothing burns now, so a firing alert resolves); no traffic over the long window is
    no reading (nothing changes)."""
    if state.long_burn is None:
        return None
    return min(state.long_burn, state.short_burn if state.short_burn is not None else 0.0)


def trend_step(window_s: int) -> int:
    """Seconds between the trend's points: the window ÷ :data:`TREND_POINTS`, in whole
    hours (at least one): 6 h for 30 days, 1 h up to 5 days, 18 h for 90 days."""
    return max(1, round(window_s / TREND_POINTS / HOUR)) * HOUR


@dataclass(frozen=True)
class Status:
    """An objective's figures at ``now`` (see :func:`status`)."""

    now: int
    good: float
    total: float
    budget: ErrorBudget | None  # None: no traffic over the window
    tiers: list[TierState]
    trend: list[BudgetPoint]
    step_s: int

    @property
    def value(self) -> float | None:
        """The SLI over the window: good ÷ total (``None`` without traffic)."""
        return self.good / self.total if self.total else None


def status(store: EventStore, project_id: int, objective: Objective, now: int,
           maintenance: Spans = ()) -> Status:
    """The objective's counts and budget over ``[now - window, now)``, its tiers at
    ``now``, and the trend of its budget over the window (a point every step, after
    ``now - window``, up to ``now``; each the budget of the window ending there, counting
    what was stored: points whose window reaches before the first event are partial)."""
    window = objective.window_s
    step = trend_step(window)
    hourly = buckets(store, project_id, objective, now - 2 * window, now, HOUR, maintenance)
    recent = [b for b in hourly if b[0] >= now - window]
    good, total = sum(b[1] for b in recent), sum(b[2] for b in recent)
    # The points end at now; with a window that is not a whole number of steps, the
    # first one is less than a step after the window's start.
    first = now - (window // step) * step
    trend = budget_series(hourly, objective.ratio, window, step, start=first, end=now)
    return Status(
        now=now, good=good, total=total, budget=error_budget(good, total, objective.ratio),
        tiers=[tier_state(store, project_id, objective, tier, now, maintenance)
               for tier in objective.tiers()],
        trend=trend, step_s=step)
