"""Incidents in the state store (``incidents`` and ``incident_alerts``, migration 14).

Contract (docs/alerts.md, "Incidents"):

- A firing alert **opens** an incident, or **joins** the project's latest open one when
  that one was detected less than ``window`` seconds before (:data:`JOIN_WINDOW_S`, 10
  minutes, by default): alerts that fire close together are the same storm, and a
  long-running incident does not swallow unrelated alerts that fire hours later.
  Alerts of severity ``info`` (notes, such as an SLO's slow-burn ticket) neither open
  nor join incidents.
- ``started_at`` is the earliest first breach (``since``) of its alerts, ``detected_at``
  the earliest time one of them fired; ``severity`` the highest of its alerts'; ``title``
  the first alert's rule, then ``"… and N more"``.
- The incident **resolves** when none of its alerts is firing any more, at the time the
  last one resolved. An alert that fires after that opens a new incident.
- **Time to detect** (``mttd_s``) is ``detected_at - started_at``; **time to resolve**
  (``mttr_s``) is ``resolved_at - started_at`` (``None`` while open). Both are measured
  from the first breaching evaluation: the signals before it are on the incident's
  timeline, not in these figures.
- ``impact`` is the business-impact estimate (JSON, :mod:`shopwatch.alerts.impact`'s
  figures), frozen when the incident resolves; while open it is computed on demand.

The evaluator is the only writer, apart from :func:`set_impact`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

import sqlalchemy as sa

from shopwatch.errors import NotFound
from shopwatch.store.alerts import StoredAlert, _row
from shopwatch.store.state import StateStore, alerts, incident_alerts, incidents

_RANK: Final = {"info": 0, "warning": 1, "critical": 2}
JOIN_WINDOW_S: Final = 600.0


@dataclass(frozen=True)
class Incident:
    """An incident as stored (times in epoch seconds)."""

    id: int
    project_id: int
    title: str
    severity: str
    status: str  # open | resolved
    started_at: float
    detected_at: float
    resolved_at: float | None
    notified_at: float | None
    impact: dict[str, Any] | None
    updated_at: float

    @property
    def mttd_s(self) -> float:
        """Time to detect: first breach to first firing."""
        return max(0.0, self.detected_at - self.started_at)

    @property
    def mttr_s(self) -> float | None:
        """Time to resolve: first breach to the last alert's resolution."""
        if self.resolved_at is None:
            return None
        return max(0.0, self.resolved_at - self.started_at)

    def _lost(self, measure: str) -> float | None:
        if self.impact is None:
            return None
        found = self.impact.get(measure)
        if isinstance(found, dict):
            lost = found.get("lost")
            return float(lost) if isinstance(lost, int | float) else None
        return None

    @property
    def lost_orders(self) -> float | None:
        return self._lost("orders")

    @property
    def lost_revenue(self) -> float | None:
        return self._lost("revenue")

    @property
    def wasted_spend(self) -> float | None:
        if self.impact is None:
            return None
        wasted = self.impact.get("wasted_spend")
        return float(wasted) if isinstance(wasted, int | float) else None


def _incident(row: Any) -> Incident:
    return Incident(id=row.id, project_id=row.project_id, title=row.title,
                    severity=row.severity, status=row.status, started_at=row.started_at,
                    detected_at=row.detected_at, resolved_at=row.resolved_at,
                    notified_at=row.notified_at,
                    impact=json.loads(row.impact) if row.impact else None,
                    updated_at=row.updated_at)


def _get(conn: sa.Connection, incident_id: int) -> Incident:
    row = conn.execute(sa.select(incidents).where(incidents.c.id == incident_id)).first()
    assert row is not None
    return _incident(row)


def _title(conn: sa.Connection, incident_id: int) -> str:
    rules = conn.execute(sa.select(alerts.c.rule).join(
        incident_alerts, incident_alerts.c.alert_id == alerts.c.id).where(
        incident_alerts.c.incident_id == incident_id).order_by(
        alerts.c.fired_at, alerts.c.id)).scalars().all()
    names = list(dict.fromkeys(rules))  # a rule that fired twice is one name
    if not names:
        return "incident"
    more = len(names) - 1
    return names[0] if not more else f"{names[0]} and {more} more"


def _joinable(project_id: int, now: float, window: float) -> sa.Select[Any]:
    return sa.select(incidents).where(
        (incidents.c.project_id == project_id) & (incidents.c.status == "open")
        & (incidents.c.detected_at >= now - window)).order_by(incidents.c.id.desc())


def open_incident(state: StateStore, project_id: int, now: float | None = None,
                  window: float = JOIN_WINDOW_S) -> Incident | None:
    """The project's latest open incident, if any; with ``now``, only one that an alert
    firing then would join (detected at most ``window`` seconds before)."""
    query = (_joinable(project_id, now, window) if now is not None else
             sa.select(incidents).where((incidents.c.project_id == project_id)
                                        & (incidents.c.status == "open"))
             .order_by(incidents.c.id.desc()))
    with state.engine.connect() as conn:
        row = conn.execute(query).first()
    return _incident(row) if row is not None else None


