"""What device a shopper uses, read from request headers as a shop behind a CDN would.

- ``User-Agent`` gives the category (``desktop``, ``mobile``, ``tablet``, ``bot`` or
  ``other``), the browser and the operating system, by a few regular expressions;
- ``Accept-Language`` gives the language (its first tag, e.g. ``de-DE``);
- ``CF-IPCountry`` (set by Cloudflare from the client's address) gives the country;
  the shop does not look the address up itself (it sends it, as events' ``ip``:
  :mod:`shopwatch.demo.shop.network`).

The result is the ``device`` object of Shopwatch events: only fields that could be read
are present, and each respects Shopwatch's limits (64 characters, an upper-case
two-letter country), so a strange header cannot get events rejected.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

_BOT_RE: Final = re.compile(
    r"bot\b|crawl|spider|slurp|scrapy|curl/|wget|python-|httpx|go-http|okhttp|headless", re.I)
_TABLET_RE: Final = re.compile(r"iPad|Tablet|Kindle|Silk/|Android(?!.*Mobile)", re.I)
_MOBILE_RE: Final = re.compile(r"Mobi|iPhone|iPod|Windows Phone|Opera Mini", re.I)
# First match wins: Edge and Opera UAs also name Chrome, Chrome's also names Safari.
_BROWSERS: Final = (
    ("Edge", re.compile(r"Edg(e|A|iOS)?/")),
    ("Opera", re.compile(r"OPR/|Opera")),
    ("Samsung Internet", re.compile(r"SamsungBrowser/")),
    ("Firefox", re.compile(r"Firefox/|FxiOS/")),
    ("Chrome", re.compile(r"Chrome/|CriOS/")),
    ("Safari", re.compile(r"Version/[\d.]+.*Safari/")),
)
# iPadOS and iOS UAs say "like Mac OS X", Android's say "Linux": test those first.
_SYSTEMS: Final = (
    ("iOS", re.compile(r"iPhone|iPad|iPod")),
    ("Android", re.compile(r"Android")),
    ("Windows", re.compile(r"Windows")),
    ("ChromeOS", re.compile(r"CrOS")),
    ("macOS", re.compile(r"Mac OS X|Macintosh")),
    ("Linux", re.compile(r"Linux")),
)
_LANGUAGE_RE: Final = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*")
_COUNTRY_RE: Final = re.compile(r"[A-Z]{2}")
# Cloudflare's codes that are not countries: unknown, and the Tor network.
_NOT_COUNTRIES: Final = frozenset({"XX", "T1"})


def device_category(user_agent: str) -> str:
    """``bot``, ``tablet``, ``mobile``, ``desktop``, or ``other`` for no or odd UAs."""
    if not user_agent:
        return "other"
    if _BOT_RE.search(user_agent):
        return "bot"
    if _TABLET_RE.search(user_agent):
        return "tablet"
    if _MOBILE_RE.search(user_agent):
        return "mobile"
    return "desktop" if user_agent.startswith("Mozilla/") else "other"


def _first_match(patterns: tuple[tuple[str, re.Pattern[str]], ...], text: str) -> str:
    for name, pattern in patterns:
        if pattern.search(text):
            return name
    return "Other"


def language(accept_language: str) -> str | None:
    """The first language tag of an ``Accept-Language`` header (``de-DE``), if valid."""
    first = accept_language.split(",")[0].split(";")[0].strip()
    if first and len(first) <= 35 and _LANGUAGE_RE.fullmatch(first):
        return first
    return None


def country(cf_ipcountry: str) -> str | None:
    """The ISO 3166-1 code from ``CF-IPCountry``, or ``None`` if unknown or invalid."""
    code = cf_ipcountry.strip().upper()
    if _COUNTRY_RE.fullmatch(code) and code not in _NOT_COUNTRIES:
        return code
    return None


def describe_device(headers: Mapping[str, str]) -> dict[str, str]:
    """The ``device`` object for a request with these headers (case-insensitive)."""
    ua = headers.get("user-agent", "")
    device = {
        "category": device_category(ua),
        "browser": _first_match(_BROWSERS, ua),
        "os": _first_match(_SYSTEMS, ua),
    }
    lang = language(headers.get("accept-language", ""))
    if lang:
        device["language"] = lang
    code = country(headers.get("cf-ipcountry", ""))
    if code:
        device["country"] = code
    return device
