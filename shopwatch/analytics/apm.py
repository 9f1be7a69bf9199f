"""Backend performance from OpenTelemetry spans: endpoints, dependencies, errors, traces.

Contract (docs/kpis.md, "Backend"); every figure reads the ``spans`` table
(:mod:`shopwatch.telemetry`) of one project, spans counted by their start time in the
half-open period:

- A **request** is a server span (``kind = 'server'``). Its **endpoint** is its service,
  ``http_method`` and ``http_route`` (the span's name when it has no route: the name of
  an HTTP server span without a route is its method, and other servers name the
  operation), shown by :func:`endpoint_label`.
- A span is **in error** when its status is ``error`` or its ``http_status`` is 500 or
  more (:data:`IN_ERROR`). **Error rate**: requests in error ÷ requests.
  **Throughput**: requests per minute of the period (per bucket: per minute of the part
  of the bucket inside the period, so the partial first and last buckets are not low).
  **Latency**: p50, p95, p99 of ``duration_ms`` (``quantile_cont``, linear
  interpolation between ranks).
- :func:`backend`: per service (every service with a span in the period, whatever the
  ``service`` filter) and overall; per endpoint; per bucket of the range (every bucket,
  zeros and ``None`` where there is no request); the **slowest endpoints**: by p95 among
  those with at least ``min_calls`` requests.
- :func:`dependencies`: client spans and spans with a ``db_system``, grouped as
  database operations (``db_system`` + ``db_operation``) or outgoing calls by host
  (``server_address``, else ``peer_service``, else the span's name); per group its calls,
  error rate, p50, p95 and **share of the time**: the sum of its durations ÷ the sum of
  the durations of the root server spans of the traces it occurs in (a root server span
  is a server span whose parent is not among the trace's spans in the period). Only the
  traces that have a root server span count in a share. Calls made in parallel overlap,
  so the shares of one trace's dependencies may add up to more than 100 %.
- :func:`errors`: spans in error or with an exception, grouped by service, exception
  type (without one: ``HTTP <status>`` or ``(error status)``) and message normalised by
  :func:`normal_sql` (e-mail addresses, UUIDs, ids and numbers replaced); per group its
  count, traces, the latest message, stack trace and trace id, the endpoints of the
  error's service in those traces, and first and last seen over all stored history.
- :func:`trace`: every span of one trace (any time), in tree order — each span after
  its parent, siblings by start time — with its depth, its offset from the trace's first
  start, its attributes and exceptions; and the browser side (docs/rum.md, "Browser to
  backend"): the page views and API calls of the ``rum`` table that carry the trace id
  (at most :data:`MAX_TRACE_VIEWS`, oldest first, each view with its last reported LCP),
  and the sessions of those rows and of the spans' ``session_id``.
"""

from __future__ import annotations

import re
from typing import Any, Final

import msgspec

from shopwatch.analytics.sessions import TS
from shopwatch.analytics.timerange import US, TimeRange, iso_utc
from shopwatch.errors import BadRequest, PageNotFound
from shopwatch.store.base import EventStore

MIN_CALLS: Final = 5  # an endpoint with fewer requests is not ranked among the slowest
MAX_ENDPOINTS: Final = 200
MAX_SLOWEST: Final = 10
MAX_DEPENDENCIES: Final = 200
MAX_GROUPS: Final = 100
MAX_ENDPOINTS_PER_GROUP: Final = 5
MAX_TRACE_SPANS: Final = 2000
MAX_TRACE_VIEWS: Final = 100
TRACE_ID_RE: Final = re.compile(r"[0-9a-fA-F]{32}")

PERIOD: Final = f"project_id = ? AND ts >= {TS} AND ts < {TS}"
IN_ERROR: Final = "(status = 'error' OR COALESCE(http_status, 0) >= 500)"
ROUTE: Final = "COALESCE(http_route, name)"
_QUANTILES: Final = "quantile_cont(duration_ms, [0.5, 0.95, 0.99])"
# An error group's type and message (see the module docstring).
_ERROR_SPAN: Final = ("(exception_type IS NOT NULL OR exception_message IS NOT NULL "
                      f"OR {IN_ERROR})")
