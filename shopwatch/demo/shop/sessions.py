"""Shopper sessions: the ``demo_sid`` and ``demo_aid`` cookies and what hangs off them.

- ``demo_sid`` (HttpOnly, ends with the browser session) names a :class:`ShopSession`:
  the cart, the checkout in progress, the signed-in customer, and how the visit began;
- ``demo_aid`` (HttpOnly, two years) names the browser across visits: Shopwatch's
  ``anonymous_id``.

What the shop reports as the visit's ``session_id`` (in its events, and in its pages for
the RUM snippet) is :attr:`ShopSession.public_id`, another random id: the cookie's value
is a credential and stays out of pages and analytics (it is HttpOnly for that reason).

A session starts on the first request without a known ``demo_sid``: that request is the
*landing*, and its ``utm_*`` parameters, ``Referer`` and device are kept for the whole
session, so every event of the visit is attributed to how it began. The client's address
and user agent are not kept: each event carries those of its own request, so a session
that changes hands (an account taken over) shows it at once. A session id the shop
does not know (forgotten, or made up by the client) is never adopted: a new one is
issued, so a client cannot choose another shopper's session id.
"""

from __future__ import annotations

import re
import secrets
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlsplit

from shopwatch.demo.shop.cart import Cart
from shopwatch.demo.shop.checkout import Checkout
from shopwatch.demo.shop.devices import describe_device

SESSION_COOKIE: Final = "demo_sid"
VISITOR_COOKIE: Final = "demo_aid"
VISITOR_MAX_AGE: Final = 2 * 365 * 24 * 3600
UTM_KEYS: Final = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
MAX_UTM_LENGTH: Final = 256  # Shopwatch rejects longer utm_* values
MAX_REFERRER_LENGTH: Final = 2048
MAX_SESSIONS: Final = 50_000  # least recently used are forgotten: memory stays bounded
_VISITOR_ID_RE: Final = re.compile(r"[A-Za-z0-9_-]{16,64}")


@dataclass
class ShopSession:
    """One visit. ``device``, ``referrer`` and ``utm`` are those of the landing request;
    ``id`` is the cookie's value, ``public_id`` the id analytics know the visit by."""

    id: str
    anonymous_id: str
    device: dict[str, str]
    public_id: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    referrer: str | None = None
    utm: dict[str, str] = field(default_factory=dict)
    cart: Cart = field(default_factory=Cart)
    checkout: Checkout | None = None
    customer_id: str | None = None


def landing_referrer(referer: str, host: str) -> str | None:
    """The ``Referer`` worth keeping for attribution: not empty, and not the shop itself
    (a new session after the old one was forgotten still comes from the shop)."""
    referer = referer.strip()
    if not referer or len(referer) > MAX_REFERRER_LENGTH:
        return None
    parts = urlsplit(referer)
    if parts.scheme not in ("http", "https") or parts.netloc == host:
        return None
    return referer


def landing_utm(query: Mapping[str, str]) -> dict[str, str]:
    """The non-empty ``utm_*`` parameters of the landing URL, cut to Shopwatch's limit."""
    return {key: query[key][:MAX_UTM_LENGTH] for key in UTM_KEYS if query.get(key)}


class SessionStore:
    """Every live session, by id; the least recently used go beyond :data:`MAX_SESSIONS`."""

    def __init__(self) -> None:
        self._sessions: OrderedDict[str, ShopSession] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    def resume(self, session_id: str | None) -> ShopSession | None:
        """The session with this id, marked as just used; ``None`` if unknown."""
        if session_id is None:
            return None
        session = self._sessions.get(session_id)
        if session is not None:
            self._sessions.move_to_end(session_id)
        return session

    def start(self, cookies: Mapping[str, str], headers: Mapping[str, str],
              query: Mapping[str, str], host: str) -> tuple[ShopSession, bool]:
        """A new session for a landing request; also whether the visitor id is new.

        A ``demo_aid`` cookie of the right shape is kept (the same browser came back);
        otherwise the browser gets a new visitor id.
        """
        visitor = cookies.get(VISITOR_COOKIE, "")
        new_visitor = not _VISITOR_ID_RE.fullmatch(visitor)
        if new_visitor:
            visitor = secrets.token_urlsafe(18)
        session = ShopSession(
            id=secrets.token_urlsafe(24), anonymous_id=visitor,
            device=describe_device(headers),
            referrer=landing_referrer(headers.get("referer", ""), host),
            utm=landing_utm(query))
        self._sessions[session.id] = session
        while len(self._sessions) > MAX_SESSIONS:
            self._sessions.popitem(last=False)
        return session, new_visitor
