"""Funnels: how many sessions go through a sequence of steps, in order (``GET /api/v1/funnel``).

Contract (docs/kpis.md, "Funnel"):

- A step is an event name. A session (or, with ``window_s``, a visitor within that many
  seconds of their first step) *reaches* step 1 with its first event of that name in the
  period, and step *i* with its first event of that name at or after the time it
  reached step *i-1*. Counting is by session key (:mod:`shopwatch.analytics.sessions`).
- ``count`` is how many reached the step; ``conversion`` is ``count / count of step 1``;
  ``dropped`` is how many reached the previous step but not this one, ``drop_off`` that
  as a share of the previous step's count (0 for step 1); ``median_seconds`` is the
  median time from the previous step.
- Breakdowns group by an attribute of the session's first event in the period:
  ``device``, ``browser``, ``country``, ``source`` (``utm_source``, else the referrer's
  host, else ``(direct)``) or ``landing_page``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from shopwatch.analytics.rollup import STEP_NAMES, prelude, session_states, state_params
from shopwatch.analytics.sessions import sessionized_sql
from shopwatch.analytics.timerange import TimeRange
from shopwatch.errors import BadRequest
from shopwatch.store.base import EventStore

DEFAULT_STEPS: Final = ("view_item", "add_to_cart", "begin_checkout", "add_payment_info",
                        "purchase")
MAX_STEPS: Final = 10
DIMENSIONS: Final[dict[str, str]] = {
    "device": "device_category",
    "browser": "browser",
    "country": "country",
    "source": "COALESCE(utm_source, regexp_extract(referrer, '^[a-z]+://([^/:]+)', 1), "
              "'(direct)')",
    "landing_page": "page",
}
# The same attributes in session states (the rollup keeps them per session).
STATE_DIMENSIONS: Final[dict[str, str]] = {
    "device": "device", "browser": "browser", "country": "country", "source": "source",
    "landing_page": "landing_page"}


def parse_steps(raw: str | None) -> list[str]:
    """``a,b,c`` into step names (default :data:`DEFAULT_STEPS`); 400 naming ``steps``."""
    if not raw:
        return list(DEFAULT_STEPS)
    steps = [s.strip() for s in raw.split(",") if s.strip()]
    if not 2 <= len(steps) <= MAX_STEPS:
        raise BadRequest(f"steps: give 2 to {MAX_STEPS} event names, comma-separated")
    for step in steps:
        if len(step) > 64 or not all(c.isalnum() or c in "_-." for c in step):
            raise BadRequest(f"steps: {step!r} is not an event name")
    return steps


def _chain_sql(n: int, window: bool) -> str:
    """CTEs f1..fn: for each key, when it reached each step (and its first step, t0)."""
    parts = ["f1 AS (SELECT k, min(ts) AS t, min(ts) AS t0 FROM e WHERE name = ? GROUP BY k)"]
    for i in range(2, n + 1):
        limit = " AND e.ts <= p.t0 + to_seconds(?::DOUBLE)" if window else ""
        parts.append(
            f"f{i} AS (SELECT e.k, min(e.ts) AS t, any_value(p.t0) AS t0 FROM e "
            f"JOIN f{i - 1} p ON e.k = p.k AND e.ts >= p.t{limit} "
            f"WHERE e.name = ? GROUP BY e.k)")
    return ",\n".join(parts)


def _params(steps: Sequence[str], window_s: float | None) -> list[Any]:
    out: list[Any] = [steps[0]]
    for step in steps[1:]:
        if window_s is not None:
            out.append(window_s)
        out.append(step)
    return out


def _key(window: bool) -> str:
    # Within a window, a visitor may reach the steps over several sessions.
    return "COALESCE(visitor, sk)" if window else "sk"


def _counts_sql(n: int, window: bool, dimension: str | None) -> str:
    dim = DIMENSIONS[dimension] if dimension else "NULL"
    selects = []
    for i in range(1, n + 1):
        gap = ("NULL" if i == 1 else
               f"(SELECT median(epoch(f{i}.t) - epoch(f{i - 1}.t)) FROM f{i} "
               f"JOIN f{i - 1} USING (k) JOIN d d2 USING (k) WHERE d2.dim IS NOT DISTINCT FROM "
               f"d.dim)")
        selects.append(f"SELECT {i} AS step, d.dim, count(*) AS n, {gap} AS gap "
                       f"FROM f{i} JOIN d USING (k) GROUP BY d.dim")
    return f"""
