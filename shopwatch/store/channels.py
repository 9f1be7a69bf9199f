"""Notification channels and their deliveries in the state store (migration 11).

``channels``: one row per channel of a project, its kind's config as JSON (secrets
included: only admins and secret keys see them, :mod:`shopwatch.web.channels`).
``deliveries``: one row per notification per channel — the outbox and the history at
once. Status moves ``pending → sending → sent``, or back to ``pending`` for a retry, or
to ``failed``. Every move is a compare-and-set ``UPDATE`` on the row's status, attempt
count and due time, so several workers (or a worker restarted mid-send) never send one
attempt twice. Times are epoch seconds.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Final, Literal

import sqlalchemy as sa

from shopwatch.errors import ConfigError, NotFound
from shopwatch.store.state import StateStore, channels, deliveries

Status = Literal["pending", "sending", "sent", "failed"]
STATUSES: Final = ("pending", "sending", "sent", "failed")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.@-]{0,99}")


@dataclass(frozen=True)
class StoredChannel:
    id: int
    project_id: int
    name: str
    kind: str
    config: dict[str, Any]
    enabled: bool
    created_at: float


@dataclass(frozen=True)
class Delivery:
    id: int
    channel_id: int
    project_id: int
    notification: str  # the Notification as JSON
    alert: str | None
    status: str
    attempts: int
    next_attempt_at: float
    last_error: str | None
    created_at: float
    sent_at: float | None


def check_name(name: str) -> str:
    name = name.strip()
    if not _NAME.fullmatch(name):
        raise ConfigError(f"name: {name!r} must be 1-100 letters, digits, spaces or ._@- "
                          "(starting with a letter or digit)")
    return name


def _channel(row: Any) -> StoredChannel:
    return StoredChannel(int(row.id), int(row.project_id), row.name, row.kind,
                         json.loads(row.config), bool(row.enabled), float(row.created_at))


def _delivery(row: Any) -> Delivery:
    return Delivery(int(row.id), int(row.channel_id), int(row.project_id), row.notification,
                    row.alert, row.status, int(row.attempts), float(row.next_attempt_at),
                    row.last_error, float(row.created_at),
                    None if row.sent_at is None else float(row.sent_at))


def add_channel(state: StateStore, project_id: int, name: str, kind: str,
                config: dict[str, Any], now: float) -> StoredChannel:
    """Store a channel (its config already validated); ConfigError when the name is
    taken in the project."""
    name = check_name(name)
    with state.engine.begin() as conn:
        taken = conn.execute(sa.select(channels.c.id).where(
            (channels.c.project_id == project_id) & (channels.c.name == name))).first()
        if taken is not None:
            raise ConfigError(f"name: the project has a channel {name!r} already")
        key = conn.execute(channels.insert().values(
            project_id=project_id, name=name, kind=kind, config=json.dumps(config),
            enabled=True, created_at=now)).inserted_primary_key
    assert key is not None
    return StoredChannel(int(key[0]), project_id, name, kind, config, True, now)


def list_channels(state: StateStore, project_id: int) -> list[StoredChannel]:
    with state.engine.connect() as conn:
        rows = conn.execute(sa.select(channels).where(channels.c.project_id == project_id)
                            .order_by(channels.c.name))
        return [_channel(r) for r in rows]


def get_channel(state: StateStore, project_id: int, ref: str | int) -> StoredChannel:
    """The project's channel by id or name; NotFound otherwise."""
    text = str(ref).strip()
    where = (channels.c.id == int(text)) if text.isdigit() else (channels.c.name == text)
    with state.engine.connect() as conn:
        row = conn.execute(sa.select(channels).where(
            where & (channels.c.project_id == project_id))).first()
    if row is None:
        raise NotFound(f"no channel {text!r} in this project")
    return _channel(row)


def remove_channel(state: StateStore, project_id: int, ref: str | int) -> StoredChannel:
    """Delete a channel and its deliveries (history included)."""
    found = get_channel(state, project_id, ref)
    with state.engine.begin() as conn:
        conn.execute(deliveries.delete().where(deliveries.c.channel_id == found.id))
        conn.execute(channels.delete().where(channels.c.id == found.id))
    return found


