"""The ``heartbeat`` monitor kind: the shop's cron jobs and workers call a push URL, and
the monitor fails when the calls stop.

Contract:

- **Push URL.** ``/api/v1/heartbeat/<token>`` (GET, POST or HEAD; ``.../fail`` reports
  an explicit failure). The token is the secret: 32 URL-safe characters, an HMAC-SHA256
  of (project id, monitor name) under a key derived from the instance's pseudonym key.
  It is never stored: it is the same after restarts and re-applies, and changes only
  when the monitor is renamed (which is how a leaked URL is replaced).
- **Pings.** A ping is acknowledged once stored in the state store's ``heartbeats``
  table (one row per monitor: last ping, last failure, counts).
- **Judgement.** The scheduler judges a heartbeat every ``interval``
  (:func:`evaluate`): up while the last ping is at most ``period`` + ``grace`` old;
  down with "no ping for 7m (period 5m + grace 1m)" after that, or "the job reported a
  failure ..." while a ``/fail`` is the latest ping. Before its first ping a monitor is
  given ``period`` + ``grace`` from when it was created (or last changed), and no
  result is recorded meanwhile.
- The pre-release gate has nothing to probe: :class:`HeartbeatKind` answers a skip.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import sqlalchemy as sa

from shopwatch.checks.http import Context
from shopwatch.checks.monitor import Monitor
from shopwatch.checks.result import CheckResult, StepResult
from shopwatch.store.state import StateStore, heartbeats, monitors

PUSH_PREFIX: Final = "/api/v1/heartbeat/"
TOKEN_RE: Final = re.compile(r"[A-Za-z0-9_-]{32}")
_CONTEXT: Final = b"shopwatch heartbeat push token v1"


def token_key(pseudonym_key: bytes) -> bytes:
    """The key push tokens are made with, derived from the instance's pseudonym key
    (so no token equals any other keyed hash Shopwatch makes with that key)."""
    return hmac.new(pseudonym_key, _CONTEXT, hashlib.sha256).digest()


def _token(subkey: bytes, project_id: int, name: str) -> str:
    mac = hmac.new(subkey, f"{project_id}\x00{name}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:24]).decode()  # 192 bits, 32 characters


def token(key: bytes, project_id: int, name: str) -> str:
    """The push token of monitor ``name`` of project ``project_id``; ``key`` is the
    instance's pseudonym key (``bytes.fromhex(state.instance_value("pseudonym_key"))``)."""
    return _token(token_key(key), project_id, name)


def push_path(key: bytes, project_id: int, name: str) -> str:
    """The path the shop's jobs call: ``/api/v1/heartbeat/<token>`` (join it to the
    server's public address; append ``/fail`` to report a failure)."""
    return PUSH_PREFIX + token(key, project_id, name)


def instance_key(state: StateStore) -> bytes:
    return bytes.fromhex(state.instance_value("pseudonym_key"))


def find(state: StateStore, key: bytes, given: str) -> tuple[int, str] | None:
    """``(project id, monitor name)`` of the heartbeat monitor whose token is ``given``,
    or None. Tokens are not stored: each heartbeat monitor's is computed and compared in
    constant time (an HMAC each, microseconds)."""
    if not TOKEN_RE.fullmatch(given):
        return None
    with state.engine.connect() as conn:
        rows = conn.execute(sa.select(monitors.c.project_id, monitors.c.name)
                            .where(monitors.c.kind == "heartbeat")).all()
    subkey = token_key(key)
    found = None
    for project_id, name in rows:
        if hmac.compare_digest(_token(subkey, int(project_id), name), given):
            found = int(project_id), str(name)
    return found


@dataclass(frozen=True)
class Pings:
    """What is stored of a heartbeat's pings (epoch seconds)."""

    last_ping: float | None
    last_fail: float | None
    pings: int
    fails: int