_ERROR_TYPE: Final = ("COALESCE(exception_type, CASE WHEN COALESCE(http_status, 0) >= 500 "
                      "THEN 'HTTP ' || http_status ELSE '(error status)' END)")
_ERROR_MESSAGE: Final = "COALESCE(exception_message, status_message, '')"
# Normalisation, in this order (RE2 syntax, as DuckDB's regexp_replace reads it).
_NORMAL: Final = (
    (r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}", "<email>"),
    (r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b",
     "<id>"),
    # An identifier with a prefix and a digit: tok_1N3T9x, ORD-2024-0001, red-shoe-42.
    (r"\b[A-Za-z]+[_\-][A-Za-z0-9_\-]*[0-9][A-Za-z0-9_\-]*\b", "<id>"),
    # Hex of 8 digits or more: trace and span ids, hashes, object addresses.
    (r"\b(0x)?[0-9a-fA-F]{8,}\b", "<id>"),
    (r"[0-9]+(\.[0-9]+)?", "<n>"),
)


def normal_sql(expr: str) -> str:
    """SQL: the message ``expr`` normalised for grouping (at most 1,000 characters)."""
    out = f"left({expr}, 1000)"
    for pattern, replacement in _NORMAL:
        out = f"regexp_replace({out}, '{pattern}', '{replacement}', 'g')"
    return out


def endpoint_label(method: str | None, route: str) -> str:
    """``GET /cart/{id}``; the method is not repeated when the route (a span's name)
    already starts with it."""
    if not method or route == method or route.startswith(method + " "):
        return route
    return f"{method} {route}"


def parse_trace_id(text: str) -> str:
    """A trace id as stored (32 lower-case hex digits); BadRequest otherwise."""
    if not TRACE_ID_RE.fullmatch(text):
        raise BadRequest(f"trace_id: {text[:64]!r} is not 32 hex digits")
    return text.lower()


def _ms(value: float | None) -> float | None:
    return None if value is None else round(float(value), 3)


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def _figures(n: int, errors: int, q: list[float] | None, minutes: float) -> dict[str, Any]:
    """Requests, errors, error rate, throughput and latency of a set of requests."""
    p50, p95, p99 = q if q else (None, None, None)
    return {"requests": n, "errors": errors, "error_rate": _ratio(errors, n),
            "throughput": n / minutes if minutes > 0 else None,
            "p50": _ms(p50), "p95": _ms(p95), "p99": _ms(p99)}


def _service_filter(service: str | None) -> tuple[str, list[Any]]:
    return ("AND service = ?", [service]) if service else ("", [])