def add_deliveries(state: StateStore, project_id: int, notification: str, alert: str | None,
                   channel_ids: list[int], now: float, *, status: Status = "pending",
                   attempts: int = 0, next_attempt_at: float | None = None) -> list[int]:
    """One delivery per channel (each must be an enabled channel of the project:
    NotFound otherwise); their ids, in ``channel_ids``' order."""
    ids: list[int] = []
    with state.engine.begin() as conn:
        known = set(conn.execute(sa.select(channels.c.id).where(
            (channels.c.project_id == project_id) & channels.c.enabled
            & channels.c.id.in_(channel_ids))).scalars())
        for channel_id in channel_ids:
            if channel_id not in known:
                raise NotFound(f"no enabled channel {channel_id} in project {project_id}")
            key = conn.execute(deliveries.insert().values(
                channel_id=channel_id, project_id=project_id, notification=notification,
                alert=alert, status=status, attempts=attempts,
                next_attempt_at=now if next_attempt_at is None else next_attempt_at,
                created_at=now)).inserted_primary_key
            assert key is not None
            ids.append(int(key[0]))
    return ids


def due(state: StateStore, now: float, limit: int) -> list[Delivery]:
    """Deliveries to attempt now: pending ones that are due, and sending ones whose
    lease ran out (their worker died), oldest due first."""
    with state.engine.connect() as conn:
        rows = conn.execute(sa.select(deliveries).where(
            deliveries.c.status.in_(("pending", "sending"))
            & (deliveries.c.next_attempt_at <= now))
            .order_by(deliveries.c.next_attempt_at, deliveries.c.id).limit(limit))
        return [_delivery(r) for r in rows]


def claim(state: StateStore, seen: Delivery, now: float, lease: float) -> Delivery | None:
    """Take ``seen`` for one attempt (``sending``, attempts + 1, leased until
    ``now + lease``) if nobody changed it since it was read; the claimed row or None."""
    with state.engine.begin() as conn:
        changed = conn.execute(deliveries.update().where(
            (deliveries.c.id == seen.id) & (deliveries.c.status == seen.status)
            & (deliveries.c.attempts == seen.attempts)
            & (deliveries.c.next_attempt_at == seen.next_attempt_at)).values(
            status="sending", attempts=seen.attempts + 1, next_attempt_at=now + lease))
    if changed.rowcount != 1:
        return None
    return Delivery(seen.id, seen.channel_id, seen.project_id, seen.notification, seen.alert,
                    "sending", seen.attempts + 1, now + lease, seen.last_error,
                    seen.created_at, seen.sent_at)


def finish(state: StateStore, claimed: Delivery, status: Status, now: float,
           error: str | None = None, next_attempt_at: float | None = None) -> bool:
    """Record the outcome of the attempt ``claimed`` holds: ``sent``, ``failed``, or
    ``pending`` again at ``next_attempt_at``. False (nothing written) when the lease was
    lost: the row was claimed again meanwhile."""
    values: dict[str, Any] = {"status": status, "last_error": error}
    if status == "sent":
        values["sent_at"] = now
    if next_attempt_at is not None:
        values["next_attempt_at"] = next_attempt_at
    with state.engine.begin() as conn:
        changed = conn.execute(deliveries.update().where(
            (deliveries.c.id == claimed.id) & (deliveries.c.status == "sending")
            & (deliveries.c.attempts == claimed.attempts)).values(**values))
    return changed.rowcount == 1


def get_delivery(state: StateStore, delivery_id: int) -> Delivery:
    with state.engine.connect() as conn:
        row = conn.execute(sa.select(deliveries).where(deliveries.c.id == delivery_id)).first()
    if row is None:
        raise NotFound(f"no delivery {delivery_id}")
    return _delivery(row)


def list_deliveries(state: StateStore, project_id: int, *, channel_id: int | None = None,
                    alert: str | None = None, limit: int = 100) -> list[Delivery]:
    """The project's deliveries, newest first, optionally of one channel or alert."""
    query = sa.select(deliveries).where(deliveries.c.project_id == project_id)
    if channel_id is not None:
        query = query.where(deliveries.c.channel_id == channel_id)
    if alert is not None:
        query = query.where(deliveries.c.alert == alert)
    with state.engine.connect() as conn:
        rows = conn.execute(query.order_by(deliveries.c.id.desc()).limit(limit))
        return [_delivery(r) for r in rows]
