"""JavaScript errors from real users, grouped (``GET /api/v1/errors``).

Contract (docs/kpis.md, "JavaScript errors"): an error group is one ``fingerprint``
(:func:`shopwatch.beacon.fingerprint`: type, message with numbers and quoted values
blanked, file of the top stack frame). Per group in the period: occurrences, page views
and sessions affected, the pages and browsers it happened on (most frequent first),
a recent message, source and stack; ``first_seen`` and ``last_seen`` over all stored
history, so a group first seen inside the period is new. Groups are ordered by
occurrences. ``trend`` counts errors per bucket of the range.
"""

from __future__ import annotations

from typing import Any, Final

from shopwatch.analytics.sessions import TS
from shopwatch.analytics.timerange import TimeRange, iso_utc
from shopwatch.errors import BadRequest
from shopwatch.store.base import EventStore

MAX_GROUPS: Final = 100


def _top(column: str) -> str:
    """The (up to) three most frequent values of ``column`` in the group (NULLs are
    not counted)."""
    return f"approx_top_k({column}, 3)"


def error_groups(store: EventStore, project_id: int, rng: TimeRange,
                 fingerprint: str | None = None) -> dict[str, Any]:
    """The groups of the period (or only ``fingerprint``); see the module docstring."""
    if fingerprint is not None and not (len(fingerprint) == 16 and all(
            c in "0123456789abcdef" for c in fingerprint)):
        raise BadRequest(f"fingerprint: {fingerprint!r} is not 16 hex digits")
    only = "AND fingerprint = ?" if fingerprint else ""
    params: list[Any] = [project_id, rng.start_us, rng.end_us]
    if fingerprint:
        params.append(fingerprint)
    bucket_us = rng.bucket_s * 1_000_000
    rows = store.query(f"""
WITH e AS (
    SELECT * FROM rum WHERE project_id = ? AND ts >= {TS} AND ts < {TS}
                            AND kind = 'error' {only}
), g AS (
    SELECT fingerprint, any_value(error_type) AS type, count(*) AS n,
           count(DISTINCT view_id) AS views, count(DISTINCT session_id) AS sessions,
           arg_max(message, ts) AS message, arg_max(source, ts) AS source,
           arg_max(line, ts) AS line, arg_max(stack, ts) AS stack,
           {_top("page")} AS pages, {_top("browser")} AS browsers
    FROM e GROUP BY fingerprint ORDER BY n DESC LIMIT {MAX_GROUPS}
), seen AS (
    SELECT fingerprint, epoch_us(min(ts)) AS first, epoch_us(max(ts)) AS last FROM rum
    WHERE project_id = ? AND kind = 'error' AND fingerprint IN (SELECT fingerprint FROM g)
    GROUP BY fingerprint
)
SELECT g.*, seen.first, seen.last FROM g JOIN seen USING (fingerprint) ORDER BY n DESC
""", [*params, project_id])
    groups = [{"fingerprint": r[0], "type": r[1], "count": int(r[2]), "views": int(r[3]),
               "sessions": int(r[4]), "message": r[5], "source": r[6], "line": r[7],
               "stack": r[8], "pages": list(r[9] or []), "browsers": list(r[10] or []),
               "first_seen": iso_utc(int(r[11])), "last_seen": iso_utc(int(r[12]))}
              for r in rows]
    trend = store.query(f"""
SELECT epoch_us(ts) // {bucket_us} AS b, count(*), count(DISTINCT session_id) FROM rum
WHERE project_id = ? AND ts >= {TS} AND ts < {TS} AND kind = 'error' {only}
GROUP BY b ORDER BY b""", params)
    body: dict[str, Any] = {
        "range": rng.as_dict(), "groups": groups,
        "trend": [{"t": iso_utc(int(b) * bucket_us), "errors": int(n), "sessions": int(s)}
                  for b, n, s in trend]}
    if fingerprint:
        sessions = store.query(f"""
SELECT session_id, epoch_us(max(ts)), count(*), arg_max(page, ts), arg_max(browser, ts)
FROM rum WHERE project_id = ? AND ts >= {TS} AND ts < {TS} AND kind = 'error'
      AND fingerprint = ? AND session_id IS NOT NULL
GROUP BY session_id ORDER BY 2 DESC LIMIT 50""", params)
        body["sessions"] = [{"session_id": s, "last_seen": iso_utc(int(t)), "count": int(n),
                             "page": p, "browser": b} for s, t, n, p, b in sessions]
    return body