def backend(store: EventStore, project_id: int, rng: TimeRange, service: str | None = None,
            min_calls: int = MIN_CALLS) -> dict[str, Any]:
    """Services, totals, endpoints, buckets and the slowest endpoints (module docstring);
    ``service`` narrows all but the services list."""
    only, extra = _service_filter(service)
    bucket_us = rng.bucket_us
    rows = store.query(f"""
WITH a AS MATERIALIZED (
    SELECT service, kind, http_method AS method, {ROUTE} AS route, duration_ms,
           {IN_ERROR} AS err, epoch_us(ts) // {bucket_us} AS b
    FROM spans WHERE {PERIOD}
), s AS MATERIALIZED (SELECT * FROM a WHERE kind = 'server' {only})
SELECT 'service', service, NULL, NULL, NULL, count(*) FILTER (WHERE kind = 'server'),
       count(*) FILTER (WHERE kind = 'server' AND err),
       {_QUANTILES} FILTER (WHERE kind = 'server'), count(*)
FROM a GROUP BY service
UNION ALL
SELECT 'all', NULL, NULL, NULL, NULL, count(*), count(*) FILTER (WHERE err), {_QUANTILES},
       NULL FROM s
UNION ALL (
    SELECT 'endpoint', service, method, route, NULL, count(*), count(*) FILTER (WHERE err),
           {_QUANTILES}, NULL
    FROM s GROUP BY service, method, route
    ORDER BY count(*) DESC, service, route, method LIMIT {MAX_ENDPOINTS})
UNION ALL (
    SELECT 'slow', service, method, route, NULL, count(*), count(*) FILTER (WHERE err),
           {_QUANTILES}, NULL
    FROM s GROUP BY service, method, route HAVING count(*) >= ?
    ORDER BY quantile_cont(duration_ms, 0.95) DESC, service, route, method
    LIMIT {MAX_SLOWEST})
UNION ALL
SELECT 'bucket', NULL, NULL, NULL, b, count(*), count(*) FILTER (WHERE err), {_QUANTILES},
       NULL FROM s GROUP BY b
""", [project_id, rng.start_us, rng.end_us, *extra, min_calls])
    minutes = rng.span_us / (60 * US)
    services: list[dict[str, Any]] = []
    endpoints: list[dict[str, Any]] = []
    slowest: list[dict[str, Any]] = []
    per_bucket: dict[int, tuple[int, int, list[float] | None]] = {}
    totals = _figures(0, 0, None, minutes)
    for tag, svc, method, route, b, n, err, q, spans in rows:
        if tag == "service":
            services.append({"service": svc, "spans": int(spans),
                             **_figures(int(n), int(err), q, minutes)})
        elif tag == "all":
            totals = _figures(int(n), int(err), q, minutes)
        elif tag == "bucket":
            per_bucket[int(b) * bucket_us] = (int(n), int(err), q)
        else:
            item = {"service": svc, "method": method, "route": route,
                    "endpoint": endpoint_label(method, route),
                    **_figures(int(n), int(err), q, minutes)}
            (endpoints if tag == "endpoint" else slowest).append(item)
    services.sort(key=lambda s: (-s["requests"], s["service"]))
    endpoints.sort(key=lambda e: (-e["requests"], e["service"], e["route"], e["method"] or ""))
    slowest.sort(key=lambda e: (-(e["p95"] or 0), e["service"], e["route"], e["method"] or ""))
    series = []
    for start in rng.buckets():
        # Throughput per minute of the bucket's part inside the period.
        covered = (min(start + bucket_us, rng.end_us) - max(start, rng.start_us)) / (60 * US)
        n, err, q = per_bucket.get(start, (0, 0, None))
        series.append({"t": iso_utc(start), **_figures(n, err, q, covered)})
    return {"range": rng.as_dict(), "service": service, "min_calls": min_calls,
            "services": services, "totals": totals, "endpoints": endpoints,
            "slowest": slowest, "series": series}


