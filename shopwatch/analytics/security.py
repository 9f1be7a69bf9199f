"""Security signals from commerce events: sign-ins, declined payments, account changes,
sign-ups.

Contract (docs/kpis.md, "Security"); every figure reads the ``events`` table of one
project, events counted by their time (``ts``) in the half-open period. The client's
network is the event's ``net_prefix`` (its IPv4 /24 or IPv6 /48, derived at ingest from
the address, which is never stored); its ``user_agent`` is the raw string sent.

- **Logins**: ``login`` events are successful sign-ins, ``login_failed`` events failed
  ones. An **attempt** is either. **Failure rate**: failed ÷ attempts (``None``
  without attempts). An **account** is an event's ``user_id`` (for a failed sign-in the
  account tried: an opaque id or ``email:<keyed hash>``); events without one count in
  the attempts but in no account figure.
- :func:`logins`: the totals, and per bucket of the range (every bucket, zeros
  included) the successes, failures and failure rate.
- :func:`login_networks`: networks with at least one failed sign-in, most failures
  first: failures, successes, failure rate, the **accounts tried** (distinct accounts
  over the network's attempts, failed or not), the accounts that failed, the distinct
  user agents and the latest failure.
- :func:`login_user_agents`: user agents (the raw string; ``None``: none sent) with at
  least one failure, most failures first, with the browser family and device class read
  from the string (:func:`shopwatch.useragent.parse_agent`; automation clients are
  ``bot``), failures, successes, failure rate, accounts tried and networks.
- :func:`login_accounts`: accounts with at least one failure, most failures first:
  failures, successes, the distinct networks their failures came from, and
  ``last_seen``, the latest failure.
- :func:`accounts_per_network`: networks by the number of distinct accounts with an
  attempt from them (successes and failures): a shared office or a mobile carrier
  shows many accounts that mostly succeed, an attack many accounts that mostly fail.
- :func:`payments`: a **decline** is a ``payment_declined`` event (each attempt
  counts); a **purchase** is a ``purchase`` event, once per ``transaction_id`` (its
  first event; events without one count each), as orders are counted everywhere.
  **Declined rate**: declines ÷ (declines + purchases). Totals, per bucket, per
  ``params.payment_method`` and per ``params.gateway`` (``None``: not sent); the
  decline **reasons** (``params.reason``) with their count and share of the declines;
  and the **cards declined**: a card is ``params.card_fingerprint``, else the card's
  BIN (``params.card_bin``, so every declined card of one BIN without a fingerprint
  counts as one); declines without either count in ``without_card``.
- :func:`account_changes`: ``profile_updated`` events by the kind of field they
  changed (``params.fields``: a list of names, or one name or a comma-separated
  string): ``email`` (a name containing "mail"), ``phone`` ("phone", "mobile"),
  ``address`` ("address", "street", "city", "zip", "postal", "postcode"), ``name``
  ("name"), else ``other``, tested in that order; an event that changed several kinds
  counts once in each, an event without fields counts as ``other``. And
  ``password_changed`` events. Totals, per bucket, and the latest changes.
- :func:`sign_ups`: ``sign_up`` events in total and per bucket; the networks with the
  most, with their share of the sign-ups; and per bucket the sign-ups of the top
  :data:`MAX_SERIES_NETWORKS` networks, so one network's burst stands out.

Every list is capped (:data:`MAX_ROWS` rows by default, the ``limit`` of each
function): ties are broken by the key so the order is stable.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Final

from shopwatch.analytics.sessions import TS
from shopwatch.analytics.timerange import TimeRange, iso_utc
from shopwatch.store.base import EventStore
from shopwatch.useragent import parse_agent

MAX_ROWS: Final = 20  # rows of every list (top networks, accounts, reasons...)
MAX_LATEST: Final = 20  # latest account changes listed
MAX_SERIES_NETWORKS: Final = 5  # networks drawn over time in the sign-ups chart
FIELD_KINDS: Final = ("email", "address", "phone", "name", "other")

PERIOD: Final = f"project_id = ? AND ts >= {TS} AND ts < {TS}"
LOGIN_NAMES: Final = "('login', 'login_failed')"
FAILED: Final = "name = 'login_failed'"
SUCCEEDED: Final = "name = 'login'"
# The payment params read, parsed once per event (json_extract_string with a list).
_PAY_PARAMS: Final = ("json_extract_string(params, ['$.payment_method', '$.gateway', "
                      "'$.reason', '$.card_fingerprint', '$.card_bin'])")
# The payment rows of the period (parameters: the period twice): declines, and purchases
# once per transaction id (its first event in the period: ts, then id), as kpis.py counts
# orders; a purchase without a transaction id counts as itself.
_PAYMENTS: Final = f"""p AS MATERIALIZED (
    SELECT declined, ts, j[1] AS method, j[2] AS gateway, j[3] AS reason,
           j[4] AS fingerprint, j[5] AS bin
    FROM (SELECT name = 'payment_declined' AS declined, ts, {_PAY_PARAMS} AS j
          FROM events WHERE {PERIOD} AND (name = 'payment_declined'
                                          OR (name = 'purchase' AND transaction_id IS NULL))
          UNION ALL
          SELECT false, min(ts), {_PAY_PARAMS.replace("params", "arg_min(params, (ts, id))")}
          FROM events WHERE {PERIOD} AND name = 'purchase' AND transaction_id IS NOT NULL
          GROUP BY transaction_id)
)"""
# The kind of one changed field's name (see the module docstring), as a SQL lambda body.
_KIND_OF: Final = ("CASE WHEN lower(f) LIKE '%mail%' THEN 'email' "
                   "WHEN regexp_matches(lower(f), 'phone|mobile') THEN 'phone' "
                   "WHEN regexp_matches(lower(f), 'address|street|city|zip|postal|postcode') "
                   "THEN 'address' WHEN lower(f) LIKE '%name%' THEN 'name' ELSE 'other' END")
# params.fields as a list of names: a JSON list, one name, or a comma-separated string.
_FIELDS: Final = ("CASE json_type(params, '$.fields') "
                  "WHEN 'ARRAY' THEN json_extract_string(params, '$.fields[*]') "
                  "WHEN 'VARCHAR' THEN list_transform(string_split(params->>'$.fields', ','), "
                  "lambda f: trim(f)) ELSE [] END")


def _changes(latest: bool = False) -> str:
    """SQL: the CTE ``c`` of the period's account changes with their fields and kinds
    (parameters: the period; with ``latest``, then the number of the latest to keep)."""
    newest = "ORDER BY ts DESC, id LIMIT ?" if latest else ""
    return f"""c AS MATERIALIZED (
    SELECT *, CASE WHEN name = 'password_changed' THEN [] WHEN len(fields) = 0
                   THEN ['other'] ELSE list_distinct(list_transform(
                       fields, lambda f: {_KIND_OF})) END AS kinds
    FROM (SELECT name, ts, id, user_id, session_id, net_prefix, user_agent, country,
                 list_filter({_FIELDS}, lambda f: f IS NOT NULL AND f <> '') AS fields
          FROM events WHERE {PERIOD} AND name IN ('profile_updated', 'password_changed')
          {newest})
)"""


def _period(project_id: int, rng: TimeRange) -> list[Any]:
    return [project_id, rng.start_us, rng.end_us]


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def _iso(us: int | None) -> str | None:
    return None if us is None else iso_utc(int(us))


def _series(rng: TimeRange, rows: Iterable[Sequence[Any]], keys: Sequence[str],
            ) -> list[dict[str, Any]]:
    """One point per bucket of ``rng`` (zeros where no row): ``rows`` are
    ``(bucket index, *counts)`` with the counts named by ``keys``."""
    found = {int(r[0]) * rng.bucket_us: [int(v or 0) for v in r[1:]] for r in rows}
    zero = [0] * len(keys)
    return [{"t": iso_utc(start), **dict(zip(keys, found.get(start, zero), strict=True))}
            for start in rng.buckets()]


def _bucket(rng: TimeRange) -> str:
    """SQL: the bucket index of a row (epoch multiples of the range's bucket)."""
    return f"epoch_us(ts) // {rng.bucket_us}"


# --- logins ----------------------------------------------------------------------------


def logins(store: EventStore, project_id: int, rng: TimeRange) -> dict[str, Any]:
    """``{"totals", "series"}``: successes, failures, failure rate, the accounts and
    networks with a failure; per bucket successes, failures and failure rate."""
    rows = store.query(f"""
SELECT GROUPING(b) AS g, b, count(*) FILTER (WHERE {SUCCEEDED}),
       count(*) FILTER (WHERE {FAILED}), count(DISTINCT user_id) FILTER (WHERE {FAILED}),
       count(DISTINCT net_prefix) FILTER (WHERE {FAILED}), count(DISTINCT user_id)
FROM (SELECT *, {_bucket(rng)} AS b FROM events
      WHERE {PERIOD} AND name IN {LOGIN_NAMES})
GROUP BY GROUPING SETS ((), (b))""", _period(project_id, rng))
    ok = failed = accounts_failed = networks_failed = accounts = 0
    for g, _b, *values in rows:
        if g:  # the grand total
            ok, failed, accounts_failed, networks_failed, accounts = (int(v) for v in values)
    rows = [(b, ok_b, failed_b) for g, b, ok_b, failed_b, *_ in rows if not g]
    series = _series(rng, rows, ("logins", "failed"))
    for point in series:
        point["failure_rate"] = _ratio(point["failed"], point["logins"] + point["failed"])
    return {"totals": {"logins": ok, "failed": failed, "attempts": ok + failed,
                       "failure_rate": _ratio(failed, ok + failed), "accounts": accounts,
                       "accounts_failed": accounts_failed,
                       "networks_failed": networks_failed},
            "series": series}


def login_networks(store: EventStore, project_id: int, rng: TimeRange,
                   limit: int = MAX_ROWS) -> list[dict[str, Any]]:
    """Networks with a failed sign-in, most failures first (module docstring)."""
    rows = store.query(f"""
SELECT net_prefix, count(*) FILTER (WHERE {FAILED}) AS failures,
       count(*) FILTER (WHERE {SUCCEEDED}), count(DISTINCT user_id),
       count(DISTINCT user_id) FILTER (WHERE {FAILED}), count(DISTINCT user_agent),
       epoch_us(max(ts) FILTER (WHERE {FAILED}))
FROM events WHERE {PERIOD} AND name IN {LOGIN_NAMES} AND net_prefix IS NOT NULL
GROUP BY net_prefix HAVING failures > 0 ORDER BY failures DESC, net_prefix LIMIT ?
""", [*_period(project_id, rng), limit])
    return [{"net_prefix": net, "failures": int(failed), "successes": int(ok),
             "failure_rate": _ratio(int(failed), int(failed) + int(ok)),
             "accounts": int(accounts), "accounts_failed": int(accounts_failed),
             "user_agents": int(agents), "last_seen": _iso(last)}
            for net, failed, ok, accounts, accounts_failed, agents, last in rows]


def login_user_agents(store: EventStore, project_id: int, rng: TimeRange,
                      limit: int = MAX_ROWS) -> list[dict[str, Any]]:
    """User agents with a failed sign-in, most failures first, with the browser family
    and device class their string names (module docstring)."""
    rows = store.query(f"""
SELECT user_agent, count(*) FILTER (WHERE {FAILED}) AS failures,
       count(*) FILTER (WHERE {SUCCEEDED}), count(DISTINCT user_id),
       count(DISTINCT net_prefix)
FROM events WHERE {PERIOD} AND name IN {LOGIN_NAMES}
GROUP BY user_agent HAVING failures > 0
ORDER BY failures DESC, user_agent NULLS LAST LIMIT ?
""", [*_period(project_id, rng), limit])
    out = []
    for agent, failed, ok, accounts, networks in rows:
        parsed = parse_agent(agent or "")
        out.append({"user_agent": agent, "browser": parsed.browser,
                    "category": parsed.category, "failures": int(failed),
                    "successes": int(ok),
                    "failure_rate": _ratio(int(failed), int(failed) + int(ok)),
                    "accounts": int(accounts), "networks": int(networks)})
    return out


def login_accounts(store: EventStore, project_id: int, rng: TimeRange,
                   limit: int = MAX_ROWS) -> list[dict[str, Any]]:
    """Accounts with a failed sign-in, most failures first (module docstring)."""
    rows = store.query(f"""
SELECT user_id, count(*) FILTER (WHERE {FAILED}) AS failures,
       count(*) FILTER (WHERE {SUCCEEDED}),
       count(DISTINCT net_prefix) FILTER (WHERE {FAILED}),
       epoch_us(max(ts) FILTER (WHERE {FAILED}))
FROM events WHERE {PERIOD} AND name IN {LOGIN_NAMES} AND user_id IS NOT NULL
GROUP BY user_id HAVING failures > 0 ORDER BY failures DESC, user_id LIMIT ?
""", [*_period(project_id, rng), limit])
    return [{"user_id": user, "failures": int(failed), "successes": int(ok),
             "networks": int(networks), "last_seen": _iso(last)}
            for user, failed, ok, networks, last in rows]


def accounts_per_network(store: EventStore, project_id: int, rng: TimeRange,
                         limit: int = MAX_ROWS) -> list[dict[str, Any]]:
    """Networks by distinct accounts with a sign-in attempt from them (module
    docstring): accounts, those that succeeded, those that failed, attempts."""
    rows = store.query(f"""
SELECT net_prefix, count(DISTINCT user_id) AS accounts,
       count(DISTINCT user_id) FILTER (WHERE {SUCCEEDED}),
       count(DISTINCT user_id) FILTER (WHERE {FAILED}),
       count(*) FILTER (WHERE {SUCCEEDED}), count(*) FILTER (WHERE {FAILED})
FROM events WHERE {PERIOD} AND name IN {LOGIN_NAMES} AND net_prefix IS NOT NULL
GROUP BY net_prefix HAVING accounts > 0 ORDER BY accounts DESC, net_prefix LIMIT ?
""", [*_period(project_id, rng), limit])
    return [{"net_prefix": net, "accounts": int(accounts),
             "accounts_succeeded": int(acc_ok), "accounts_failed": int(acc_failed),
             "logins": int(ok), "failures": int(failed),
             "failure_rate": _ratio(int(failed), int(failed) + int(ok))}
            for net, accounts, acc_ok, acc_failed, ok, failed in rows]


# --- payments --------------------------------------------------------------------------


def _by(rows: list[dict[str, Any]], key: str, limit: int) -> list[dict[str, Any]]:
    """Per-value payment rows, most declines first (then most payments, then by value,
    ``None`` last), at most ``limit``."""
    rows.sort(key=lambda r: (-r["declined"], -(r["declined"] + r["purchases"]),
                             r[key] is None, r[key] or ""))
    return rows[:limit]


def payments(store: EventStore, project_id: int, rng: TimeRange,
             limit: int = MAX_ROWS) -> dict[str, Any]:
    """Declines against purchases: totals, per bucket, per payment method and gateway,
    reasons and the cards declined (module docstring)."""
    period = _period(project_id, rng)
    # One pass over the period's payments for the totals, buckets, methods, gateways and
    # reasons (GROUPING(...) tells which grouping a row belongs to).
    grouped = store.query(f"""
WITH {_PAYMENTS}
SELECT GROUPING(b, method, gateway, reason) AS g, b, method, gateway, reason,
       count(*) FILTER (WHERE declined), count(*) FILTER (WHERE NOT declined),
       count(DISTINCT card) FILTER (WHERE declined),
       count(*) FILTER (WHERE declined AND card IS NULL)
FROM (SELECT *, {_bucket(rng)} AS b, COALESCE('f:' || fingerprint, 'b:' || bin) AS card
      FROM p)
GROUP BY GROUPING SETS ((), (b), (method), (gateway), (reason))""", period * 2)
    # GROUPING's bits, first argument highest: 1 when that column is not grouped on.
    total_g, bucket_g, method_g, gateway_g, reason_g = 15, 7, 11, 13, 14
    declined = purchases = cards = without_card = 0
    buckets: list[tuple[int, int, int]] = []
    methods: list[dict[str, Any]] = []
    gateways: list[dict[str, Any]] = []
    reason_rows: list[tuple[str | None, int]] = []
    for g, b, method, gateway, reason, d, n, distinct, no_card in grouped:
        d, n = int(d), int(n)
        if g == total_g:
            declined, purchases, cards, without_card = d, n, int(distinct), int(no_card)
        elif g == bucket_g:
            buckets.append((int(b), d, n))
        elif g in (method_g, gateway_g):
            key, value = ("payment_method", method) if g == method_g else ("gateway", gateway)
            (methods if g == method_g else gateways).append(
                {key: value, "declined": d, "purchases": n,
                 "declined_rate": _ratio(d, d + n)})
        elif g == reason_g and d:
            reason_rows.append((reason, d))
    series = _series(rng, buckets, ("declined", "purchases"))
    for point in series:
        point["declined_rate"] = _ratio(point["declined"],
                                        point["declined"] + point["purchases"])
    reason_rows.sort(key=lambda r: (-r[1], r[0] is None, r[0] or ""))
    top_cards = store.query(f"""
SELECT COALESCE(fingerprint, bin) AS card, fingerprint IS NOT NULL, any_value(bin),
       count(*) AS n, count(DISTINCT net_prefix), count(DISTINCT user_id),
       list(DISTINCT reason ORDER BY reason) FILTER (WHERE reason IS NOT NULL),
       epoch_us(max(ts))
FROM (SELECT ts, user_id, net_prefix, params->>'$.reason' AS reason,
             params->>'$.card_fingerprint' AS fingerprint, params->>'$.card_bin' AS bin
      FROM events WHERE {PERIOD} AND name = 'payment_declined')
WHERE fingerprint IS NOT NULL OR bin IS NOT NULL
GROUP BY card, fingerprint IS NOT NULL
ORDER BY n DESC, card LIMIT ?""", [*period, limit])
    return {
        "totals": {"declined": declined, "purchases": purchases,
                   "declined_rate": _ratio(declined, declined + purchases)},
        "series": series,
        "by_method": _by(methods, "payment_method", limit),
        "by_gateway": _by(gateways, "gateway", limit),
        "reasons": [{"reason": reason, "count": n, "share": _ratio(n, declined)}
                    for reason, n in reason_rows[:limit]],
        "cards": {"distinct": cards, "without_card": without_card,
                  "top": [{"card": card, "kind": "fingerprint" if is_fp else "bin",
                           "card_bin": bin_, "declines": int(n), "networks": int(nets),
                           "accounts": int(accounts), "reasons": list(why or []),
                           "last_seen": _iso(last)}
                          for card, is_fp, bin_, n, nets, accounts, why, last in top_cards]},
    }


# --- account changes -------------------------------------------------------------------


def account_changes(store: EventStore, project_id: int, rng: TimeRange,
                    limit: int = MAX_LATEST) -> dict[str, Any]:
    """Profile updates by kind of field and password changes: totals, per bucket, and
    the latest ``limit`` changes, newest first (module docstring)."""
    period = _period(project_id, rng)
    kinds = ", ".join(f"count(*) FILTER (WHERE list_contains(kinds, '{k}'))"
                      for k in FIELD_KINDS)
    keys = (*FIELD_KINDS, "password_changed", "profile_updated")
    rows = store.query(f"""
WITH {_changes()}
SELECT GROUPING(b) AS g, b, {kinds}, count(*) FILTER (WHERE name = 'password_changed'),
       count(*) FILTER (WHERE name = 'profile_updated'), count(DISTINCT user_id)
FROM (SELECT *, {_bucket(rng)} AS b FROM c) GROUP BY GROUPING SETS ((), (b))""", period)
    counts = dict.fromkeys(keys, 0)
    accounts = 0
    buckets = []
    for g, b, *values in rows:
        if g:  # the grand total
            counts = dict(zip(keys, (int(v) for v in values[:-1]), strict=True))
            accounts = int(values[-1])
        else:
            buckets.append((b, *values[:-1]))
    latest = store.query(f"""
WITH {_changes(latest=True)}
SELECT epoch_us(ts), name, user_id, fields, kinds, net_prefix, user_agent, country,
       session_id
FROM c ORDER BY ts DESC, id""", [*period, limit])
    return {
        "totals": {"changes": counts["profile_updated"] + counts["password_changed"],
                   "profile_updated": counts["profile_updated"],
                   "password_changed": counts["password_changed"],
                   "accounts": accounts, "by_field": {k: counts[k] for k in FIELD_KINDS}},
        "series": _series(rng, buckets, keys),
        "latest": [{"ts": iso_utc(int(t)), "name": name, "user_id": user,
                    "fields": list(fields or []), "kinds": sorted(kinds_ or []),
                    "net_prefix": net, "user_agent": agent, "country": country,
                    "session_id": session}
                   for t, name, user, fields, kinds_, net, agent, country, session in latest],
    }


# --- sign-ups --------------------------------------------------------------------------


def sign_ups(store: EventStore, project_id: int, rng: TimeRange,
             limit: int = MAX_ROWS) -> dict[str, Any]:
    """Sign-ups in total, per bucket, per network, and per bucket for the top
    :data:`MAX_SERIES_NETWORKS` networks (module docstring)."""
    period = _period(project_id, rng)
    total, with_network = (int(v) for v in store.query(f"""
SELECT count(*), count(net_prefix) FROM events WHERE {PERIOD} AND name = 'sign_up'
""", period)[0])
    series = _series(rng, store.query(f"""
SELECT {_bucket(rng)} AS b, count(*) FROM events WHERE {PERIOD} AND name = 'sign_up'
GROUP BY b""", period), ("sign_ups",))
    networks = store.query(f"""
SELECT net_prefix, count(*) AS n, count(DISTINCT user_id), count(DISTINCT user_agent)
FROM events WHERE {PERIOD} AND name = 'sign_up' AND net_prefix IS NOT NULL
GROUP BY net_prefix ORDER BY n DESC, net_prefix LIMIT ?""", [*period, limit])
    top = [r[0] for r in networks[:MAX_SERIES_NETWORKS]]
    per: dict[tuple[int, str], int] = {}
    if top:
        marks = ", ".join("?" for _ in top)
        for b, net, n in store.query(f"""
SELECT {_bucket(rng)} AS b, net_prefix, count(*) FROM events
WHERE {PERIOD} AND name = 'sign_up' AND net_prefix IN ({marks}) GROUP BY b, net_prefix
""", [*period, *top]):
            per[int(b) * rng.bucket_us, net] = int(n)
    for point, start in zip(series, rng.buckets(), strict=True):
        point["networks"] = {net: per.get((start, net), 0) for net in top}
    return {"totals": {"sign_ups": total, "without_network": total - with_network},
            "series": series, "series_networks": top,
            "networks": [{"net_prefix": net, "sign_ups": int(n),
                          "share": _ratio(int(n), total), "accounts": int(accounts),
                          "user_agents": int(agents)}
                         for net, n, accounts, agents in networks]}


# --- the whole section -----------------------------------------------------------------


def security(store: EventStore, project_id: int, rng: TimeRange,
             limit: int = MAX_ROWS) -> dict[str, Any]:
    """Every figure of the Security page (module docstring) for one period; lists hold
    at most ``limit`` rows (``latest`` changes at most :data:`MAX_LATEST`)."""
    login = logins(store, project_id, rng)
    login.update(networks=login_networks(store, project_id, rng, limit),
                 user_agents=login_user_agents(store, project_id, rng, limit),
                 accounts=login_accounts(store, project_id, rng, limit),
                 accounts_per_network=accounts_per_network(store, project_id, rng, limit))
    pay = payments(store, project_id, rng, limit)
    changes = account_changes(store, project_id, rng, min(limit, MAX_LATEST))
    signups = sign_ups(store, project_id, rng, limit)
    return {
        "range": rng.as_dict(), "limit": limit,
        "totals": {**{k: login["totals"][k] for k in ("logins", "failed", "attempts",
                                                     "failure_rate")},
                   "declined": pay["totals"]["declined"],
                   "purchases": pay["totals"]["purchases"],
                   "declined_rate": pay["totals"]["declined_rate"],
                   "account_changes": changes["totals"]["changes"],
                   "sign_ups": signups["totals"]["sign_ups"]},
        "logins": login, "payments": pay, "account_changes": changes, "sign_ups": signups,
    }

