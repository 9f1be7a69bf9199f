"""Notification channels and their delivery history in the JSON API (docs/alerts.md).

- ``GET /api/v1/channels``: the project's channels. Secrets (a webhook's signing secret,
  Apprise URLs' tokens) are shown to admin sessions and the project's secret key only.
- ``POST /api/v1/channels``: ``{"name", "kind", "config": {...}}``; answers the channel
  with its secrets (a webhook's generated secret: keep it to verify signatures).
- ``DELETE /api/v1/channels/{channel_id}``: the channel and its history.
- ``POST /api/v1/channels/{channel_id}/test``: send a test notification now and answer
  ``{"ok": true}`` or ``{"ok": false, "error": "..."}``; recorded as a delivery.
- ``GET /api/v1/deliveries?channel=&alert=&limit=``: delivery history, newest first.

Changes take the project's secret key, or an admin session with its CSRF token.
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Query, Request, Response

from shopwatch.alerts import channels as kinds
from shopwatch.alerts.channels import Environment
from shopwatch.alerts.delivery import Outbox
from shopwatch.errors import BadRequest, ConfigError, NotFound, PageNotFound
from shopwatch.runtime import Runtime, notify_environment
from shopwatch.store import channels as store
from shopwatch.store.state import Project
from shopwatch.web import access
from shopwatch.web.params import ProjectQuery

router = APIRouter()
_encode = msgspec.json.Encoder().encode


def _json(body: Any, status: int = 200) -> Response:
    return Response(_encode(body), status_code=status, media_type="application/json")


def _writer(request: Request, project: str | None) -> Project:
    principal = access.require_writer(request, "change notification channels")
    return access.project_for(request, principal, project)


def _env(rt: Runtime) -> Environment:
    return rt.outbox.env if rt.outbox is not None else notify_environment(
        rt.settings, rt.checks_policy)


def _outbox(rt: Runtime) -> Outbox:
    return rt.outbox if rt.outbox is not None else Outbox(rt.state, _env(rt))


@router.get("/api/v1/channels", tags=["alerts"], summary="Notification channels")
async def get_channels(request: Request, project: ProjectQuery = None) -> Response:
    rt: Runtime = request.app.state.runtime
    principal = access.require_api(request)
    chosen = access.project_for(request, principal, project)
    reveal = principal.is_admin or principal.key_project_id is not None
    found = await asyncio.to_thread(store.list_channels, rt.state, chosen.id)
    return _json({"channels": [kinds.present(c, reveal=reveal) for c in found]})


@router.post("/api/v1/channels", tags=["alerts"], summary="Add a notification channel")
async def post_channel(request: Request, project: ProjectQuery = None) -> Response:
    """``{"name": "ops", "kind": "webhook" | "email" | "apprise", "config": {...}}``:
    ``webhook`` takes ``url`` (and ``secret``, generated when left out), ``email`` takes
    ``to`` (a list of addresses), ``apprise`` takes ``urls``. Errors name the field."""
    rt: Runtime = request.app.state.runtime
    chosen = _writer(request, project)
    data = await access.json_body(request, 64 * 1024)
    if not isinstance(data, dict):
        raise BadRequest("body: an object with name, kind and config")
    unknown = sorted(set(data) - {"name", "kind", "config"})
    if unknown:
        raise BadRequest(f"{unknown[0]}: not a field (name, kind, config)")
    name, kind = data.get("name"), data.get("kind")
    if not isinstance(name, str):
        raise BadRequest("name: required (a string)")
    if not isinstance(kind, str):
        raise BadRequest(f"kind: required, one of {', '.join(kinds.KINDS)}")
    try:
        made = await asyncio.to_thread(kinds.create, rt.state, chosen.id, name, kind,
                                       data.get("config", {}), _env(rt))
    except ConfigError as exc:
        field, _, _ = str(exc).partition(":")
        if field in ("name", "kind", "config"):
            raise BadRequest(str(exc)) from None
        raise BadRequest(f"config.{exc}") from None
    return _json(kinds.present(made, reveal=True), 201)


@router.delete("/api/v1/channels/{channel_id}", tags=["alerts"],
               summary="Remove a notification channel")
async def delete_channel(request: Request, channel_id: int,
                         project: ProjectQuery = None) -> Response:
    rt: Runtime = request.app.state.runtime
    chosen = _writer(request, project)
    try:
        gone = await asyncio.to_thread(store.remove_channel, rt.state, chosen.id, channel_id)
    except NotFound as exc:
        raise PageNotFound(str(exc)) from None
    return _json({"deleted": gone.id, "name": gone.name})


@router.post("/api/v1/channels/{channel_id}/test", tags=["alerts"],
             summary="Send a test notification")
async def test_channel(request: Request, channel_id: int,
                       project: ProjectQuery = None) -> Response:
    """Send a test notification through the channel now (once, no retries) and answer
    whether it went: ``{"ok", "delivery_id", "error"}``. Recorded in the history."""
    rt: Runtime = request.app.state.runtime
    chosen = _writer(request, project)
    try:
        found = await asyncio.to_thread(store.get_channel, rt.state, chosen.id, channel_id)
    except NotFound as exc:
        raise PageNotFound(str(exc)) from None
    note = kinds.sample_notification(chosen.id, found.name, str(request.base_url) + "alerts")
    outcome = await asyncio.to_thread(_outbox(rt).send_now, found.id, note)
    return _json({"ok": outcome.ok, "delivery_id": outcome.delivery_id,
                  "error": outcome.error})


def delivery_json(d: store.Delivery, names: dict[int, str]) -> dict[str, Any]:
    """A delivery as the API shows it; ``names`` maps channel ids to names."""
    note = json.loads(d.notification)
    return {"id": d.id, "channel_id": d.channel_id, "channel": names.get(d.channel_id),
            "alert": d.alert, "event": note.get("event"), "title": note.get("title"),
            "status": d.status, "attempts": d.attempts,
            "next_attempt_at": kinds.iso(d.next_attempt_at)
            if d.status in ("pending", "sending") else None,
            "last_error": d.last_error, "created_at": kinds.iso(d.created_at),
            "sent_at": kinds.iso(d.sent_at)}


@router.get("/api/v1/deliveries", tags=["alerts"], summary="Notification delivery history")
async def get_deliveries(
    request: Request, project: ProjectQuery = None,
    channel: Annotated[str | None, Query(description="a channel's id or name")] = None,
    alert: Annotated[str | None, Query(description="an alert's key or id")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    """Deliveries newest first: status (pending, sending, sent, failed), attempts, the
    last error and when the next attempt is due."""
    rt: Runtime = request.app.state.runtime
    chosen = access.project_for(request, access.require_api(request), project)
    channel_id = None
    if channel:
        try:
            channel_id = store.get_channel(rt.state, chosen.id, channel).id
        except NotFound as exc:
            raise BadRequest(f"channel: {exc}") from None
    found = await asyncio.to_thread(store.list_deliveries, rt.state, chosen.id,
                                    channel_id=channel_id, alert=alert, limit=limit)
    names = {c.id: c.name for c in store.list_channels(rt.state, chosen.id)}
    return _json({"deliveries": [delivery_json(d, names) for d in found]})