def dependencies(store: EventStore, project_id: int, rng: TimeRange,
                 service: str | None = None) -> dict[str, Any]:
    """Database operations and outgoing calls with their share of the time (module
    docstring); ``service``: only the calls that service makes."""
    only, extra = _service_filter(service)
    period = [project_id, rng.start_us, rng.end_us]
    rows = store.query(f"""
WITH d AS MATERIALIZED (
    SELECT trace_id, service, duration_ms, {IN_ERROR} AS err,
           db_system IS NOT NULL AS is_db, db_system AS system,
           CASE WHEN db_system IS NOT NULL THEN db_operation END AS operation,
           CASE WHEN db_system IS NULL THEN COALESCE(server_address, peer_service, name)
           END AS host
    FROM spans WHERE {PERIOD} AND (kind = 'client' OR db_system IS NOT NULL) {only}
), t AS MATERIALIZED (
    SELECT trace_id, span_id, parent_span_id, kind, duration_ms FROM spans
    WHERE {PERIOD} AND trace_id IN (SELECT trace_id FROM d)
), roots AS (
    SELECT r.trace_id, sum(r.duration_ms) AS root_ms FROM t AS r
    WHERE r.kind = 'server' AND NOT EXISTS (
        SELECT 1 FROM t AS p WHERE p.trace_id = r.trace_id AND p.span_id = r.parent_span_id)
    GROUP BY r.trace_id
), j AS (
    -- A trace's roots count once per group, however many of its spans the group has.
    SELECT d.*, roots.root_ms,
           row_number() OVER (PARTITION BY is_db, system, operation, host, trace_id) = 1
               AS first_in_trace
    FROM d LEFT JOIN roots USING (trace_id)
)
SELECT is_db, system, operation, host, count(*), count(*) FILTER (WHERE err),
       quantile_cont(duration_ms, [0.5, 0.95]), sum(duration_ms),
       sum(duration_ms) FILTER (WHERE root_ms IS NOT NULL),
       sum(root_ms) FILTER (WHERE first_in_trace), list(DISTINCT service)
FROM j GROUP BY is_db, system, operation, host
ORDER BY sum(duration_ms) DESC LIMIT {MAX_DEPENDENCIES}
""", [*period, *extra, *period])
    minutes = rng.span_us / (60 * US)
    out = []
    for is_db, system, operation, host, n, err, q, total, in_roots, roots, svcs in rows:
        name = " ".join(p for p in (system, operation) if p) if is_db else host
        out.append({
            "type": "database" if is_db else "call", "name": name, "system": system,
            "operation": operation, "host": host, "services": sorted(svcs or []),
            "calls": int(n), "errors": int(err), "error_rate": _ratio(int(err), int(n)),
            "throughput": int(n) / minutes if minutes > 0 else None,
            "p50": _ms(q[0]), "p95": _ms(q[1]), "total_ms": _ms(total),
            "traces_ms": _ms(roots),
            "share": float(in_roots) / float(roots) if roots else None})
    out.sort(key=lambda r: (-(r["share"] if r["share"] is not None else -1),
                            -(r["total_ms"] or 0), r["name"] or ""))
    return {"range": rng.as_dict(), "service": service, "dependencies": out}