WITH {sessionized_sql()},
e AS (SELECT {_key(window)} AS k, name, ts FROM ev WHERE {_key(window)} IS NOT NULL),
d AS (SELECT {_key(window)} AS k, arg_min({dim}, ts) AS dim FROM ev
      WHERE {_key(window)} IS NOT NULL GROUP BY 1),
{_chain_sql(n, window)}
{" UNION ALL ".join(selects)}
"""


def _state_sql(steps: Sequence[str], dimension: str | None, rollup: bool) -> str:
    """The funnel from session states (steps of :data:`rollup.STEP_NAMES` only, no
    window): the same rows as :func:`_counts_sql`. Step *i* is reached at the first time
    of its name at or after step *i-1*: the name's first time if that is late enough,
    else the first of all its times that is (kept only when there are several)."""
    col = {name: f"s{i}" for i, name in enumerate(STEP_NAMES, start=1)}
    reached = [f"{col[steps[0]]} AS t1"]
    for i, name in enumerate(steps[1:], start=2):
        first, every, prev = col[name], f"{col[name]}_all", f"t{i - 1}"
        reached.append(
            f"CASE WHEN {first} >= {prev} THEN {first} WHEN {every} IS NULL THEN NULL "
            f"ELSE list_min(list_filter({every}, lambda x: x >= {prev})) END AS t{i}")
    # Each CTE adds one step's time: t{i} depends on t{i-1}.
    chain = [f"c1 AS (SELECT *, {reached[0]} FROM st WHERE {col[steps[0]]} IS NOT NULL)"]
    for i in range(2, len(steps) + 1):
        chain.append(f"c{i} AS (SELECT *, {reached[i - 1]} FROM c{i - 1})")
    dim = STATE_DIMENSIONS[dimension] if dimension else "NULL"
    # One aggregate for every step (one pass over the sessions): dim, n1..nk, g2..gk.
    counts = ", ".join(f"count(t{i})" for i in range(1, len(steps) + 1))
    gaps = ", ".join(f"median(epoch(t{i}) - epoch(t{i - 1}))" for i in range(2, len(steps) + 1))
    needed = [c for name in steps for c in (col[name], f"{col[name]}_all")]
    if dimension:
        needed.append(STATE_DIMENSIONS[dimension])
    return f"""
