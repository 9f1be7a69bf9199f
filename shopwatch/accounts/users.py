"""Dashboard users and their roles, kept in the state store.

Two roles: ``viewer`` looks at every page and reads the API; ``admin`` also manages
projects, keys, users and settings. An instance always keeps at least one admin: the
last one cannot be removed or demoted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

import sqlalchemy as sa

from shopwatch.accounts import passwords
from shopwatch.errors import ConfigError, NotFound
from shopwatch.store.state import StateStore, sessions, users

Role = Literal["admin", "viewer"]
ROLES: Final[tuple[Role, ...]] = ("admin", "viewer")


@dataclass(frozen=True)
class User:
    id: int
    email: str
    role: Role
    created_at: datetime

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def normalize_email(email: str) -> str:
    """The e-mail address as stored (trimmed, lower-case); ConfigError if it is not one."""
    email = email.strip().lower()
    local, at, domain = email.partition("@")
    if not at or not local or "." not in domain or len(email) > 254 or any(
            c.isspace() for c in email):
        raise ConfigError(f"email: {email!r} is not an e-mail address")
    return email


def check_role(role: str) -> Role:
    for known in ROLES:
        if role == known:
            return known
    raise ConfigError(f"role: must be one of {', '.join(ROLES)}, not {role!r}")


def _now() -> datetime:
    return datetime.now(UTC)


def _user(row: Sequence[Any]) -> User:
    return User(int(row[0]), row[1], check_role(row[2]), row[3])


_COLUMNS = (users.c.id, users.c.email, users.c.role, users.c.created_at)


class Users:
    """Create, find, authenticate and manage users; see the module docstring."""

    def __init__(self, state: StateStore) -> None:
        self._engine = state.engine

    def add(self, email: str, password: str, role: str) -> User:
        """A new user; ConfigError naming the field if the e-mail is taken or invalid,
        the role unknown or the password too weak."""
        email = normalize_email(email)
        role = check_role(role)
        passwords.check_policy(password, email)
        hashed = passwords.hash_password(password)
        now = _now()
        with self._engine.begin() as conn:
            if conn.execute(sa.select(users.c.id).where(users.c.email == email)).first():
                raise ConfigError(f"email: a user {email} exists already")
            result = conn.execute(users.insert().values(
                email=email, password_hash=hashed, role=role, created_at=now,
                password_changed_at=now))
            key = result.inserted_primary_key
            assert key is not None
        return User(int(key[0]), email, role, now)

    def list(self) -> list[User]:
        with self._engine.connect() as conn:
            return [_user(r) for r in conn.execute(sa.select(*_COLUMNS).order_by(users.c.email))]

    def count(self) -> int:
        with self._engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(users)).scalar() or 0)

    def get(self, user_id: int) -> User:
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(*_COLUMNS).where(users.c.id == user_id)).first()
        if row is None:
            raise NotFound(f"no user {user_id}")
        return _user(row)

    def find(self, ref: str | int) -> User:
        """A user by id or e-mail address."""
        text = str(ref).strip()
        if text.isdigit():
            return self.get(int(text))
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(*_COLUMNS).where(users.c.email == text.lower())).first()
        if row is None:
            raise NotFound(f"no user {text!r}")
        return _user(row)

    def authenticate(self, email: str, password: str) -> User | None:
        """The user if the e-mail and password match, else None; takes about as long
        either way, so the answer's timing does not tell whether the account exists."""
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(*_COLUMNS, users.c.password_hash).where(
                users.c.email == email.strip().lower())).first()
        if row is None or len(password) > passwords.MAX_LENGTH:
            passwords.burn_time(password[:passwords.MAX_LENGTH])
            return None
        if not passwords.verify(row[4], password):
            return None
        if passwords.needs_rehash(row[4]):
            with self._engine.begin() as conn:
                conn.execute(users.update().where(users.c.id == row[0]).values(
                    password_hash=passwords.hash_password(password)))
        return User(int(row[0]), row[1], check_role(row[2]), row[3])

    def set_password(self, user_id: int, password: str) -> None:
        """Change the password and end every session of the user (contract: a password
        change revokes sessions; the caller opens a new one for the current browser)."""
        user = self.get(user_id)
        passwords.check_policy(password, user.email)
        hashed = passwords.hash_password(password)
        with self._engine.begin() as conn:
            conn.execute(users.update().where(users.c.id == user_id).values(
                password_hash=hashed, password_changed_at=_now()))
            conn.execute(sessions.delete().where(sessions.c.user_id == user_id))

    def set_role(self, user_id: int, role: str) -> User:
        role = check_role(role)
        self.get(user_id)
        with self._engine.begin() as conn:
            if role != "admin":
                self._keep_an_admin(conn, user_id, "demote")
            conn.execute(users.update().where(users.c.id == user_id).values(role=role))
        return self.get(user_id)

    def remove(self, user_id: int) -> None:
        """Delete the user and their sessions."""
        self.get(user_id)
        with self._engine.begin() as conn:
            self._keep_an_admin(conn, user_id, "remove")
            conn.execute(sessions.delete().where(sessions.c.user_id == user_id))
            conn.execute(users.delete().where(users.c.id == user_id))

    def _keep_an_admin(self, conn: sa.Connection, user_id: int, verb: str) -> None:
        admins = [int(r[0]) for r in conn.execute(
            sa.select(users.c.id).where(users.c.role == "admin"))]
        if admins == [user_id]:
            raise ConfigError(f"cannot {verb} the last admin; make another user admin first")
