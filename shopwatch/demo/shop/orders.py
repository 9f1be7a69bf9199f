"""Orders: what was bought, what was paid, refunds and cancellations (in memory).

An order's id is random (``DS-`` and ten characters), so ids from two demo runs sent to
the same Shopwatch project do not collide. Only the session that placed an order, or the
customer it belongs to, may see or change it (:meth:`Order.belongs_to`).
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Final

from shopwatch.demo.shop.cart import CartLine
from shopwatch.demo.shop.checkout import ShippingDetails, Totals

# Letters and digits without look-alikes; never 13 digits in a row, so an order id can
# never be mistaken for a card number by a scrubber.
_ID_ALPHABET: Final = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
MAX_ORDERS: Final = 100_000  # the oldest are forgotten beyond this: memory stays bounded


class OrderError(Exception):
    """An order cannot be changed that way; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class OrderLine:
    """A product as it was bought: name and price are copied, not looked up later."""

    product_id: str
    name: str
    category: str  # slug
    price: int  # cents, per piece
    quantity: int

    @property
    def total(self) -> int:
        return self.price * self.quantity


@dataclass
class Order:
    """A placed order. ``status``: ``placed``, ``partially_refunded``, ``refunded`` or
    ``cancelled``; ``refunded`` counts cents paid back so far."""

    id: str
    session_id: str
    customer_id: str | None
    lines: tuple[OrderLine, ...]
    shipping: ShippingDetails
    totals: Totals
    currency: str
    payment_method: str
    email: str | None = None  # for a guest's confirmation mail; never in events
    status: str = "placed"
    refunded: int = 0
    created: float = field(default_factory=time.time)

    @property
    def refundable(self) -> int:
        """Cents that can still be refunded (nothing once cancelled)."""
        return 0 if self.status == "cancelled" else self.totals.total - self.refunded

    def belongs_to(self, session_id: str, customer_id: str | None) -> bool:
        """Whether this session or this customer may see and change the order."""
        if self.session_id == session_id:
            return True
        return customer_id is not None and customer_id == self.customer_id


def new_order_id() -> str:
    """A fresh random order id such as ``DS-7KQ2M9XPLA``."""
    return "DS-" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(10))


class OrderBook:
    """Every order of the shop, by id, oldest first."""

    def __init__(self) -> None:
        self._orders: OrderedDict[str, Order] = OrderedDict()

    def place(self, order_id: str, session_id: str, customer_id: str | None,
              lines: list[CartLine], shipping: ShippingDetails, totals: Totals,
              currency: str, payment_method: str, email: str | None) -> Order:
        """Record a paid order made of ``lines`` (copied, so the cart can be cleared)."""
        order = Order(
            id=order_id, session_id=session_id, customer_id=customer_id,
            lines=tuple(OrderLine(line.product.id, line.product.name,
                                  line.product.category, line.product.cents,
                                  line.quantity) for line in lines),
            shipping=shipping, totals=totals, currency=currency,
            payment_method=payment_method, email=email)
        self._orders[order.id] = order
        while len(self._orders) > MAX_ORDERS:
            self._orders.popitem(last=False)
        return order

    def get(self, order_id: str) -> Order | None:
        return self._orders.get(order_id)

    def of_customer(self, customer_id: str) -> list[Order]:
        """The customer's orders, newest first."""
        return [o for o in reversed(self._orders.values()) if o.customer_id == customer_id]

    @staticmethod
    def refund(order: Order, amount: int | None) -> int:
        """Pay back ``amount`` cents (all that is left when ``None``); returns the amount.

        Raises :class:`OrderError`: 409 for a cancelled or fully refunded order, 400 for
        an amount that is not positive or more than is left.
        """
        if order.status == "cancelled":
            raise OrderError(409, "This order was cancelled; there is nothing to refund.")
        left = order.refundable
        if left <= 0:
            raise OrderError(409, "This order has been refunded in full already.")
        amount = left if amount is None else amount
        if amount <= 0 or amount > left:
            raise OrderError(400, "The refund must be more than zero and at most what is "
                                  "left to refund.")
        order.refunded += amount
        order.status = "refunded" if order.refunded == order.totals.total \
            else "partially_refunded"
        return amount

    @staticmethod
    def cancel(order: Order) -> None:
        """Cancel an order nothing has been refunded of; :class:`OrderError` (409) if not."""
        if order.status != "placed":
            raise OrderError(409, f"An order that is {order.status.replace('_', ' ')} "
                                  "cannot be cancelled.")
        order.status = "cancelled"
