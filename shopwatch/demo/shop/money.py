"""Money in the demo shop: integer cents inside, decimal amounts at the edges.

Prices, totals and refunds are kept as integer cents so that sums are exact; events
carry amounts as numbers (``12.9``), as Shopwatch's ``value`` param requires, and pages
show them formatted for the shop's currency.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Final

CURRENCY_RE: Final = re.compile(r"[A-Z]{3}")
_SYMBOLS: Final = {"EUR": "€", "USD": "$", "GBP": "£", "JPY": "¥", "CHF": "CHF "}
# A form amount: digits with at most two decimals, "." or "," as the separator.
_AMOUNT_RE: Final = re.compile(r"\d{1,9}(?:[.,]\d{1,2})?")


def to_amount(cents: int) -> float:
    """``cents`` as a number of currency units for an event (``1290`` -> ``12.9``)."""
    return round(cents / 100, 2)


def format_money(cents: int, currency: str) -> str:
    """``cents`` for a page: ``€12.90`` for known symbols, else ``12.90 SEK``."""
    text = f"{cents // 100:,}.{cents % 100:02d}"
    symbol = _SYMBOLS.get(currency)
    return f"{symbol}{text}" if symbol else f"{text} {currency}"


def parse_amount(text: str) -> int | None:
    """Cents from a form amount such as ``12.50`` or ``12,5``; ``None`` if it is not one.

    Negative numbers, more than two decimals and anything but digits are refused rather
    than rounded: a refund form must not turn ``12.505`` into a different amount.
    """
    text = text.strip()
    if not _AMOUNT_RE.fullmatch(text):
        return None
    try:
        return int(Decimal(text.replace(",", ".")) * 100)
    except InvalidOperation:  # pragma: no cover - the pattern admits only valid decimals
        return None
