"""Customer accounts, in memory, with scrypt password hashes.

The demo keeps accounts only while it runs, but still never holds a password in plain
text: it stores ``scrypt$n$r$p$salt$hash`` and compares in constant time. Hashing takes
tens of milliseconds on purpose, so callers run :func:`hash_password` and
:func:`verify_password` in a worker thread, not on the event loop.

A customer's :attr:`Customer.id` is random and opaque (``cus_…``); it is the only thing
about a customer that goes into events (but for the e-mail address typed at a failed
sign-in into an account that does not exist: see ``Shop.login``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Final

# scrypt cost: about 16 MiB and 40 ms per hash; lower than a production setting so a
# simulated credential-stuffing run stays cheap, high enough not to be plain text.
_N: Final = 2**14
_R: Final = 8
_P: Final = 1
MIN_PASSWORD_LENGTH: Final = 8
MAX_PASSWORD_LENGTH: Final = 256
MAX_FIELD_LENGTH: Final = 200
EMAIL_RE: Final = re.compile(r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}")
PROFILE_FIELDS: Final = ("name", "email", "address", "phone")


class AccountError(Exception):
    """A request about an account cannot be done; ``status`` is the HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Customer:
    """An account. ``email`` is stored normalised (trimmed, lower case)."""

    id: str
    name: str
    email: str
    password_hash: str
    address: str = ""
    phone: str = ""


def normalise_email(email: str) -> str:
    return email.strip().lower()


def hash_password(password: str) -> str:
    """A salted scrypt hash of ``password`` in the form ``scrypt$n$r$p$salt$hash``."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    b64 = base64.urlsafe_b64encode
    return f"scrypt${_N}${_R}${_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches a hash made by :func:`hash_password`."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.urlsafe_b64decode(digest)
        actual = hashlib.scrypt(password.encode(), salt=base64.urlsafe_b64decode(salt),
                                n=int(n), r=int(r), p=int(p), dklen=len(expected))
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


def check_new_password(password: str) -> None:
    """Raise :class:`AccountError` (400) unless ``password`` is acceptable as a new one."""
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise AccountError(400, f"A password needs {MIN_PASSWORD_LENGTH} to "
                                f"{MAX_PASSWORD_LENGTH} characters.")


class CustomerBook:
    """Every account of the shop, by id and by e-mail address.

    Methods here never hash: they take hashes made by the caller (in a thread), so the
    book itself is only touched from the event loop.
    """

    def __init__(self) -> None:
        self._by_id: dict[str, Customer] = {}
        self._by_email: dict[str, Customer] = {}

    def get(self, customer_id: str | None) -> Customer | None:
        return None if customer_id is None else self._by_id.get(customer_id)

    def by_email(self, email: str) -> Customer | None:
        return self._by_email.get(normalise_email(email))

    @staticmethod
    def check_signup(name: str, email: str, password: str) -> None:
        """Raise :class:`AccountError` (400) unless the sign-up form is complete."""
        if not name.strip() or len(name) > MAX_FIELD_LENGTH:
            raise AccountError(400, "Please enter your name.")
        if not EMAIL_RE.fullmatch(email.strip()) or len(email) > MAX_FIELD_LENGTH:
            raise AccountError(400, "Please enter a valid e-mail address.")
        check_new_password(password)

    def add(self, name: str, email: str, password_hash: str,
            customer_id: str | None = None) -> Customer:
        """Create an account; :class:`AccountError` (409) if the address or the id is
        taken. ``customer_id`` is a new random ``cus_…`` unless given (accounts brought
        over from before, such as the demo's regular customers, keep their id)."""
        email = normalise_email(email)
        if email in self._by_email:
            raise AccountError(409, "There is already an account with this e-mail address.")
        customer_id = customer_id or "cus_" + secrets.token_hex(8)
        if customer_id in self._by_id:
            raise AccountError(409, "There is already an account with this id.")
        customer = Customer(customer_id, name.strip(), email, password_hash)
        self._by_id[customer.id] = customer
        self._by_email[email] = customer
        return customer

    def update_profile(self, customer: Customer, form: dict[str, str]) -> list[str]:
        """Apply the profile fields present in ``form``; returns the names that changed.

        Fields are ``name``, ``email``, ``address`` and ``phone``; any subset may be sent,
        and a field sent with its current value is not a change. Nothing is applied if any
        field is invalid (:class:`AccountError`: 400, or 409 for an e-mail address that
        belongs to another account).
        """
        changes: dict[str, str] = {}
        for key in PROFILE_FIELDS:
            if key not in form:
                continue
            value = form[key].strip()
            if key == "email":
                value = normalise_email(value)
            if len(value) > MAX_FIELD_LENGTH:
                raise AccountError(400, f"The {key} is too long.")
            if value != getattr(customer, key):
                changes[key] = value
        if "name" in changes and not changes["name"]:
            raise AccountError(400, "The name cannot be empty.")
        if "email" in changes:
            if not EMAIL_RE.fullmatch(changes["email"]):
                raise AccountError(400, "Please enter a valid e-mail address.")
            if changes["email"] in self._by_email:
                raise AccountError(409, "Another account uses this e-mail address.")
            del self._by_email[customer.email]
            self._by_email[changes["email"]] = customer
        for key, value in changes.items():
            setattr(customer, key, value)
        return list(changes)
