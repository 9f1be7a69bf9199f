"""One visitor's session in order: the customer journey (``GET /api/v1/journey``).

Contract: every event (``events``) and every RUM row (``rum``) of the project with the
given ``session_id``, oldest first (events before RUM rows at the same instant), at most
:data:`MAX_STEPS`. Each step has a ``type``: ``page_view`` (a RUM view, with its
navigation timings and ``trace_id``, the backend trace that served it, when known, or a
``page_view`` event), ``vitals`` (the page view's Web Vitals, only the last report of
each page view), ``error``, ``resource`` (failed or slow), ``api`` (a same-origin fetch
or XHR with its ``trace_id``, docs/rum.md "Browser to backend"), or ``event`` (any
other event: carts, checkout, orders, logins...). A summary gives the session's first
and last time, page views, errors, events and the user id if known.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from shopwatch.analytics.timerange import iso_utc
from shopwatch.analytics.vitals import rating
from shopwatch.errors import BadRequest, NotFound
from shopwatch.store.base import EventStore

MAX_STEPS: Final = 2000
_VITALS: Final = ("fcp", "lcp", "cls", "inp")


def journey(store: EventStore, project_id: int, session_id: str) -> dict[str, Any]:
    """The session's steps; NotFound when it has none."""
    if not session_id or len(session_id) > 128:
        raise BadRequest("session: a session id of 1 to 128 characters is required")
    rows = store.query(f"""
SELECT * FROM (
    SELECT epoch_us(ts) AS t, 0 AS o, 'event' AS src, name, page, user_id, params::VARCHAR,
           value, currency, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
           NULL, NULL, NULL, NULL, NULL, device_category, browser, NULL
    FROM events WHERE project_id = ? AND session_id = ?
    UNION ALL
    SELECT epoch_us(ts), 1, kind, view_id, page, user_id, NULL, NULL, NULL,
           ttfb_ms, load_ms, fcp_ms, lcp_ms, cls, inp_ms, message, source, line, resource_url,
           resource_host, duration_ms, failed, spa, error_type, device_category, browser,
           trace_id
    FROM rum WHERE project_id = ? AND session_id = ?
    QUALIFY kind <> 'vitals'
         OR row_number() OVER (PARTITION BY view_id, kind ORDER BY ts DESC) = 1
) ORDER BY t, o LIMIT {MAX_STEPS}""", [project_id, session_id, project_id, session_id])
    if not rows:
        raise NotFound(f"session: no events or page views for {session_id!r} in this project")
    steps = [_step(r) for r in rows]
    user = next((r[5] for r in reversed(rows) if r[5]), None)
    device = next(((r[24], r[25]) for r in rows if r[24]), (None, None))
    return {"session_id": session_id, "user_id": user, "device": device[0],
            "browser": device[1], "first": iso_utc(int(rows[0][0])),
            "last": iso_utc(int(rows[-1][0])),
            "page_views": sum(1 for s in steps if s["type"] == "page_view"),
            "errors": sum(1 for s in steps if s["type"] == "error"),
            "events": sum(1 for s in steps if s["type"] == "event"),
            "truncated": len(rows) == MAX_STEPS, "steps": steps}


def _step(r: tuple[Any, ...]) -> dict[str, Any]:
    (t, _, src, name, page, _user, params, value, currency, ttfb, load, fcp, lcp, cls, inp,
     message, source, line, url, host, duration, failed, spa, error_type, _, _, trace_id) = r
    step: dict[str, Any] = {"t": iso_utc(int(t)), "page": page}
    if src == "event":
        step["type"] = "page_view" if name == "page_view" else "event"
        step["name"] = name
        step["source"] = "server"
        if value is not None:
            step["value"], step["currency"] = value, currency
        if params:
            step["params"] = msgspec.json.decode(params)
    elif src == "view":
        step.update(type="page_view", source="browser", spa=bool(spa), ttfb_ms=ttfb,
                    load_ms=load, trace_id=trace_id)
    elif src == "vitals":
        values = dict(zip(_VITALS, (fcp, lcp, cls, inp), strict=True))
        step.update(type="vitals", **{k: v for k, v in values.items() if v is not None},
                    ratings={k: rating(k, v) for k, v in values.items() if v is not None})
    elif src == "error":
        step.update(type="error", error_type=error_type, message=message, source=source,
                    line=line)
    elif src == "api":
        step.update(type="api", url=url, duration_ms=duration,
                    failed=bool(failed), trace_id=trace_id)
    else:
        step.update(type="resource", url=url, host=host, duration_ms=duration,
                    failed=bool(failed))
    return step


def recent_sessions(store: EventStore, project_id: int, start_us: int, end_us: int, *,
                    with_errors: bool = False, limit: int = 50) -> list[dict[str, Any]]:
    """The latest sessions with real-user data in ``[start_us, end_us)``, newest first:
    page views, errors, device and browser from ``rum``, events and orders from
    ``events``. ``with_errors`` keeps only sessions that had a JavaScript error."""
    having = "HAVING count(*) FILTER (WHERE kind = 'error') > 0" if with_errors else ""
    rows = store.query(f"""
WITH s AS (
    SELECT session_id, epoch_us(min(ts)) AS first, epoch_us(max(ts)) AS last,
           count(DISTINCT view_id) FILTER (WHERE kind = 'view') AS views,
           count(*) FILTER (WHERE kind = 'error') AS errors,
           count(*) FILTER (WHERE kind = 'resource' AND failed) AS failed,
           any_value(device_category) AS device, any_value(browser) AS browser,
           any_value(user_id) AS user_id, arg_min(page, ts) AS landing
    FROM rum WHERE project_id = ? AND ts >= make_timestamp(?::BIGINT)
                   AND ts < make_timestamp(?::BIGINT) AND session_id IS NOT NULL
    GROUP BY session_id {having} ORDER BY last DESC LIMIT {int(limit)}
), e AS (
    SELECT session_id, count(*) AS events, count(*) FILTER (WHERE name = 'purchase') AS orders
    FROM events WHERE project_id = ? AND session_id IN (SELECT session_id FROM s)
    GROUP BY session_id
)
SELECT s.*, COALESCE(e.events, 0), COALESCE(e.orders, 0)
FROM s LEFT JOIN e USING (session_id) ORDER BY last DESC""",
                       [project_id, start_us, end_us, project_id])
    return [{"session_id": r[0], "first": iso_utc(int(r[1])), "last": iso_utc(int(r[2])),
             "page_views": int(r[3]), "errors": int(r[4]), "failed_resources": int(r[5]),
             "device": r[6], "browser": r[7], "user_id": r[8], "landing_page": r[9],
             "events": int(r[10]), "orders": int(r[11])} for r in rows]
