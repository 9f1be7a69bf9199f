"""Who sent a request: the shopper's address and user agent, as the shop's server sees them.

Shopwatch's security signals (docs/events.md: top-level ``ip`` and ``user_agent``) need
the address of the shopper's device, not of the last hop. A shop behind a CDN or a load
balancer sees that proxy as the peer of every request; the proxy names the client in
``X-Forwarded-For`` (``client, proxy1, proxy2``: each proxy appends the address it got
the request from).

That header is only as trustworthy as whoever wrote it: a client can send its own,
with any address in it. So a shop reads it only when the peer is one of its own proxies
(:data:`LOOPBACK`, by default: the demo shop sits on loopback behind the simulator,
which plays the CDN and sends each shopper's address), and then walks it from the right,
skipping its own proxies, to the first address none of them could vouch for. With one
proxy in front, that is the header's only (first) entry; an entry a client slipped in
before it is never taken. Any other peer, or a header that does not parse, leaves the
peer's own address. A real shop lists its CDN's or load balancer's networks instead
(``create_shop(trusted_proxies=...)``), exactly as uvicorn's ``--forwarded-allow-ips``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from shopwatch import privacy

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

LOOPBACK: Final = ("127.0.0.0/8", "::1/128")
MAX_USER_AGENT_LENGTH: Final = 512  # a longer User-Agent is cut (never dropped)


@dataclass(frozen=True)
class Requester:
    """The ``ip`` (text, as Shopwatch takes it) and ``user_agent`` of one request;
    either is ``None`` when the request does not tell it."""

    ip: str | None
    user_agent: str | None


def parse_address(text: str) -> Address | None:
    """An address as proxies write it: ``203.0.113.9``, ``2001:db8::1``, with a port
    (``203.0.113.9:51234``, ``[2001:db8::1]:443``) or brackets; ``None`` if it is not
    one (``unknown``, an obfuscated ``_hidden`` name, garbage). An IPv4 address mapped
    into IPv6 (``::ffff:203.0.113.9``) is given as the IPv4 address it is."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:  # IPv4 with a port (an IPv6 address has two or more)
        text = text.partition(":")[0]
    return privacy.parse_address(text)


def networks(specs: Iterable[str]) -> tuple[Network, ...]:
    """Networks from text (``10.0.0.0/8``, ``::1``); ``ValueError`` for a bad one."""
    return tuple(ipaddress.ip_network(spec, strict=False) for spec in specs)


def client_address(peer: str | None, forwarded_for: str,
                   trusted: tuple[Network, ...]) -> str | None:
    """The shopper's address (see the module docstring): from ``X-Forwarded-For``
    (``forwarded_for``, all of its headers joined by commas) when ``peer`` is a trusted
    proxy, else ``peer`` itself; ``None`` if neither gives an address."""
    found = parse_address(peer) if peer else None
    if found is None or not _within(found, trusted) or not forwarded_for.strip():
        return None if found is None else str(found)
    hops = [parse_address(entry) for entry in forwarded_for.split(",")]
    for hop in reversed(hops):
        if hop is None:
            break  # a hop the proxies wrote cannot be garbage: stop trusting the rest
        found = hop
        if not _within(hop, trusted):
            break
    return str(found)


def _within(address: Address, trusted: tuple[Network, ...]) -> bool:
    return any(address.version == net.version and address in net for net in trusted)


def user_agent(headers: Mapping[str, str]) -> str | None:
    """The ``User-Agent`` header, trimmed and cut to :data:`MAX_USER_AGENT_LENGTH`;
    ``None`` if absent or blank."""
    agent = headers.get("user-agent", "").strip()
    return agent[:MAX_USER_AGENT_LENGTH] or None
