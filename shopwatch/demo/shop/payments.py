"""The payment sandbox: a pretend gateway that approves most payments.

How a payment ends:

1. with the ``gateway_errors`` fault on, every payment fails with ``gateway_error``
   (the fault is read on every call, so flipping it takes effect at once);
2. a card number that is not 12 to 19 digits passing the Luhn check is ``invalid_card``
   (what card testers' generated numbers mostly meet);
3. the test cards in :data:`TEST_CARDS` always end the same way (approved or a fixed
   decline reason), so tests and the simulator can ask for a given outcome;
4. anything else (other cards, including the well-known ``4242 4242 4242 4242``, and
   PayPal) is declined at random ~6 % of the time, with a seeded generator, so a demo
   run with the same seed and the same traffic declines the same payments.

The sandbox never keeps or returns a card number: only its BIN (first six digits) and
its fingerprint (:func:`card_fingerprint`: HMAC-SHA256 of the number under the shop's
secret, 16 hex digits), which is enough to see one card used again and again, or many
cards from one session, as card testing does.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import secrets
from dataclasses import dataclass
from typing import Final

from shopwatch.demo.incidents import ShopFaults

PAYMENT_METHODS: Final = ("card", "paypal")
DECLINE_REASONS: Final = ("insufficient_funds", "card_declined", "expired_card",
                          "fraud_suspected")
GATEWAY_ERROR: Final = "gateway_error"
INVALID_CARD: Final = "invalid_card"  # not a card number at all (length or Luhn check)
RANDOM_DECLINE_RATE: Final = 0.06
# Weights of the reasons of random declines (same order as DECLINE_REASONS).
_CARD_REASON_WEIGHTS: Final = (40, 35, 15, 10)
# PayPal has no expiry date: its random declines are only these.
_PAYPAL_REASONS: Final = ("insufficient_funds", "fraud_suspected")
GATEWAY_NAME: Final = "sandbox"

# Test card -> its fixed outcome (None: always approved). Numbers as in public gateway
# docs. 4242... and 5555... are not here on purpose: the simulator's shoppers pay with
# them, and their payments must see the random declines like any other card.
TEST_CARDS: Final[dict[str, str | None]] = {
    "4000000000000077": None,
    "4000000000000002": "card_declined",
    "4000000000009995": "insufficient_funds",
    "4000000000000069": "expired_card",
    "4100000000000019": "fraud_suspected",
}


@dataclass(frozen=True)
class PaymentResult:
    """The gateway's answer. ``reason`` is ``None`` when approved, else one of
    :data:`DECLINE_REASONS`, ``invalid_card`` or ``gateway_error``. Card payments carry
    ``card_bin`` and ``card_fingerprint``; PayPal payments neither."""

    method: str
    reason: str | None
    card_bin: str | None = None
    card_fingerprint: str | None = None

    @property
    def approved(self) -> bool:
        return self.reason is None


def card_digits(card_number: str) -> str | None:
    """The digits of a card number as typed (spaces and dashes allowed), or ``None``."""
    digits = card_number.replace(" ", "").replace("-", "")
    return digits if digits.isdigit() else None


def luhn_ok(digits: str) -> bool:
    """Whether ``digits`` passes the Luhn checksum every payment card number has."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def card_fingerprint(secret: bytes, digits: str) -> str:
    """A stable id of a card number that cannot be reversed without ``secret``: ``fp_``
    and the first 16 hex digits of HMAC-SHA256(secret, digits). Keyed, because a plain
    hash of a 16-digit number is reversed by hashing every possible number. The prefix:
    about one digest in 20,000 is all decimal digits that pass the Luhn check, which the
    ingest API refuses as a card number."""
    return "fp_" + hmac.new(secret, digits.encode(), hashlib.sha256).hexdigest()[:16]


class PaymentSandbox:
    """The gateway of one demo shop: seeded declines, faults read live.

    ``card_secret`` keys the card fingerprints (the shop's secret: the same card has the
    same fingerprint as long as the secret is kept); a random one if ``None``.
    """

    def __init__(self, faults: ShopFaults, seed: int = 0,
                 card_secret: bytes | None = None) -> None:
        self._faults = faults
        self._rng = random.Random(seed)
        self._card_secret = card_secret if card_secret else secrets.token_bytes(32)

    def fingerprint(self, digits: str) -> str:
        """The card's :func:`card_fingerprint` under this shop's secret."""
        return card_fingerprint(self._card_secret, digits)

    def charge(self, method: str, digits: str | None, amount: int) -> PaymentResult:
        """Try to take ``amount`` cents by ``method`` (``card`` needs ``digits``).

        Raises ``ValueError`` for an unknown method, a card payment without digits or an
        amount that is not positive: the shop checks its form before charging.
        """
        if method not in PAYMENT_METHODS:
            raise ValueError(f"unknown payment method {method!r}")
        if amount <= 0:
            raise ValueError("amount must be positive")
        if method == "paypal":
            if self._faults.gateway_errors:
                return PaymentResult(method, GATEWAY_ERROR)
            return PaymentResult(method, self._random_decline(_PAYPAL_REASONS, None))
        if not digits or not digits.isdigit():
            raise ValueError("a card payment needs the card's digits")
        card_bin, fingerprint = digits[:6], self.fingerprint(digits)
        if self._faults.gateway_errors:
            reason: str | None = GATEWAY_ERROR
        elif not (12 <= len(digits) <= 19 and luhn_ok(digits)):
            reason = INVALID_CARD
        elif digits in TEST_CARDS:
            reason = TEST_CARDS[digits]
        else:
            reason = self._random_decline(DECLINE_REASONS, _CARD_REASON_WEIGHTS)
        return PaymentResult(method, reason, card_bin, fingerprint)

    def _random_decline(self, reasons: tuple[str, ...],
                        weights: tuple[int, ...] | None) -> str | None:
        if self._rng.random() >= RANDOM_DECLINE_RATE:
            return None
        return self._rng.choices(reasons, weights=weights)[0]
