"""Users, passwords, sessions and the sign-in lock-out, on a real SQLite state store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from shopwatch.accounts import passwords
from shopwatch.accounts.lockout import LoginThrottle
from shopwatch.accounts.sessions import Sessions
from shopwatch.accounts.users import Users
from shopwatch.errors import ConfigError, NotFound
from shopwatch.store.state import StateStore, login_failures
from shopwatch.store.state import sessions as sessions_table

PW = "correct horse battery"


@pytest.fixture
def state(tmp_path: Path) -> StateStore:
    return StateStore(tmp_path / "state.sqlite")


@pytest.fixture
def users(state: StateStore) -> Users:
    return Users(state)


def test_passwords_are_argon2id_with_owasp_parameters(users: Users, state: StateStore) -> None:
    users.add("A@Example.com", PW, "admin")
    with state.engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT email, password_hash FROM users")).one()
    assert stored[0] == "a@example.com"
    assert stored[1].startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert PW not in stored[1]
    assert users.authenticate("a@EXAMPLE.com ", PW) is not None
    assert users.authenticate("a@example.com", PW + "x") is None
    assert users.authenticate("nobody@example.com", PW) is None


@pytest.mark.parametrize(("email", "password", "role", "field"), [
    ("not-an-email", PW, "admin", "email:"),
    ("a@example.com", "short", "admin", "password:"),
    ("a@example.com", "a@example.com", "admin", "password:"),
    ("a@example.com", PW, "owner", "role:"),
])
def test_add_user_names_the_bad_field(users: Users, email: str, password: str, role: str,
                                      field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        users.add(email, password, role)
    assert users.count() == 0


def test_duplicate_email_is_refused(users: Users) -> None:
    users.add("a@example.com", PW, "viewer")
    with pytest.raises(ConfigError, match="exists already"):
        users.add("A@example.com", PW, "viewer")


def test_the_last_admin_cannot_be_removed_or_demoted(users: Users) -> None:
    admin = users.add("a@example.com", PW, "admin")
    viewer = users.add("v@example.com", PW, "viewer")
    with pytest.raises(ConfigError, match="last admin"):
        users.remove(admin.id)
    with pytest.raises(ConfigError, match="last admin"):
        users.set_role(admin.id, "viewer")
    users.set_role(viewer.id, "admin")
    users.set_role(admin.id, "viewer")  # now allowed: another admin exists
    assert users.get(admin.id).role == "viewer"
    users.remove(admin.id)
    with pytest.raises(NotFound):
        users.get(admin.id)


def make_sessions(state: StateStore, users: Users, idle: float = 3600,
                  lifetime: float = 86400) -> Sessions:
    return Sessions(state, users, idle_timeout=idle, lifetime=lifetime)


def test_sessions_store_only_a_hash_of_the_token(state: StateStore, users: Users) -> None:
    sessions = make_sessions(state, users)
    user = users.add("a@example.com", PW, "admin")
    token, session = sessions.open(user)
    with state.engine.connect() as conn:
        stored = conn.execute(sa.select(sessions_table.c.token_hash)).scalars().all()
    assert stored == [session.token_hash] and token not in stored
    found = sessions.lookup(token)
    assert found is not None and found.user.id == user.id
    assert found.csrf_token == session.csrf_token and len(found.csrf_token) >= 40
    assert sessions.lookup(token + "x") is None
    assert sessions.lookup("") is None


def test_sessions_end_when_idle_or_too_old(state: StateStore, users: Users) -> None:
    sessions = make_sessions(state, users, idle=600, lifetime=3600)
    user = users.add("a@example.com", PW, "admin")
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    token, _ = sessions.open(user, now=t0)
    assert sessions.lookup(token, now=t0 + timedelta(seconds=599)) is not None
    # Each look-up (touched at most once a minute) keeps it alive...
    for minutes in range(9, 60, 9):
        assert sessions.lookup(token, now=t0 + timedelta(minutes=minutes)) is not None, minutes
    # ...but not past its lifetime.
    assert sessions.lookup(token, now=t0 + timedelta(seconds=3600)) is None
    idle_token, _ = sessions.open(user, now=t0)
    assert sessions.lookup(idle_token, now=t0 + timedelta(seconds=600)) is None


def test_password_change_and_removal_end_every_session(state: StateStore, users: Users) -> None:
    sessions = make_sessions(state, users)
    admin = users.add("a@example.com", PW, "admin")
    other = users.add("b@example.com", PW, "admin")
    tokens = [sessions.open(admin)[0] for _ in range(3)]
    other_token, _ = sessions.open(other)
    users.set_password(admin.id, "another long password")
    assert all(sessions.lookup(t) is None for t in tokens)
    assert sessions.lookup(other_token) is not None
    assert users.authenticate("a@example.com", PW) is None
    assert users.authenticate("a@example.com", "another long password") is not None
    users.remove(other.id)
    assert sessions.lookup(other_token) is None


def throttle(state: StateStore) -> LoginThrottle:
    return LoginThrottle(state, b"k" * 32, max_failures=5, window=300)


def test_five_failures_lock_the_account_for_the_window(state: StateStore) -> None:
    t = throttle(state)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(4):
        t.record_failure("a@example.com", f"10.0.0.{i}", now=t0 + timedelta(seconds=i))
    assert t.retry_after("a@example.com", "10.0.0.9", now=t0 + timedelta(seconds=5)) == 0
    t.record_failure("A@example.com", "10.0.0.4", now=t0 + timedelta(seconds=4))
    wait = t.retry_after("a@example.com", "10.0.0.9", now=t0 + timedelta(seconds=5))
    assert wait == pytest.approx(295)  # until the first failure is 5 minutes old
    assert t.retry_after("other@example.com", "10.0.0.9", now=t0) == 0
    assert t.retry_after("a@example.com", "10.0.0.9", now=t0 + timedelta(seconds=300)) == 0


def test_five_failures_from_one_address_lock_every_account(state: StateStore) -> None:
    t = throttle(state)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(5):
        t.record_failure(f"user{i}@example.com", "192.0.2.7", now=t0)
    assert t.retry_after("someone@example.com", "192.0.2.7", now=t0) > 0
    assert t.retry_after("someone@example.com", "192.0.2.8", now=t0) == 0
    # A success clears the account's count, never the address's.
    t.record_success("user0@example.com")
    assert t.retry_after("someone@example.com", "192.0.2.7", now=t0) > 0


def test_the_client_address_is_never_stored(state: StateStore) -> None:
    throttle(state).record_failure("a@example.com", "198.51.100.23")
    with state.engine.connect() as conn:
        row = conn.execute(sa.select(login_failures)).one()
    assert "198.51.100.23" not in str(tuple(row)) and "a@example.com" not in str(tuple(row))


def test_burn_time_verifies_against_a_real_hash() -> None:
    # The dummy hash must use the same parameters, or unknown accounts answer faster.
    assert passwords._dummy_hash().startswith("$argon2id$v=19$m=19456,t=2,p=1$")


def test_a_success_clears_the_account_count(state: StateStore) -> None:
    t = throttle(state)
    now = datetime.now(UTC)
    for i in range(4):
        t.record_failure("a@example.com", f"10.0.1.{i}", now=now)
    t.record_success("a@example.com")
    t.record_failure("a@example.com", "10.0.1.9", now=now)
    assert t.retry_after("a@example.com", "10.0.1.10", now=now) == 0
