"""Security signals in the JSON API (docs/api.md, "Security"; definitions in
docs/kpis.md, "Security"), read from the commerce events the project sends.

- ``GET /api/v1/security?project=&range=&from=&to=&limit=``: sign-ins (totals and per
  bucket; networks, user agents and accounts by failures; accounts per network),
  payments (declined rate in total, per bucket, per payment method and gateway; decline
  reasons; cards declined), account changes (by kind of field, password changes, the
  latest ones) and sign-ups (per bucket and per network). ``format=csv|parquet`` gives
  the networks by failed sign-ins.

Reading takes a session or the project's secret key, like every read route. The
findings the detectors raise are under ``/api/v1/security/findings``.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from shopwatch.analytics import security
from shopwatch.runtime import Runtime
from shopwatch.web import access, export
from shopwatch.web.params import FromParam, ProjectQuery, RangeParam, ToParam, period

router = APIRouter()


@router.get("/api/v1/security", tags=["security"], summary="Security signals")
async def get_security(
    request: Request, project: ProjectQuery = None,
    limit: Annotated[int, Query(ge=1, le=100, description=(
        "rows of each list (networks, user agents, accounts, reasons, cards...); the "
        "latest account changes stay at most 20"))] = security.MAX_ROWS,
    range_: RangeParam = None, from_: FromParam = None, to: ToParam = None,
) -> Response:
    """Sign-ins and their failure rate, the networks, user agents and accounts with the
    most failures, accounts per network; declined payments by method, gateway and
    reason, and the cards declined; account changes by field; sign-ups by network."""
    rt: Runtime = request.app.state.runtime
    chosen = access.project_for(request, access.require_api(request), project)
    body = await asyncio.to_thread(security.security, rt.events, chosen.id,
                                   period(range_, from_, to), limit)
    return export.respond(request, body, body["logins"]["networks"], "security-networks")