def errors(store: EventStore, project_id: int, rng: TimeRange,
           service: str | None = None) -> dict[str, Any]:
    """Backend errors grouped (module docstring), most frequent first."""
    only, extra = _service_filter(service)
    fingerprint = "md5(service || chr(10) || etype || chr(10) || normal)[:16]"
    rows = store.query(f"""
WITH e AS MATERIALIZED (
    SELECT *, {fingerprint} AS fp FROM (
        SELECT ts, trace_id, service, kind, exceptions, {_ERROR_TYPE} AS etype,
               {_ERROR_MESSAGE} AS message, {normal_sql(_ERROR_MESSAGE)} AS normal
        FROM spans WHERE {PERIOD} AND {_ERROR_SPAN} {only})
), g AS MATERIALIZED (
    SELECT fp, any_value(service) AS service, any_value(etype) AS etype,
           any_value(normal) AS normal, count(*) AS n, count(DISTINCT trace_id) AS traces,
           arg_max(trace_id, ts) AS trace_id, arg_max(message, ts) AS message,
           arg_max(exceptions, ts) AS exceptions
    FROM e GROUP BY fp ORDER BY n DESC, fp LIMIT {MAX_GROUPS}
), srv AS (
    SELECT trace_id, service, http_method AS method, {ROUTE} AS route FROM spans
    WHERE {PERIOD} AND kind = 'server'
          AND trace_id IN (SELECT trace_id FROM e WHERE fp IN (SELECT fp FROM g))
), ep AS (
    SELECT e.fp, srv.service, srv.method, srv.route, count(DISTINCT e.trace_id) AS traces
    FROM e JOIN srv ON e.trace_id = srv.trace_id AND e.service = srv.service
    WHERE e.fp IN (SELECT fp FROM g) GROUP BY ALL
), eps AS (
    SELECT fp, list({{'method': method, 'route': route, 'traces': traces}}
                    ORDER BY traces DESC, route, method) AS endpoints
    FROM ep GROUP BY fp
), seen AS (
    SELECT fp, epoch_us(min(ts)) AS first, epoch_us(max(ts)) AS last FROM (
        SELECT ts, {fingerprint} AS fp FROM (
            SELECT ts, service, {_ERROR_TYPE} AS etype,
                   {normal_sql(_ERROR_MESSAGE)} AS normal
            FROM spans WHERE project_id = ? AND {_ERROR_SPAN}
                             AND service IN (SELECT service FROM g)))
    WHERE fp IN (SELECT fp FROM g) GROUP BY fp
)
SELECT g.fp, g.service, g.etype, g.normal, g.n, g.traces, g.trace_id, g.message,
       g.exceptions, eps.endpoints, seen.first, seen.last
FROM g JOIN seen USING (fp) LEFT JOIN eps USING (fp) ORDER BY g.n DESC, g.fp
""", [project_id, rng.start_us, rng.end_us, *extra, project_id, rng.start_us, rng.end_us,
      project_id])
    groups = []
    for fp, svc, etype, normal, n, traces, trace_id, message, exc, eps, first, last in rows:
        found = msgspec.json.decode(exc) if exc else []
        groups.append({
            "fingerprint": fp, "service": svc, "type": etype, "message": normal,
            "example_message": message, "count": int(n), "traces": int(traces),
            "example_trace_id": trace_id,
            "stacktrace": next((x.get("stacktrace") for x in found
                                if isinstance(x, dict) and x.get("stacktrace")), None),
            "endpoints": [{"method": x["method"], "route": x["route"],
                           "endpoint": endpoint_label(x["method"], x["route"]),
                           "traces": int(x["traces"])}
                          for x in (eps or [])[:MAX_ENDPOINTS_PER_GROUP]],
            "first_seen": iso_utc(int(first)), "last_seen": iso_utc(int(last))})
    return {"range": rng.as_dict(), "service": service, "groups": groups}


_SPAN_COLUMNS: Final = ("span_id", "parent_span_id", "service", "name", "kind", "status",
                        "status_message", "duration_ms", "http_route", "http_method",
                        "http_status", "db_system", "db_operation", "server_address",
                        "peer_service", "exception_type", "exception_message",
                        "session_id", "exceptions", "attributes", "resource")
_JSON_COLUMNS: Final = ("exceptions", "attributes", "resource")


