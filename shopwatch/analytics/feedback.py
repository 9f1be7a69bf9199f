"""Customer feedback: NPS and CSAT from ``survey_response`` events, their trend and
segments, and the comments linked to what the customer went through.

Contract (docs/kpis.md, "NPS and CSAT"; docs/feedback.md). Every figure reads one
project's ``survey_response`` events counted by their time (``ts``) in the half-open
period; each stored event is one **response** (the store keeps one event per id).

- A response's **survey** is ``params.survey`` compared in lower case: ``nps``, ``csat``
  or a custom id (``None`` when not sent). Its **score** is ``params.score`` (ingest
  checks an NPS score is a whole number 0-10 and a CSAT score one of 1-5).
- **NPS** over the NPS responses: **promoters** score 9-10, **passives** 7-8,
  **detractors** 0-6; NPS = % promoters - % detractors, from -100 to 100, ``None``
  without responses.
- **CSAT** over the CSAT responses: the % of responses scoring 4-5 (**satisfied**);
  ``None`` without responses. A CSAT response scoring 1-3 is **not satisfied**.
- **Unhappy** responses: NPS detractors and CSAT responses not satisfied. An unhappy
  response **hit a problem** when one of its sessions (below) had a JavaScript error
  (a ``rum`` row of kind ``error``) or overlapped an incident (started before the
  session's last activity, not resolved before its first).
- **Trend**: the figures per bucket: a week (Monday 00:00 UTC) for ranges of 14 days
  or more, a day for ranges of 2 days or more, else the range's own bucket; every
  bucket is listed, empty ones with ``None`` scores.
- **Segments** (each a list of values with responses, NPS and CSAT, most responses
  first, ``None`` last): ``device`` (the response's device category, else that of
  another event of its session), ``country`` (likewise), ``channel`` (the customer's
  first touch: the ``utm_source`` of the first event carrying one in the customer's
  first session, the session of their earliest event with that ``user_id``; ``None``
  when that session had none: direct or untagged), ``payment_method``
  (``params.payment_method`` of the order the response is about: the first
  ``purchase`` with its ``transaction_id``; ``None`` without an order).
- **Comments**: responses with a non-empty ``params.comment`` (already scrubbed of
  personal data at ingest), filtered by ``q`` (case-insensitive substring of the
  comment), newest first, paginated. Each is linked to the customer's **orders**
  (``purchase`` events with its ``user_id``, or its ``transaction_id``; newest first,
  at most :data:`MAX_LINKED`), its **sessions**, the **JS errors** in them and the
  **incidents** overlapping them.
- A response's **sessions**: its own session, the session of the order it is about,
  and the sessions with an event or a RUM row of the customer (``user_id``) in the
  :data:`LOOKBACK_S` before the response.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol
from urllib.parse import quote

from shopwatch.analytics.sessions import TS
from shopwatch.analytics.timerange import TimeRange, iso_utc
from shopwatch.store.base import EventStore

US: Final = 1_000_000
DAY_US: Final = 86_400 * US
WEEK_US: Final = 7 * DAY_US
MONDAY_US: Final = 4 * DAY_US  # 1970-01-05, the first Monday of the epoch
LOOKBACK_S: Final = 7 * 86_400  # sessions of the customer linked to a response
MAX_LINKED: Final = 10  # orders, sessions, error messages, incidents per comment
MAX_SEGMENT_ROWS: Final = 20
MAX_COMMENTS_PAGE: Final = 100
SEGMENTS: Final = ("device", "country", "channel", "payment_method")

PERIOD: Final = f"project_id = ? AND ts >= {TS} AND ts < {TS}"


class IncidentLike(Protocol):
    """What is read of an incident (:class:`shopwatch.store.incidents.Incident`)."""

    @property
    def id(self) -> int: ...
    @property
    def title(self) -> str: ...
    @property
    def severity(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def started_at(self) -> float: ...
    @property
    def resolved_at(self) -> float | None: ...


@dataclass
class Response:
    """One ``survey_response`` event with what the segments need."""

    id: str
    ts_us: int
    user_id: str | None
    session_id: str | None
    transaction_id: str | None
    survey: str | None
    score: float | None
    comment: str | None
    question: str | None
    device: str | None
    country: str | None
    channel: str | None = None
    payment_method: str | None = None


# --- definitions -------------------------------------------------------------------------


def nps_category(score: float) -> str:
    """``promoter`` (9-10), ``passive`` (7-8) or ``detractor`` (0-6)."""
    return "promoter" if score >= 9 else "passive" if score >= 7 else "detractor"


def csat_category(score: float) -> str:
    """``satisfied`` (4-5) or ``not_satisfied`` (1-3)."""
    return "satisfied" if score >= 4 else "not_satisfied"


def category(survey: str | None, score: float | None) -> str | None:
    """The response's category in its survey (``None`` for custom surveys)."""
    if score is None:
        return None
    if survey == "nps":
        return nps_category(score)
    if survey == "csat":
        return csat_category(score)
    return None


