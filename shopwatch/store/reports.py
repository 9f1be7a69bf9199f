"""Report schedules in the state store (``report_schedules``, migration 17).

A schedule e-mails one project's ``technical`` or ``business`` report of each ``daily``
or ``weekly`` period to up to :data:`MAX_RECIPIENTS` addresses, at ``hour`` (0-23,
the project's time zone; weekly reports on Mondays). When it is due is decided by
:func:`shopwatch.reports.periods.due`; this module keeps the bookkeeping:

- ``last_sent_for`` is the key of the latest period sent, or given up after
  :data:`MAX_ATTEMPTS` failed attempts: a period at or before it is never sent again.
- A send is **claimed** first (:func:`claim`): a compare-and-set ``UPDATE`` on the row's
  ``last_sent_for``, ``attempts`` and an expired ``claimed_until``, so two workers (or a
  worker restarted mid-send) never send the same attempt twice. A failed attempt keeps
  the claim until the retry time, so nobody retries earlier.

Validation errors are :class:`~shopwatch.errors.ConfigError` naming the field
(``recipients[1]: 'x' is not an e-mail address``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

import sqlalchemy as sa

from shopwatch.alerts.channels.base import check_email
from shopwatch.errors import ConfigError, NotFound
from shopwatch.reports import AUDIENCES
from shopwatch.reports.periods import KINDS
from shopwatch.store.channels import check_name
from shopwatch.store.state import StateStore, report_schedules

MAX_RECIPIENTS: Final = 20
MAX_ATTEMPTS: Final = 5
_FIELDS: Final = ("name", "audience", "period", "recipients", "hour", "enabled")


@dataclass(frozen=True)
class Schedule:
    """A stored schedule (times in epoch seconds)."""

    id: int
    project_id: int
    name: str
    audience: str
    period: str
    recipients: tuple[str, ...]
    hour: int
    enabled: bool
    created_at: float
    last_sent_for: str | None
    last_sent_at: float | None
    last_error: str | None
    attempts: int
    claimed_until: float | None


def _row(row: Any) -> Schedule:
    return Schedule(int(row.id), int(row.project_id), row.name, row.audience, row.period,
                    tuple(json.loads(row.recipients)), int(row.hour), bool(row.enabled),
                    float(row.created_at), row.last_sent_for, row.last_sent_at,
                    row.last_error, int(row.attempts), row.claimed_until)


def check_schedule(data: Any) -> dict[str, Any]:
    """The fields of a new schedule from user input (an object with ``name``,
    ``audience``, ``period``, ``recipients``, ``hour`` and optionally ``enabled``);
    ConfigError naming the first field at fault."""
    if not isinstance(data, dict):
        raise ConfigError("body: an object with name, audience, period, recipients, hour")
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        raise ConfigError(f"{unknown[0]}: not a field ({', '.join(_FIELDS)})")
    if not isinstance(data.get("name"), str):
        raise ConfigError("name: required (1-100 letters, digits, spaces or ._@-)")
    name = check_name(data["name"])
    audience = data.get("audience")
    if audience not in AUDIENCES:
        raise ConfigError(f"audience: {audience!r} is not one of {', '.join(AUDIENCES)}")
    period = data.get("period")
    if period not in KINDS:
        raise ConfigError(f"period: {period!r} is not one of {', '.join(KINDS)}")
    raw = data.get("recipients")
    if isinstance(raw, str):  # a form's "a@x.example, b@y.example"
        raw = [r for r in raw.replace(";", ",").replace("\n", ",").split(",") if r.strip()]
    if not isinstance(raw, list) or not raw:
        raise ConfigError("recipients: required (one or more e-mail addresses)")
    if len(raw) > MAX_RECIPIENTS:
        raise ConfigError(f"recipients: at most {MAX_RECIPIENTS} addresses ({len(raw)} given)")
    recipients = list(dict.fromkeys(check_email(r, f"recipients[{i}]")
                                    for i, r in enumerate(raw)))
    hour = data.get("hour")
    if isinstance(hour, str) and hour.strip().isdigit():
        hour = int(hour)
    if isinstance(hour, bool) or not isinstance(hour, int) or not 0 <= hour <= 23:
        raise ConfigError(f"hour: {hour!r} is not an hour of the day (0-23, local time)")
    enabled = data.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError(f"enabled: {enabled!r} is not true or false")
    return {"name": name, "audience": audience, "period": period, "recipients": recipients,
            "hour": hour, "enabled": enabled}


def add_schedule(state: StateStore, project_id: int, data: Any, now: float) -> Schedule:
    """Validate and store a schedule; ConfigError naming the field (``name`` when the
    project has a schedule of that name already)."""
    fields = check_schedule(data)
    with state.engine.begin() as conn:
        taken = conn.execute(sa.select(report_schedules.c.id).where(
            (report_schedules.c.project_id == project_id)
            & (report_schedules.c.name == fields["name"]))).first()
        if taken is not None:
            raise ConfigError(f"name: the project has a report schedule {fields['name']!r} "
                              "already")
        key = conn.execute(report_schedules.insert().values(
            project_id=project_id, name=fields["name"], audience=fields["audience"],
            period=fields["period"], recipients=json.dumps(fields["recipients"]),
            hour=fields["hour"], enabled=fields["enabled"], created_at=now,
            attempts=0)).inserted_primary_key
        assert key is not None
        return _get(conn, int(key[0]))


def _get(conn: sa.Connection, schedule_id: int) -> Schedule:
    row = conn.execute(sa.select(report_schedules).where(
        report_schedules.c.id == schedule_id)).first()
    if row is None:
        raise NotFound(f"no report schedule {schedule_id}")
    return _row(row)


def list_schedules(state: StateStore, project_id: int | None = None) -> list[Schedule]:
    """One project's schedules (or every project's), by project and name."""
    query = sa.select(report_schedules).order_by(report_schedules.c.project_id,
                                                 report_schedules.c.name)
    if project_id is not None:
        query = query.where(report_schedules.c.project_id == project_id)
    with state.engine.connect() as conn:
        return [_row(r) for r in conn.execute(query)]


def get_schedule(state: StateStore, project_id: int, ref: str | int) -> Schedule:
    """The project's schedule by id or name; NotFound otherwise."""
    text = str(ref).strip()
    where = (report_schedules.c.id == int(text)) if text.isdigit() else (
        report_schedules.c.name == text)
    with state.engine.connect() as conn:
        row = conn.execute(sa.select(report_schedules).where(
            where & (report_schedules.c.project_id == project_id))).first()
    if row is None:
        raise NotFound(f"no report schedule {text!r} in this project")
    return _row(row)


