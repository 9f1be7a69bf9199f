"""PII scrubbing for URLs, identifiers and free-text params.

Rules (documented in docs/privacy.md):

- URLs keep scheme, host and path; the fragment is dropped; of the query string only
  ``utm_*`` and the parameters allowed by the ``url_query_allow`` setting are kept.
- Email addresses anywhere become ``[email]``; digit runs of 13-19 digits that pass the
  Luhn check (payment card numbers) become ``[card]``.
- Params whose key names a secret (password, token, card number, cvc, iban, ...) are
  replaced by ``[redacted]``.
- An identifier (``user_id``, ``anonymous_id``, ``session_id``) that is an email address
  is replaced by ``email:<keyed hash>``, so it still identifies one person consistently
  without storing the address.
- A shopper's network address is never stored: only its network (the /24 of an IPv4
  address, the /48 of an IPv6 one, by default) and ``hash_address``'s keyed hash of the
  whole address, which tells one address from another without revealing it.

Everything here is pure and cheap on the common path (no ``@``, no long digit run).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

EMAIL_RE: Final = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")
# The same in a URL, percent-encoded (urlencode turns a kept utm_* value's "@" into %40).
EMAIL_ENCODED_RE: Final = re.compile(r"[A-Za-z0-9._%+\-]+%40[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")
DIGITS_RE: Final = re.compile(r"(?<!\d)\d{13,19}(?!\d)")
# Finding 13-19 digit runs at C speed: map digits to "d" and all else to "x", then
# search. The pipeline writes ts in seconds, so timestamps never form such a run.
_SHAPE: Final = bytes(ord("d") if 48 <= b <= 57 else ord("x") for b in range(256))
_RUN: Final = b"d" * 13
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
    if "%40" in url:
        url = EMAIL_ENCODED_RE.sub("[email]", url)
    return scrub_text(url)


def pseudonymize(value: str, key: bytes) -> str:
    """Every email address in an identifier becomes ``email:<keyed hash>``.

    The hash is keyed (HMAC-SHA256 with the instance's secret) and case-insensitive, so
    the same address always gives the same pseudonym and cannot be found by hashing a
    list of known addresses without the key.
    """
    if "@" not in value:
        return value

    def digest(match: re.Match[str]) -> str:
        mac = hmac.new(key, match.group(0).lower().encode(), hashlib.sha256)
        return f"email:{mac.hexdigest()[:32]}"

    stripped = value.strip()
    if EMAIL_RE.fullmatch(stripped):  # the whole id is an address: surrounding blanks go
        value = stripped
    return EMAIL_RE.sub(digest, value)


Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_address(text: str) -> Address | None:
    """``text`` as an address in canonical form, ``None`` when it is not one.

    An IPv4-mapped IPv6 address (``::ffff:203.0.113.9``, how a server listening on
    ``::`` sees an IPv4 client) is the IPv4 address it maps; an IPv6 zone (``%eth0``)
    is dropped. Surrounding blanks are ignored.
    """
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.scope_id is not None:
            return ipaddress.IPv6Address(address.packed)
    return address


def network_prefix(address: Address, v4_bits: int = 24, v6_bits: int = 48) -> str:
    """The network of ``address`` cut to ``v4_bits`` or ``v6_bits``, written like
    ``203.0.113.0/24`` or ``2001:db8:1::/48``."""
    if isinstance(address, ipaddress.IPv4Address):
        host = 32 - v4_bits
        return f"{ipaddress.IPv4Address(int(address) >> host << host)}/{v4_bits}"
    host = 128 - v6_bits
    return f"{ipaddress.IPv6Address(int(address) >> host << host)}/{v6_bits}"


def hash_address(address: Address | str, key: bytes) -> str:
    """A keyed hash of a whole address: 16 hex characters of
    HMAC-SHA256(key, ``b"net:"`` + the canonical address).

    Every spelling of one address (``::ffff:10.0.0.1`` and ``10.0.0.1``, upper- or
    lower-case IPv6) gives the same hash; without the instance's key, the hash of a
    candidate address cannot be computed, so the 2**32 IPv4 addresses cannot simply be
    tried. Raises :class:`ValueError` for a string that is not an address.
    """
    if isinstance(address, str):
        parsed = parse_address(address)
        if parsed is None:
            raise ValueError(f"{address!r} is not an IPv4 or IPv6 address")
        address = parsed
    return hmac.digest(key, b"net:" + str(address).encode(), "sha256").hex()[:16]


def scrub_params(params: dict[str, Any]) -> dict[str, Any]:
    """A scrubbed copy of params (secret-named keys redacted, free text scrubbed)."""
    return {k: _scrub_value(k, v) for k, v in params.items()}


def _scrub_value(key: str, value: Any) -> Any:
    if SECRET_KEY_RE.search(key):
        return "[redacted]"
    if isinstance(value, str):
        if key == "id" or key.endswith("_id") or key == "card_fingerprint":
            # An identifier (transaction_id, item_id, a card's fingerprint...) keeps its
            # digits; a long numeric order number is not a card number.
            return EMAIL_RE.sub("[email]", value) if "@" in value else value
        return scrub_text(value)
    if isinstance(value, list):
        return [_scrub_value(key, v) for v in value]
    if isinstance(value, dict):
        return {k: _scrub_value(k, v) for k, v in value.items()}
    return value


_ID_KEYS: Final = frozenset({b"id", b"session_id", b"anonymous_id", b"user_id",
                             b"transaction_id", b"item_id", b"card_fingerprint",
                             b"net_hash"})  # hex digits of our own hash


def payload_has_card(payload: bytes) -> bool:
    """Whether event JSON holds a Luhn-valid run of 13-19 digits outside identifiers.

    A run is skipped only when its string is plainly the value of an identifier key
    (``"user_id":"...digits..."``); anything less certain (a list element, an escaped
    quote nearby, a number) counts. A false positive only costs a deep scrub of the
    request; a false negative would store a card number.
    """
    shape = payload.translate(_SHAPE)
    pos = shape.find(_RUN)
    while pos != -1:
        end = pos + 13
        while end < len(shape) and shape[end] == 100:  # "d"
            end += 1
        if end - pos <= 19 and luhn_ok(payload[pos:end].decode()) and not _in_identifier(
                payload, pos):
            return True
        pos = shape.find(_RUN, end)
    return False


def has_digit_run(data: bytes) -> bool:
    """Whether ``data`` holds 13 or more ASCII digits in a row, at C speed.

    For binary input (an OTLP protobuf body): there a card number inside a string can
    touch digit-valued bytes of the framing around it (a length byte of 48-57, a field
    tag of 0x30-0x39), so neither a run's length nor its Luhn checksum tells anything.
    Without any such run, no string in the body can hold a card number.
    """
    return data.translate(_SHAPE).find(_RUN) != -1


def _in_identifier(payload: bytes, pos: int) -> bool:
    quote = payload.rfind(b'"', 0, pos)  # the opening quote of the enclosing string
    if quote < 2 or payload[quote - 2:quote] != b'":':
        return False
    key_start = payload.rfind(b'"', 0, quote - 2)
    return payload[key_start + 1:quote - 2] in _ID_KEYS