def attach(state: StateStore, alert: StoredAlert, now: float,
           window: float = JOIN_WINDOW_S) -> tuple[Incident | None, bool]:
    """Put a firing alert in the incident it joins, or open one for it; the incident
    (``None`` for an ``info`` alert) and whether this alert opened it. Attaching twice
    is harmless."""
    if alert.severity == "info":
        return None, False
    fired = alert.fired_at if alert.fired_at is not None else now
    with state.engine.begin() as conn:
        linked = conn.execute(sa.select(incident_alerts.c.incident_id).where(
            incident_alerts.c.alert_id == alert.id)).scalar()
        if linked is not None:
            return _get(conn, int(linked)), False
        row = conn.execute(_joinable(alert.project_id, fired, window)).first()
        opened = row is None
        if row is None:
            key = conn.execute(incidents.insert().values(
                project_id=alert.project_id, title=alert.rule, severity=alert.severity,
                status="open", started_at=alert.since, detected_at=fired,
                updated_at=now)).inserted_primary_key
            assert key is not None
            incident_id = int(key[0])
        else:
            incident_id = int(row.id)
            severity = max(row.severity, alert.severity, key=lambda s: _RANK.get(s, 0))
            conn.execute(incidents.update().where(incidents.c.id == incident_id).values(
                severity=severity, started_at=min(row.started_at, alert.since),
                detected_at=min(row.detected_at, fired), updated_at=now))
        conn.execute(incident_alerts.insert().values(incident_id=incident_id,
                                                     alert_id=alert.id))
        conn.execute(incidents.update().where(incidents.c.id == incident_id).values(
            title=_title(conn, incident_id)[:200]))
        return _get(conn, incident_id), opened


def alert_resolved(state: StateStore, alert: StoredAlert, now: float) -> Incident | None:
    """Note that one of an incident's alerts resolved: when none of its alerts is firing
    any more the incident resolves (at ``alert.resolved_at``). The incident when it has
    just resolved, else ``None``."""
    with state.engine.begin() as conn:
        linked = conn.execute(sa.select(incident_alerts.c.incident_id).where(
            incident_alerts.c.alert_id == alert.id)).scalar()
        if linked is None:
            return None
        incident_id = int(linked)
        still = conn.execute(sa.select(sa.func.count()).select_from(alerts).join(
            incident_alerts, incident_alerts.c.alert_id == alerts.c.id).where(
            (incident_alerts.c.incident_id == incident_id)
            & (alerts.c.phase == "firing"))).scalar()
        if still:
            return None
        done = conn.execute(incidents.update().where(
            (incidents.c.id == incident_id) & (incidents.c.status == "open")).values(
            status="resolved", updated_at=now,
            resolved_at=alert.resolved_at if alert.resolved_at is not None else now))
        return _get(conn, incident_id) if done.rowcount else None


def mark_notified(state: StateStore, incident_id: int, now: float) -> None:
    """Record that a notification about the incident went out (grouping reads it)."""
    with state.engine.begin() as conn:
        conn.execute(incidents.update().where(incidents.c.id == incident_id).values(
            notified_at=now))


def set_impact(state: StateStore, incident_id: int, impact: dict[str, Any],
               now: float) -> None:
    """Store the incident's impact estimate (JSON-serialisable)."""
    with state.engine.begin() as conn:
        conn.execute(incidents.update().where(incidents.c.id == incident_id).values(
            impact=json.dumps(impact), updated_at=now))


def incident_of(state: StateStore, alert_id: int) -> Incident | None:
    """The incident an alert belongs to, if any."""
    with state.engine.connect() as conn:
        linked = conn.execute(sa.select(incident_alerts.c.incident_id).where(
            incident_alerts.c.alert_id == alert_id)).scalar()
        return _get(conn, int(linked)) if linked is not None else None


def get_incident(state: StateStore, project_id: int, incident_id: int) -> Incident:
    """One of the project's incidents; NotFound otherwise."""
    with state.engine.connect() as conn:
        row = conn.execute(sa.select(incidents).where(
            (incidents.c.id == incident_id) & (incidents.c.project_id == project_id))
        ).first()
    if row is None:
        raise NotFound(f"no incident {incident_id} in this project")
    return _incident(row)


def alerts_of(state: StateStore, incident_id: int) -> list[StoredAlert]:
    """The incident's alerts, in the order they fired."""
    with state.engine.connect() as conn:
        rows = conn.execute(sa.select(alerts).join(
            incident_alerts, incident_alerts.c.alert_id == alerts.c.id).where(
            incident_alerts.c.incident_id == incident_id).order_by(
            alerts.c.fired_at, alerts.c.id)).all()
    return [_row(r) for r in rows]


def list_incidents(state: StateStore, project_id: int, *, since: float | None = None,
                   until: float | None = None, limit: int = 100) -> list[Incident]:
    """The project's incidents touching ``[since, until)`` (either bound open), the open
    one first, then by start, newest first; at most ``limit``."""
    where = incidents.c.project_id == project_id
    if since is not None:
        where &= (incidents.c.resolved_at.is_(None)) | (incidents.c.resolved_at >= since)
    if until is not None:
        where &= incidents.c.started_at < until
    with state.engine.connect() as conn:
        rows = conn.execute(sa.select(incidents).where(where).order_by(
            sa.case((incidents.c.status == "open", 0), else_=1),
            incidents.c.started_at.desc()).limit(limit)).all()
    return [_incident(r) for r in rows]
