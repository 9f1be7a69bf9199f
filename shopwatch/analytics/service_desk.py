"""The service desk from ``support_contact`` events (docs/kpis.md, "Service desk";
docs/service-desk.md).

Contract. A **contact** is a ``support_contact`` event (``user_id``: the customer) of
the project whose ``ts`` lies in the half-open period; events sharing a
``params.contact_id`` are one contact, the one received last (a desk may send a contact
when it is queued and again when it is answered), events without one count each. Its
params: ``channel`` (phone, chat, email, other; missing: ``other``), ``queued_at``,
``answered_at`` or ``abandoned_at`` (RFC 3339 or epoch ms), ``talk_s``, ``hold_s``,
``acw_s`` (seconds), ``first_contact_resolved``, ``agent``, ``reason``. A contact
queued at ``queued_at``, else at the event's ``ts`` (the same unless the sender set
``ts``: ingest dates an event without one at its ``queued_at``); its
**wait** is ``answered_at`` (or ``abandoned_at``) minus that, never below zero.

- **Queued channels** (:data:`QUEUED`): phone and chat, where a customer waits in line.
  Service level, speed of answer and abandonment are measured on them only: an e-mail
  waits hours by design and nobody hangs up on one. E-mail (and ``other``) still count
  in the contacts, handle time, first-contact resolution and contacts per order, and
  their row of the channel breakdown shows their own average time to answer.
- **Service level**: queued contacts answered within the threshold (wait ≤
  ``service_level_threshold``, 20 s by default) ÷ (queued contacts answered + queued
  contacts abandoned after the threshold). Contacts abandoned within the threshold
  (wait ≤ threshold, **short abandons**) are left out of both; a contact answered or
  abandoned exactly at the threshold is within it. Contacts neither answered nor
  abandoned (still waiting, or not reported) are left out. ``None`` without any.
- **Average speed of answer (ASA)**: mean wait of the queued contacts answered.
- **Abandonment rate**: queued contacts abandoned (short abandons included) ÷ queued
  contacts answered or abandoned.
- **Average handle time (AHT)**: mean of talk + hold + after-contact work over the
  **handled** contacts: answered ones (any channel) that report at least one of
  ``talk_s``, ``hold_s``, ``acw_s``; a part not reported counts as 0.
- **First-contact resolution (FCR)**: contacts with ``first_contact_resolved`` true ÷
  contacts that report it (true or false).
- **Contacts per 100 orders**: 100 times contacts ÷ orders, orders counted as everywhere
  (``purchase`` events of the period, one per ``transaction_id``, each one without it).

Every figure is also given per channel, reason and agent (most contacts first, at most
``limit`` rows; ``None``: not sent), per day of the project's time zone over the
period, and per 15-minute interval of today (the project's time zone) for the live
view. Everything is summed per 15-minute interval in SQL (every time zone's offset is
a multiple of 15 minutes, so an interval lies in one local day) and the ratios are made
here from the sums.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

from shopwatch.analytics.sessions import TS
from shopwatch.analytics.timerange import TimeRange, iso_utc
from shopwatch.store.base import EventStore

QUEUED: Final = ("phone", "chat")
CHANNELS: Final = ("phone", "chat", "email", "other")
INTERVAL_US: Final = 15 * 60 * 1_000_000
MAX_ROWS: Final = 20
DAY_US: Final = 86_400 * 1_000_000


def _time_sql(key: str) -> str:
    """SQL: ``params.<key>`` (RFC 3339 text or epoch ms) in epoch µs, else NULL."""
    path = f"'$.{key}'"
    return (f"CASE json_type(p, {path}) WHEN 'VARCHAR' THEN epoch_us(TRY_CAST("
            f"upper(p->>{path}) AS TIMESTAMPTZ)) WHEN 'NULL' THEN NULL ELSE "
            f"CAST(TRY_CAST(p->>{path} AS DOUBLE) * 1000 AS BIGINT) END")


def _secs(key: str) -> str:
    return f"TRY_CAST(p->>'$.{key}' AS DOUBLE)"


# The contacts of the period, one per contact_id (the last received), with what the
# figures need. Parameters: the project, the period.
_CONTACTS: Final = f"""
raw AS (
    SELECT epoch_us(ts) AS t, received_at, id, params AS p, params->>'$.contact_id' AS cid
    FROM events
    WHERE project_id = ? AND ts >= {TS} AND ts < {TS} AND name = 'support_contact'
), one AS (
    SELECT t, p FROM raw WHERE cid IS NULL
    UNION ALL
    SELECT UNNEST(arg_max({{'t': t, 'p': p}}, (received_at, id))) FROM raw
    WHERE cid IS NOT NULL GROUP BY cid
), c0 AS (
    SELECT COALESCE({_time_sql('queued_at')}, t) AS q, {_time_sql('answered_at')} AS ans,
           {_time_sql('abandoned_at')} AS ab,
           CASE WHEN p->>'$.channel' IN ('phone', 'chat', 'email') THEN p->>'$.channel'
                ELSE 'other' END AS channel,
           p->>'$.reason' AS reason, p->>'$.agent' AS agent,
           {_secs('talk_s')} AS talk, {_secs('hold_s')} AS hold, {_secs('acw_s')} AS acw,
           TRY_CAST(p->>'$.first_contact_resolved' AS BOOLEAN) AS fcr
    FROM one
), c AS (
    SELECT *, channel IN ('phone', 'chat') AS queued,
           greatest(ans - q, 0) AS wait_ans, greatest(ab - q, 0) AS wait_ab,
           ans IS NOT NULL AND (talk IS NOT NULL OR hold IS NOT NULL OR acw IS NOT NULL)
               AS handled,
           q // {INTERVAL_US} AS b
    FROM c0
)"""

# Additive sums per grouping (parameter: the threshold in µs, twice).
_SUMS: Final = """count(*),
       count(*) FILTER (WHERE queued AND ans IS NOT NULL),
       count(*) FILTER (WHERE queued AND ans IS NOT NULL AND wait_ans <= ?),
       count(*) FILTER (WHERE queued AND ab IS NOT NULL),
       count(*) FILTER (WHERE queued AND ab IS NOT NULL AND wait_ab <= ?),
       COALESCE(sum(wait_ans) FILTER (WHERE queued), 0),
       count(*) FILTER (WHERE NOT queued AND ans IS NOT NULL),
       COALESCE(sum(wait_ans) FILTER (WHERE NOT queued), 0),
       count(*) FILTER (WHERE handled),
       COALESCE(sum(COALESCE(talk, 0)) FILTER (WHERE handled), 0),
       COALESCE(sum(COALESCE(hold, 0)) FILTER (WHERE handled), 0),
       COALESCE(sum(COALESCE(acw, 0)) FILTER (WHERE handled), 0),
       count(*) FILTER (WHERE fcr), count(fcr)"""
_SUM_KEYS: Final = ("contacts", "answered", "answered_in_time", "abandoned", "short_abandons",
                    "wait_us", "other_answered", "other_wait_us", "handled", "talk_s",
                    "hold_s", "acw_s", "fcr_yes", "fcr_known")


@dataclass
class Sums:
    """The additive figures of some contacts (see :data:`_SUM_KEYS`)."""

    values: dict[str, float] = field(default_factory=lambda: dict.fromkeys(_SUM_KEYS, 0))

    def add(self, other: Iterable[Any]) -> None:
        for key, value in zip(_SUM_KEYS, other, strict=True):
            self.values[key] += float(value or 0)

    def figures(self, target: float, *, own_answer: bool = False) -> dict[str, Any]:
        """The KPIs of these sums (module docstring). ``own_answer``: a channel row of a
        channel that is not queued, whose speed of answer is its own."""
        v = self.values
        answered, abandoned, short = v["answered"], v["abandoned"], v["short_abandons"]
        judged = answered + abandoned - short
        handled = v["handled"]
        handle = v["talk_s"] + v["hold_s"] + v["acw_s"]
        if own_answer:
            asa = v["other_wait_us"] / v["other_answered"] / 1e6 if v["other_answered"] else None
        else:
            asa = v["wait_us"] / answered / 1e6 if answered else None
        level = v["answered_in_time"] / judged if judged else None
        return {
            "contacts": int(v["contacts"]), "answered": int(answered + v["other_answered"]),
            "queued_answered": int(answered), "abandoned": int(abandoned),
            "short_abandons": int(short), "answered_in_time": int(v["answered_in_time"]),
            "service_level": level,
            "meets_target": None if level is None else level >= target,
            "asa_s": asa,
            "abandonment_rate": abandoned / (answered + abandoned) if answered + abandoned
            else None,
            "handled": int(handled), "aht_s": handle / handled if handled else None,
            "avg_talk_s": v["talk_s"] / handled if handled else None,
            "avg_hold_s": v["hold_s"] / handled if handled else None,
            "avg_acw_s": v["acw_s"] / handled if handled else None,
            "fcr_rate": v["fcr_yes"] / v["fcr_known"] if v["fcr_known"] else None,
            "fcr_reported": int(v["fcr_known"]),
        }


def _grouped(store: EventStore, project_id: int, start_us: int, end_us: int,
             threshold_us: int) -> list[tuple[Any, ...]]:
    """Rows ``(grouping, channel, reason, agent, interval, *sums)`` for the groupings
    (), channel, reason, agent and 15-minute interval."""
    return store.query(f"""