def unhappy(survey: str | None, score: float | None) -> bool:
    return category(survey, score) in ("detractor", "not_satisfied")


def scores(responses: Iterable[Response]) -> dict[str, Any]:
    """Responses, NPS (score, promoters, passives, detractors, responses) and CSAT
    (score, satisfied, responses) of some responses (module docstring)."""
    n = promoters = passives = detractors = csat_n = satisfied = 0
    for r in responses:
        n += 1
        if r.score is None:
            continue
        if r.survey == "nps":
            kind = nps_category(r.score)
            promoters += kind == "promoter"
            passives += kind == "passive"
            detractors += kind == "detractor"
        elif r.survey == "csat":
            csat_n += 1
            satisfied += r.score >= 4
    nps_n = promoters + passives + detractors
    return {
        "responses": n,
        "nps": {"score": 100 * (promoters - detractors) / nps_n if nps_n else None,
                "responses": nps_n, "promoters": promoters, "passives": passives,
                "detractors": detractors},
        "csat": {"score": 100 * satisfied / csat_n if csat_n else None,
                 "responses": csat_n, "satisfied": satisfied},
    }


def trend_bucket(rng: TimeRange) -> tuple[int, int, str]:
    """``(width, offset, label)`` in microseconds of the trend's buckets: weeks from
    Monday for ranges of 14 days or more, days from 2 days, else the range's buckets."""
    span = rng.end_us - rng.start_us
    if span >= 14 * DAY_US:
        return WEEK_US, MONDAY_US, "week"
    if span >= 2 * DAY_US:
        return DAY_US, 0, "day"
    return rng.bucket_us, 0, "bucket"


# --- reading -----------------------------------------------------------------------------

# The period's responses with their segment values (parameters: project and period, then
# the project four times).
_RESPONSES: Final = f"""
WITH r AS MATERIALIZED (
    SELECT id, ts, user_id, session_id,
           COALESCE(transaction_id, params->>'$.transaction_id') AS tid,
           lower(trim(params->>'$.survey')) AS survey,
           TRY_CAST(params->>'$.score' AS DOUBLE) AS score,
           params->>'$.comment' AS comment, params->>'$.question' AS question,
           device_category, country
    FROM events WHERE {PERIOD} AND name = 'survey_response'
),
sd AS (  -- the device and country of the responses' sessions
    SELECT session_id, any_value(device_category) FILTER (WHERE device_category IS NOT NULL)
               AS device,
           any_value(country) FILTER (WHERE country IS NOT NULL) AS country
    FROM events WHERE project_id = ?
      AND session_id IN (SELECT session_id FROM r WHERE session_id IS NOT NULL)
    GROUP BY session_id
),
cs AS MATERIALIZED (  -- every session of the responding customers
    SELECT DISTINCT user_id, session_id FROM events
    WHERE project_id = ? AND session_id IS NOT NULL
      AND user_id IN (SELECT user_id FROM r WHERE user_id IS NOT NULL)
),
fs AS (  -- each customer's first session: the one of their earliest event
    SELECT cs.user_id, arg_min(e.session_id, (e.ts, e.id)) AS first_session
    FROM cs JOIN events e ON e.project_id = ? AND e.session_id = cs.session_id
    GROUP BY cs.user_id
),
ft AS (  -- the first utm_source of that session
    SELECT fs.user_id, arg_min(e.utm_source, (e.ts, e.id)) AS channel
    FROM fs JOIN events e ON e.project_id = ? AND e.session_id = fs.first_session
    WHERE e.utm_source IS NOT NULL
    GROUP BY fs.user_id
),
pm AS (  -- the payment method of the first purchase of each order
    SELECT transaction_id, arg_min(params->>'$.payment_method', (ts, id)) AS method
    FROM events WHERE project_id = ? AND name = 'purchase'
      AND transaction_id IN (SELECT tid FROM r WHERE tid IS NOT NULL)
    GROUP BY transaction_id
)
SELECT r.id, epoch_us(r.ts), r.user_id, r.session_id, r.tid, r.survey, r.score, r.comment,
       r.question, COALESCE(r.device_category, sd.device), COALESCE(r.country, sd.country),
       ft.channel, pm.method
FROM r LEFT JOIN sd USING (session_id) LEFT JOIN ft USING (user_id)
       LEFT JOIN pm ON pm.transaction_id = r.tid
ORDER BY r.ts DESC, r.id
"""


