"""Remote probes' tokens in the state store (``probes`` table, migration 10).

A probe is ``shopwatch probe`` running on another machine, in another region: it runs
the monitors assigned to its *location* and sends their results to the server
(:mod:`shopwatch.checks.probe`, :mod:`shopwatch.web.probes`). An admin makes its token
with ``shopwatch probes add LOCATION``; the token is shown once, and only its SHA-256 is
stored. A token is bound to its location; each location has at most one live token
(revoke it to make a new one). A revoked token is refused at once.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import sqlalchemy as sa

from shopwatch.checks.monitor import check_location
from shopwatch.errors import ConfigError, NotFound
from shopwatch.store.state import StateStore, probes

TOKEN_PREFIX: Final = "swprb_"
# Writing last_seen_at on every poll would make every probe request a write.
_TOUCH_EVERY: Final = timedelta(seconds=10)


@dataclass(frozen=True)
class Probe:
    id: int
    location: str
    created_at: datetime
    last_seen_at: datetime | None
    revoked_at: datetime | None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "location": self.location, "created_at": _iso(self.created_at),
                "last_seen_at": _iso(self.last_seen_at), "revoked": self.revoked}


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return _aware(value).isoformat(timespec="seconds").replace("+00:00", "Z")


def _aware(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; every time stored here is UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _load(row: Any) -> Probe:
    return Probe(int(row.id), row.location, _aware(row.created_at),
                 _aware(row.last_seen_at) if row.last_seen_at else None,
                 _aware(row.revoked_at) if row.revoked_at else None)


def add_probe(state: StateStore, location: str, server_location: str) -> tuple[Probe, str]:
    """A new probe for ``location`` and its token (shown once, never stored).

    ConfigError when the name is not a location name, is the server's own
    (``server_location``: the server runs those monitors itself), or already has a live
    probe."""
    location = check_location(location.strip(), "location")
    if location == server_location:
        raise ConfigError(f"location: {location!r} is this server's own location "
                          "(checks_location); a probe needs another name")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    with state.engine.begin() as conn:
        live = conn.execute(sa.select(probes.c.id).where(
            (probes.c.location == location) & probes.c.revoked_at.is_(None))).first()
        if live is not None:
            raise ConfigError(f"location: {location!r} has a probe already (id {live[0]}); "
                              f"revoke it first with `shopwatch probes revoke {location}`")
        inserted = conn.execute(probes.insert().values(
            location=location, token_hash=token_hash(token), created_at=now))
        key = inserted.inserted_primary_key
        assert key is not None
    return Probe(int(key[0]), location, now, None, None), token


def list_probes(state: StateStore, *, revoked: bool = True) -> list[Probe]:
    """Every probe (live ones first, then by location), or only the live ones."""
    query = sa.select(probes).order_by(probes.c.revoked_at.is_not(None), probes.c.location,
                                       probes.c.id)
    if not revoked:
        query = query.where(probes.c.revoked_at.is_(None))
    with state.engine.connect() as conn:
        return [_load(row) for row in conn.execute(query)]


def revoke_probe(state: StateStore, ref: str) -> Probe:
    """Revoke the live probe of a location, or a probe by id; NotFound otherwise."""
    ref = ref.strip()
    where = (probes.c.id == int(ref)) if ref.isdigit() else (probes.c.location == ref)
    with state.engine.begin() as conn:
        row = conn.execute(sa.select(probes).where(where & probes.c.revoked_at.is_(None))
                           .order_by(probes.c.id.desc())).first()
        if row is None:
            raise NotFound(f"no live probe {ref!r} (see `shopwatch probes list`)")
        conn.execute(probes.update().where(probes.c.id == row.id).values(
            revoked_at=datetime.now(UTC)))
    return _load(row)


def probe_of_token(state: StateStore, token: str) -> Probe | None:
    """The live probe holding ``token``, or None; marks it seen (at most every 10 s)."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    with state.engine.connect() as conn:
        row = conn.execute(sa.select(probes).where(
            (probes.c.token_hash == token_hash(token)) & probes.c.revoked_at.is_(None))).first()
    if row is None:
        return None
    probe = _load(row)
    now = datetime.now(UTC)
    if probe.last_seen_at is None or now - probe.last_seen_at >= _TOUCH_EVERY:
        with state.engine.begin() as conn:
            conn.execute(probes.update().where(probes.c.id == probe.id).values(
                last_seen_at=now))
    return probe
