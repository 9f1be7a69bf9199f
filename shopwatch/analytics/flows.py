"""Scripted flows step by step (``GET /api/v1/checks``): the Reliability → Checks page.

Contract (docs/kpis.md, "Checks"):

- A *flow* is an ``api_flow`` or ``browser_flow`` monitor of the project; every one is
  listed, in name order, with or without runs in the range. Its runs are the rows of
  ``check_results`` of that monitor and a flow kind in ``[start, end)``; runs during
  maintenance windows (as in :mod:`.uptime`) count in no figure of this module and are
  only counted apart (``maintenance_runs``).
- Per flow: runs, runs passed, pass rate (passed ÷ runs; ``null`` without runs), p50
  and p95 (``quantile_cont``) of the runs' total duration, and the **last run**: the
  newest run of the monitor at any time, maintenance or not (what the flow does now).
- Per **step** (the run's ``steps`` JSON, unnested, a step keyed by its name): ``runs``
  counts the runs that executed it; a step reported as skipped (an earlier step failed:
  :data:`~shopwatch.checks.result.SKIPPED`) counts in ``skipped`` only, in no duration
  and no failure. ``failures`` are the executions that failed, ``failure_rate`` is
  failures ÷ runs, p50/p95 of its ``duration_ms``, and ``top_failure`` the most frequent
  reason (its failures joined by ``"; "``; reasons that differ only in their numbers —
  "took 2513 ms", "took 2905 ms" — count as one, shown as the newest of them; on a tie,
  the most recent reason wins) with its count. For browser flows:
  p75 of LCP and TTFB and the largest CLS of the step's first page, and the console
  errors and failed requests recorded in the step (summed over its runs). Steps are in
  the monitor's order, then steps the monitor no longer has (or a run's own ``browser``
  step, when Chromium could not run) by their index in the runs.
- A run stored without ``steps`` (a single step that kept no details) is one step: the
  monitor's only step, or ``browser`` when the monitor has several.
- ``series``: per bucket of the range that has runs, the p50 duration of each step.
- ``latest_failure``: the newest failed run in the range, with its first failed step
  (not skipped), that step's reason, URL, console errors and failed requests, and for a
  browser flow the screenshot and HTML file names its step kept (served by
  ``GET /api/v1/monitors/{name}/artifacts/{file}`` while among the newest files).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final

from shopwatch.analytics.sessions import TS
from shopwatch.analytics.timerange import TimeRange, iso_utc
from shopwatch.analytics.uptime import OUTSIDE, Spans, span_params
from shopwatch.analytics.vitals import rating
from shopwatch.checks.result import SKIPPED
from shopwatch.store.base import EventStore
from shopwatch.store.monitors import Stored

FLOW_KINDS: Final = ("api_flow", "browser_flow")
# What the page reads of a stored step (the rest of StepResult.as_dict is left out).
_STEP: Final = json.dumps([{
    "name": "VARCHAR", "url": "VARCHAR", "ok": "BOOLEAN", "duration_ms": "DOUBLE",
    "failures": ["VARCHAR"],
    "details": {"pages": [{"lcp_ms": "DOUBLE", "ttfb_ms": "DOUBLE", "cls": "DOUBLE"}],
                "console_errors": ["VARCHAR"], "failed_requests": ["VARCHAR"]}}])
# A run without steps JSON: one step made of the run's own columns (its name is NULL).
_STEPS_OR_RUN: Final = ("COALESCE(steps, json_array(json_object("
                        "'name', NULL, 'ok', ok, 'duration_ms', duration_ms, 'failures', "
                        "CASE WHEN failure IS NULL THEN json('[]') "
                        "ELSE json_array(failure) END)))")
# The flows' runs in the range, outside maintenance (parameters: _params) ...
_RUNS: Final = f"""
runs AS MATERIALIZED (
    SELECT monitor, epoch_us(ts) AS t, location, ok, duration_ms, failure, attempts,
           {_STEPS_OR_RUN} AS steps, {OUTSIDE} AS outside
    FROM check_results
    WHERE project_id = ? AND monitor IN (SELECT unnest(?::VARCHAR[]))
          AND kind IN {FLOW_KINDS} AND ts >= {TS} AND ts < {TS}),
r AS (SELECT * FROM runs WHERE outside)"""
# ... and their steps, one row each, with the step's index in its run.
_STEPS: Final = f"""{_RUNS},
u AS (SELECT monitor, t, unnest(st) AS s, unnest(generate_series(0, len(st) - 1)) AS i
      FROM (SELECT monitor, t, from_json(steps, '{_STEP}') AS st FROM r)),
