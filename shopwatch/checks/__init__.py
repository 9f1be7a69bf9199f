"""Uptime and synthetic checks: what Shopwatch itself sends to the shop (issue 7)."""
