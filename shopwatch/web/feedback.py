"""Customer feedback in the JSON API (docs/api.md; definitions in docs/kpis.md, "NPS
and CSAT", and docs/feedback.md), read from the project's ``survey_response`` events.

- ``GET /api/v1/feedback?project=&range=&from=&to=&limit=``: responses, NPS and CSAT
  in total and per trend bucket (week, day or the range's bucket), by segment (device,
  country, first-touch channel, payment method), by survey, the score distributions,
  and how many unhappy responses hit a JS error or an incident.
- ``GET /api/v1/feedback/comments?project=&range=&from=&to=&q=&limit=&offset=``: the
  comments, newest first, matching ``q`` (case-insensitive substring), each linked to
  the customer's orders, sessions (journey links), the JS errors in them and the
  incidents overlapping them.

Reading takes a session or the project's secret key, like every read route.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from shopwatch.analytics import feedback
from shopwatch.analytics.timerange import TimeRange
from shopwatch.runtime import Runtime
from shopwatch.store.incidents import Incident, list_incidents
from shopwatch.web import access, export
from shopwatch.web.params import FromParam, ProjectQuery, RangeParam, ToParam, period

router = APIRouter()


def _incidents(rt: Runtime, project_id: int, rng: TimeRange) -> list[Incident]:
    """The incidents that may overlap a session linked to a response of ``rng``."""
    return list_incidents(rt.state, project_id,
                          since=rng.start_us / 1e6 - feedback.LOOKBACK_S,
                          until=rng.end_us / 1e6, limit=1000)


@router.get("/api/v1/feedback", tags=["feedback"], summary="NPS and CSAT")
async def get_feedback(
    request: Request, project: ProjectQuery = None,
    limit: Annotated[int, Query(ge=1, le=100, description="rows of each segment list")]
    = feedback.MAX_SEGMENT_ROWS,
    range_: RangeParam = None, from_: FromParam = None, to: ToParam = None,
) -> Response:
    """NPS (% promoters 9-10 - % detractors 0-6) and CSAT (% of responses 4-5) with
    their counts, per trend bucket, per device, country, first-touch channel and payment
    method; responses per survey; score distributions; unhappy responses with a JS error
    or an incident in their sessions. ``format=csv|parquet`` gives the trend."""
    rt: Runtime = request.app.state.runtime
    chosen = access.project_for(request, access.require_api(request), project)
    rng = period(range_, from_, to)

    def compute() -> dict[str, Any]:
        return feedback.feedback(rt.events, chosen.id, rng, _incidents(rt, chosen.id, rng),
                                 limit)

    body = await asyncio.to_thread(compute)
    return export.respond(request, body, body["series"], "feedback-trend")


@router.get("/api/v1/feedback/comments", tags=["feedback"], summary="Survey comments")
async def get_comments(
    request: Request, project: ProjectQuery = None,
    q: Annotated[str, Query(max_length=200, description=(
        "case-insensitive substring of the comment"))] = "",
    limit: Annotated[int, Query(ge=1, le=feedback.MAX_COMMENTS_PAGE)] = 20,
    offset: Annotated[int, Query(ge=0)] = 0,
    range_: RangeParam = None, from_: FromParam = None, to: ToParam = None,
) -> Response:
    """Comments newest first, each with the customer's orders, sessions (links to their
    journeys), the JS errors in those sessions and the incidents overlapping them."""
    rt: Runtime = request.app.state.runtime
    chosen = access.project_for(request, access.require_api(request), project)
    rng = period(range_, from_, to)

    def compute() -> dict[str, Any]:
        return feedback.comments(rt.events, chosen.id, rng, q,
                                 _incidents(rt, chosen.id, rng), limit, offset)

    body = await asyncio.to_thread(compute)
    return export.respond(request, body, [
        {k: c[k] for k in ("id", "ts", "survey", "score", "category", "comment", "user_id",
                           "transaction_id")}
        for c in body["comments"]], "feedback-comments")