def responses(store: EventStore, project_id: int, rng: TimeRange) -> list[Response]:
    """The period's responses, newest first, with their segment values."""
    rows = store.query(_RESPONSES, [project_id, rng.start_us, rng.end_us, *[project_id] * 5])
    out = []
    for (rid, t, user, session, tid, survey, score, comment, question, device, country,
         channel, method) in rows:
        out.append(Response(
            id=rid, ts_us=int(t), user_id=user, session_id=session, transaction_id=tid,
            survey=survey or None, score=None if score is None else float(score),
            comment=comment if comment and comment.strip() else None, question=question,
            device=device, country=country, channel=channel or None,
            payment_method=method or None))
    return out


@dataclass
class Session:
    """A session linked to a response: its span (epoch µs) and JS errors."""

    session_id: str
    start_us: int
    end_us: int
    errors: int


def linked_sessions(store: EventStore, project_id: int, rows: Sequence[Response],
                    ) -> dict[str, list[Session]]:
    """Each response's sessions (module docstring), latest activity first."""
    if not rows:
        return {}
    lookback = LOOKBACK_S * US
    params: list[Any] = [[r.id for r in rows], [r.user_id for r in rows],
                         [r.ts_us for r in rows], [r.session_id for r in rows],
                         [r.transaction_id for r in rows]]
    found = store.query(f"""
WITH r AS MATERIALIZED (
    SELECT unnest(?::VARCHAR[]) AS rid, unnest(?::VARCHAR[]) AS uid,
           unnest(?::BIGINT[]) AS t, unnest(?::VARCHAR[]) AS sid, unnest(?::VARCHAR[]) AS tid
),
rs AS MATERIALIZED (
    SELECT rid, sid AS session_id FROM r WHERE sid IS NOT NULL
    UNION
    SELECT r.rid, e.session_id FROM r JOIN events e
      ON e.project_id = ? AND e.user_id = r.uid AND e.session_id IS NOT NULL
     AND e.ts >= make_timestamp(r.t - {lookback}) AND e.ts <= make_timestamp(r.t)
    UNION
    SELECT r.rid, m.session_id FROM r JOIN rum m
      ON m.project_id = ? AND m.user_id = r.uid AND m.session_id IS NOT NULL
     AND m.ts >= make_timestamp(r.t - {lookback}) AND m.ts <= make_timestamp(r.t)
    UNION
    SELECT r.rid, e.session_id FROM r JOIN events e
      ON e.project_id = ? AND e.name = 'purchase' AND e.transaction_id = r.tid
     AND e.session_id IS NOT NULL
),
ids AS (SELECT DISTINCT session_id FROM rs),
span AS (
    SELECT session_id, epoch_us(min(ts)) AS first, epoch_us(max(ts)) AS last,
           count(*) FILTER (WHERE kind = 'error') AS errors
    FROM (SELECT session_id, ts, NULL AS kind FROM events
          WHERE project_id = ? AND session_id IN (SELECT session_id FROM ids)
          UNION ALL
          SELECT session_id, ts, kind FROM rum
          WHERE project_id = ? AND session_id IN (SELECT session_id FROM ids))
    GROUP BY session_id
)
SELECT rs.rid, rs.session_id, span.first, span.last, COALESCE(span.errors, 0)
FROM rs JOIN span USING (session_id)
ORDER BY span.last DESC, rs.session_id""", [*params, *[project_id] * 5])
    out: dict[str, list[Session]] = defaultdict(list)
    for rid, session, first, last, errors in found:
        out[rid].append(Session(session, int(first), int(last), int(errors)))
    return out


def overlapping(incidents: Sequence[IncidentLike], sessions: Sequence[Session],
                ) -> list[IncidentLike]:
    """The incidents that overlap one of ``sessions`` (started before its last activity
    and not resolved before its first), newest first."""
    hit = []
    for inc in incidents:
        start_us = int(inc.started_at * US)
        end_us = None if inc.resolved_at is None else int(inc.resolved_at * US)
        if any(start_us <= s.end_us and (end_us is None or end_us >= s.start_us)
               for s in sessions):
            hit.append(inc)
    return sorted(hit, key=lambda i: (-i.started_at, -i.id))


# --- the page's figures -------------------------------------------------------------------


