"""Checkout: shipping details and methods, and the totals of an order.

Prices include VAT (as shops selling to consumers in the EU show them), so the tax of an
order is the VAT share of its total, not an amount added on top.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

VAT_RATE_PERCENT: Final = 19


@dataclass(frozen=True)
class ShippingMethod:
    """A way to ship: ``id`` is the form value and the events' ``shipping_tier``."""

    id: str
    label: str
    price: int  # cents


SHIPPING_METHODS: Final = {
    m.id: m for m in (
        ShippingMethod("standard", "Standard, 3 to 5 working days", 490),
        ShippingMethod("express", "Express, next working day", 990),
    )
}
_COUNTRY_RE: Final = re.compile(r"[A-Z]{2}")
MAX_FIELD_LENGTH: Final = 200


@dataclass(frozen=True)
class ShippingDetails:
    """Where and how an order is shipped (personal data: never put in events)."""

    name: str
    address: str
    city: str
    country: str  # ISO 3166-1 alpha-2
    method: ShippingMethod


@dataclass
class Checkout:
    """A checkout in progress in one session.

    ``order_id`` is chosen when checkout begins and kept through every payment attempt,
    so a declined attempt and the order that finally succeeds share one transaction id
    (as Shopwatch's event examples do).
    """

    order_id: str
    shipping: ShippingDetails | None = None


@dataclass(frozen=True)
class Totals:
    """The money of an order, in cents: ``total = subtotal + shipping``; ``tax`` is in it."""

    subtotal: int
    shipping: int
    tax: int
    total: int


def totals(subtotal: int, method: ShippingMethod) -> Totals:
    """The totals for goods worth ``subtotal`` shipped by ``method``."""
    total = subtotal + method.price
    tax = round(total * VAT_RATE_PERCENT / (100 + VAT_RATE_PERCENT))
    return Totals(subtotal, method.price, tax, total)


def read_shipping(form: Mapping[str, str]) -> tuple[ShippingDetails | None, list[str]]:
    """Shipping details from the shipping form, or ``None`` and what is wrong with it.

    Fields: ``name``, ``address``, ``city`` (non-empty, at most 200 characters),
    ``country`` (two letters, any case) and ``method`` (``standard`` or ``express``).
    """
    errors = []
    values = {}
    for key in ("name", "address", "city"):
        value = form.get(key, "").strip()
        if not value or len(value) > MAX_FIELD_LENGTH:
            errors.append(f"Please enter your {key} (at most {MAX_FIELD_LENGTH} characters).")
        values[key] = value
    country = form.get("country", "").strip().upper()
    if not _COUNTRY_RE.fullmatch(country):
        errors.append("Please enter the country as a two-letter code, such as DE.")
    method = SHIPPING_METHODS.get(form.get("method", ""))
    if method is None:
        errors.append("Please choose standard or express shipping.")
    if errors or method is None:
        return None, errors
    return ShippingDetails(values["name"], values["address"], values["city"], country,
                           method), []
