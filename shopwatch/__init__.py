"""Shopwatch: self-hosted monitoring and support for online stores."""

__version__ = "0.1.0"
