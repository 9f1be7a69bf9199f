"""Web Vitals and page speed from real users (``GET /api/v1/vitals``).

Contract (docs/kpis.md, "Real users"):

- A *page view* is one ``view_id`` of the ``rum`` table with rows in the period. Its
  metrics are the largest value any of its rows carries (the snippet reports cumulative
  values each time the page is hidden, so the largest is the last); TTFB and the
  navigation timings come from its ``view`` row, FCP, LCP, CLS and INP from its
  ``vitals`` rows. Route changes of single-page apps are page views without timings:
  they count in ``views`` but in no metric.
- Each metric is summarised by its 75th percentile over the page views that have it
  (``quantile_cont``, as Google's tools report p75), rated against Google's thresholds
  (:data:`METRICS`: good at or under the first, poor above the second, "needs
  improvement" between), with the share of page views in each rating.
- Page group: the first path segment, followed by ``/*`` when the path goes deeper
  (``/product/red-shoe`` and ``/product/blue-hat`` are ``/product/*``; ``/cart`` is
  ``/cart``; ``/`` is ``/``).
- ``trend``: p75 of each metric per bucket of the range (by the page view's start).
- ``slowest_pages``: pages by p75 LCP (then load time), with their views (narrowed by
  ``page`` like the rest), among pages with at least 0.1 % of the page views.
- ``slow_resources``: resources reported slow (over 1 s) or failed, by URL, with their
  host, type, count and p75 duration; ``failed_hosts``: failed loads per host, with the
  URLs, page views and sessions affected.
"""

from __future__ import annotations

from typing import Any, Final

from shopwatch.analytics.sessions import TS
from shopwatch.analytics.timerange import TimeRange, iso_utc
from shopwatch.errors import BadRequest
from shopwatch.store.base import EventStore

# metric -> (column, good up to, poor above, unit)
METRICS: Final[dict[str, tuple[str, float, float, str]]] = {
    "lcp": ("lcp", 2500.0, 4000.0, "ms"),
    "inp": ("inp", 200.0, 500.0, "ms"),
    "cls": ("cls", 0.1, 0.25, ""),
    "fcp": ("fcp", 1800.0, 3000.0, "ms"),
    "ttfb": ("ttfb", 800.0, 1800.0, "ms"),
}
BREAKDOWNS: Final = {"group": "grp", "page": "page", "device": "device", "browser": "browser",
                     "country": "country"}
MAX_ROWS: Final = 200
# A page counts among the slowest only with at least 1/MIN_SHARE of the page views: a
# page seen once (an order confirmation) says little about the shop's speed.
MIN_SHARE: Final = 1000
GROUP_SQL: Final = ("CASE WHEN page IS NULL THEN NULL "
                    "WHEN regexp_matches(page, '^/[^/?]+/.') "
                    "THEN regexp_extract(page, '^(/[^/?]+)/', 1) || '/*' "
                    "ELSE regexp_replace(page, '\\?.*$', '') END")

# One row per page view of the period: parameters project_id, from_us, to_us.
VIEWS_CTE: Final = f"""
pv AS MATERIALIZED (
    SELECT view_id, min(ts) AS ts, arg_min(page, ts) AS page,
           any_value(session_id) AS session_id, any_value(device_category) AS device,
           any_value(browser) AS browser, any_value(country) AS country,
           max(ttfb_ms) AS ttfb, max(load_ms) AS load, max(fcp_ms) AS fcp,
           max(lcp_ms) AS lcp, max(cls) AS cls, max(inp_ms) AS inp
    FROM rum
    WHERE project_id = ? AND ts >= {TS} AND ts < {TS} AND kind IN ('view', 'vitals')
          AND view_id IS NOT NULL
    GROUP BY view_id
), v AS MATERIALIZED (SELECT *, {GROUP_SQL} AS grp FROM pv)"""


def rating(metric: str, value: float | None) -> str | None:
    """``good``, ``needs-improvement`` or ``poor`` under Google's thresholds."""
    if value is None:
        return None
    _, good, poor, _ = METRICS[metric]
    return "good" if value <= good else "needs-improvement" if value <= poor else "poor"


def _summaries() -> str:
    """Select list: per metric its p75, count and counts in each rating."""
    parts = []
    for name, (col, good, poor, _) in METRICS.items():
        parts.append(f"quantile_cont({col}, 0.75) AS {name}_p75, count({col}) AS {name}_n, "
                     f"count(*) FILTER (WHERE {col} <= {good}) AS {name}_good, "
                     f"count(*) FILTER (WHERE {col} > {poor}) AS {name}_poor")
    return ", ".join(parts)


def _metric(name: str, p75: float | None, n: int, good: int, poor: int) -> dict[str, Any]:
    value = None if p75 is None else round(p75, 4 if name == "cls" else 0)
    return {"p75": value, "rating": rating(name, p75), "n": n, "good": good, "poor": poor,
            "needs_improvement": n - good - poor}


def _metrics(row: tuple[Any, ...], offset: int) -> dict[str, dict[str, Any]]:
    out = {}
    for i, name in enumerate(METRICS):
        p75, n, good, poor = row[offset + 4 * i: offset + 4 * i + 4]
        out[name] = _metric(name, p75, int(n), int(good), int(poor))
    return out


