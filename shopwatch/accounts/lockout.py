"""Sign-in lock-out: too many failures for one account or from one client address.

After ``max_failures`` failed sign-ins within ``window`` for the same e-mail address
(whether or not an account has it) or from the same client address, every sign-in for
that account or from that address is refused — right password or not — until the
oldest counted failure leaves the window. A successful sign-in clears the account's
count, not the address's (one good account must not reset an attacker's budget).

Only keyed hashes (HMAC-SHA-256 with the instance's secret) of the e-mail and of the
address are stored, never the address itself.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from shopwatch.store.state import StateStore, login_failures


class LoginThrottle:
    def __init__(self, state: StateStore, key: bytes, *, max_failures: int,
                 window: float) -> None:
        self._engine = state.engine
        self._key = key
        self.max_failures = max_failures
        self.window = timedelta(seconds=window)

    def _hash(self, kind: str, value: str) -> str:
        return hmac.new(self._key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()

    def _hashes(self, email: str, client: str) -> tuple[str, str]:
        return self._hash("account", email.strip().lower()), self._hash("client", client)

    def retry_after(self, email: str, client: str, now: datetime | None = None) -> float:
        """Seconds until sign-in is allowed again for this account and address; 0 if now."""
        now = now or datetime.now(UTC)
        account, client_hash = self._hashes(email, client)
        since = now - self.window
        wait = 0.0
        c = login_failures.c
        with self._engine.connect() as conn:
            for match in ((c.account_hash == account) & ~c.account_cleared,
                          c.client_hash == client_hash):
                times = [t if t.tzinfo else t.replace(tzinfo=UTC) for t in conn.execute(
                    sa.select(c.at).where(match & (c.at > since))
                    .order_by(c.at.desc()).limit(self.max_failures)).scalars()]
                if len(times) >= self.max_failures:
                    # Free again when the oldest of the last max_failures leaves the window.
                    wait = max(wait, (times[-1] + self.window - now).total_seconds())
        return max(wait, 0.0)

    def record_failure(self, email: str, client: str, now: datetime | None = None) -> None:
        now = now or datetime.now(UTC)
        account, client_hash = self._hashes(email, client)
        with self._engine.begin() as conn:
            conn.execute(login_failures.insert().values(
                at=now, account_hash=account, client_hash=client_hash))
            # Keep the table small: nothing older than a day is ever counted.
            conn.execute(login_failures.delete().where(
                login_failures.c.at < now - max(self.window, timedelta(days=1))))

    def record_success(self, email: str) -> None:
        account = self._hash("account", email.strip().lower())
        with self._engine.begin() as conn:
            conn.execute(login_failures.update().where(login_failures.c.account_hash == account)
                         .values(account_cleared=True))
