"""Server-side dashboard sessions, kept in the state store.

The browser holds a random 256-bit token in an ``HttpOnly`` cookie; the store keeps only
its SHA-256, so a copy of ``state.sqlite`` opens no session. A session ends when it is
unused for ``idle_timeout``, ``lifetime`` after sign-in, at logout, and for every
session of a user when their password changes or they are removed. Each session has its
own CSRF token, which every state-changing form and request must echo.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from shopwatch.accounts.users import User, Users
from shopwatch.errors import NotFound
from shopwatch.store.state import StateStore, sessions

# Touching last_seen on every request would make every page view a write.
_TOUCH_EVERY = timedelta(seconds=60)


@dataclass(frozen=True)
class Session:
    user: User
    csrf_token: str
    token_hash: str
    expires_at: datetime


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _aware(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; every time stored here is UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class Sessions:
    """Open, look up and end sessions; see the module docstring."""

    def __init__(self, state: StateStore, users: Users, *, idle_timeout: float,
                 lifetime: float) -> None:
        self._engine = state.engine
        self._users = users
        self._idle = timedelta(seconds=idle_timeout)
        self._lifetime = timedelta(seconds=lifetime)

    def open(self, user: User, now: datetime | None = None) -> tuple[str, Session]:
        """A new session for ``user``: the cookie token (shown once) and the session."""
        now = now or datetime.now(UTC)
        token = secrets.token_urlsafe(32)
        session = Session(user, secrets.token_urlsafe(32), token_hash(token),
                          now + self._lifetime)
        with self._engine.begin() as conn:
            conn.execute(sessions.insert().values(
                token_hash=session.token_hash, user_id=user.id, csrf_token=session.csrf_token,
                created_at=now, last_seen_at=now, expires_at=session.expires_at))
            # Ended sessions are deleted here, at sign-in, rather than by a timer.
            conn.execute(sessions.delete().where(
                (sessions.c.expires_at < now) | (sessions.c.last_seen_at < now - self._idle)))
        return token, session

    def lookup(self, token: str, now: datetime | None = None) -> Session | None:
        """The live session of a cookie token, or None (unknown, ended or expired)."""
        if not token or len(token) > 200:
            return None
        now = now or datetime.now(UTC)
        hashed = token_hash(token)
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(
                sessions.c.user_id, sessions.c.csrf_token, sessions.c.last_seen_at,
                sessions.c.expires_at).where(sessions.c.token_hash == hashed)).first()
        if row is None:
            return None
        last_seen, expires = _aware(row[2]), _aware(row[3])
        if expires <= now or last_seen + self._idle <= now:
            self.end(token)
            return None
        try:
            user = self._users.get(int(row[0]))
        except NotFound:
            return None
        if now - last_seen >= _TOUCH_EVERY:
            with self._engine.begin() as conn:
                conn.execute(sessions.update().where(sessions.c.token_hash == hashed)
                             .values(last_seen_at=now))
        return Session(user, row[1], hashed, expires)

    def end(self, token: str) -> None:
        """End one session (logout)."""
        with self._engine.begin() as conn:
            conn.execute(sessions.delete().where(sessions.c.token_hash == token_hash(token)))

    def end_all(self, user_id: int) -> int:
        """End every session of a user; how many there were."""
        with self._engine.begin() as conn:
            return conn.execute(sessions.delete().where(sessions.c.user_id == user_id)).rowcount

    def count(self, user_id: int) -> int:
        with self._engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(sessions).where(
                sessions.c.user_id == user_id)).scalar() or 0)
