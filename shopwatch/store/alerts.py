"""Alerts in the state store (``alerts`` table, migration 12): each rule's open alert —
pending or firing — and the resolved ones before it.

The evaluator is the only writer of phases; acknowledging is the one change people make.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from shopwatch.alerts.lifecycle import Phase, State
from shopwatch.errors import NotFound
from shopwatch.store.state import StateStore, alerts

_OPEN = ("pending", "firing")


@dataclass(frozen=True)
class StoredAlert:
    """An alert as stored (times in epoch seconds)."""

    id: int
    project_id: int
    rule: str
    phase: str
    severity: str
    since: float
    fired_at: float | None
    resolved_at: float | None
    notified_at: float | None
    clear_since: float | None
    acknowledged_at: float | None
    acknowledged_by: str | None
    worst: float | None
    last_value: float | None
    evaluated_at: float

    def state(self) -> State:
        """The lifecycle state of an open alert."""
        phase: Phase = ("pending" if self.phase == "pending" else
                        "firing" if self.phase == "firing" else "inactive")
        return State(phase=phase, since=self.since, notified_at=self.notified_at,
                     clear_since=self.clear_since,
                     acknowledged=self.acknowledged_at is not None, worst=self.worst)

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _row(row: Any) -> StoredAlert:
    return StoredAlert(**{c: getattr(row, c) for c in StoredAlert.__dataclass_fields__})


def open_alert(state: StateStore, project_id: int, rule: str) -> StoredAlert | None:
    """The rule's pending or firing alert, if any."""
    with state.engine.connect() as conn:
        row = conn.execute(sa.select(alerts).where(
            (alerts.c.project_id == project_id) & (alerts.c.rule == rule)
            & alerts.c.phase.in_(_OPEN)).order_by(alerts.c.id.desc())).first()
    return _row(row) if row is not None else None


def record(state: StateStore, project_id: int, rule: str, severity: str, new: State,
           event: str | None, now: float, value: float | None) -> StoredAlert | None:
    """Store what an evaluation did to the rule's open alert: open one on a first
    breach, update it, mark it firing or resolved, or delete a pending one that cleared
    (it never fired); the alert as now stored (``None`` when there is none)."""
    current = open_alert(state, project_id, rule)
    with state.engine.begin() as conn:
        if event == "resolved" and current is not None:
            conn.execute(alerts.update().where(alerts.c.id == current.id).values(
                phase="resolved", resolved_at=now, clear_since=None, last_value=value,
                evaluated_at=now))
            return _get(conn, current.id)
        if new.phase == "inactive":
            if current is not None:  # pending that cleared: it never fired
                conn.execute(alerts.delete().where(alerts.c.id == current.id))
            return None
        values = {"phase": new.phase, "severity": severity, "since": new.since or now,
                  "notified_at": new.notified_at, "clear_since": new.clear_since,
                  "worst": new.worst, "last_value": value, "evaluated_at": now}
        if event == "firing":
            values["fired_at"] = now
        if current is None:
            key = conn.execute(alerts.insert().values(
                project_id=project_id, rule=rule, **values)).inserted_primary_key
            assert key is not None
            alert_id = key[0]
        else:
            alert_id = current.id
            conn.execute(alerts.update().where(alerts.c.id == alert_id).values(**values))
        return _get(conn, int(alert_id))


def _get(conn: sa.Connection, alert_id: int) -> StoredAlert:
    row = conn.execute(sa.select(alerts).where(alerts.c.id == alert_id)).first()
    assert row is not None
    return _row(row)


def list_alerts(state: StateStore, project_id: int, *, limit: int = 100) -> list[StoredAlert]:
    """The project's open alerts first, then the latest resolved ones."""
    with state.engine.connect() as conn:
        rows = conn.execute(sa.select(alerts).where(alerts.c.project_id == project_id)
                            .order_by(sa.case((alerts.c.phase.in_(_OPEN), 0), else_=1),
                                      alerts.c.since.desc()).limit(limit))
        return [_row(row) for row in rows]


def acknowledge(state: StateStore, project_id: int, alert_id: int, who: str,
                now: float) -> StoredAlert:
    """Acknowledge a firing alert (its reminders stop; it still resolves)."""
    with state.engine.begin() as conn:
        done = conn.execute(alerts.update().where(
            (alerts.c.id == alert_id) & (alerts.c.project_id == project_id)
            & (alerts.c.phase == "firing")).values(acknowledged_at=now, acknowledged_by=who))
        if done.rowcount == 0:
            raise NotFound(f"no firing alert {alert_id} in this project")
        return _get(conn, alert_id)