def trace(store: EventStore, project_id: int, trace_id: str) -> dict[str, Any]:
    """Every span of ``trace_id`` in tree order (module docstring); PageNotFound when
    the project has none. At most :data:`MAX_TRACE_SPANS` spans (``truncated``)."""
    trace_id = parse_trace_id(trace_id)
    rows = store.query(f"""
SELECT epoch_us(ts), {", ".join(_SPAN_COLUMNS)} FROM spans
WHERE project_id = ? AND trace_id = ? ORDER BY ts, span_id LIMIT {MAX_TRACE_SPANS + 1}
""", [project_id, trace_id])
    if not rows:
        raise PageNotFound(f"no trace {trace_id} in this project")
    truncated = len(rows) > MAX_TRACE_SPANS
    spans: dict[str, dict[str, Any]] = {}
    for row in rows[:MAX_TRACE_SPANS]:
        span = dict(zip(_SPAN_COLUMNS, row[1:], strict=True))
        if span["span_id"] in spans:
            continue  # an exporter's retry sent it twice: show it once
        for column in _JSON_COLUMNS:
            span[column] = msgspec.json.decode(span[column]) if span[column] else None
        span["start_us"] = int(row[0])
        spans[span["span_id"]] = span
    start = min(s["start_us"] for s in spans.values())
    end = max(s["start_us"] + s["duration_ms"] * 1000 for s in spans.values())
    children: dict[str, list[dict[str, Any]]] = {}
    roots = []
    for span in spans.values():  # already in start order
        parent = span["parent_span_id"]
        if parent and parent in spans and parent != span["span_id"]:
            children.setdefault(parent, []).append(span)
        else:
            roots.append(span)
    ordered: list[dict[str, Any]] = []
    seen: set[str] = set()

    def walk(tops: list[dict[str, Any]]) -> None:
        stack = [(s, 0) for s in reversed(tops)]
        while stack:
            span, depth = stack.pop()
            if span["span_id"] in seen:
                continue
            seen.add(span["span_id"])
            span["depth"] = depth
            ordered.append(span)
            stack.extend((c, depth + 1) for c in reversed(children.get(span["span_id"], [])))

    walk(roots)
    # Spans whose parents form a cycle reach no root: shown as roots rather than lost.
    walk([s for s in spans.values() if s["span_id"] not in seen])
    out = []
    for span in ordered:
        start_us = span.pop("start_us")
        out.append({"span_id": span.pop("span_id"), "parent_span_id": span.pop("parent_span_id"),
                    "depth": span.pop("depth"), "start": iso_utc(start_us),
                    "offset_ms": round((start_us - start) / 1000, 3),
                    "duration_ms": round(float(span.pop("duration_ms")), 3),
                    "error": span["status"] == "error" or (span["http_status"] or 0) >= 500,
                    **span})
    root = out[0]
    views = trace_views(store, project_id, trace_id)
    sessions = {s["session_id"] for s in out if s["session_id"]}
    sessions.update(v["session_id"] for v in views if v["session_id"])
    return {"trace_id": trace_id, "start": iso_utc(start), "page_views": views,
            "sessions": sorted(sessions),
            "duration_ms": round((end - start) / 1000, 3), "spans": out,
            "span_count": len(out), "truncated": truncated,
            "services": sorted({s["service"] for s in out}),
            "errors": sum(1 for s in out if s["error"]),
            "root": {"service": root["service"], "name": root["name"],
                     "endpoint": endpoint_label(root["http_method"],
                                                root["http_route"] or root["name"])}}


def trace_views(store: EventStore, project_id: int, trace_id: str) -> list[dict[str, Any]]:
    """The real-user rows that carry ``trace_id`` (module docstring): page views the
    trace served (``kind`` ``view``, from ``Server-Timing``) and API calls it answered
    (``api``, from the snippet's ``traceparent``), each with its page view's last LCP."""
    rows = store.query(f"""
WITH r AS (
    SELECT epoch_us(ts) AS t, kind, view_id, session_id, page, resource_url,
           device_category, browser, ttfb_ms, duration_ms, failed
    FROM rum WHERE project_id = ? AND trace_id = ? AND kind IN ('view', 'api')
    ORDER BY ts LIMIT {MAX_TRACE_VIEWS}
), v AS (
    SELECT view_id, arg_max(lcp_ms, ts) FILTER (WHERE lcp_ms IS NOT NULL) AS lcp
    FROM rum WHERE project_id = ? AND kind = 'vitals'
                   AND view_id IN (SELECT view_id FROM r WHERE view_id IS NOT NULL)
    GROUP BY view_id
)
SELECT r.*, v.lcp FROM r LEFT JOIN v USING (view_id) ORDER BY r.t, r.kind
""", [project_id, trace_id, project_id])
    return [{"kind": kind, "t": iso_utc(int(t)), "view_id": view, "session_id": session,
             "page": page, "url": url, "device": device, "browser": browser,
             "ttfb_ms": ttfb, "duration_ms": dur, "failed": failed, "lcp_ms": lcp}
            for t, kind, view, session, page, url, device, browser, ttfb, dur, failed, lcp
            in rows]