s AS MATERIALIZED (
    SELECT monitor, t, i, s.name AS name, s.ok AS ok, s.duration_ms AS d,
           coalesce(s.failures = ['{SKIPPED}'], false) AS skipped,
           array_to_string(s.failures, '; ') AS reason, s.details.pages[1] AS page,
           len(coalesce(s.details.console_errors, [])) AS console_errors,
           len(coalesce(s.details.failed_requests, [])) AS failed_requests
    FROM u)"""


def _params(project_id: int, names: Sequence[str], rng: TimeRange,
            maintenance: Spans) -> list[Any]:
    return [*span_params(maintenance), project_id, list(names), rng.start_us, rng.end_us]


def _r(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(float(value), digits)


def flows(store: EventStore, project_id: int, stored: Sequence[Stored], rng: TimeRange,
          maintenance: Spans = ()) -> dict[str, Any]:
    """Every flow monitor of ``stored`` with its figures over ``rng`` (module docstring);
    runs during ``maintenance`` count in none of them."""
    chosen = [s.monitor for s in stored if s.monitor.kind in FLOW_KINDS]
    names = [m.name for m in chosen]
    if not names:
        return {"range": rng.as_dict(), "flows": []}
    params = _params(project_id, names, rng, maintenance)
    totals = {row[0]: row[1:] for row in store.query(f"""
WITH {_RUNS}
SELECT monitor, count(*) FILTER (WHERE outside), count(*) FILTER (WHERE outside AND ok),
       quantile_cont(duration_ms, 0.5) FILTER (WHERE outside),
       quantile_cont(duration_ms, 0.95) FILTER (WHERE outside),
       count(*) FILTER (WHERE NOT outside)
FROM runs GROUP BY monitor""", params)}
    step_rows = store.query(f"""
WITH {_STEPS},
reasons AS (SELECT monitor, name, arg_max(reason, (n, last)) AS reason, max(n) AS n
            FROM (SELECT monitor, name, regexp_replace(reason, '[0-9]+', '#', 'g') AS shape,
                         arg_max(reason, t) AS reason, count(*) AS n, max(t) AS last
                  FROM s WHERE NOT ok AND NOT skipped GROUP BY monitor, name, shape)
            GROUP BY ALL)
SELECT monitor, name, min(i), count(*) FILTER (WHERE NOT skipped),
       count(*) FILTER (WHERE NOT ok AND NOT skipped), count(*) FILTER (WHERE skipped),
       quantile_cont(d, 0.5) FILTER (WHERE NOT skipped),
       quantile_cont(d, 0.95) FILTER (WHERE NOT skipped),
       quantile_cont(page.lcp_ms, 0.75), quantile_cont(page.ttfb_ms, 0.75), max(page.cls),
       sum(console_errors), sum(failed_requests), any_value(reasons.reason),
       any_value(reasons.n)
FROM s LEFT JOIN reasons USING (monitor, name)
GROUP BY monitor, name""", params)
    bucket_us = rng.bucket_us
    series_rows = store.query(f"""
WITH {_STEPS}
SELECT monitor, t // {bucket_us} AS b, name, quantile_cont(d, 0.5) FILTER (WHERE NOT skipped)
FROM s GROUP BY ALL ORDER BY monitor, b""", params)
    failed = {row[0]: row[1:] for row in store.query(f"""
WITH {_RUNS}
SELECT monitor, max(t), arg_max(location, t), arg_max(failure, t), arg_max(steps, t)::VARCHAR,
       arg_max(duration_ms, t), arg_max(attempts, t)
FROM r WHERE NOT ok GROUP BY monitor""", params)}
    last = {row[0]: row[1:] for row in store.query(f"""
SELECT monitor, max(epoch_us(ts)), arg_max(ok, ts), arg_max(location, ts),
       arg_max(failure, ts), arg_max(duration_ms, ts)
FROM check_results WHERE project_id = ? AND monitor IN (SELECT unnest(?::VARCHAR[]))
     AND kind IN {FLOW_KINDS}