def vitals(store: EventStore, project_id: int, rng: TimeRange, by: str = "group",
           page: str | None = None) -> dict[str, Any]:
    """Everything the Real users page shows; see the module docstring. ``page`` narrows
    every figure to one page path or page group (a value ending in ``/*``)."""
    if by not in BREAKDOWNS:
        raise BadRequest(f"by: {by!r} is not one of {', '.join(BREAKDOWNS)}")
    base = [project_id, rng.start_us, rng.end_us]
    where, extra = "", []
    if page:
        where = "WHERE (page = ? OR grp = ?)"
        extra = [page, page]
    bucket_us = rng.bucket_s * 1_000_000
    key = BREAKDOWNS[by]
    sql = f"""
WITH {VIEWS_CTE}, f AS MATERIALIZED (SELECT * FROM v {where})
SELECT 'all', NULL, count(*), {_summaries()}, quantile_cont(load, 0.75) FROM f
UNION ALL (SELECT 'by', {key}, count(*), {_summaries()}, NULL FROM f
           GROUP BY {key} ORDER BY count(*) DESC, {key} LIMIT {MAX_ROWS})
UNION ALL SELECT 'trend', (epoch_us(ts) // {bucket_us})::VARCHAR, count(*), {_summaries()},
                 NULL
          FROM f GROUP BY 2
UNION ALL (SELECT 'slow', page, count(*), {_summaries()}, quantile_cont(load, 0.75) FROM f
           WHERE page IS NOT NULL AND (lcp IS NOT NULL OR load IS NOT NULL) GROUP BY page
           HAVING count(*) >= (SELECT count(*) FROM f) // {MIN_SHARE}
           ORDER BY quantile_cont(lcp, 0.75) DESC NULLS LAST,
                    quantile_cont(load, 0.75) DESC NULLS LAST LIMIT 20)
"""
    rows = store.query(sql, [*base, *extra])
    total: dict[str, Any] = {"views": 0, "metrics": {}}
    breakdown, trend, slowest = [], [], []
    for row in rows:
        m = _metrics(row, 3)
        item = {"views": int(row[2]), "metrics": m}
        if row[0] == "all":
            total = item
        elif row[0] == "by":
            breakdown.append({"key": row[1], **item})
        elif row[0] == "trend":
            trend.append({"t": iso_utc(int(row[1]) * bucket_us), **item})
        else:
            slowest.append({"page": row[1], "views": item["views"],
                            "lcp_p75": m["lcp"]["p75"], "load_p75": _round(row[-1]),
                            "ttfb_p75": m["ttfb"]["p75"], "inp_p75": m["inp"]["p75"],
                            "cls_p75": m["cls"]["p75"], "lcp_rating": m["lcp"]["rating"]})
    trend.sort(key=lambda r: str(r["t"]))
    slowest.sort(key=lambda r: (-(r["lcp_p75"] if r["lcp_p75"] is not None else -1),
                                -(r["load_p75"] or 0)))
    return {"range": rng.as_dict(), "by": by, "page": page, "total": total,
            "breakdown": breakdown, "trend": trend,
            "thresholds": {k: {"good": g, "poor": p, "unit": u}
                           for k, (_, g, p, u) in METRICS.items()},
            "slowest_pages": slowest, **resources(store, base)}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value)


def resources(store: EventStore, base: list[Any]) -> dict[str, list[dict[str, Any]]]:
    """Slow and failed resources of the period (``base``: project_id, from_us, to_us)."""
    rows = store.query(f"""
WITH r AS (
    SELECT * FROM rum WHERE project_id = ? AND ts >= {TS} AND ts < {TS} AND kind = 'resource'
)
SELECT 'slow', resource_url, any_value(resource_host), any_value(resource_type), count(*),
       quantile_cont(duration_ms, 0.75), NULL, NULL, NULL
FROM r WHERE NOT failed AND duration_ms IS NOT NULL GROUP BY resource_url
QUALIFY row_number() OVER (ORDER BY quantile_cont(duration_ms, 0.75) DESC) <= 20
UNION ALL
SELECT 'failed', resource_host, NULL, string_agg(DISTINCT resource_type, ', '), count(*),
       count(DISTINCT view_id), count(DISTINCT session_id), epoch_us(max(ts)),
       list(DISTINCT resource_url)[:5]
FROM r WHERE failed GROUP BY resource_host
QUALIFY row_number() OVER (ORDER BY count(*) DESC) <= 50
""", base)
    slow, failed = [], []
    for kind, key, host, rtype, n, a, b, last, urls in rows:
        if kind == "slow":
            slow.append({"url": key, "host": host, "type": rtype, "count": int(n),
                         "duration_p75": _round(a)})
        else:
            failed.append({"host": key, "types": rtype, "failures": int(n), "views": int(a),
                           "sessions": int(b), "last_seen": iso_utc(int(last)),
                           "urls": list(urls or [])})
    slow.sort(key=lambda r: -(r["duration_p75"] or 0))
    failed.sort(key=lambda r: -int(r["failures"]))
    return {"slow_resources": slow, "failed_hosts": failed}
