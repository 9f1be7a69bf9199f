"""Query parameters shared by the API's routes, and how an analytics route reads its
period. One definition, so that every route documents them alike in the OpenAPI schema
(docs/api.md) and reads ``range``/``from``/``to`` the same way."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import Query

from shopwatch.analytics.timerange import TimeRange, parse_range

ProjectQuery = Annotated[str | None, Query(
    description="project id (sessions; a secret key reads its own project)")]
RangeParam = Annotated[str | None, Query(alias="range", description=(
    "1h, 24h, 7d, 30d, or custom with from and to (default: custom when from and to are "
    "given, else 24h)"))]
FromParam = Annotated[str | None, Query(alias="from", description="RFC 3339 or epoch ms")]
ToParam = Annotated[str | None, Query(description="RFC 3339 or epoch ms (exclusive)")]


def period(range_: str | None, from_: str | None, to: str | None) -> TimeRange:
    """The period of a request: a preset, or ``from``/``to`` (custom when both are given
    without ``range``); 24 hours by default. BadRequest (400) with the reason for an
    unknown preset or an unreadable or inverted custom period."""
    if range_ is None:
        range_ = "custom" if from_ and to else "24h"
    return parse_range(range_, from_, to, time.time_ns() // 1000)
