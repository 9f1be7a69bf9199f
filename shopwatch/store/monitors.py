"""Monitors in the state store, and applying a set of monitors written as code.

Who manages a monitor is recorded (``source``): ``code`` for monitors applied from YAML
(``shopwatch monitors apply``), ``ui`` for those made in the dashboard or through the
API. Applying a set makes the project's *code* monitors match it exactly — creating,
updating and removing — and leaves ``ui`` monitors alone, so a file never deletes what
someone made by hand. A monitor made in the dashboard with the name of one in the file
is taken over by the file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec
import sqlalchemy as sa

from shopwatch.checks.monitor import Monitor
from shopwatch.errors import NotFound
from shopwatch.store.state import StateStore, heartbeats, monitors

Source = Literal["code", "ui"]


@dataclass(frozen=True)
class Stored:
    """A monitor as stored: its id, project, who manages it, and the monitor itself."""

    id: int
    project_id: int
    source: Source
    monitor: Monitor
    updated_at: datetime


@dataclass(frozen=True)
class Change:
    """One line of an apply's plan: ``action`` is create, update, remove, keep (unchanged)
    or skip (a dashboard monitor the set does not mention); ``fields`` names what an
    update changes."""

    action: Literal["create", "update", "remove", "keep", "skip"]
    name: str
    kind: str
    fields: tuple[str, ...] = ()


def _spec(monitor: Monitor) -> dict[str, Any]:
    spec: dict[str, Any] = msgspec.to_builtins(monitor)
    return spec


def _load(row: Any) -> Stored:
    monitor = msgspec.json.decode(row.spec, type=Monitor)
    return Stored(int(row.id), int(row.project_id), row.source, monitor, row.updated_at)


def list_monitors(state: StateStore, project_id: int | None = None) -> list[Stored]:
    """The stored monitors (of one project, or all), by project and name."""
    query = sa.select(monitors).order_by(monitors.c.project_id, monitors.c.name)
    if project_id is not None:
        query = query.where(monitors.c.project_id == project_id)
    with state.engine.connect() as conn:
        return [_load(row) for row in conn.execute(query)]


def get_monitor(state: StateStore, project_id: int, name: str) -> Stored:
    with state.engine.connect() as conn:
        row = conn.execute(sa.select(monitors).where(
            (monitors.c.project_id == project_id) & (monitors.c.name == name))).first()
    if row is None:
        raise NotFound(f"no monitor {name!r} in this project")
    return _load(row)


def put_monitor(state: StateStore, project_id: int, monitor: Monitor,
                source: Source = "ui") -> Stored:
    """Create the monitor, or replace the one of the same name."""
    now = datetime.now(UTC)
    spec = msgspec.json.encode(_spec(monitor)).decode()
    with state.engine.begin() as conn:
        found = conn.execute(sa.select(monitors.c.id).where(
            (monitors.c.project_id == project_id) & (monitors.c.name == monitor.name))).first()
        if found is None:
            conn.execute(monitors.insert().values(
                project_id=project_id, name=monitor.name, kind=monitor.kind, spec=spec,
                source=source, created_at=now, updated_at=now))
        else:
            conn.execute(monitors.update().where(monitors.c.id == found[0]).values(
                kind=monitor.kind, spec=spec, source=source, updated_at=now))
    return get_monitor(state, project_id, monitor.name)


def delete_monitor(state: StateStore, project_id: int, name: str) -> None:
    """Remove the monitor, and a heartbeat's recorded pings with it (a monitor made again
    under the name must not inherit them). Its results in the event store stay."""
    with state.engine.begin() as conn:
        deleted = conn.execute(monitors.delete().where(
            (monitors.c.project_id == project_id) & (monitors.c.name == name)))
        conn.execute(heartbeats.delete().where(
            (heartbeats.c.project_id == project_id) & (heartbeats.c.monitor == name)))
    if deleted.rowcount == 0:
        raise NotFound(f"no monitor {name!r} in this project")


def plan(state: StateStore, project_id: int, wanted: Sequence[Monitor]) -> list[Change]:
    """What applying ``wanted`` would do, in name order, without doing it."""
    current = {s.monitor.name: s for s in list_monitors(state, project_id)}
    changes: list[Change] = []
    names = {m.name for m in wanted}
    for monitor in sorted(wanted, key=lambda m: m.name):
        stored = current.get(monitor.name)
        if stored is None:
            changes.append(Change("create", monitor.name, monitor.kind))
            continue
        old, new = _spec(stored.monitor), _spec(monitor)
        fields = tuple(sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k)))
        if stored.source != "code":
            fields = (*fields, "managed by: dashboard → code")
        changes.append(Change("update" if fields else "keep", monitor.name, monitor.kind,
                              fields))
    for name, stored in sorted(current.items()):
        if name not in names:
            action: Literal["remove", "skip"] = "remove" if stored.source == "code" else "skip"
            changes.append(Change(action, name, stored.monitor.kind))
    return changes


def apply(state: StateStore, project_id: int, wanted: Sequence[Monitor]) -> list[Change]:
    """Make the project's code monitors match ``wanted``; returns the plan carried out."""
    changes = plan(state, project_id, wanted)
    by_name = {m.name: m for m in wanted}
    for change in changes:
        if change.action in ("create", "update"):
            put_monitor(state, project_id, by_name[change.name], source="code")
        elif change.action == "remove":
            delete_monitor(state, project_id, change.name)
    return changes