def record_ping(state: StateStore, project_id: int, name: str, at: float,
                failed: bool = False) -> None:
    """Store a ping (or, with ``failed``, a report of failure) at ``at``; returns once
    committed."""
    values = ({"last_fail": at, "fails": heartbeats.c.fails + 1} if failed
              else {"last_ping": at, "pings": heartbeats.c.pings + 1})
    where = (heartbeats.c.project_id == project_id) & (heartbeats.c.monitor == name)
    for _ in range(2):
        with state.engine.begin() as conn:
            if conn.execute(heartbeats.update().where(where).values(values)).rowcount:
                return
        try:
            with state.engine.begin() as conn:
                conn.execute(heartbeats.insert().values(
                    project_id=project_id, monitor=name,
                    last_fail=at if failed else None, last_ping=None if failed else at,
                    fails=int(failed), pings=int(not failed)))
            return
        except sa.exc.IntegrityError:  # a ping for the same monitor inserted it first
            continue


def pings_of(state: StateStore, project_id: int, name: str) -> Pings | None:
    with state.engine.connect() as conn:
        row = conn.execute(sa.select(heartbeats.c.last_ping, heartbeats.c.last_fail,
                                     heartbeats.c.pings, heartbeats.c.fails).where(
            (heartbeats.c.project_id == project_id) & (heartbeats.c.monitor == name))).first()
    return None if row is None else Pings(row[0], row[1], int(row[2]), int(row[3]))


def _since(state: StateStore, project_id: int, name: str) -> float | None:
    """When the monitor was created or last changed (epoch seconds)."""
    with state.engine.connect() as conn:
        at = conn.execute(sa.select(monitors.c.updated_at).where(
            (monitors.c.project_id == project_id) & (monitors.c.name == name))).scalar()
    if at is None:
        return None
    if at.tzinfo is None:  # SQLite keeps the UTC time without its zone
        at = at.replace(tzinfo=UTC)
    return float(at.timestamp())


def span(seconds: float) -> str:
    """A duration as people write it, to its two largest units: ``45s``, ``7m``,
    ``7m 3s``, ``1h 5m``, ``2d 3h``."""
    left = max(0, round(seconds))
    units = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
    for i, (unit, size) in enumerate(units):
        if left >= size or unit == "s":
            text = f"{left // size}{unit}"
            if unit != "s":
                next_unit, next_size = units[i + 1]
                rest = left % size // next_size
                if rest:
                    text += f" {rest}{next_unit}"
            return text
    raise AssertionError("unreachable")


def _iso(at: float | None) -> str | None:
    return None if at is None else datetime.fromtimestamp(at, UTC).isoformat()


def evaluate(state: StateStore, project_id: int, monitor: Monitor,
             now: float) -> CheckResult | None:
    """The heartbeat's result at ``now`` (epoch seconds), or None while it waits for its
    first ping (see the module docstring)."""
    period, grace = monitor.period_s, monitor.grace_s
    window = f"period {span(period)} + grace {span(grace)}"
    seen = pings_of(state, project_id, monitor.name)
    step = StepResult(name=monitor.name, method="PING")
    step.details = {"period_s": period, "grace_s": grace,
                    "last_ping": _iso(seen.last_ping if seen else None),
                    "last_fail": _iso(seen.last_fail if seen else None),
                    "pings": seen.pings if seen else 0, "fails": seen.fails if seen else 0}
    if seen is None or (seen.last_ping is None and seen.last_fail is None):
        since = _since(state, project_id, monitor.name)
        if since is None or now - since <= period + grace:
            return None
        step.fail(f"no ping since the monitor was set up {span(now - since)} ago ({window})")
    elif seen.last_fail is not None and (seen.last_ping is None
                                         or seen.last_fail >= seen.last_ping):
        step.fail(f"the job reported a failure {span(now - seen.last_fail)} ago (/fail)")
    else:
        assert seen.last_ping is not None
        age = now - seen.last_ping
        step.details["age_s"] = round(age, 1)
        if age > period + grace:
            step.fail(f"no ping for {span(age)} ({window})")
    return CheckResult(monitor.name, monitor.kind, step.ok, 0.0, [step], started_at=now)


class HeartbeatKind:
    """``kind: heartbeat`` when run directly (the pre-release gate, a manual run): there
    is nothing to probe, the server judges the pings (:func:`evaluate`). Answers a pass
    that says so."""

    def run(self, monitor: Monitor, context: Context) -> CheckResult:
        step = StepResult(name=monitor.name, method="SKIP",
                          url="heartbeat: nothing to probe here; the server judges the pings "
                              "to its push URL")
        return CheckResult.of(monitor, [step])
