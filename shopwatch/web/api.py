"""Read routes of the JSON API (secret key)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Query, Request, Response

from shopwatch.errors import BadRequest
from shopwatch.runtime import Runtime
from shopwatch.store.base import EventQuery

router = APIRouter()
_encode = msgspec.json.Encoder().encode
_DEVICE = ("device_category", "browser", "browser_version", "os", "os_version", "language",
           "country", "screen_width", "screen_height")


def parse_time(value: str, field: str) -> int:
    """Epoch microseconds from RFC 3339 or epoch milliseconds; 400 naming the field."""
    text = value.strip()
    try:
        if text.lstrip("-").isdigit():
            return int(text) * 1000
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise BadRequest(f"{field}: {value!r} is neither RFC 3339 nor epoch milliseconds") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1_000_000)


def iso(us: int) -> str:
    return datetime.fromtimestamp(us / 1_000_000, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def present(row: dict[str, Any]) -> dict[str, Any]:
    """A stored row as the API shows it."""
    out: dict[str, Any] = {"id": row["id"], "name": row["name"], "ts": iso(row["ts_us"]),
                           "received_at": iso(row["received_at_us"])}
    for key in ("session_id", "anonymous_id", "user_id", "page", "referrer", "utm_source",
                "utm_medium", "utm_campaign", "utm_term", "utm_content"):
        out[key] = row[key]
    device = {k.removeprefix("device_"): row[k] for k in _DEVICE if row[k] is not None}
    out["device"] = device
    out["params"] = row["params"] or {}
    out["flags"] = row["flags"] or []
    return out


@router.get("/api/v1/events", tags=["events"], summary="Read stored events")
async def list_events(
    request: Request,
    from_: Annotated[str | None, Query(alias="from", description="RFC 3339 or epoch ms")] = None,
    to: Annotated[str | None, Query(description="RFC 3339 or epoch ms (exclusive)")] = None,
    name: Annotated[list[str] | None, Query(description="event name; repeat or comma-separate")]
    = None,
    limit: Annotated[int, Query(ge=1)] = 100,
    order: Annotated[str, Query(pattern="^(asc|desc)$")] = "desc",
    sort: Annotated[str, Query(pattern="^(ts|received_at)$",
                               description="order by event time or by receive time")] = "ts",
    received_from: Annotated[str | None, Query(
        description="only events received at or after this time (RFC 3339 or epoch ms); "
                    "with sort=received_at&order=asc, a way to follow new events")] = None,
) -> Response:
    """Events of the key's project, newest first by default, each with its ``id``."""
    rt: Runtime = request.app.state.runtime
    info = rt.keys.require(request.headers, secret=True)
    if limit > rt.settings.read_limit_max:
        raise BadRequest(f"limit: at most {rt.settings.read_limit_max}")
    names = [n.strip() for part in (name or []) for n in part.split(",") if n.strip()]
    query = EventQuery(
        project_id=info.project_id,
        since_us=parse_time(from_, "from") if from_ else None,
        until_us=parse_time(to, "to") if to else None,
        names=names, limit=limit, newest_first=order == "desc",
        received_since_us=parse_time(received_from, "received_from") if received_from else None,
        by_received=sort == "received_at",
    )
    rows = await asyncio.to_thread(rt.events.query_events, query)
    return Response(_encode({"events": [present(r) for r in rows]}),
                    media_type="application/json")