GROUP BY monitor""", [project_id, names])}

    out = []
    for monitor in chosen:
        defined = [step.name for step in monitor.steps or []]
        unnamed = defined[0] if len(defined) == 1 else "browser"
        runs, passed, p50, p95, in_maintenance = totals.get(monitor.name, (0, 0, None, None, 0))
        steps = {name: _empty_step(name) for name in defined}
        first_index: dict[str, int] = {}
        for (m, name, index, n, failures, skipped, s50, s95, lcp, ttfb, cls, console,
             requests, reason, reason_n) in step_rows:
            if m != monitor.name:
                continue
            name = name if name is not None else unnamed
            first_index[name] = int(index)
            steps[name] = {
                "name": name, "runs": int(n), "failures": int(failures),
                "failure_rate": None if not n else round(int(failures) / int(n), 6),
                "skipped": int(skipped), "p50_ms": _r(s50), "p95_ms": _r(s95),
                "top_failure": None if reason is None else {"reason": reason,
                                                            "count": int(reason_n)},
                "lcp_p75_ms": _r(lcp), "lcp_rating": rating("lcp", lcp),
                "ttfb_p75_ms": _r(ttfb), "ttfb_rating": rating("ttfb", ttfb),
                "cls_max": _r(cls, 4), "cls_rating": rating("cls", cls),
                "console_errors": int(console or 0), "failed_requests": int(requests or 0)}
        order = {name: i for i, name in enumerate(defined)}
        ordered = sorted(steps.values(), key=lambda st: (
            order.get(st["name"], len(defined)), first_index.get(st["name"], 0)))
        for i, st in enumerate(ordered):
            st["index"] = i
        status = "paused" if not monitor.enabled else "unknown"
        latest = last.get(monitor.name)
        last_run = None
        if latest is not None:
            at, ok, location, failure, duration = latest
            last_run = {"at": iso_utc(int(at)), "ok": bool(ok), "location": location,
                        "failure": failure, "duration_ms": _r(duration)}
            if monitor.enabled:
                status = "passed" if ok else "failed"
        out.append({
            "name": monitor.name, "kind": monitor.kind, "enabled": monitor.enabled,
            "interval_s": monitor.interval_s, "locations": monitor.locations,
            "device": monitor.device if monitor.kind == "browser_flow" else None,
            "status": status, "last": last_run,
            "runs": int(runs), "passed": int(passed),
            "pass_rate": None if not runs else round(int(passed) / int(runs), 6),
            "p50_ms": _r(p50), "p95_ms": _r(p95), "maintenance_runs": int(in_maintenance),
            "steps": ordered,
            "series": _series(monitor.name, series_rows, [st["name"] for st in ordered],
                              unnamed, bucket_us),
            "latest_failure": _latest_failure(failed.get(monitor.name), unnamed)})
    return {"range": rng.as_dict(), "flows": out}


def _empty_step(name: str) -> dict[str, Any]:
    return {"name": name, "runs": 0, "failures": 0, "failure_rate": None, "skipped": 0,
            "p50_ms": None, "p95_ms": None, "top_failure": None, "lcp_p75_ms": None,
            "lcp_rating": None, "ttfb_p75_ms": None, "ttfb_rating": None, "cls_max": None,
            "cls_rating": None, "console_errors": 0, "failed_requests": 0}


def _series(monitor: str, rows: Sequence[tuple[Any, ...]], order: Sequence[str],
            unnamed: str, bucket_us: int) -> dict[str, Any]:
    """``{"t": [bucket start...], "steps": [{"name", "p50_ms": [...]}]}`` over the
    buckets where the flow ran, the steps in table order."""
    by_bucket: dict[int, dict[str, float | None]] = {}
    for m, b, name, p50 in rows:
        if m == monitor:
            by_bucket.setdefault(int(b), {})[name if name is not None else unnamed] = _r(p50)
    buckets = sorted(by_bucket)
    return {"t": [iso_utc(b * bucket_us) for b in buckets],
            "steps": [{"name": name, "p50_ms": [by_bucket[b].get(name) for b in buckets]}
                      for name in order]}


def _latest_failure(row: Sequence[Any] | None, unnamed: str) -> dict[str, Any] | None:
    if row is None:
        return None
    at, location, failure, steps_json, duration, attempts = row
    steps = json.loads(steps_json) if steps_json else []
    step: dict[str, Any] = next(
        (s for s in steps if not s.get("ok", True) and s.get("failures") != [SKIPPED]),
        steps[0] if steps else {})
    details = step.get("details") or {}
    return {"at": iso_utc(int(at)), "location": location, "failure": failure,
            "duration_ms": _r(duration), "attempts": int(attempts),
            "step": step.get("name") or unnamed, "url": step.get("url") or None,
            "reason": "; ".join(step.get("failures") or []) or failure,
            "screenshot": details.get("screenshot"), "html": details.get("html"),
            "console_errors": details.get("console_errors") or [],
            "failed_requests": details.get("failed_requests") or []}
