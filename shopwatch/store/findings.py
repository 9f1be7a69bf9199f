"""Security findings in the state store (``findings``, migration 18).

Contract (docs/security.md, "Findings"):

- A finding is what a security detection (:mod:`shopwatch.security.detections`) found
  about one *subject* — ``account:<user id>``, ``network:<prefix>``, ``session:<id>`` or
  ``global`` — with a severity, a one-line title and its evidence.
- :func:`record` files a detection's candidate: it **updates** the subject's latest
  finding of that kind while it is ``open`` or ``acknowledged`` (the attack goes on:
  ``last_seen``, title, evidence and a raised severity follow it; a raised severity is
  told again), keeps a
  ``false_positive`` one as it is (it only moves ``last_seen``, and never notifies),
  and **creates** a new finding when there is none, or when the latest was resolved and
  the candidate has activity after the resolution (a new wave). Activity the resolution
  already covered never reopens it.
- Statuses: ``open`` → ``acknowledged`` → ``resolved``, or ``false_positive``; any
  status may be set again (``open`` reopens). Each change records who and when.
- The title and the evidence's figures are those of the detection window that saw the
  most events of the attack (``peak``); later windows only add their event ids.
- Evidence keeps at most :data:`MAX_EVENT_IDS` event ids, in time order: when an attack
  outgrows it, the first :data:`KEEP_FIRST` (how it began) and the latest ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

import msgspec
import sqlalchemy as sa

from shopwatch.errors import ConfigError, NotFound
from shopwatch.store.state import StateStore, findings

STATUSES: Final = ("open", "acknowledged", "false_positive", "resolved")
Status = Literal["open", "acknowledged", "false_positive", "resolved"]
MAX_EVENT_IDS: Final = 500
KEEP_FIRST: Final = 100
_RANK: Final = {"info": 0, "warning": 1, "critical": 2}
_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True)
class Finding:
    id: int
    project_id: int
    kind: str
    subject: str
    rule: str
    severity: str
    status: str
    title: str
    first_seen: float
    last_seen: float
    created_at: float
    updated_at: float
    status_at: float | None
    status_by: str | None
    notified_at: float | None
    evidence: dict[str, Any]


def _row(row: Any) -> Finding:
    values = {c: getattr(row, c) for c in Finding.__dataclass_fields__ if c != "evidence"}
    return Finding(**values, evidence=msgspec.json.decode(row.evidence))


def merge_ids(old: list[str], new: list[str]) -> list[str]:
    """``old`` then the ids of ``new`` it lacks (both in time order), trimmed to
    :data:`MAX_EVENT_IDS` by keeping the first :data:`KEEP_FIRST` and the latest."""
    seen = set(old)
    merged = old + [i for i in new if i not in seen]
    if len(merged) > MAX_EVENT_IDS:
        merged = merged[:KEEP_FIRST] + merged[len(merged) - (MAX_EVENT_IDS - KEEP_FIRST):]
    return merged


def latest(state: StateStore, project_id: int, kind: str, subject: str) -> Finding | None:
    """The subject's most recent finding of ``kind``, whatever its status."""
    with state.engine.connect() as conn:
        row = conn.execute(sa.select(findings).where(
            (findings.c.project_id == project_id) & (findings.c.kind == kind)
            & (findings.c.subject == subject)).order_by(findings.c.id.desc()).limit(1)).first()
    return _row(row) if row is not None else None


