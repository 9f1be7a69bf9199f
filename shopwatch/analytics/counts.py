"""How many events of some names a project sent in a range: what shows, on a page whose
capability is not built yet, how much of the data that will fill it already arrives."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from shopwatch.analytics.timerange import TimeRange
from shopwatch.store.base import EventStore


def _iso(us: int | None) -> str | None:
    if us is None:
        return None
    return datetime.fromtimestamp(us / 1e6, UTC).isoformat(timespec="seconds").replace(
        "+00:00", "Z")


def event_counts(store: EventStore, project_id: int, rng: TimeRange,
                 names: Sequence[str]) -> dict[str, Any]:
    """``{"range", "previous_range", "counts": [{"name", "events", "previous",
    "last_received"}]}``: one row per name asked for, in that order, zeros included.
    Counted by event time; ``last_received`` is the latest receive time ever (or null)."""
    previous = rng.previous()
    names = list(dict.fromkeys(names))
    rows: dict[str, tuple[int, int, int | None]] = {}
    if names:
        marks = ", ".join("?" for _ in names)
        for name, now_n, prev_n, last in store.query(
                f"""SELECT name,
                      count(*) FILTER (WHERE ts >= make_timestamp(?::BIGINT)
                                         AND ts < make_timestamp(?::BIGINT)),
                      count(*) FILTER (WHERE ts >= make_timestamp(?::BIGINT)
                                         AND ts < make_timestamp(?::BIGINT)),
                      epoch_us(max(received_at))
                    FROM events WHERE project_id = ? AND name IN ({marks}) GROUP BY name""",
                [rng.start_us, rng.end_us, previous.start_us, previous.end_us, project_id,
                 *names]):
            rows[name] = (int(now_n), int(prev_n), last)
    return {
        "range": rng.as_dict(), "previous_range": previous.as_dict(),
        "counts": [{"name": n, "events": rows.get(n, (0, 0, None))[0],
                    "previous": rows.get(n, (0, 0, None))[1],
                    "last_received": _iso(rows.get(n, (0, 0, None))[2])} for n in names],
    }
