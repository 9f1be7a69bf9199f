"""The demo shop: a small, real web shop instrumented as Shopwatch asks shops to be.

It sells coffee, tea and brewing gear from an in-memory catalogue, keeps carts, accounts
and orders in memory, takes payments through a sandbox gateway, and reports what
shoppers do as Shopwatch events through a :class:`Tracker`. ``shopwatch demo`` serves it
and the simulator shops in it; :class:`~shopwatch.demo.incidents.ShopFaults` breaks it
on purpose while it runs.

Modules: ``catalogue`` (products, images), ``cart``, ``checkout`` (shipping, totals),
``orders``, ``customers``, ``payments`` (the sandbox), ``sessions`` (cookies,
attribution), ``devices`` (headers to device), ``network`` (the client's address and
user agent), ``money``, ``tracking`` (events and the RUM snippet), ``tracing``
(OpenTelemetry spans) and ``app`` (routes and pages).
"""

from shopwatch.demo.shop.app import Shop, create_shop
from shopwatch.demo.shop.tracking import BrowserTag, Tracker

__all__ = ["BrowserTag", "Shop", "Tracker", "create_shop"]