def _segment(rows: Sequence[Response], key: str, limit: int) -> list[dict[str, Any]]:
    groups: dict[str | None, list[Response]] = defaultdict(list)
    for r in rows:
        groups[getattr(r, key)].append(r)
    out = [{"value": value, **scores(members)} for value, members in groups.items()]
    out.sort(key=lambda s: (-s["responses"], s["value"] is None, s["value"] or ""))
    return out[:limit]


def feedback(store: EventStore, project_id: int, rng: TimeRange,
             incidents: Sequence[IncidentLike] = (), limit: int = MAX_SEGMENT_ROWS,
             ) -> dict[str, Any]:
    """Every figure of the Feedback page (module docstring): totals, the trend, the
    segments, the surveys, the score distributions and the unhappy responses that hit
    a problem. ``incidents``: the project's incidents that may overlap the sessions."""
    rows = responses(store, project_id, rng)
    totals = scores(rows)
    width, offset, label = trend_bucket(rng)
    per: dict[int, list[Response]] = defaultdict(list)
    for r in rows:
        per[(r.ts_us - offset) // width * width + offset].append(r)
    first = (rng.start_us - offset) // width * width + offset
    series = []
    for start in range(first, rng.end_us, width):
        point = scores(per.get(start, ()))
        series.append({"t": iso_utc(start), "responses": point["responses"],
                       "nps": point["nps"]["score"], "nps_responses": point["nps"]["responses"],
                       "promoters": point["nps"]["promoters"],
                       "detractors": point["nps"]["detractors"],
                       "csat": point["csat"]["score"],
                       "csat_responses": point["csat"]["responses"],
                       "satisfied": point["csat"]["satisfied"]})
    surveys: dict[str | None, list[Response]] = defaultdict(list)
    for r in rows:
        surveys[r.survey].append(r)
    survey_rows: list[dict[str, Any]] = []
    for name, members in surveys.items():
        given = [r.score for r in members if r.score is not None]
        survey_rows.append({"survey": name, "responses": len(members),
                            "mean_score": sum(given) / len(given) if given else None})
    survey_rows.sort(key=lambda s: (-s["responses"], s["survey"] is None, s["survey"] or ""))
    nps_dist = [0] * 11
    csat_dist = [0] * 5
    for r in rows:
        if r.score is None or not float(r.score).is_integer():
            continue
        s = int(r.score)
        if r.survey == "nps" and 0 <= s <= 10:
            nps_dist[s] += 1
        elif r.survey == "csat" and 1 <= s <= 5:
            csat_dist[s - 1] += 1
    bad = [r for r in rows if unhappy(r.survey, r.score)]
    links = linked_sessions(store, project_id, bad)
    with_errors = with_incidents = hit = 0
    for r in bad:
        sessions = links.get(r.id, [])
        errors = any(s.errors for s in sessions)
        during = bool(overlapping(incidents, sessions))
        with_errors += errors
        with_incidents += during
        hit += errors or during
    return {
        "range": rng.as_dict(),
        "interval": {"label": label, "bucket_seconds": width // US},
        "totals": {**totals, "comments": sum(1 for r in rows if r.comment),
                   "customers": len({r.user_id for r in rows if r.user_id}),
                   "unhappy": len(bad), "unhappy_with_errors": with_errors,
                   "unhappy_in_incidents": with_incidents, "unhappy_with_problems": hit},
        "series": series,
        "segments": {key: _segment(rows, key, limit) for key in SEGMENTS},
        "surveys": survey_rows,
        "distribution": {"nps": nps_dist, "csat": csat_dist},
    }


# --- comments ------------------------------------------------------------------------------


def _orders(store: EventStore, project_id: int, rows: Sequence[Response],
            ) -> list[dict[str, Any]]:
    """The orders of the responses' customers and transactions (first event of each)."""
    users = sorted({r.user_id for r in rows if r.user_id})
    tids = sorted({r.transaction_id for r in rows if r.transaction_id})
    if not users and not tids:
        return []
    found = store.query("""
SELECT COALESCE(transaction_id, id) AS k, any_value(transaction_id), epoch_us(min(ts)),
       arg_min(user_id, (ts, id)), arg_min(value, (ts, id)), arg_min(currency, (ts, id)),
       arg_min(params->>'$.payment_method', (ts, id)), arg_min(session_id, (ts, id))
FROM events WHERE project_id = ? AND name = 'purchase'
  AND (user_id IN (SELECT unnest(?::VARCHAR[])) OR transaction_id IN (SELECT unnest(?::VARCHAR[])))
GROUP BY k""", [project_id, users, tids])
    return [{"transaction_id": tid, "ts": iso_utc(int(t)), "user_id": user,
             "value": value, "currency": currency, "payment_method": method,
             "session_id": session}
            for _k, tid, t, user, value, currency, method, session in found]


def _errors(store: EventStore, project_id: int, sessions: Sequence[str],
            ) -> list[tuple[str, str | None, str | None, int, int, str | None]]:
    """``(session, type, message, count, last µs, page)`` of the sessions' JS errors."""
    if not sessions:
        return []
    return [(s, et, msg, int(n), int(last), page) for s, et, msg, n, last, page in store.query("""
SELECT session_id, error_type, message, count(*), epoch_us(max(ts)), arg_max(page, ts)
FROM rum WHERE project_id = ? AND kind = 'error'
  AND session_id IN (SELECT unnest(?::VARCHAR[]))
GROUP BY session_id, error_type, message""", [project_id, list(sessions)])]


def journey_path(session_id: str) -> str:
    """The dashboard page of one session's journey."""
    return f"/behaviour/session-journeys?session={quote(session_id, safe='')}"


def comments(store: EventStore, project_id: int, rng: TimeRange, q: str = "",
             incidents: Sequence[IncidentLike] = (), limit: int = 20, offset: int = 0,
             ) -> dict[str, Any]:
    """The period's comments matching ``q`` (case-insensitive substring), newest first,
    ``limit`` from ``offset``, each with its linked orders, sessions, JS errors and
    incidents (module docstring)."""
    needle = q.strip().lower()
    matching = [r for r in responses(store, project_id, rng)
                if r.comment and needle in r.comment.lower()]
    page = matching[offset:offset + limit]
    links = linked_sessions(store, project_id, page)
    orders = _orders(store, project_id, page)
    all_sessions = sorted({s.session_id for ss in links.values() for s in ss})
    errors_of: dict[str, list[tuple[str | None, str | None, int, int, str | None]]] = (
        defaultdict(list))
    for sid, et, msg, n, last, where in _errors(store, project_id, all_sessions):
        errors_of[sid].append((et, msg, n, last, where))
    out = []
    for r in page:
        sessions = links.get(r.id, [])
        mine = [o for o in orders if (r.user_id and o["user_id"] == r.user_id)
                or (r.transaction_id and o["transaction_id"] == r.transaction_id)]
        mine.sort(key=lambda o: o["ts"], reverse=True)
        merged: dict[tuple[str | None, str | None], list[Any]] = {}
        for s in sessions:
            for et, msg, n, last, where in errors_of.get(s.session_id, []):
                entry = merged.setdefault((et, msg), [0, 0, where, s.session_id])
                entry[0] += n
                if last > entry[1]:
                    entry[1:] = [last, where, s.session_id]
        top = sorted(merged.items(), key=lambda kv: (-kv[1][0], -kv[1][1]))
        hit = overlapping(incidents, sessions)
        out.append({
            "id": r.id, "ts": iso_utc(r.ts_us), "survey": r.survey, "score": r.score,
            "category": category(r.survey, r.score), "comment": r.comment,
            "question": r.question, "user_id": r.user_id, "transaction_id": r.transaction_id,
            "session_id": r.session_id, "device": r.device, "country": r.country,
            "channel": r.channel, "payment_method": r.payment_method,
            "orders": [{**o, "about": bool(r.transaction_id)
                        and o["transaction_id"] == r.transaction_id} for o in mine[:MAX_LINKED]],
            "sessions": [{"session_id": s.session_id, "start": iso_utc(s.start_us),
                          "end": iso_utc(s.end_us), "errors": s.errors,
                          "journey": journey_path(s.session_id)}
                         for s in sessions[:MAX_LINKED]],
            "errors": {"count": sum(s.errors for s in sessions),
                       "top": [{"type": et, "message": msg, "count": v[0],
                                "last_seen": iso_utc(v[1]), "page": v[2],
                                "session_id": v[3]}
                               for (et, msg), v in top[:MAX_LINKED]]},
            "incidents": [{"id": i.id, "title": i.title, "severity": i.severity,
                           "status": i.status,
                           "started_at": iso_utc(int(i.started_at * US)),
                           "resolved_at": None if i.resolved_at is None
                           else iso_utc(int(i.resolved_at * US)),
                           "link": f"/alerts/incidents?id={i.id}"}
                          for i in hit[:MAX_LINKED]],
        })
    return {"range": rng.as_dict(), "q": q, "limit": limit, "offset": offset,
            "total": len(matching), "comments": out}
