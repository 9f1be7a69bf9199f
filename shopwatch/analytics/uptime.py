"""Monitor status and availability (``GET /api/v1/monitors``, ``/api/v1/monitors/{name}``).

Contract (docs/kpis.md, "Uptime"):

- A monitor's **status** is judged from the latest run of each of its locations (its
  ``locations``, or the server's own, ``checks_location``): ``down`` when at least
  ``min_failed_locations`` of them failed, ``degraded`` when some but fewer did, ``up``
  when none did. A location whose latest run is older than 3 intervals is *stale* and
  not counted while another location is not (a probe that stopped reporting does not
  hold the status); when every location is stale, their latest runs are judged all the
  same (the best evidence there is: a single-location monitor's status stays its last
  run's outcome). ``unknown`` before any of its locations ran, ``paused`` when
  disabled, ``maintenance`` while a window is open. The item lists its locations with
  their latest run (``locations``).
- **Availability** over a window is the share of runs in it that passed; a window with no
  run has none (``null``), never 100 %. Runs during maintenance windows
  (:mod:`shopwatch.store.maintenance`) count in no availability, bar, percentile or
  incident. Per day (UTC), for the last 90 days: the bars.
- **Response time**: percentiles (p50, p95, p99) of the runs' total duration, per bucket
  of the range and per location.
- **Certificate**: for ``tls`` monitors, the days left before the certificate of the
  last run that read one expires, and its expiry time.
- **Incidents**: stretches of consecutive failed runs of a location, from the first
  failure to the next passing run (still open when none passed since), with the first
  failure's reason.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from shopwatch.analytics.sessions import TS
from shopwatch.analytics.timerange import TimeRange, iso_utc
from shopwatch.checks.monitor import Monitor
from shopwatch.store.base import EventStore
from shopwatch.store.monitors import Stored

DAY_US: Final = 86_400_000_000
BAR_DAYS: Final = 90
STALE_INTERVALS: Final = 3  # a location's latest run older than this many intervals


def _ratio(ok: int | None, runs: int | None) -> float | None:
    return None if not runs else round(int(ok or 0) / int(runs), 6)


Spans = Sequence[tuple[float, float]]  # maintenance: [from, to) in epoch seconds
# Runs outside maintenance: a condition on ``ts`` over two parameters, the windows'
# starts and ends in epoch microseconds (span_params); also used by flows.py.
OUTSIDE: Final = ("NOT EXISTS (SELECT 1 FROM (SELECT unnest(?::BIGINT[]) AS s, "
                  "unnest(?::BIGINT[]) AS e) mw "
                  "WHERE epoch_us(ts) >= mw.s AND epoch_us(ts) < mw.e)")


def span_params(spans: Spans) -> list[list[int]]:
    """The parameters of :data:`OUTSIDE` for maintenance ``spans``."""
    return [[int(a * 1_000_000) for a, _ in spans], [int(b * 1_000_000) for _, b in spans]]


def monitors_status(store: EventStore, project_id: int, stored: Sequence[Stored],
                    now_us: int, maintenance: Spans = (), home: str = "local",
                    ) -> list[dict[str, Any]]:
    """Every monitor of the project with its status (judged across its locations; a
    monitor without ``locations`` runs at ``home``, the server's), availability and 90
    daily bars; runs during ``maintenance`` count in neither (the status says
    ``maintenance`` while a window is open)."""
    day0 = (now_us // DAY_US - (BAR_DAYS - 1)) * DAY_US
    in_maintenance = any(a * 1e6 <= now_us < b * 1e6 for a, b in maintenance)
    rows = store.query(f"""
WITH every_run AS (SELECT * FROM check_results WHERE project_id = ? AND ts >= {TS}),
r AS (SELECT * FROM every_run WHERE {OUTSIDE}),
last AS (SELECT monitor, arg_max(ok, ts), epoch_us(max(ts)), arg_max(status, ts),
                arg_max(duration_ms, ts), arg_max(failure, ts), arg_max(location, ts),
                arg_max(steps->>'$[0].details.days_left', ts)
                    FILTER (WHERE steps->>'$[0].details.days_left' IS NOT NULL),
                arg_max(steps->>'$[0].details.not_after', ts)
                    FILTER (WHERE steps->>'$[0].details.not_after' IS NOT NULL)
         FROM every_run GROUP BY monitor),
win AS (SELECT monitor,
               count(*) FILTER (WHERE ts >= {TS}), count(*) FILTER (WHERE ts >= {TS} AND ok),
               count(*) FILTER (WHERE ts >= {TS}), count(*) FILTER (WHERE ts >= {TS} AND ok),
               count(*), count(*) FILTER (WHERE ok),
               quantile_cont(duration_ms, 0.5) FILTER (WHERE ts >= {TS}),
               quantile_cont(duration_ms, 0.95) FILTER (WHERE ts >= {TS})
        FROM r GROUP BY monitor),
days AS (SELECT monitor, list({{'day': d, 'runs': n, 'ok': k}} ORDER BY d) AS bars
         FROM (SELECT monitor, epoch_us(ts) // {DAY_US} AS d, count(*) AS n,
                      count(*) FILTER (WHERE ok) AS k FROM r GROUP BY ALL)
         GROUP BY monitor),
locs AS (SELECT monitor, list({{'name': location, 'ok': ok, 'at': last_at, 'failure': failure}})
                    AS latest
         FROM (SELECT monitor, location, arg_max(ok, ts) AS ok, epoch_us(max(ts)) AS last_at,
                      arg_max(failure, ts) AS failure FROM every_run GROUP BY ALL)
         GROUP BY monitor)
SELECT last.*, win.* EXCLUDE (monitor), days.bars, locs.latest
FROM last LEFT JOIN win USING (monitor) LEFT JOIN days USING (monitor)
     LEFT JOIN locs USING (monitor)
""", [project_id, day0, *span_params(maintenance), now_us - DAY_US, now_us - DAY_US,
      now_us - 30 * DAY_US, now_us - 30 * DAY_US, now_us - DAY_US, now_us - DAY_US])
    by_name = {r[0]: r for r in rows}
    out = []
    for s in stored:
        m = s.monitor
        r = by_name.get(m.name)
        item: dict[str, Any] = {
            "name": m.name, "kind": m.kind, "managed_in": "code" if s.source == "code"
            else "dashboard", "target": m.target,
            "interval_s": m.interval_s, "enabled": m.enabled}
        judged, locations = _across(m, r[-1] if r is not None else None, home, now_us)
        item["locations"] = locations
        if r is None:
            item.update(status="paused" if not m.enabled else "maintenance"
                        if in_maintenance else "unknown", last=None,
                        availability={"24h": None, "30d": None, "90d": None},
                        p50_ms=None, p95_ms=None, bars=_bars(day0, []))
        else:
            (_, ok, ts, status, duration, failure, location, days_left, not_after, n24, k24,
             n30, k30, n90, k90, p50, p95, bars, _latest) = r
            item.update(
                status="paused" if not m.enabled else "maintenance" if in_maintenance
                else judged,
                last={"ok": ok, "at": iso_utc(int(ts)), "status": status,
                      "duration_ms": duration, "failure": failure, "location": location},
                availability={"24h": _ratio(k24, n24), "30d": _ratio(k30, n30),
                              "90d": _ratio(k90, n90)},
                p50_ms=None if p50 is None else round(p50, 1),
                p95_ms=None if p95 is None else round(p95, 1), bars=_bars(day0, bars or []))
            if days_left is not None:  # a tls monitor: the certificate's countdown
                item["certificate"] = {"days_left": float(days_left), "not_after": not_after}
        out.append(item)
    return out


def _across(monitor: Monitor, latest: Sequence[dict[str, Any]] | None, home: str,
            now_us: int) -> tuple[str, list[dict[str, Any]]]:
    """The status judged from the latest run of each of the monitor's locations, and
    those locations (``ok`` and ``at`` are null before a location's first run)."""
    runs = {r["name"]: r for r in latest or ()}
    stale_us = STALE_INTERVALS * monitor.interval_s * 1_000_000
    out = []
    for name in monitor.locations or [home]:
        run = runs.get(name)
        if run is None:
            out.append({"name": name, "ok": None, "at": None, "failure": None,
                        "stale": False})
            continue
        out.append({"name": name, "ok": bool(run["ok"]), "at": iso_utc(int(run["at"])),
                    "failure": run["failure"], "stale": now_us - int(run["at"]) > stale_us})
    ran = [item for item in out if item["ok"] is not None]
    counted = [item for item in ran if not item["stale"]] or ran
    failed = sum(1 for item in counted if not item["ok"])
    status = ("unknown" if not counted else "down" if failed >= monitor.min_failed_locations
              else "degraded" if failed else "up")
    return status, out


def _bars(day0: int, bars: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    known = {int(b["day"]): b for b in bars}
    out = []
    for i in range(BAR_DAYS):
        day = day0 // DAY_US + i
        b = known.get(day)
        date = (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=day)).date().isoformat()
        out.append({"date": date, "runs": int(b["runs"]) if b else 0,
                    "availability": _ratio(b["ok"], b["runs"]) if b else None})
    return out


def monitor_detail(store: EventStore, project_id: int, name: str, rng: TimeRange,
                   maintenance: Spans = ()) -> dict[str, Any]:
    """Response-time percentiles per bucket and location, availability, incidents and
    the latest runs of one monitor over the range; runs during ``maintenance`` are left
    out of all of it but the latest runs."""
    bucket_us = rng.bucket_s * 1_000_000
    params = [project_id, name, rng.start_us, rng.end_us, *span_params(maintenance)]
    series = store.query(f"""
SELECT location, epoch_us(ts) // {bucket_us} AS b, count(*), count(*) FILTER (WHERE ok),
       quantile_cont(duration_ms, 0.5), quantile_cont(duration_ms, 0.95),
       quantile_cont(duration_ms, 0.99)
FROM check_results WHERE project_id = ? AND monitor = ? AND ts >= {TS} AND ts < {TS}
      AND {OUTSIDE}
GROUP BY ALL ORDER BY location, b""", params)
    runs = store.query(f"""
SELECT epoch_us(ts), location, ok, status, duration_ms, failure, steps::VARCHAR, attempts,
       {OUTSIDE}
FROM check_results WHERE project_id = ? AND monitor = ? AND ts >= {TS} AND ts < {TS}
ORDER BY ts""", [*params[4:], *params[:4]])
    counted = [r[:8] for r in runs if r[8]]
    locations: dict[str, list[dict[str, Any]]] = {}
    for location, b, n, k, p50, p95, p99 in series:
        locations.setdefault(location, []).append({
            "t": iso_utc(int(b) * bucket_us), "runs": int(n), "availability": _ratio(k, n),
            "p50_ms": _r(p50), "p95_ms": _r(p95), "p99_ms": _r(p99)})
    total, passed = len(counted), sum(1 for r in counted if r[2])
    return {"name": name, "range": rng.as_dict(), "runs": total,
            "availability": _ratio(passed, total), "locations": locations,
            "incidents": incidents(counted),
            "latest": [{"at": iso_utc(int(t)), "location": loc, "ok": ok, "status": status,
                        "duration_ms": d, "failure": f, "attempts": a,
                        "maintenance": not outside,
                        "steps": json.loads(steps) if steps else None}
                       for t, loc, ok, status, d, f, steps, a, outside in runs[-50:][::-1]]}


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def incidents(runs: Sequence[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """Stretches of consecutive failures per location (runs ordered by time: epoch us,
    location, ok, ..., failure at index 5), newest first."""
    open_: dict[str, dict[str, Any]] = {}
    found: list[dict[str, Any]] = []
    for t, location, ok, *_rest in runs:
        failure = _rest[2]
        current = open_.get(location)
        if not ok and current is None:
            current = {"location": location, "started": iso_utc(int(t)), "ended": None,
                       "failures": 0, "reason": failure, "_start": int(t)}
            open_[location] = current
            found.append(current)
        if not ok and current is not None:
            current["failures"] += 1
        if ok and current is not None:
            current["ended"] = iso_utc(int(t))
            current["duration_s"] = round((int(t) - current["_start"]) / 1e6, 1)
            del open_[location]
    for item in found:
        item.pop("_start", None)
        item.setdefault("duration_s", None)
    return found[::-1]
