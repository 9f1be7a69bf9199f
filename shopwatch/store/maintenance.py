"""Maintenance windows: planned downtime of a project, left out of availability and SLOs.

A window starts at ``starts_at`` and lasts ``duration_s``; ``every`` repeats it daily
(``day``) or weekly (``week``) from then on, or not at all (``''``). Runs of monitors
during a window are still made and stored; availability, daily bars and the status page
leave them out (:mod:`shopwatch.analytics.uptime`), and so do SLOs, for events and page
views too (:mod:`shopwatch.analytics.sli`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import sqlalchemy as sa

from shopwatch.errors import ConfigError, NotFound
from shopwatch.store.state import StateStore, maintenance

PERIODS: Final = {"": 0.0, "day": 86400.0, "week": 7 * 86400.0}
MAX_DURATION_S: Final = 7 * 86400.0


@dataclass(frozen=True)
class Window:
    id: int
    project_id: int
    starts_at: float  # epoch seconds
    duration_s: float
    every: str
    note: str

    def occurrences(self, start: float, end: float) -> list[tuple[float, float]]:
        """The ``[from, to)`` spans (epoch seconds) of this window that touch
        ``[start, end)``."""
        period = PERIODS[self.every]
        if not period:
            stop = self.starts_at + self.duration_s
            return [(self.starts_at, stop)] if self.starts_at < end and stop > start else []
        first = self.starts_at
        if first + self.duration_s <= start:
            first += ((start - first - self.duration_s) // period + 1) * period
        spans = []
        while first < end:
            spans.append((first, first + self.duration_s))
            first += period
        return spans

    def as_dict(self) -> dict[str, object]:
        return {"id": self.id, "starts_at": datetime.fromtimestamp(
            self.starts_at, UTC).isoformat().replace("+00:00", "Z"),
                "duration_s": self.duration_s, "every": self.every or None, "note": self.note}


def add_window(state: StateStore, project_id: int, starts_at: float, duration_s: float,
               every: str = "", note: str = "") -> Window:
    """A new window; ConfigError naming the field when a value is wrong."""
    if every not in PERIODS:
        raise ConfigError(f"every: {every!r} is not one of day, week (or empty: once)")
    if not 0 < duration_s <= MAX_DURATION_S:
        raise ConfigError("duration: a window lasts more than 0 s and at most 7 days")
    if every and duration_s >= PERIODS[every]:
        raise ConfigError(f"duration: a window repeated every {every} must be shorter than it")
    if len(note) > 200:
        raise ConfigError("note: at most 200 characters")
    with state.engine.begin() as conn:
        inserted = conn.execute(maintenance.insert().values(
            project_id=project_id, starts_at=starts_at, duration_s=duration_s, every=every,
            note=note, created_at=datetime.now(UTC)))
        key = inserted.inserted_primary_key
        assert key is not None
    return Window(int(key[0]), project_id, starts_at, duration_s, every, note)


def list_windows(state: StateStore, project_id: int) -> list[Window]:
    with state.engine.connect() as conn:
        rows = conn.execute(sa.select(maintenance).where(
            maintenance.c.project_id == project_id).order_by(maintenance.c.starts_at)).all()
    return [Window(int(r.id), int(r.project_id), float(r.starts_at), float(r.duration_s),
                   r.every, r.note) for r in rows]


def remove_window(state: StateStore, project_id: int, window_id: int) -> None:
    with state.engine.begin() as conn:
        deleted = conn.execute(maintenance.delete().where(
            (maintenance.c.project_id == project_id) & (maintenance.c.id == window_id)))
    if deleted.rowcount == 0:
        raise NotFound(f"no maintenance window {window_id} in this project")


def spans(windows: list[Window], start: float, end: float) -> list[tuple[float, float]]:
    """Every occurrence of the windows within ``[start, end)``, sorted."""
    return sorted(s for w in windows for s in w.occurrences(start, end))
