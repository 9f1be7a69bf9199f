"""Which addresses Shopwatch's own outgoing requests may reach (server-side request
forgery protection).

What users configure — monitor targets, and the redirects they answer with — must not
turn Shopwatch into a way into the network it runs in. The rule: a connection is made
only to an address that is globally routable (``ipaddress``'s ``is_global``: not
loopback, private, link-local — which holds the cloud metadata address 169.254.169.254
—, shared, reserved, multicast or unspecified), unless an admin allow-lists it.

How it holds against the usual tricks: the check is made at connect time on the
*resolved* address, and the connection goes to exactly that address (:class:`Guard` is
an httpcore network backend), so a name that resolves to a public address when checked
and a private one a moment later (DNS rebinding) gains nothing; every redirect opens its
connection through the same backend; IPv4-mapped IPv6 (``::ffff:127.0.0.1``) is judged
as the IPv4 address it maps; numeric host forms (``2130706433``, ``0x7f000001``,
``127.1``) are resolved by the system resolver like any name, and judged by the address
they give.

The allow-list (:class:`AddressPolicy`) takes networks (``10.0.0.0/8``,
``127.0.0.1``) and host names (``shop.internal``: every address it resolves to is
allowed). The ``shopwatch check run`` gate runs with the operator's own authority and
uses :data:`UNRESTRICTED`.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import time
import typing
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import httpcore
import httpx

from shopwatch.errors import ShopwatchError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# (host, port) -> addresses, in the resolver's order. The seam tests use to play DNS.
Resolver = Callable[[str, int], list[str]]


class TargetRefused(ShopwatchError):
    """A connection to an address outside the policy was refused (nothing was sent)."""


def system_resolver(host: str, port: int) -> list[str]:
    """The system resolver's addresses for ``host`` (numeric forms included)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: list[str] = []
    for info in infos:
        address = str(info[4][0])
        if address not in seen:
            seen.append(address)
    return seen


def plain(address: str) -> IPAddress:
    """The address, IPv4-mapped IPv6 as the IPv4 address it maps (scope ids dropped)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _kind(ip: IPAddress) -> str:
    for name, test in (("loopback", ip.is_loopback), ("link-local", ip.is_link_local),
                       ("private", ip.is_private), ("multicast", ip.is_multicast),
                       ("unspecified", ip.is_unspecified), ("reserved", ip.is_reserved)):
        if test:
            return name
    return "not globally routable"


@dataclass(frozen=True)
class AddressPolicy:
    """Global addresses always; others only when in ``networks`` or reached through a
    name in ``hosts``. ``unrestricted`` allows everything (the operator's CLI gate)."""

    networks: tuple[IPNetwork, ...] = ()
    hosts: frozenset[str] = frozenset()
    unrestricted: bool = False
    # Who runs the checks and how to allow more, for the refusal's message.
    runner: str = ("checks run by the server reach only public addresses unless an admin "
                   "allow-lists it")

    @classmethod
    def parse(cls, entries: Iterable[str]) -> AddressPolicy:
        """From allow-list entries: networks or addresses, or host names. Raises
        :class:`~shopwatch.errors.ConfigError` for an entry that is neither."""
        from shopwatch.errors import ConfigError

        networks: list[IPNetwork] = []
        hosts: set[str] = set()
        for raw in entries:
            entry = raw.strip()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
                continue
            except ValueError:
                pass
            name = entry.lower().rstrip(".")
            if not name.replace("-", "").replace(".", "").isalnum():
                raise ConfigError(f"allow-list: {entry!r} is neither an address, a network "
                                  "(10.0.0.0/8) nor a host name")
            hosts.add(name)
        return cls(tuple(networks), frozenset(hosts))

    def refusal(self, host: str, address: str) -> str | None:
        """Why connecting to ``address`` (resolved from ``host``) is refused, or None."""
        if self.unrestricted:
            return None
        ip = plain(address)
        if ip.is_global and not ip.is_multicast:
            return None
        if host.lower().rstrip(".") in self.hosts or any(ip in net for net in self.networks):
            return None
        shown = host if host == address else f"{host} ({address})"
        return f"refused: {shown} is a {_kind(ip)} address; {self.runner}"


UNRESTRICTED = AddressPolicy(unrestricted=True)


@dataclass
class Guard(httpcore.NetworkBackend):
    """An httpcore network backend that resolves, judges and then connects to the judged
    address. ``on_resolved(seconds)`` is told how long each resolution took (the DNS
    part of a check's timing)."""

    policy: AddressPolicy
    resolver: Resolver = system_resolver
    on_resolved: Callable[[float], None] | None = None
    _inner: httpcore.NetworkBackend = field(default_factory=httpcore.SyncBackend)

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: typing.Iterable[typing.Any] | None = None
                    ) -> httpcore.NetworkStream:
        address = vetted(self.policy, self.resolver, host, port, self.on_resolved)
        return self._inner.connect_tcp(address, port, timeout, local_address, socket_options)

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: typing.Iterable[typing.Any] | None = None
                            ) -> httpcore.NetworkStream:
        raise TargetRefused("refused: unix sockets are not check targets")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def vetted(policy: AddressPolicy, resolver: Resolver, host: str, port: int,
           on_resolved: Callable[[float], None] | None = None) -> str:
    """The first address of ``host`` the policy allows; :class:`TargetRefused` naming
    the reason when it allows none, ``httpcore.ConnectError`` when the name does not
    resolve."""
    started = time.perf_counter()
    try:
        addresses = resolver(host, port)
    except (OSError, UnicodeError) as exc:
        raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from None
    finally:
        if on_resolved is not None:
            on_resolved(time.perf_counter() - started)
    if not addresses:
        raise httpcore.ConnectError(f"cannot resolve {host}: no address")
    reasons = []
    for address in addresses:
        reason = policy.refusal(host, address)
        if reason is None:
            return address
        reasons.append(reason)
    raise TargetRefused(reasons[0])


class GuardedTransport(httpx.HTTPTransport):
    """``httpx.HTTPTransport`` whose connections go through a :class:`Guard`.

    httpx offers no public way to choose the network backend, so the connection pool it
    builds is replaced by the same pool with the guard as its backend.
    """

    def __init__(self, guard: Guard, *, verify: ssl.SSLContext | bool = True,
                 retries: int = 0) -> None:
        super().__init__(verify=verify, retries=retries)
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify), retries=retries,
            network_backend=guard, max_connections=100, max_keepalive_connections=20,
            keepalive_expiry=5.0)


def resolving_to(mapping: dict[str, Sequence[str]]) -> Resolver:
    """A resolver answering from ``mapping`` (for tests and the demo), else the system's."""
    def resolve(host: str, port: int) -> list[str]:
        if host in mapping:
            return list(mapping[host])
        return system_resolver(host, port)
    return resolve
