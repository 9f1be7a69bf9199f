"""Silences: ad-hoc mutes of some rules' notifications (``silences``, migration 15).

Contract (docs/alerts.md, "Silences and maintenance windows"):

- A silence mutes the notifications of the rules its ``matcher`` names, from
  ``starts_at`` to ``ends_at`` (``[starts_at, ends_at)``, epoch seconds). The matcher is a
  rule name or a shell-style pattern (``checkout*``, ``*`` for every rule), matched
  case-insensitively against the whole name.
- While silenced, alerts are still evaluated, stored and grouped into incidents; only
  notifications wait (as for maintenance windows: a firing alert is told when the
  silence ends, if it still fires). Unlike maintenance windows, silences do not leave
  anything out of availability or SLOs: the shop was really down.
- Limits: a silence lasts at most :data:`MAX_DURATION_S` (30 days), ends after it starts,
  and its comment is at most 500 characters. Expiring a silence sets ``ends_at`` to now;
  expired silences stay listed as history.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any, Final

import sqlalchemy as sa

from shopwatch.errors import ConfigError, NotFound
from shopwatch.store.state import StateStore, silences

MAX_DURATION_S: Final = 30 * 86400.0
MAX_COMMENT: Final = 500
MAX_MATCHER: Final = 100


@dataclass(frozen=True)
class Silence:
    id: int
    project_id: int
    matcher: str
    starts_at: float
    ends_at: float
    comment: str
    created_by: str
    created_at: float

    def matches(self, rule: str) -> bool:
        """Whether the silence names ``rule`` (its name or a glob over it)."""
        return fnmatch.fnmatchcase(rule.casefold(), self.matcher.casefold())

    def active(self, now: float) -> bool:
        return self.starts_at <= now < self.ends_at

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _row(row: Any) -> Silence:
    return Silence(**{c: getattr(row, c) for c in Silence.__dataclass_fields__})


def check(matcher: str, starts_at: float, ends_at: float, comment: str) -> None:
    """ConfigError naming the field that is wrong."""
    if not matcher.strip():
        raise ConfigError("matcher: empty (a rule name, a pattern such as checkout*, or *)")
    if len(matcher) > MAX_MATCHER:
        raise ConfigError(f"matcher: longer than {MAX_MATCHER} characters")
    if ends_at <= starts_at:
        raise ConfigError("ends_at: must be after starts_at")
    if ends_at - starts_at > MAX_DURATION_S:
        raise ConfigError(f"ends_at: a silence lasts at most {MAX_DURATION_S / 86400:g} days")
    if len(comment) > MAX_COMMENT:
        raise ConfigError(f"comment: longer than {MAX_COMMENT} characters")


def add_silence(state: StateStore, project_id: int, matcher: str, starts_at: float,
                ends_at: float, comment: str, created_by: str, now: float) -> Silence:
    """Store a silence after :func:`check`."""
    matcher = matcher.strip()
    check(matcher, starts_at, ends_at, comment)
    with state.engine.begin() as conn:
        key = conn.execute(silences.insert().values(
            project_id=project_id, matcher=matcher, starts_at=starts_at, ends_at=ends_at,
            comment=comment.strip(), created_by=created_by, created_at=now)
        ).inserted_primary_key
        assert key is not None
        row = conn.execute(sa.select(silences).where(silences.c.id == key[0])).first()
    return _row(row)


def list_silences(state: StateStore, project_id: int, *, now: float | None = None,
                  limit: int = 100) -> list[Silence]:
    """The project's silences, newest end first; only those not ended at ``now`` when
    given."""
    where = silences.c.project_id == project_id
    if now is not None:
        where &= silences.c.ends_at > now
    with state.engine.connect() as conn:
        rows = conn.execute(sa.select(silences).where(where).order_by(
            silences.c.ends_at.desc()).limit(limit)).all()
    return [_row(r) for r in rows]


def expire(state: StateStore, project_id: int, silence_id: int, now: float) -> Silence:
    """End a silence now (one that has not started yet ends before it starts)."""
    with state.engine.begin() as conn:
        row = conn.execute(sa.select(silences).where(
            (silences.c.id == silence_id) & (silences.c.project_id == project_id))).first()
        if row is None:
            raise NotFound(f"no silence {silence_id} in this project")
        if row.ends_at > now:
            conn.execute(silences.update().where(silences.c.id == silence_id).values(
                ends_at=max(now, row.starts_at)))
        row = conn.execute(sa.select(silences).where(silences.c.id == silence_id)).first()
    return _row(row)


def silenced(state: StateStore, project_id: int, rule: str, now: float) -> bool:
    """Whether an active silence of the project matches ``rule`` at ``now``."""
    return any(s.active(now) and s.matches(rule)
               for s in list_silences(state, project_id, now=now))