def remove_schedule(state: StateStore, project_id: int, ref: str | int) -> Schedule:
    found = get_schedule(state, project_id, ref)
    with state.engine.begin() as conn:
        conn.execute(report_schedules.delete().where(report_schedules.c.id == found.id))
    return found


def claim(state: StateStore, seen: Schedule, now: float, lease: float) -> Schedule | None:
    """Take ``seen`` for one attempt (leased until ``now + lease``) if nobody changed or
    claimed it since it was read; the claimed schedule or None."""
    t = report_schedules
    sent = (t.c.last_sent_for.is_(None) if seen.last_sent_for is None
            else t.c.last_sent_for == seen.last_sent_for)
    with state.engine.begin() as conn:
        changed = conn.execute(t.update().where(
            (t.c.id == seen.id) & sent & (t.c.attempts == seen.attempts)
            & (t.c.claimed_until.is_(None) | (t.c.claimed_until <= now))).values(
            claimed_until=now + lease))
        if changed.rowcount != 1:
            return None
        return _get(conn, seen.id)


def finish(state: StateStore, claimed: Schedule, key: str, now: float,
           error: str | None = None, retry_at: float | None = None) -> Schedule:
    """Record the claimed attempt for period ``key``: sent (``error`` None), failed with
    a retry at ``retry_at``, or failed for good (no ``retry_at``: the period is given up
    and ``last_error`` says why)."""
    t = report_schedules
    values: dict[str, Any]
    if error is None:
        values = {"last_sent_for": key, "last_sent_at": now, "last_error": None,
                  "attempts": 0, "claimed_until": None}
    elif retry_at is None:
        values = {"last_sent_for": key, "last_error": f"{key}: gave up: {error}",
                  "attempts": 0, "claimed_until": None}
    else:
        values = {"last_error": f"{key}: {error}", "attempts": claimed.attempts + 1,
                  "claimed_until": retry_at}
    with state.engine.begin() as conn:
        conn.execute(t.update().where(t.c.id == claimed.id).values(**values))
        return _get(conn, claimed.id)

