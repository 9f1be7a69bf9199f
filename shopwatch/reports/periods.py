"""The periods reports cover, in the project's time zone, and when a schedule is due.

Contract (docs/reports.md, "Periods" and "Schedules"):

- **daily**: one local calendar day, from local midnight to the next local midnight
  (23 or 25 hours on a DST change day). Key ``YYYY-MM-DD``.
- **weekly**: one ISO week, Monday 00:00 to the next Monday 00:00, local time. Key
  ``YYYY-Www`` (ISO year and week, ``2026-W47``). Keys of one kind sort as their periods.
- **custom**: any ``[start, end)``; key ``<from>/<to>`` in ISO 8601 UTC.
- A period's **previous** is the day before, the week before, or (custom) the span of
  the same length that ends where it starts.
- The **latest** period of a kind at ``now`` is the last one that has ended: yesterday,
  or last week (Monday to Sunday).
- A schedule sends the report of a period at ``hour`` (local) on the day after a daily
  period, on the Monday after a weekly one. At ``now`` it is **due** for the latest
  period whose sending time has passed, unless that period's key is not newer than
  ``last_sent_for`` (sent, or given up), or its sending time came before the schedule
  was created (a new schedule starts with the next sending time). So a restart never
  sends a period twice, and after an outage only the latest missed period is sent, once.

A time skipped by a DST change (a local midnight that does not exist) resolves with the
offset before the change (zoneinfo's ``fold=0``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo

from shopwatch.analytics.timerange import EPOCH, TimeRange, bucket_seconds, iso_utc
from shopwatch.errors import ConfigError

Kind = Literal["daily", "weekly"]
KINDS: Final[tuple[Kind, ...]] = ("daily", "weekly")


def local_us(day: date, hour: int, tz: ZoneInfo) -> int:
    """Epoch µs of ``hour``:00 local time on ``day``."""
    local = datetime.combine(day, time(hour), tzinfo=tz)
    return (local.astimezone(UTC) - EPOCH) // timedelta(microseconds=1)


def local_datetime(us: int, tz: ZoneInfo) -> datetime:
    """The local wall-clock time of epoch µs ``us``."""
    return (EPOCH + timedelta(microseconds=us)).astimezone(tz)


@dataclass(frozen=True)
class Period:
    """``[start_us, end_us)`` of a report, with its kind, key and a label in words."""

    kind: str  # daily | weekly | custom
    key: str
    start_us: int
    end_us: int
    timezone: str
    label: str

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def range(self) -> TimeRange:
        """The period as the analytics modules take it (buckets by its span)."""
        return TimeRange(self.start_us, self.end_us,
                         bucket_seconds((self.end_us - self.start_us) / 1e6), self.kind)

    def previous(self) -> Period:
        """The period just before (see the module docstring)."""
        if self.kind == "daily":
            return daily(date.fromisoformat(self.key) - timedelta(days=1), self.tz)
        if self.kind == "weekly":
            return weekly(week_monday(self.key) - timedelta(days=7), self.tz)
        span = self.end_us - self.start_us
        return custom(self.start_us - span, self.start_us, self.tz)

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "key": self.key, "label": self.label,
                "from": iso_utc(self.start_us), "to": iso_utc(self.end_us),
                "timezone": self.timezone}


def daily(day: date, tz: ZoneInfo) -> Period:
    return Period("daily", day.isoformat(), local_us(day, 0, tz),
                  local_us(day + timedelta(days=1), 0, tz), tz.key,
                  f"{day:%A} {day.day} {day:%B %Y}")


def weekly(monday: date, tz: ZoneInfo) -> Period:
    """The ISO week starting on ``monday``."""
    if monday.isoweekday() != 1:
        raise ValueError(f"{monday} is not a Monday")
    year, week, _ = monday.isocalendar()
    sunday = monday + timedelta(days=6)
    return Period("weekly", f"{year}-W{week:02d}", local_us(monday, 0, tz),
                  local_us(monday + timedelta(days=7), 0, tz), tz.key,
                  f"week {week} of {year}, {monday.day} {monday:%b} to "
                  f"{sunday.day} {sunday:%b %Y}")


def custom(start_us: int, end_us: int, tz: ZoneInfo) -> Period:
    if end_us <= start_us:
        raise ConfigError("to: must be after from")
    first = local_datetime(start_us, tz)
    last = local_datetime(end_us, tz)
    return Period("custom", f"{iso_utc(start_us)}/{iso_utc(end_us)}", start_us, end_us,
                  tz.key, f"{first:%d %b %Y %H:%M} to {last:%d %b %Y %H:%M}")


def week_monday(key: str) -> date:
    """The Monday of ISO week ``YYYY-Www``; ConfigError naming ``week`` otherwise."""
    try:
        year, week = key.split("-W")
        return date.fromisocalendar(int(year), int(week), 1)
    except ValueError:
        raise ConfigError(f"week: {key!r} is not an ISO week like 2026-W47") from None


def latest(kind: str, tz: ZoneInfo, now_us: int) -> Period:
    """The last period of ``kind`` that has ended at ``now_us``."""
    today = local_datetime(now_us, tz).date()
    if kind == "daily":
        return daily(today - timedelta(days=1), tz)
    if kind == "weekly":
        return weekly(today - timedelta(days=today.isoweekday() - 1 + 7), tz)
    raise ConfigError(f"period: {kind!r} is not one of {', '.join(KINDS)}")


def by_key(kind: str, key: str, tz: ZoneInfo) -> Period:
    """The period of ``kind`` named ``key`` (``2026-11-21``, ``2026-W47``)."""
    if kind == "weekly":
        return weekly(week_monday(key), tz)
    if kind == "daily":
        try:
            return daily(date.fromisoformat(key), tz)
        except ValueError:
            raise ConfigError(f"date: {key!r} is not a date like 2026-11-21") from None
    raise ConfigError(f"period: {kind!r} is not one of {', '.join(KINDS)}")


def send_at_us(period: Period, hour: int) -> int:
    """When a schedule sends ``period``'s report: ``hour`` local on the day after a day,
    on the Monday after a week."""
    end_day = local_datetime(period.end_us, period.tz).date()
    return local_us(end_day, hour, period.tz)


def due(kind: str, hour: int, tz: ZoneInfo, now_us: int, created_us: int,
        last_sent_for: str | None) -> Period | None:
    """The period a schedule must send at ``now_us``, or None (module docstring)."""
    candidate = latest(kind, tz, now_us)
    if send_at_us(candidate, hour) > now_us:
        candidate = candidate.previous()  # today's (this Monday's) hour has not come yet
    if send_at_us(candidate, hour) < created_us:
        return None
    if last_sent_for is not None and candidate.key <= last_sent_for:
        return None
    return candidate


def following(period: Period) -> Period:
    """The period just after a daily or weekly one."""
    if period.kind == "daily":
        return daily(date.fromisoformat(period.key) + timedelta(days=1), period.tz)
    if period.kind == "weekly":
        return weekly(week_monday(period.key) + timedelta(days=7), period.tz)
    raise ValueError("a custom period has no following one")


def next_send(kind: str, hour: int, tz: ZoneInfo, now_us: int) -> tuple[Period, int]:
    """The next period a schedule sends after ``now_us``, and when (epoch µs)."""
    candidate = latest(kind, tz, now_us)
    if send_at_us(candidate, hour) <= now_us:
        candidate = following(candidate)
    return candidate, send_at_us(candidate, hour)