def record(state: StateStore, project_id: int, *, kind: str, subject: str, rule: str,
           severity: str, title: str, first_seen: float, last_seen: float,
           evidence: dict[str, Any], now: float) -> tuple[Finding | None, bool]:
    """File one candidate (see the module docstring): ``(finding, created)``; the
    finding is ``None`` when the candidate was already covered by a resolution."""
    current = latest(state, project_id, kind, subject)
    with state.engine.begin() as conn:
        if current is None or (current.status == "resolved"
                               and last_seen > (current.status_at or current.updated_at)):
            key = conn.execute(findings.insert().values(
                project_id=project_id, kind=kind, subject=subject, rule=rule,
                severity=severity, status="open", title=title, first_seen=first_seen,
                last_seen=last_seen, created_at=now, updated_at=now,
                evidence=_encode(dict(evidence, peak=len(evidence.get("event_ids", [])))
                                 ).decode())).inserted_primary_key
            assert key is not None
            row = conn.execute(sa.select(findings).where(findings.c.id == key[0])).first()
            return _row(row), True
        if current.status == "resolved":
            return None, False
        values: dict[str, Any] = {"last_seen": max(current.last_seen, last_seen)}
        if current.status in ("open", "acknowledged"):
            # Title and figures are those of the window that saw the most of the attack
            # (later windows see its tail); the event ids gather every window's.
            size = len(evidence.get("event_ids", []))
            peak = int(current.evidence.get("peak", 0))
            merged = dict(evidence, peak=size) if size >= peak else dict(current.evidence)
            merged["event_ids"] = merge_ids(current.evidence.get("event_ids", []),
                                            evidence.get("event_ids", []))
            values.update(evidence=_encode(merged).decode(),
                          first_seen=min(current.first_seen, first_seen))
            if size >= peak:
                values["title"] = title
            if _RANK.get(severity, 0) > _RANK.get(current.severity, 0):
                values.update(severity=severity, notified_at=None)  # tell it again
        if values["last_seen"] != current.last_seen or "evidence" in values:
            values["updated_at"] = now
            conn.execute(findings.update().where(findings.c.id == current.id).values(**values))
        row = conn.execute(sa.select(findings).where(findings.c.id == current.id)).first()
    return _row(row), False


def set_status(state: StateStore, project_id: int, finding_id: int, status: str, who: str,
               now: float) -> Finding:
    """Change a finding's status (ConfigError for an unknown one; NotFound when the
    finding is not the project's)."""
    if status not in STATUSES:
        raise ConfigError(f"status: {status!r} is not one of {', '.join(STATUSES)}")
    with state.engine.begin() as conn:
        where = (findings.c.id == finding_id) & (findings.c.project_id == project_id)
        if conn.execute(sa.select(findings.c.id).where(where)).first() is None:
            raise NotFound(f"no finding {finding_id} in this project")
        conn.execute(findings.update().where(where).values(
            status=status, status_at=now, status_by=who[:200], updated_at=now))
        row = conn.execute(sa.select(findings).where(where)).first()
    return _row(row)


def mark_notified(state: StateStore, finding_id: int, now: float) -> None:
    with state.engine.begin() as conn:
        conn.execute(findings.update().where(findings.c.id == finding_id).values(
            notified_at=now))


def get_finding(state: StateStore, project_id: int, finding_id: int) -> Finding:
    with state.engine.connect() as conn:
        row = conn.execute(sa.select(findings).where(
            (findings.c.id == finding_id) & (findings.c.project_id == project_id))).first()
    if row is None:
        raise NotFound(f"no finding {finding_id} in this project")
    return _row(row)


def list_findings(state: StateStore, project_id: int, *, status: str | None = None,
                  since: float | None = None, limit: int = 200) -> list[Finding]:
    """The project's findings, latest activity first; of one status when given, with
    activity at or after ``since`` when given."""
    where = findings.c.project_id == project_id
    if status is not None:
        where &= findings.c.status == status
    if since is not None:
        where &= findings.c.last_seen >= since
    with state.engine.connect() as conn:
        rows = conn.execute(sa.select(findings).where(where).order_by(
            findings.c.last_seen.desc(), findings.c.id.desc()).limit(limit)).all()
    return [_row(r) for r in rows]


def count_by_status(state: StateStore, project_id: int) -> dict[str, int]:
    """How many findings the project has in each status (every status listed)."""
    with state.engine.connect() as conn:
        rows = conn.execute(sa.select(findings.c.status, sa.func.count()).where(
            findings.c.project_id == project_id).group_by(findings.c.status)).all()
    counts = dict.fromkeys(STATUSES, 0)
    counts.update({status: int(n) for status, n in rows})
    return counts
