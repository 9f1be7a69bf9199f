"""A shopper's cart: products and quantities, kept in the shopper's session."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from shopwatch.demo.shop.catalogue import Product

MAX_QUANTITY: Final = 99  # per line: more is not a shopper, and keeps totals small


@dataclass
class CartLine:
    """``quantity`` of one product; ``total`` is in cents."""

    product: Product
    quantity: int

    @property
    def total(self) -> int:
        return self.product.cents * self.quantity


@dataclass
class Cart:
    """The lines of a cart, in the order products were first added."""

    lines: dict[str, CartLine] = field(default_factory=dict)

    def add(self, product: Product, quantity: int) -> int:
        """Add ``quantity`` (≥ 1) of ``product``; returns how many were really added.

        A line holds at most :data:`MAX_QUANTITY`; what would go over it is not added, so
        the caller reports the quantity that changed, not the one asked for.
        """
        if quantity < 1:
            raise ValueError("quantity must be at least 1")
        line = self.lines.setdefault(product.id, CartLine(product, 0))
        added = min(quantity, MAX_QUANTITY - line.quantity)
        line.quantity += added
        return added

    def remove(self, product_id: str) -> CartLine | None:
        """Remove the product's line; returns it, or ``None`` if it was not in the cart."""
        return self.lines.pop(product_id, None)

    def clear(self) -> None:
        self.lines.clear()

    @property
    def items(self) -> list[CartLine]:
        return list(self.lines.values())

    @property
    def subtotal(self) -> int:
        """The sum of the lines, in cents."""
        return sum(line.total for line in self.lines.values())

    @property
    def count(self) -> int:
        """How many pieces the cart holds (for the header's badge)."""
        return sum(line.quantity for line in self.lines.values())

    @property
    def is_empty(self) -> bool:
        return not self.lines