WITH {_CONTACTS}
SELECT GROUPING(channel, reason, agent, b) AS g, channel, reason, agent, b, {_SUMS}
FROM c GROUP BY GROUPING SETS ((), (channel), (reason), (agent), (b))""",
                       [project_id, start_us, end_us, threshold_us, threshold_us])


def _orders(store: EventStore, project_id: int, rng: TimeRange) -> int:
    row = store.query(f"""
SELECT count(DISTINCT transaction_id) + count(*) FILTER (WHERE transaction_id IS NULL)
FROM events WHERE project_id = ? AND ts >= {TS} AND ts < {TS} AND name = 'purchase'""",
                      [project_id, rng.start_us, rng.end_us])
    return int(row[0][0]) if row else 0


def _local_day(us: int, tz: ZoneInfo) -> date:
    return datetime.fromtimestamp(us / 1e6, UTC).astimezone(tz).date()


def _local_midnight_us(day: date, tz: ZoneInfo) -> int:
    local = datetime(day.year, day.month, day.day, tzinfo=tz)
    return int(local.timestamp() * 1_000_000)


def _breakdown(rows: list[tuple[str | None, Sums]], key: str, target: float, limit: int,
               ) -> list[dict[str, Any]]:
    rows.sort(key=lambda r: (-r[1].values["contacts"], r[0] is None, r[0] or ""))
    return [{key: value, **sums.figures(
        target, own_answer=key == "channel" and value not in QUEUED)}
        for value, sums in rows[:limit]]


def service_desk(store: EventStore, project_id: int, rng: TimeRange, *,
                 threshold_s: float = 20.0, target: float = 0.8, timezone: str = "UTC",
                 now_us: int, limit: int = MAX_ROWS) -> dict[str, Any]:
    """Every figure of the Service desk page for one period (module docstring), and the
    live view of today (the project's time zone, ``now_us`` being now)."""
    tz = ZoneInfo(timezone)
    threshold_us = round(threshold_s * 1_000_000)
    totals = Sums()
    groups: dict[str, list[tuple[str | None, Sums]]] = {"channel": [], "reason": [],
                                                        "agent": []}
    days: dict[date, Sums] = {}
    grouping = {7: "channel", 11: "reason", 13: "agent"}  # GROUPING bits, 1: not grouped
    for g, channel, reason, agent, b, *sums in _grouped(store, project_id, rng.start_us,
                                                       rng.end_us, threshold_us):
        if g == 15:
            totals.add(sums)
        elif g in grouping:
            s = Sums()
            s.add(sums)
            value = {"channel": channel, "reason": reason, "agent": agent}[grouping[g]]
            groups[grouping[g]].append((value, s))
        elif g == 14:
            day = _local_day(int(b) * INTERVAL_US, tz)
            days.setdefault(day, Sums()).add(sums)
    figures = totals.figures(target)
    orders = _orders(store, project_id, rng)
    figures["orders"] = orders
    figures["contacts_per_100_orders"] = (100 * figures["contacts"] / orders
                                          if orders else None)
    # Every local day of the period, zeros included.
    first = _local_day(rng.start_us, tz)
    last = _local_day(max(rng.start_us, rng.end_us - 1), tz)
    day_rows = []
    day = first
    while day <= last:
        day_rows.append({"day": day.isoformat(),
                         **days.get(day, Sums()).figures(target)})
        day += timedelta(days=1)
    by_channel = _breakdown(groups["channel"], "channel", target, limit)
    return {
        "range": rng.as_dict(), "timezone": timezone, "limit": limit,
        "threshold_s": threshold_s, "target": target, "queued_channels": list(QUEUED),
        "totals": figures, "by_channel": by_channel,
        "by_reason": _breakdown(groups["reason"], "reason", target, limit),
        "by_agent": _breakdown(groups["agent"], "agent", target, limit),
        "days": day_rows,
        "today": today(store, project_id, threshold_s=threshold_s, target=target,
                       timezone=timezone, now_us=now_us),
    }


def today(store: EventStore, project_id: int, *, threshold_s: float, target: float,
          timezone: str, now_us: int) -> dict[str, Any]:
    """Today (the project's time zone) per 15-minute interval, from local midnight to
    the interval holding ``now_us``: contacts, answered, abandoned, service level."""
    tz = ZoneInfo(timezone)
    day = _local_day(now_us, tz)
    start = _local_midnight_us(day, tz)
    end = _local_midnight_us(day + timedelta(days=1), tz)
    threshold_us = round(threshold_s * 1_000_000)
    found: dict[int, Sums] = {}
    total = Sums()
    for g, _c, _r, _a, b, *sums in _grouped(store, project_id, start, end, threshold_us):
        if g == 14:
            found.setdefault(int(b), Sums()).add(sums)
        elif g == 15:
            total.add(sums)
    intervals = []
    for t in range(start, min(end, now_us // INTERVAL_US * INTERVAL_US + INTERVAL_US),
                   INTERVAL_US):
        f = found.get(t // INTERVAL_US, Sums()).figures(target)
        intervals.append({"t": iso_utc(t), **{k: f[k] for k in (
            "contacts", "answered", "abandoned", "short_abandons", "service_level",
            "asa_s")}})
    summary = total.figures(target)
    return {"date": day.isoformat(), "timezone": timezone, "from": iso_utc(start),
            "to": iso_utc(end), "target": target, "threshold_s": threshold_s,
            "interval_seconds": INTERVAL_US // 1_000_000,
            "totals": {k: summary[k] for k in ("contacts", "answered", "abandoned",
                                               "short_abandons", "service_level", "asa_s",
                                               "meets_target")},
            "intervals": intervals}
