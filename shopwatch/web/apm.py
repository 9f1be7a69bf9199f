"""Backend performance in the JSON API (docs/api.md, "Backend"; definitions in
docs/kpis.md, "Backend"), read from the OpenTelemetry spans the project sends.

- ``GET /api/v1/backend?project=&range=&service=&min_calls=``: every service with its
  totals, the period's totals, each endpoint's throughput, error rate and p50/p95/p99,
  the same per bucket (``series``) and the slowest endpoints. ``format=csv|parquet``
  gives the endpoints.
- ``GET /api/v1/backend/dependencies?project=&range=&service=``: database operations
  and outgoing calls with calls, error rate, p50/p95 and share of the time.
- ``GET /api/v1/backend/errors?project=&range=&service=``: backend errors grouped.
- ``GET /api/v1/traces/{trace_id}?project=``: one trace's spans in tree order; ``400``
  when the id is not 32 hex digits, ``404`` when the project has no span of it.

Reading takes a session or the project's secret key, like every read route; ``service``
narrows the figures to one service (``""``: all).
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from shopwatch.analytics import apm
from shopwatch.runtime import Runtime
from shopwatch.web import access, export
from shopwatch.web.params import FromParam, ProjectQuery, RangeParam, ToParam, period

router = APIRouter()

ServiceParam = Annotated[str | None, Query(
    max_length=256, description="only this service (its spans' service.name)")]


@router.get("/api/v1/backend", tags=["backend"], summary="Services and endpoints")
async def get_backend(
    request: Request, project: ProjectQuery = None, service: ServiceParam = None,
    min_calls: Annotated[int, Query(
        ge=1, le=1_000_000, description="requests an endpoint needs to rank among the "
        "slowest")] = apm.MIN_CALLS,
    range_: RangeParam = None, from_: FromParam = None, to: ToParam = None,
) -> Response:
    """Throughput, error rate and latency (p50, p95, p99) per service, per endpoint and
    per bucket, from server spans; the slowest endpoints by p95."""
    rt: Runtime = request.app.state.runtime
    chosen = access.project_for(request, access.require_api(request), project)
    body = await asyncio.to_thread(apm.backend, rt.events, chosen.id,
                                   period(range_, from_, to), service or None, min_calls)
    return export.respond(request, body, body["endpoints"], "backend-endpoints")


@router.get("/api/v1/backend/dependencies", tags=["backend"],
            summary="Database operations and outgoing calls")
async def get_dependencies(
    request: Request, project: ProjectQuery = None, service: ServiceParam = None,
    range_: RangeParam = None, from_: FromParam = None, to: ToParam = None,
) -> Response:
    """Client spans and database spans grouped by database operation or by host, with
    calls, error rate, p50/p95 and their share of the time of the requests they ran in."""
    rt: Runtime = request.app.state.runtime
    chosen = access.project_for(request, access.require_api(request), project)
    body = await asyncio.to_thread(apm.dependencies, rt.events, chosen.id,
                                   period(range_, from_, to), service or None)
    return export.respond(request, body, body["dependencies"], "backend-dependencies")


@router.get("/api/v1/backend/errors", tags=["backend"], summary="Backend errors, grouped")
async def get_backend_errors(
    request: Request, project: ProjectQuery = None, service: ServiceParam = None,
    range_: RangeParam = None, from_: FromParam = None, to: ToParam = None,
) -> Response:
    """Spans in error or with an exception, grouped by service, exception type and
    normalised message: count, traces, endpoints, an example trace, first and last seen."""
    rt: Runtime = request.app.state.runtime
    chosen = access.project_for(request, access.require_api(request), project)
    body = await asyncio.to_thread(apm.errors, rt.events, chosen.id,
                                   period(range_, from_, to), service or None)
    return export.respond(request, body, body["groups"], "backend-errors")


@router.get("/api/v1/traces/{trace_id}", tags=["backend"], summary="One trace's spans")
async def get_trace(request: Request, trace_id: str, project: ProjectQuery = None) -> Response:
    """Every span of the trace in tree order, with depth, offset from the trace's start,
    duration, attributes and exceptions (the waterfall)."""
    rt: Runtime = request.app.state.runtime
    chosen = access.project_for(request, access.require_api(request), project)
    # Checked after access: an anonymous caller learns nothing, not even the format.
    trace_id = apm.parse_trace_id(trace_id)
    body = await asyncio.to_thread(apm.trace, rt.events, chosen.id, trace_id)
    return export.respond(request, body, body["spans"], f"trace-{trace_id}")
