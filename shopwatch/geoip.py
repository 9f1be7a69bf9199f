"""Country of a client address, from a MaxMind-format database the admin provides.

Shopwatch ships no GeoIP data: with the ``geoip_database`` setting empty (the default)
no country is looked up at all. Given a ``.mmdb`` file with a ``country.iso_code`` (or
``country_code``) field per network — MaxMind GeoLite2/GeoIP2 Country or City, DB-IP
Country Lite, IPinfo — each address is looked up in memory and only the two-letter
country is kept: the address itself is never stored or logged.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import maxminddb

from shopwatch.errors import ConfigError
from shopwatch.privacy import parse_address


class CountryLookup:
    """``lookup(address)`` gives an ISO 3166-1 alpha-2 code or ``None``."""

    def __init__(self, path: str | Path) -> None:
        try:
            self._reader = maxminddb.open_database(str(path))
        except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
            raise ConfigError(f"geoip_database: cannot open {path}: {exc}") from None
        self.lookup = lru_cache(maxsize=65536)(self._lookup)

    def _lookup(self, address: str) -> str | None:
        ip = parse_address(address)
        if ip is None or not ip.is_global:
            return None
        try:
            record = self._reader.get(ip)
        except (ValueError, maxminddb.InvalidDatabaseError):
            return None
        return _country(record)

    def close(self) -> None:
        self._reader.close()


def _country(record: Any) -> str | None:
    if not isinstance(record, Mapping):
        return None
    country = record.get("country")
    code = country.get("iso_code") if isinstance(country, Mapping) else record.get(
        "country_code")
    if isinstance(code, str) and len(code) == 2 and code.isalpha():
        return code.upper()
    return None


def client_address(peer: str | None, forwarded_for: str | None) -> str | None:
    """The client's address: the peer's, or, when the peer is a proxy on this machine
    (loopback), the first address of its ``X-Forwarded-For``."""
    ip = None if peer is None else parse_address(peer)
    if ip is None:
        return None
    if ip.is_loopback and forwarded_for:
        first = forwarded_for.split(",", 1)[0].strip()
        return first or peer
    return peer
