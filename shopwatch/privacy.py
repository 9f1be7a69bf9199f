"""PII scrubbing for URLs, identifiers and free-text params.

Rules (documented in docs/privacy.md):

- URLs keep scheme, host and path; the fragment is dropped; of the query string only
  ``utm_*`` and the parameters allowed by the ``url_query_allow`` setting are kept.
- Email addresses anywhere become ``[email]``; digit runs of 13–19 digits that pass the
  Luhn check (payment card numbers) become ``[card]``.
- Params whose key names a secret (password, token, card number, cvc, iban, ...) are
  replaced by ``[redacted]``.
- An identifier (``user_id``, ``anonymous_id``, ``session_id``) that is an email address
  is replaced by ``email:<keyed hash>``, so it still identifies one person consistently
  without storing the address.

Everything here is pure and cheap on the common path (no ``@``, no long digit run).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

EMAIL_RE: Final = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")
DIGITS_RE: Final = re.compile(r"(?<!\d)\d{13,19}(?!\d)")
# Cheap pre-check over any text (JSON included) before the exact rules run.
SUSPECT_RE: Final = re.compile(
    rb"@|\d{13}|pass|secret|token|card_?num|cvc|cvv|iban|ssn", re.IGNORECASE
)
SECRET_KEY_RE: Final = re.compile(
    r"pass(word)?|secret|token|api_?key|card_?num(ber)?|^pan$|cvc|cvv|iban|ssn", re.IGNORECASE
)


def luhn_ok(digits: str) -> bool:
    """True when ``digits`` passes the Luhn checksum used by payment cards."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    return "[card]" if luhn_ok(match.group(0)) else match.group(0)


def scrub_text(text: str) -> str:
    """Replace email addresses and card numbers in free text."""
    if "@" in text:
        text = EMAIL_RE.sub("[email]", text)
    if len(text) >= 13:
        text = DIGITS_RE.sub(_card, text)
    return text


def scrub_url(url: str, query_allow: frozenset[str] = frozenset()) -> str:
    """Scrub a page or referrer URL (absolute or a path) as the module docstring says."""
    if "?" in url or "#" in url:
        parts = urlsplit(url)
        kept = [
            (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
            if k.startswith("utm_") or k in query_allow
        ]
        url = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(kept), ""))
    return scrub_text(url)


def pseudonymize(value: str, key: bytes) -> str:
    """``email:<hash>`` for an email-shaped identifier; other values are returned as-is."""
    if "@" not in value or not EMAIL_RE.fullmatch(value.strip()):
        return value
    digest = hmac.new(key, value.strip().lower().encode(), hashlib.sha256).hexdigest()[:32]
    return f"email:{digest}"


def scrub_params(params: dict[str, Any]) -> dict[str, Any]:
    """A scrubbed copy of params (secret-named keys redacted, free text scrubbed)."""
    return {k: _scrub_value(k, v) for k, v in params.items()}


def _scrub_value(key: str, value: Any) -> Any:
    if SECRET_KEY_RE.search(key):
        return "[redacted]"
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, list):
        return [_scrub_value(key, v) for v in value]
    if isinstance(value, dict):
        return {k: _scrub_value(k, v) for k, v in value.items()}
    return value


def needs_scrub(encoded: bytes) -> bool:
    """Whether encoded params might hold PII; ``False`` lets the hot path skip the walk."""
    return SUSPECT_RE.search(encoded) is not None
