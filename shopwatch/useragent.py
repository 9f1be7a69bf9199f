"""User-agent strings to device class, browser and operating system (ua-parser).

ua-parser's regexes cost about a millisecond per string, and a shop's visitors share a
few hundred distinct strings: answers are memoised (bounded), so the cost is paid once
per string, not once per beacon.

Device classes: ``bot`` (crawlers, monitoring and automation clients, headless
browsers), ``tablet``, ``mobile``, ``desktop``, or ``other`` (no user agent, or one
that names no browser).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from ua_parser import parse

MAX_LENGTH: Final = 512  # longer strings are cut before parsing (they are never honest)
_AUTOMATION_RE: Final = re.compile(
    r"headless|phantomjs|selenium|puppeteer|playwright|lighthouse|pingdom|uptime|"
    r"monitor|python-|httpx|curl|wget|go-http|okhttp|java/|libwww|scrapy|bot\b|spider|"
    r"crawl", re.IGNORECASE)
_TABLET_RE: Final = re.compile(r"ipad|tablet|kindle|silk|playbook|(android(?!.*mobile))",
                               re.IGNORECASE)
_MOBILE_RE: Final = re.compile(r"mobi|iphone|ipod|android|blackberry|opera mini|iemobile",
                               re.IGNORECASE)


@dataclass(frozen=True)
class Agent:
    """What a user-agent string says; ``None`` where it says nothing."""

    category: str
    browser: str | None
    browser_version: str | None
    os: str | None
    os_version: str | None


@lru_cache(maxsize=4096)
def parse_agent(user_agent: str) -> Agent:
    """The :class:`Agent` of a ``User-Agent`` header value (memoised)."""
    ua = user_agent[:MAX_LENGTH].strip()
    if not ua:
        return Agent("other", None, None, None, None)
    result = parse(ua)
    browser = result.user_agent.family if result.user_agent else None
    version = result.user_agent.major if result.user_agent else None
    os_name = result.os.family if result.os else None
    os_version = result.os.major if result.os else None
    device = result.device.family if result.device else None
    if device == "Spider" or _AUTOMATION_RE.search(ua):
        category = "bot"
    elif _TABLET_RE.search(ua):
        category = "tablet"
    elif _MOBILE_RE.search(ua):
        category = "mobile"
    elif ua.startswith("Mozilla/") and browser not in (None, "Other"):
        category = "desktop"
    else:
        category = "other"
    return Agent(category, None if browser == "Other" else browser, version,
                 None if os_name == "Other" else os_name, os_version)