WITH {session_states(rollup=rollup, columns=needed)},
{", ".join(chain)}
SELECT {dim} AS dim, {counts}, {gaps} FROM c{len(steps)} GROUP BY 1
"""


def _unpivot(rows: list[tuple[Any, ...]], n: int) -> list[tuple[Any, ...]]:
    """Rows of :func:`_state_sql` as those of :func:`_counts_sql`: (step, dim, n, gap)."""
    out = []
    for row in rows:
        for i in range(1, n + 1):
            if row[i]:
                out.append((i, row[0], row[i], row[n + i - 1] if i > 1 else None))
    return out


def _steps_out(steps: Sequence[str], counts: dict[int, int],
               gaps: dict[int, float | None]) -> list[dict[str, Any]]:
    out = []
    first = counts.get(1, 0)
    for i, name in enumerate(steps, start=1):
        count = counts.get(i, 0)
        before = counts.get(i - 1, 0) if i > 1 else count
        out.append({
            "name": name, "count": count,
            "conversion": count / first if first else None,
            "dropped": before - count if i > 1 else 0,
            "drop_off": (before - count) / before if i > 1 and before else (0.0 if i == 1
                                                                           else None),
            "median_seconds": gaps.get(i),
        })
    return out


def funnel(store: EventStore, project_id: int, rng: TimeRange, steps: Sequence[str], *,
           window_s: float | None = None, by: str | None = None,
           compare: bool = True, rollup: bool = True) -> dict[str, Any]:
    """The funnel of ``steps`` over ``rng`` (see the module docstring).

    Within a session and with steps among :data:`rollup.STEP_NAMES`, it is computed
    from session states (read through the rollup unless ``rollup=False``); otherwise
    from raw events.
    """
    if by is not None and by not in DIMENSIONS:
        raise BadRequest(f"by: one of {', '.join(DIMENSIONS)}")
    window = window_s is not None
    from_states = not window and all(step in STEP_NAMES for step in steps)

    def rows_of(r: TimeRange, dimension: str | None) -> list[tuple[Any, ...]]:
        if from_states:
            return _unpivot(store.query(
                _state_sql(steps, dimension, rollup),
                state_params(project_id, r.start_us, r.end_us, rollup=rollup),
                prelude=prelude(project_id) if rollup else None), len(steps))
        return store.query(_counts_sql(len(steps), window, dimension),
                           [project_id, r.start_us, r.end_us, *_params(steps, window_s)])

    def run(r: TimeRange) -> tuple[dict[int, int], dict[int, float | None]]:
        counts: dict[int, int] = {}
        gaps: dict[int, float | None] = {}
        for step, _dim, n, gap in rows_of(r, None):
            counts[int(step)] = int(n)
            gaps[int(step)] = float(gap) if gap is not None else None
        return counts, gaps

    counts, gaps = run(rng)
    result: dict[str, Any] = {
        "range": rng.as_dict(), "within": "session" if not window else f"{window_s:g}s",
        "steps": _steps_out(steps, counts, gaps)}
    if compare:
        prev_counts, prev_gaps = run(rng.previous())
        result["previous_range"] = rng.previous().as_dict()
        result["previous"] = _steps_out(steps, prev_counts, prev_gaps)
    if by is not None:
        rows: dict[str, dict[int, int]] = {}
        row_gaps: dict[str, dict[int, float | None]] = {}
        for step, dim, n, gap in rows_of(rng, by):
            key = "(none)" if dim is None else str(dim)
            rows.setdefault(key, {})[int(step)] = int(n)
            row_gaps.setdefault(key, {})[int(step)] = float(gap) if gap is not None else None
        ordered = sorted(rows, key=lambda k: (-rows[k].get(1, 0), k))
        result["breakdown"] = {"by": by, "rows": [
            {"value": k, "steps": _steps_out(steps, rows[k], row_gaps[k])} for k in ordered]}
    return result


def dropped_sessions(store: EventStore, project_id: int, rng: TimeRange,
                     steps: Sequence[str], step: int, *, limit: int = 50) -> list[dict[str, Any]]:
    """Sessions that reached step ``step`` (1-based) but not the next one, latest first:
    ``[{"session", "reached_at", "device", "country", "source", "landing_page"}]``."""
    if not 1 <= step < len(steps):
        raise BadRequest(f"step: between 1 and {len(steps) - 1} (the last step has no drop)")
    sql = f"""
WITH {sessionized_sql()},
e AS (SELECT sk AS k, name, ts FROM ev WHERE sk IS NOT NULL),
{_chain_sql(step + 1, False)},
d AS (SELECT sk AS k, arg_min(device_category, ts) AS device, arg_min(country, ts) AS country,
             arg_min({DIMENSIONS["source"]}, ts) AS source, arg_min(page, ts) AS landing
      FROM ev WHERE sk IS NOT NULL GROUP BY 1)
SELECT f{step}.k, epoch_us(f{step}.t), d.device, d.country, d.source, d.landing
FROM f{step} LEFT JOIN f{step + 1} USING (k) JOIN d USING (k)
WHERE f{step + 1}.k IS NULL ORDER BY f{step}.t DESC LIMIT ?
"""
    rows = store.query(sql, [project_id, rng.start_us, rng.end_us,
                             *_params(steps[:step + 1], None), limit])
    from shopwatch.analytics.timerange import iso_utc

    return [{"session": k, "reached_at": iso_utc(int(t)), "device": dev, "country": c,
             "source": src, "landing_page": land} for k, t, dev, c, src, land in rows]


def session_events(store: EventStore, project_id: int, rng: TimeRange,
                   session: str, *, limit: int = 500) -> list[dict[str, Any]]:
    """The events of one session of the period, in order."""
    sql = f"""
WITH {sessionized_sql()}
SELECT id, name, epoch_us(ts), page, value, currency, transaction_id
FROM ev WHERE sk = ? ORDER BY ts, id LIMIT ?"""
    from shopwatch.analytics.timerange import iso_utc

    return [{"id": i, "name": n, "ts": iso_utc(int(t)), "page": p, "value": v,
             "currency": c, "transaction_id": tx}
            for i, n, t, p, v, c, tx in store.query(sql, [project_id, rng.start_us,
                                                          rng.end_us, session, limit])]
