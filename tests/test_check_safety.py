"""Outgoing requests stay out of private networks: a canary listener on loopback must
receive no connection from a refused target, whatever form the target takes."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from shopwatch.checks.safety import (
    AddressPolicy,
    Guard,
    GuardedTransport,
    TargetRefused,
    resolving_to,
)
from shopwatch.errors import ConfigError


class Canary:
    """A loopback HTTP server that counts the connections it accepts."""

    def __init__(self, redirect_to: str | None = None) -> None:
        canary = self
        self.connections = 0

        class Handler(BaseHTTPRequestHandler):
            def setup(self) -> None:
                canary.connections += 1
                super().setup()

            def do_GET(self) -> None:
                if redirect_to:
                    self.send_response(302)
                    self.send_header("Location", redirect_to)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def canary() -> Iterator[Canary]:
    c = Canary()
    yield c
    c.close()


def client(policy: AddressPolicy, mapping: dict[str, list[str]] | None = None) -> httpx.Client:
    guard = Guard(policy, resolver=resolving_to(mapping or {}))
    return httpx.Client(transport=GuardedTransport(guard), follow_redirects=True, timeout=5)


@pytest.mark.parametrize("host", [
    "127.0.0.1", "localhost", "2130706433", "0x7f000001", "127.1",
    "[::ffff:127.0.0.1]", "rebind.example",
])
def test_loopback_in_any_form_is_refused_before_connecting(canary: Canary, host: str) -> None:
    mapping = {"rebind.example": ["127.0.0.1"]}
    with client(AddressPolicy(), mapping) as http, pytest.raises(TargetRefused) as refused:
        http.get(f"http://{host}:{canary.port}/")
    assert "loopback" in str(refused.value) and "allow-lists" in str(refused.value)
    assert canary.connections == 0


def test_octal_dotted_forms_never_connect(canary: Canary) -> None:
    # httpx itself refuses a dotted form that is not plain decimal.
    with client(AddressPolicy()) as http, pytest.raises(httpx.InvalidURL):
        http.get(f"http://0177.0.0.1:{canary.port}/")
    assert canary.connections == 0


@pytest.mark.parametrize("address", ["10.1.2.3", "192.168.0.10", "172.16.5.4", "169.254.169.254",
                                     "100.64.0.1", "fd00:ec2::254", "::1", "0.0.0.0",
                                     "224.0.0.1", "::ffff:10.0.0.1"])
def test_private_link_local_metadata_and_shared_addresses_are_refused(address: str) -> None:
    reason = AddressPolicy().refusal("target.example", address)
    assert reason is not None and reason.startswith("refused: target.example (")


def test_global_addresses_are_allowed() -> None:
    policy = AddressPolicy()
    assert policy.refusal("example.com", "93.184.216.34") is None
    assert policy.refusal("example.com", "2606:2800:220:1:248:1893:25c8:1946") is None
    assert policy.refusal("x", "::ffff:93.184.216.34") is None


def test_redirect_to_a_private_address_is_refused(canary: Canary) -> None:
    # The first hop is allowed (its name is allow-listed); it redirects to the canary.
    hop = Canary(redirect_to=f"http://127.0.0.1:{canary.port}/secret")
    try:
        policy = AddressPolicy.parse(["shop.internal"])
        with client(policy, {"shop.internal": ["127.0.0.1"]}) as http, \
                pytest.raises(TargetRefused):
            http.get(f"http://shop.internal:{hop.port}/")
        assert hop.connections == 1
        assert canary.connections == 0
    finally:
        hop.close()


def test_dns_rebinding_gains_nothing(canary: Canary) -> None:
    # A name that resolves to a public address first and to loopback after: every
    # connection is judged on the address it really goes to.
    answers = iter([["93.184.216.34"], ["127.0.0.1"]])

    def flip(host: str, port: int) -> list[str]:
        return next(answers)

    guard = Guard(AddressPolicy(), resolver=flip)
    from shopwatch.checks.safety import vetted

    assert vetted(guard.policy, flip, "rebind.example", 80) == "93.184.216.34"
    with pytest.raises(TargetRefused):
        vetted(guard.policy, flip, "rebind.example", canary.port)
    assert canary.connections == 0


def test_allow_list_by_network_or_name_reaches_the_target(canary: Canary) -> None:
    for entries in (["127.0.0.0/8"], ["127.0.0.1"], ["shop.internal"]):
        policy = AddressPolicy.parse(entries)
        with client(policy, {"shop.internal": ["127.0.0.1"]}) as http:
            host = "shop.internal" if entries == ["shop.internal"] else "127.0.0.1"
            assert http.get(f"http://{host}:{canary.port}/").text == "ok"
    assert canary.connections == 3


def test_allow_list_entries_are_checked() -> None:
    with pytest.raises(ConfigError, match="allow-list: 'not a host!'"):
        AddressPolicy.parse(["not a host!"])
    assert AddressPolicy.parse([" 10.0.0.0/8 ", "", "Shop.Internal."]).hosts == {"shop.internal"}


def test_unresolvable_names_fail_as_connection_errors() -> None:
    with client(AddressPolicy()) as http, pytest.raises(httpx.ConnectError):
        http.get("http://does-not-exist.invalid/")
    assert socket.AF_INET  # the system resolver was used
