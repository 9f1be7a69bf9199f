"""Shopwatch events of the demo shop, built on the server and handed to a tracker.

This is how Shopwatch asks shops to instrument themselves: the shop's server reports
what happened (see ``docs/events.md``) through a client whose ``send`` returns at once.

Every event carries ``id`` (random, for Shopwatch's deduplication), ``ts`` (epoch
milliseconds, since the tracker may send later), ``name``, ``session_id``,
``anonymous_id``, ``user_id`` (the opaque customer id, once signed in), ``page`` (the
request's path, without query), the landing ``referrer`` and ``utm_*`` of the session,
``device``, ``params``, and the ``ip`` and ``user_agent`` of the request that sent it
(:mod:`shopwatch.demo.shop.network`; per request, not per session: an account taken over
in the middle of a visit shows its new address at once). Money is a number of currency
units with the ISO currency.

Pages also carry Shopwatch's real-user-monitoring snippet (:class:`BrowserTag`), with the
visit's ``session_id``, so what browsers report (page timings, Web Vitals, JavaScript
errors, failed images) joins the server's events of the same visit.

No personal data goes into an event: no names, postal addresses, phone numbers or card
numbers (a card is named by its BIN and the shop's keyed fingerprint); free text typed
by shoppers (search terms, survey comments) has e-mail addresses and long digit runs
replaced before it is sent. Two things sent are personal data that Shopwatch protects on
arrival: the client address (Shopwatch keeps a keyed hash and the network prefix) and,
in ``login_failed`` for an account that does not exist, the e-mail address typed, as
``user_id`` (Shopwatch replaces it with ``email:<keyed hash>``), so the accounts tried
from one network can be counted.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from html import escape
from typing import Any, Final, Protocol

from markupsafe import Markup

from shopwatch.demo.shop.cart import CartLine
from shopwatch.demo.shop.catalogue import Product
from shopwatch.demo.shop.money import to_amount
from shopwatch.demo.shop.network import Requester
from shopwatch.demo.shop.orders import Order
from shopwatch.demo.shop.sessions import ShopSession
from shopwatch.web import snippet

log = logging.getLogger(__name__)

_EMAIL_RE: Final = re.compile(r"[^\s@]+@[^\s@]+\.[A-Za-z]{2,}")
# Eight or more digits, possibly grouped by spaces or dashes: card and phone numbers.
_NUMBER_RE: Final = re.compile(r"\d(?:[ -]?\d){7,}")
MAX_TEXT_LENGTH: Final = 1000  # Shopwatch's param strings stop at 1024 characters


class Tracker(Protocol):
    """Where the shop sends events: ``send`` queues one and returns its id, never
    blocking (``shopwatch.client.ShopwatchClient`` is one)."""

    def send(self, event: dict[str, Any]) -> str: ...


def redact_text(text: str) -> str:
    """Free text without e-mail addresses and long numbers, cut to 1000 characters."""
    text = _EMAIL_RE.sub("[email]", text)
    return _NUMBER_RE.sub("[number]", text)[:MAX_TEXT_LENGTH]


def product_item(product: Product, quantity: int | None = None,
                 index: int | None = None) -> dict[str, Any]:
    """A GA4 ``items[]`` entry for a product (``index``: its place in a list).

    ``item_category`` is the category's slug (``brewing-gear``): stable, and the same
    value the simulator's backfilled history uses.
    """
    item: dict[str, Any] = {"item_id": product.id, "item_name": product.name,
                            "item_category": product.category, "price": product.price}
    if quantity is not None:
        item["quantity"] = quantity
    if index is not None:
        item["index"] = index
    return item


def cart_items(lines: Iterable[CartLine]) -> list[dict[str, Any]]:
    return [product_item(line.product, line.quantity) for line in lines]


def order_items(order: Order) -> list[dict[str, Any]]:
    """The ``items`` of an order as bought (names and prices of that moment)."""
    return [{"item_id": line.product_id, "item_name": line.name,
             "item_category": line.category, "price": to_amount(line.price),
             "quantity": line.quantity} for line in order.lines]


class Tracking:
    """Builds events for one shop and passes them to its tracker."""

    def __init__(self, tracker: Tracker, currency: str) -> None:
        self._tracker = tracker
        self.currency = currency

    def money(self, cents: int) -> dict[str, Any]:
        """``value`` and ``currency`` params for an amount in cents."""
        return {"value": to_amount(cents), "currency": self.currency}

    def emit(self, session: ShopSession, name: str, page: str,
             params: dict[str, Any] | None = None, user_id: str | None = None,
             requester: Requester | None = None) -> None:
        """Send one event of ``session``; a failing tracker is logged, never raised.

        ``user_id`` is the session's customer unless given (a failed sign-in names the
        account tried); ``requester`` gives the event's ``ip`` and ``user_agent``.
        Analytics must never cost a sale: if the tracker breaks, the shopper's request
        still succeeds.
        """
        event: dict[str, Any] = {
            "id": uuid.uuid4().hex, "ts": time.time_ns() // 1_000_000, "name": name,
            "session_id": session.public_id, "anonymous_id": session.anonymous_id, "page": page,
        }
        user_id = user_id or session.customer_id
        if user_id is not None:
            event["user_id"] = user_id
        if session.referrer is not None:
            event["referrer"] = session.referrer
        event.update(session.utm)
        event["device"] = dict(session.device)
        if requester is not None:
            if requester.ip is not None:
                event["ip"] = requester.ip
            if requester.user_agent is not None:
                event["user_agent"] = requester.user_agent
        if params:
            event["params"] = params
        try:
            self._tracker.send(event)
        except Exception:
            log.exception("demo shop: the tracker failed to take a %s event", name)


@dataclass(frozen=True)
class BrowserTag:
    """The RUM snippet for the shop's pages: Shopwatch's URL and the project's public
    ingest key (the project must list the shop's origin in its RUM origins)."""

    shopwatch_url: str
    ingest_key: str

    def html(self, session: ShopSession | None, customer_id: str | None = None) -> Markup:
        """The tag for ``<head>``: Shopwatch's own (:func:`shopwatch.web.snippet.tag`)
        with ``data-session-id`` (the visit's public id; none on pages outside a visit,
        where the snippet makes its own), ``data-traceparent="on"`` (the snippet links
        the page view to the trace the shop names in its ``Server-Timing`` header), and
        ``shopwatch('identify', ...)`` with the customer's opaque id once signed in."""
        tag = snippet.tag(self.shopwatch_url, self.ingest_key)
        head, found, tail = tag.rpartition("></script>")
        if not found or tail:
            raise RuntimeError("snippet.tag() no longer ends with its script element")
        head += ' data-traceparent="on"'
        if session is not None:
            head += f' data-session-id="{escape(session.public_id)}"'
        tag = f"{head}></script>"
        if customer_id is not None:
            # JSON is a JavaScript literal; "<" escaped so no "</script>" can close it.
            literal = json.dumps(customer_id).replace("<", "\\u003c")
            tag += f"\n<script>shopwatch('identify', {literal})</script>"
        return Markup(tag)
