"""Security detections: each reads the shop's events over a window and names what looks
like an attack, with its evidence.

Contract (docs/security.md, "Detections", where every parameter is explained):

- :func:`detect` runs one kind over ``[start_us, end_us)`` (event time) and returns its
  :class:`Candidate` findings, each about one *subject*: ``account:<user id>``,
  ``network:<prefix>`` (the /24 or /48 the pipeline keeps instead of an address),
  ``session:<id>``, or ``global`` (a shop-wide jump no single subject explains).
- Parameters come from :data:`DEFAULTS`, overridden per rule (``params:``); windows and
  severities from :data:`DEFAULT_WINDOWS` and :data:`DEFAULT_SEVERITY`.
- The kinds:

  - ``brute_force``: ``failures`` or more failed sign-ins on one account. Critical
    when the account then signs in (the guess may have worked).
  - ``credential_stuffing``: a network where ``accounts`` or more distinct accounts
    failed and at least ``failure_ratio`` of its sign-ins failed (a busy office
    network signs in mostly successfully); or, shop-wide, ``global_failures`` or more
    failures at a failure ratio of at least ``global_ratio`` and ``global_jump`` times
    the ratio of the previous ``baseline_days``, when the networks found explain less
    than half of the failures (an attack spread over many networks).
  - ``card_testing``: a session or network whose payments were declined at least
    ``decline_ratio`` of the time, with ``cards`` or more distinct cards (card
    fingerprint, else BIN) or ``declines`` or more declines; or a session with
    ``small_attempts`` or more payments of at most ``small_amount``; or, shop-wide,
    ``global_declines`` or more declines at a decline rate of at least ``global_rate``
    and ``global_jump`` times the baseline's, unexplained by the subjects found.
  - ``account_takeover``: on one account, a sign-in from a network it never signed in
    from (in the ``history_days`` before) *and* from a new device (browser and
    operating system) or country, then a change of e-mail, password, address or phone,
    then (unless ``require_order`` is 0) an order — all within the window. Accounts
    without an earlier sign-in are not judged (nothing is new to a new account).
  - ``bot_traffic``: sessions with an automation user agent (headless browsers,
    scripts, crawlers), or ``fast_events`` or more events at a mean gap under
    ``min_gap_s`` seconds (a mean over the session, not a median: a shop's server
    often sends two events for one request, a page view and a product view), or
    ``headless_events`` or more server events and no real-user monitoring at all while
    at least ``rum_coverage`` of the shop's sessions report it; grouped per network,
    a finding when they sent ``min_events`` or more events.
  - ``signup_abuse``: ``signups`` or more sign-ups from one network; or, shop-wide,
    ``global_signups`` or more at ``global_jump`` times the baseline's rate.

- Every query filters on the project and the window, and reads only the few event
  names it needs; evidence lists are capped (:data:`MAX_LIST`, and the event ids at
  :data:`MAX_IDS` per candidate).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec

from shopwatch.store.base import EventStore
from shopwatch.useragent import parse_agent

DEFAULT_WINDOWS: Final[dict[str, str]] = {
    "brute_force": "15m", "credential_stuffing": "15m", "card_testing": "30m",
    "account_takeover": "1h", "bot_traffic": "15m", "signup_abuse": "1h"}
DEFAULT_SEVERITY: Final[dict[str, str]] = {
    "brute_force": "warning", "credential_stuffing": "critical", "card_testing": "critical",
    "account_takeover": "critical", "bot_traffic": "warning", "signup_abuse": "warning"}
DEFAULTS: Final[dict[str, dict[str, float]]] = {
    "brute_force": {"failures": 10},
    "credential_stuffing": {"accounts": 10, "failure_ratio": 0.5, "global_failures": 50,
                            "global_ratio": 0.5, "global_jump": 3.0, "baseline_days": 7},
    "card_testing": {"cards": 5, "declines": 10, "decline_ratio": 0.5, "small_amount": 5.0,
                     "small_attempts": 10, "global_declines": 20, "global_rate": 0.3,
                     "global_jump": 3.0, "baseline_days": 7},
    "account_takeover": {"history_days": 30, "require_order": 1},
    "bot_traffic": {"min_events": 20, "fast_events": 30, "min_gap_s": 0.5,
                    "headless_events": 100, "rum_coverage": 0.5},
    "signup_abuse": {"signups": 6, "global_signups": 20, "global_jump": 10.0,
                     "baseline_days": 7},
}
TITLES: Final[dict[str, str]] = {
    "brute_force": "Brute force", "credential_stuffing": "Credential stuffing",
    "card_testing": "Card testing", "account_takeover": "Account takeover pattern",
    "bot_traffic": "Bot traffic", "signup_abuse": "Sign-up abuse"}
SENSITIVE_FIELDS: Final = frozenset({"email", "password", "address", "phone"})
MAX_LIST: Final = 50
MAX_IDS: Final = 500
TS: Final = "make_timestamp(?::BIGINT)"
_US: Final = 1_000_000
_DAY_US: Final = 86_400 * _US


@dataclass
class Candidate:
    """One finding as a detection sees it (the store files it: shopwatch.store.findings)."""

    kind: str
    subject: str
    severity: str
    title: str
    first_ts: float
    last_ts: float
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Row:
    """One event of a candidate's evidence."""

    id: str
    ts: float
    name: str
    user_id: str | None
    session_id: str | None
    net_prefix: str | None
    user_agent: str | None
    browser: str | None
    os: str | None
    country: str | None
    value: float | None
    params: dict[str, Any]


