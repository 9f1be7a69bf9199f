"""The incidents the demo can inject, and the switches the shop reads.

Two kinds: *shop faults* (:data:`FAULTS`) are states of the demo shop
(:class:`ShopFaults`, read by the shop on every request: slow checkout, payment-gateway
errors, a broken image host); *attacks* (:data:`ATTACKS`) are traffic the simulator
sends, each from its own network (:mod:`shopwatch.demo.attacks`): credential stuffing,
brute force on one account, card testing, account takeover, bot traffic and sign-up
abuse. Every incident is logged with its start, end and details
(``demo-incidents.jsonl`` in the data directory) so a user can compare what Shopwatch
shows with what happened.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

FAULTS: Final = ("slow_checkout", "gateway_errors", "image_host_down")
ATTACKS: Final = ("credential_stuffing", "brute_force", "card_testing", "account_takeover",
                  "bot_traffic", "signup_abuse")
KINDS: Final = FAULTS + ATTACKS


@dataclass
class ShopFaults:
    """What is currently broken in the demo shop (all off by default).

    - ``checkout_delay``: extra seconds every ``/checkout`` request takes;
    - ``gateway_errors``: the payment sandbox answers every payment with a gateway error;
    - ``image_host_down``: the shop's image host (``/cdn/…``) answers 503.
    """

    checkout_delay: float = 0.0
    gateway_errors: bool = False
    image_host_down: bool = False

    def clear(self) -> None:
        self.checkout_delay = 0.0
        self.gateway_errors = False
        self.image_host_down = False
