"""Password hashing (Argon2id) and the password policy.

Parameters follow the OWASP Password Storage Cheat Sheet's Argon2id recommendation
(19 MiB of memory, 2 iterations, 1 lane): about 20-30 ms per hash on this project's
machine, which bounds what an attacker with a copy of ``state.sqlite`` can try. Hashes
made with weaker parameters are upgraded at the next successful sign-in
(:func:`needs_rehash`).
"""

from __future__ import annotations

from functools import cache
from typing import Final

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from shopwatch.errors import ConfigError

MIN_LENGTH: Final = 10
MAX_LENGTH: Final = 1024  # longer inputs only cost hashing time

_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1, hash_len=32,
                         salt_len=16, type=Type.ID)


def check_policy(password: str, email: str = "") -> None:
    """Raise ConfigError (``password: <reason>``) unless ``password`` is acceptable.

    Length is what matters (NIST SP 800-63B): at least MIN_LENGTH characters, no
    composition rules; the account's e-mail address is refused as a password.
    """
    if len(password) < MIN_LENGTH:
        raise ConfigError(f"password: at least {MIN_LENGTH} characters, please")
    if len(password) > MAX_LENGTH:
        raise ConfigError(f"password: at most {MAX_LENGTH} characters")
    if email and password.strip().lower() == email.strip().lower():
        raise ConfigError("password: must not be the e-mail address")


def hash_password(password: str) -> str:
    """An Argon2id hash string (salt and parameters included)."""
    return _hasher.hash(password)


def verify(stored_hash: str, password: str) -> bool:
    """Whether ``password`` matches ``stored_hash``; False for a malformed hash."""
    try:
        return _hasher.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    return _hasher.check_needs_rehash(stored_hash)


@cache
def _dummy_hash() -> str:
    return _hasher.hash("not a password of anyone")


def burn_time(password: str) -> None:
    """Spend what a real verification costs, for unknown e-mail addresses: a sign-in
    answer must not reveal, by its speed, whether an account exists."""
    verify(_dummy_hash(), password)
