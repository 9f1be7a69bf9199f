"""Customers in the JSON API (docs/customers.md; definitions also in docs/kpis.md,
"Customers"), read from the purchase, refund, survey_response and support_contact
events the project sends and the marketing spend it uploads.

- ``GET /api/v1/customers?project=&range=&from=&to=&months=``: the period's customer
  KPIs (customers, new and returning, repeat-purchase rate, churn...), the cohort
  retention table, the RFM segments, the lifetime-value summary and the acquisition
  cost (CAC, LTV:CAC and payback by channel, CAC by month and channel).
- ``GET /api/v1/customers/list?sort=&order=&segment=&limit=&offset=&to=...``: one row
  per customer as of the end of the period. ``format=csv|parquet`` exports the page of
  rows.

Reading takes a session or the project's secret key, like every read route. The churn
horizon and the health score's weights are the settings ``customer_churn_days`` and
``customer_health_weights``.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from shopwatch.analytics import customers
from shopwatch.runtime import Runtime
from shopwatch.web import access, export
from shopwatch.web.params import FromParam, ProjectQuery, ToParam, period

router = APIRouter()

RangeParam = Annotated[str | None, Query(alias="range", description=(
    "1h, 24h, 7d, 30d, or custom with from and to (default: custom when from and to are "
    "given, else 24h). Per-customer figures are as of the period's end."))]


def _weights(rt: Runtime) -> dict[str, float]:
    return customers.parse_weights(rt.settings.customer_health_weights)


@router.get("/api/v1/customers", tags=["customers"], summary="Customers")
async def get_customers(
    request: Request, project: ProjectQuery = None,
    months: Annotated[int, Query(ge=1, le=customers.MAX_MONTHS, description=(
        "calendar months of the cohort and acquisition-cost tables, ending with the "
        "month of the period's end"))] = customers.DEFAULT_MONTHS,
    range_: RangeParam = None, from_: FromParam = None, to: ToParam = None,
) -> dict[str, Any]:
    """Customers, new and returning, repeat-purchase rate and churn; cohorts by
    first-order month; RFM segments; lifetime value; acquisition cost by channel and
    month."""
    rt: Runtime = request.app.state.runtime
    chosen = access.project_for(request, access.require_api(request), project)
    return await asyncio.to_thread(
        customers.customers, rt.events, rt.state, chosen, period(range_, from_, to),
        churn_days=rt.settings.customer_churn_days, weights=_weights(rt), months=months)


@router.get("/api/v1/customers/list", tags=["customers"], summary="Customer list")
async def get_customer_list(
    request: Request, project: ProjectQuery = None,
    sort: Annotated[str, Query(description=", ".join(customers.SORTS))] = "net_revenue",
    order: Annotated[str, Query(description="asc or desc")] = "desc",
    segment: Annotated[str | None, Query(description=", ".join(customers.SEGMENTS))] = None,
    limit: Annotated[int, Query(ge=1, le=customers.MAX_LIST)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
    range_: RangeParam = None, from_: FromParam = None, to: ToParam = None,
) -> Response:
    """One row per customer as of the period's end: orders, net revenue, AOV,
    frequency, RFM scores, segment, health, predicted LTV and probability alive."""
    rt: Runtime = request.app.state.runtime
    chosen = access.project_for(request, access.require_api(request), project)
    body = await asyncio.to_thread(
        customers.customer_list, rt.events, chosen, period(range_, from_, to),
        weights=_weights(rt), sort=sort, order=order, segment=segment or None,
        limit=limit, offset=offset)
    flat = [{**{k: v for k, v in r.items() if k != "rfm"},
             **{f"rfm_{k}": v for k, v in r["rfm"].items()}} for r in body["rows"]]
    return export.respond(request, body, flat, "customers")