_ROW_SQL: Final = ("id, epoch(ts), name, user_id, session_id, net_prefix, user_agent, browser, "
                   "os, country, value, params")


def _row(r: Sequence[Any]) -> Row:
    params = msgspec.json.decode(r[11]) if r[11] else {}
    return Row(r[0], float(r[1]), r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9],
               None if r[10] is None else float(r[10]), params if isinstance(params, dict)
               else {})


def params_of(kind: str, overrides: dict[str, float] | None) -> dict[str, float]:
    """The kind's parameters: :data:`DEFAULTS` with ``overrides`` on top."""
    return {**DEFAULTS[kind], **(overrides or {})}


def _and(words: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def _after(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def _minutes(start_us: int, end_us: int) -> str:
    minutes = round((end_us - start_us) / 60 / _US)
    return f"{minutes} min" if minutes < 120 else f"{minutes / 60:g} h"


class _Reader:
    """The detections' reads over one project and window."""

    def __init__(self, events: EventStore, project_id: int, start_us: int, end_us: int) -> None:
        self.events = events
        self.project_id = project_id
        self.start_us = start_us
        self.end_us = end_us

    def query(self, sql: str, *params: Any, head: Sequence[Any] = (),
              start_us: int | None = None, end_us: int | None = None
              ) -> list[tuple[Any, ...]]:
        """``sql``'s ``{window}`` is the project and time filter. DuckDB binds ``?`` in
        text order: ``head`` are the parameters before ``{window}`` (in the select
        list), ``params`` those after it."""
        where = f"project_id = ? AND ts >= {TS} AND ts < {TS}"
        window = (self.project_id, self.start_us if start_us is None else start_us,
                  self.end_us if end_us is None else end_us)
        return self.events.query(sql.replace("{window}", where), (*head, *window, *params))

    def rows(self, condition: str, *params: Any, names: Iterable[str] = (),
             start_us: int | None = None) -> list[Row]:
        """The events of the window (from ``start_us`` when given) matching
        ``condition``, in time order, at most :data:`MAX_IDS`."""
        named = list(names)
        name_sql = f" AND name IN ({', '.join('?' * len(named))})" if named else ""
        found = self.query(f"SELECT {_ROW_SQL} FROM events WHERE {{window}}{name_sql} AND "
                           f"({condition}) ORDER BY ts, id LIMIT {MAX_IDS}", *named, *params,
                           start_us=start_us)
        return [_row(r) for r in found]

    def counts(self, bad: str, good: str, *, start_us: int | None = None,
               end_us: int | None = None) -> tuple[int, int]:
        """How many ``bad`` and ``good`` events in the window (or in the given one)."""
        (b, g), = self.query(
            "SELECT count(*) FILTER (name = ?), count(*) FILTER (name = ?) FROM events "
            "WHERE {window} AND name IN (?, ?)", bad, good, head=(bad, good),
            start_us=start_us, end_us=end_us)
        return int(b), int(g)


def evidence(rows: Sequence[Row], **extra: Any) -> dict[str, Any]:
    """The evidence of a candidate from its events: the accounts, networks, user agents
    and sessions involved (most frequent first, at most :data:`MAX_LIST` each), distinct
    cards, counts per event name, the events' ids in time order, and ``extra``."""
    def top(values: Iterable[str | None]) -> list[str]:
        counted = Counter(v for v in values if v)
        return [v for v, _ in counted.most_common(MAX_LIST)]

    cards = {r.params.get("card_fingerprint") or r.params.get("card_bin") for r in rows}
    cards.discard(None)
    return {
        "accounts": top(r.user_id for r in rows),
        "networks": top(r.net_prefix for r in rows),
        "user_agents": top(r.user_agent for r in rows)[:20],
        "sessions": top(r.session_id for r in rows),
        "cards": len(cards),
        "counts": dict(Counter(r.name for r in rows)),
        "event_ids": [r.id for r in rows],
        **extra,
    }


def _candidate(kind: str, subject: str, severity: str, title: str, rows: Sequence[Row],
               **extra: Any) -> Candidate:
    first = rows[0].ts if rows else 0.0
    last = rows[-1].ts if rows else 0.0
    return Candidate(kind, subject, severity, title, first, last, evidence(rows, **extra))


# --- the detections --------------------------------------------------------------------

Detect = Callable[[_Reader, dict[str, float], str], list[Candidate]]


def brute_force(r: _Reader, p: dict[str, float], severity: str) -> list[Candidate]:
    found = r.query("SELECT user_id, count(*) FROM events WHERE {window} AND name = "
                    "'login_failed' AND user_id IS NOT NULL GROUP BY user_id "
                    "HAVING count(*) >= ? ORDER BY 2 DESC LIMIT 100", p["failures"])
    out = []
    for user_id, failures in found:
        rows = r.rows("user_id = ?", user_id, names=("login_failed", "login"))
        first_failure = next((x.ts for x in rows if x.name == "login_failed"), 0.0)
        won = any(x.name == "login" and x.ts > first_failure for x in rows)
        title = (f"Brute force on account {user_id}: {failures} failed sign-ins in "
                 f"{_minutes(r.start_us, r.end_us)}"
                 + ("; then it signed in" if won else ""))
        out.append(_candidate("brute_force", f"account:{user_id}",
                              "critical" if won else severity, title, rows,
                              signed_in_after=won))
    return out


def credential_stuffing(r: _Reader, p: dict[str, float], severity: str) -> list[Candidate]:
    found = r.query(
        "SELECT net_prefix, count(DISTINCT user_id) FILTER (name = 'login_failed') AS a, "
        "count(*) FILTER (name = 'login_failed') AS f, count(*) FILTER (name = 'login') AS s "
        "FROM events WHERE {window} AND name IN ('login', 'login_failed') "
        "AND net_prefix IS NOT NULL GROUP BY net_prefix "
        "HAVING a >= ? AND f >= ? * (f + s) ORDER BY f DESC LIMIT 100",
        p["accounts"], p["failure_ratio"])
    out = []
    explained = 0
    for net, accounts, failures, successes in found:
        explained += failures
        rows = r.rows("net_prefix = ?", net, names=("login_failed", "login"))
        title = (f"Credential stuffing from {net}: {accounts} accounts failed to sign in "
                 f"({failures} failures, {successes} successes) in "
                 f"{_minutes(r.start_us, r.end_us)}")
        out.append(_candidate("credential_stuffing", f"network:{net}", severity, title, rows,
                              failure_ratio=round(failures / (failures + successes), 4)))
    shop = _shop_wide(r, p, severity, "credential_stuffing", "login_failed", "login",
                      explained, "global_failures", "global_ratio")
    return out + ([shop] if shop is not None else [])


_CARD: Final = "COALESCE(params->>'$.card_fingerprint', params->>'$.card_bin')"


def card_testing(r: _Reader, p: dict[str, float], severity: str) -> list[Candidate]:
    out: list[Candidate] = []
    explained = 0
    covered: set[str] = set()  # sessions inside a network already found
    for column, prefix in (("net_prefix", "network"), ("session_id", "session")):
        found = r.query(
            f"SELECT {column}, count(*) FILTER (name = 'payment_declined') AS d, "
            "count(*) FILTER (name = 'purchase') AS o, "
            f"count(DISTINCT {_CARD}) AS c, "
            "count(*) FILTER (value IS NOT NULL AND abs(value) <= ?) AS small, "
            "list(DISTINCT session_id) FILTER (WHERE session_id IS NOT NULL) "
            f"FROM events WHERE {{window}} AND name IN ('payment_declined', 'purchase') "
            f"AND {column} IS NOT NULL GROUP BY {column} "
            "HAVING (d >= ? * (d + o) AND (c >= ? OR d >= ?)) OR (? AND small >= ?) "
            "ORDER BY d DESC LIMIT 100",
            p["decline_ratio"], p["cards"], p["declines"], prefix == "session",
            p["small_attempts"], head=(p["small_amount"],))
        for key, declines, orders, cards, small, sessions in found:
            if prefix == "session" and key in covered:
                continue
            covered.update(sessions or ())
            explained += declines
            rows = r.rows(f"{column} = ?", key,
                          names=("payment_declined", "purchase", "add_payment_info"))
            what = "network" if prefix == "network" else "session"
            title = (f"Card testing from {what} {key}: {declines} declined and {orders} "
                     f"accepted payments with {cards} cards in {_minutes(r.start_us, r.end_us)}")
            out.append(_candidate("card_testing", f"{prefix}:{key}", severity, title, rows,
                                  small_payments=small))
    shop = _shop_wide(r, p, severity, "card_testing", "payment_declined", "purchase",
                      explained, "global_declines", "global_rate")
    return out + ([shop] if shop is not None else [])


def _shop_wide(r: _Reader, p: dict[str, float], severity: str, kind: str, bad: str,
               good: str, explained: int, floor: str, least: str) -> Candidate | None:
    """The shop-wide check of credential stuffing and card testing: at least ``p[floor]``
    ``bad`` events in the window, less than half of them ``explained`` by the subjects
    found, and a ratio ``bad`` ÷ (``bad`` + ``good``) of at least ``p[least]`` and
    ``global_jump`` times the ratio of the ``baseline_days`` before."""
    n_bad, n_good = r.counts(bad, good)
    if n_bad < p[floor] or n_bad < 2 * explained:
        return None
    ratio = n_bad / (n_bad + n_good)
    before = r.counts(bad, good, start_us=r.start_us - int(p["baseline_days"] * _DAY_US),
                      end_us=r.start_us)
    base = before[0] / sum(before) if sum(before) else None
    if ratio < p[least] or (base is not None and ratio < p["global_jump"] * base):
        return None
    what = "sign-ins failed" if bad == "login_failed" else "payments declined"
    title = (f"{TITLES[kind]} across the shop: {ratio:.0%} of {what} ({n_bad}) in "
             f"{_minutes(r.start_us, r.end_us)}"
             + (f", against {base:.0%} before" if base is not None else ""))
    return _candidate(kind, "global", severity, title, r.rows("true", names=(bad,)),
                      ratio=round(ratio, 4),
                      baseline_ratio=None if base is None else round(base, 4))


def _fields(row: Row) -> set[str]:
    if row.name == "password_changed":
        return {"password"}
    fields = row.params.get("fields")
    return {str(f) for f in fields} if isinstance(fields, list) else set()


def account_takeover(r: _Reader, p: dict[str, float], severity: str) -> list[Candidate]:
    changed = r.query(
        "SELECT DISTINCT user_id FROM events WHERE {window} AND user_id IS NOT NULL AND "
        "name IN ('profile_updated', 'password_changed') LIMIT 1000")
    accounts = [u for u, in changed]
    if not accounts:
        return []
    window_s = (r.end_us - r.start_us) / _US
    history = r.start_us - int(p["history_days"] * _DAY_US)
    holes = ", ".join("?" * len(accounts))
    found = r.query(
        f"SELECT {_ROW_SQL} FROM events WHERE {{window}} AND user_id IN ({holes}) AND name IN "
        "('login', 'profile_updated', 'password_changed', 'purchase') ORDER BY user_id, ts, id",
        *accounts, start_us=history)
    by_account: dict[str, list[Row]] = {}
    for raw in found:
        row = _row(raw)
        by_account.setdefault(row.user_id or "", []).append(row)
    out = []
    start_s = r.start_us / _US
    for account, rows in by_account.items():
        hit = _takeover(rows, start_s, window_s, bool(p["require_order"]))
        if hit is None:
            continue
        login, change, order, reasons = hit
        chain = [x for x in (login, change, order) if x is not None]
        title = (f"Account takeover pattern on {account}: sign-in from {_and(reasons)}, "
                 f"then {_and(sorted(_fields(change) & SENSITIVE_FIELDS))} changed"
                 + (f", then an order {_after(order.ts - login.ts)} after the sign-in"
                    if order is not None else ""))
        familiar = [x for x in rows if x.name == "login" and x.ts < login.ts]
        out.append(_candidate(
            "account_takeover", f"account:{account}", severity, title, chain,
            reasons=reasons,
            familiar_networks=sorted({x.net_prefix for x in familiar if x.net_prefix})[:MAX_LIST],
            familiar_devices=sorted({f"{x.browser or '?'} on {x.os or '?'}"
                                     for x in familiar})[:MAX_LIST]))
    return out


def _takeover(rows: list[Row], start_s: float, window_s: float, require_order: bool
              ) -> tuple[Row, Row, Row | None, list[str]] | None:
    """The first sign-in of the window that is unfamiliar and followed by a sensitive
    change (and an order), with the reasons it is unfamiliar; ``None`` when none is."""
    logins = [x for x in rows if x.name == "login"]
    for login in logins:
        if login.ts < start_s or login.net_prefix is None:
            continue
        before = [x for x in logins if x.ts < login.ts]
        if not before:
            continue
        reasons = []
        if login.net_prefix not in {x.net_prefix for x in before}:
            reasons.append("a new network")
        else:
            continue
        devices = {(x.browser, x.os) for x in before if x.browser or x.os}
        if (login.browser or login.os) and devices and (login.browser, login.os) not in devices:
            reasons.append("a new device")
        countries = {x.country for x in before if x.country}
        if login.country and countries and login.country not in countries:
            reasons.append("a new country")
        if len(reasons) < 2:
            continue
        end = login.ts + window_s
        change = next((x for x in rows if login.ts <= x.ts <= end
                       and x.name in ("profile_updated", "password_changed")
                       and _fields(x) & SENSITIVE_FIELDS), None)
        if change is None:
            continue
        order = next((x for x in rows if change.ts <= x.ts <= end and x.name == "purchase"),
                     None)
        if order is None and require_order:
            continue
        return login, change, order, reasons
    return None


def bot_traffic(r: _Reader, p: dict[str, float], severity: str) -> list[Candidate]:
    sessions = r.query(
        "SELECT session_id, any_value(net_prefix), any_value(user_agent), "
        "bool_or(device_category = 'bot'), count(*), "
        "(max(epoch(ts)) - min(epoch(ts))) / greatest(count(*) - 1, 1) "
        "FROM events WHERE {window} AND session_id IS NOT NULL "
        "GROUP BY session_id ORDER BY 5 DESC LIMIT 5000")
    if not sessions:
        return []
    with_rum = {s for s, in r.events.query(
        f"SELECT DISTINCT session_id FROM rum WHERE project_id = ? AND ts >= {TS} AND "
        f"ts < {TS} AND session_id IS NOT NULL", (r.project_id, r.start_us, r.end_us))}
    known = {s[0] for s in sessions}
    coverage = len(known & with_rum) / len(known)
    flagged: dict[str, list[tuple[str, list[str], int]]] = {}
    for session_id, net, agent, bot_device, n, gap in sessions:
        reasons = []
        if bot_device or (agent and parse_agent(agent).category == "bot"):
            reasons.append("automation user agent")
        if n >= p["fast_events"] and gap is not None and gap < p["min_gap_s"]:
            reasons.append("impossible speed")
        if (n >= p["headless_events"] and coverage >= p["rum_coverage"]
                and session_id not in with_rum):
            reasons.append("no browser activity")
        if reasons:
            subject = f"network:{net}" if net else (f"agent:{agent}" if agent
                                                    else f"session:{session_id}")
            flagged.setdefault(subject, []).append((session_id, reasons, n))
    out = []
    for subject, group in flagged.items():
        events = sum(n for _, _, n in group)
        if events < p["min_events"]:
            continue
        ids = [s for s, _, _ in group][:200]
        rows = r.rows(f"session_id IN ({', '.join('?' * len(ids))})", *ids)
        why = Counter(reason for _, reasons, _ in group for reason in reasons)
        where = subject.split(":", 1)[1]
        sessions_text = "1 session" if len(group) == 1 else f"{len(group)} sessions"
        title = (f"Bot traffic from {where}: {sessions_text}, {events} events in "
                 f"{_minutes(r.start_us, r.end_us)} ({', '.join(why)})")
        out.append(_candidate("bot_traffic", subject, severity, title, rows,
                              reasons=dict(why), rum_coverage=round(coverage, 4)))
    return out


def signup_abuse(r: _Reader, p: dict[str, float], severity: str) -> list[Candidate]:
    found = r.query("SELECT net_prefix, count(*) FROM events WHERE {window} AND name = "
                    "'sign_up' AND net_prefix IS NOT NULL GROUP BY net_prefix "
                    "HAVING count(*) >= ? ORDER BY 2 DESC LIMIT 100", p["signups"])
    out = []
    explained = 0
    for net, n in found:
        explained += n
        rows = r.rows("net_prefix = ?", net, names=("sign_up",))
        out.append(_candidate("signup_abuse", f"network:{net}", severity,
                              f"Sign-up abuse from {net}: {n} sign-ups in "
                              f"{_minutes(r.start_us, r.end_us)}", rows))
    (total,), = r.query("SELECT count(*) FROM events WHERE {window} AND name = 'sign_up'")
    if total < p["global_signups"] or total < 2 * explained:
        return out
    window = r.end_us - r.start_us
    (before,), = r.query("SELECT count(*) FROM events WHERE {window} AND name = 'sign_up'",
                         start_us=r.start_us - int(p["baseline_days"] * _DAY_US),
                         end_us=r.start_us)
    expected = before * window / (p["baseline_days"] * _DAY_US) if p["baseline_days"] else 0
    if expected <= 0 or total < p["global_jump"] * expected:
        return out
    rows = r.rows("true", names=("sign_up",))
    out.append(_candidate("signup_abuse", "global", severity,
                          f"Sign-up abuse across the shop: {total} sign-ups in "
                          f"{_minutes(r.start_us, r.end_us)}, {total / expected:.0f} times "
                          "the usual", rows, expected=round(expected, 2)))
    return out


DETECTIONS: Final[dict[str, Detect]] = {
    "brute_force": brute_force, "credential_stuffing": credential_stuffing,
    "card_testing": card_testing, "account_takeover": account_takeover,
    "bot_traffic": bot_traffic, "signup_abuse": signup_abuse}


def detect(events: EventStore, project_id: int, kind: str, start_us: int, end_us: int, *,
           params: dict[str, float] | None = None, severity: str | None = None
           ) -> list[Candidate]:
    """The candidates of one detection ``kind`` over ``[start_us, end_us)``."""
    reader = _Reader(events, project_id, start_us, end_us)
    return DETECTIONS[kind](reader, params_of(kind, params),
                            severity or DEFAULT_SEVERITY[kind])

