"""The service desk in the JSON API (docs/service-desk.md, "API"; definitions in
docs/kpis.md, "Service desk"), read from the project's
``support_contact`` events.

- ``GET /api/v1/service-desk?project=&range=&from=&to=&limit=``: contacts, service level
  (against ``service_level_threshold`` and ``service_level_target``), average speed of
  answer, abandonment, average handle time, first-contact resolution and contacts per
  100 orders; the same per channel, reason and agent, per day of the project's time
  zone, and today per 15-minute interval (the live view). ``format=csv|parquet`` gives
  the days.

Reading takes a session or the project's secret key, like every read route.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from shopwatch.analytics import service_desk
from shopwatch.runtime import Runtime
from shopwatch.web import access, export
from shopwatch.web.params import FromParam, ProjectQuery, RangeParam, ToParam, period

router = APIRouter()


@router.get("/api/v1/service-desk", tags=["service desk"], summary="Service desk")
async def get_service_desk(
    request: Request, project: ProjectQuery = None,
    limit: Annotated[int, Query(ge=1, le=100, description=(
        "rows of each breakdown (channels, reasons, agents)"))] = service_desk.MAX_ROWS,
    range_: RangeParam = None, from_: FromParam = None, to: ToParam = None,
) -> Response:
    """Contacts, service level, speed of answer, abandonment, handle time, first-contact
    resolution and contacts per 100 orders: in total, per channel, reason, agent and
    day, and today per 15-minute interval."""
    rt: Runtime = request.app.state.runtime
    chosen = access.project_for(request, access.require_api(request), project)
    rng = period(range_, from_, to)
    settings = rt.settings
    body = await asyncio.to_thread(
        service_desk.service_desk, rt.events, chosen.id, rng,
        threshold_s=float(settings.service_level_threshold),
        target=float(settings.service_level_target), timezone=chosen.timezone,
        now_us=time.time_ns() // 1000, limit=limit)
    return export.respond(request, body, body["days"], "service-desk-days")
