"""The tcp, dns and tls monitor kinds, against real servers on loopback started here: a
TCP listener, a small DNS server answering from a dict, and TLS servers with
self-signed certificates made for the test (one expiring in a few days, one expired,
one valid for a year). No outside network is needed."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from shopwatch.checks import tls as tls_module
from shopwatch.checks.gate import run_all, summary_lines
from shopwatch.checks.http import Context
from shopwatch.checks.kinds import KINDS, run_monitor
from shopwatch.checks.monitor import KINDS as KIND_NAMES
from shopwatch.checks.monitor import Monitor, parse_monitors, seconds
from shopwatch.checks.record import row_of
from shopwatch.checks.safety import UNRESTRICTED, AddressPolicy, resolving_to
from shopwatch.errors import ConfigError


def one(text: str) -> Monitor:
    (monitor,) = parse_monitors(f"monitors: [{text}]")
    return monitor


# --- tcp ------------------------------------------------------------------------------


class Listener:
    """A TCP listener on loopback that accepts and counts connections."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()

    def wait_accepted(self, n: int) -> int:
        """The count of accepted connections once it reaches ``n`` (or after 5 s): the
        kernel completes a connection before this thread gets to accept it."""
        deadline = time.monotonic() + 5
        while self.accepted < n and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.accepted


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_tcp_connects_with_timings(listener: Listener) -> None:
    result = run_monitor(one(f"{{name: db, kind: tcp, host: 127.0.0.1, port: {listener.port},"
                             " expect: {max_ms: 5000}}"), Context(policy=UNRESTRICTED))
    assert result.ok, result.as_dict()
    step = result.steps[0]
    assert step.url == f"127.0.0.1:{listener.port}" and step.method == "TCP"
    assert {"dns_ms", "connect_ms"} <= set(step.timings)
    # A url gives host and port; a relative one joins the base URL.
    by_url = run_monitor(one("{name: web, kind: tcp, url: /}"),
                         Context(base_url=f"http://127.0.0.1:{listener.port}",
                                 policy=UNRESTRICTED))
    assert by_url.ok and by_url.steps[0].url == f"127.0.0.1:{listener.port}"
    # A host name is resolved through the context's resolver.
    named = run_monitor(one(f"{{name: n, kind: tcp, host: db.shop.test, port: {listener.port}}}"),
                        Context(policy=UNRESTRICTED,
                                resolver=resolving_to({"db.shop.test": ["127.0.0.1"]})))
    assert named.ok, named.as_dict()
    assert listener.wait_accepted(3) == 3


def test_tcp_failures_say_why(listener: Listener) -> None:
    port = closed_port()
    refused = run_monitor(one(f"{{name: db, kind: tcp, host: 127.0.0.1, port: {port}}}"),
                          Context(policy=UNRESTRICTED))
    assert refused.failure == f"connection refused by 127.0.0.1:{port}"
    def no_such_name(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    unknown = run_monitor(one("{name: db, kind: tcp, host: nowhere.invalid, port: 5432}"),
                          Context(policy=UNRESTRICTED, resolver=no_such_name))
    assert not unknown.ok and unknown.failure is not None
    assert unknown.failure.startswith("cannot resolve nowhere.invalid")
    # The server's policy: loopback is refused, and nothing connects.
    guarded = run_monitor(one(f"{{name: db, kind: tcp, host: 127.0.0.1, port: {listener.port}}}"),
                          Context(policy=AddressPolicy()))
    assert guarded.failure is not None and guarded.failure.startswith(
        "refused: 127.0.0.1 is a loopback address")
    assert listener.accepted == 0
    allowed = run_monitor(one(f"{{name: db, kind: tcp, host: 127.0.0.1, port: {listener.port}}}"),
                          Context(policy=AddressPolicy.parse(["127.0.0.1"])))
    assert allowed.ok and listener.wait_accepted(1) == 1  # only this one


# --- dns ------------------------------------------------------------------------------


class DnsServer:
    """A UDP DNS server on loopback answering from ``zone``: (name, type) -> values;
    a name present with other types only answers NOERROR with no answer, an absent
    name NXDOMAIN. With ``silent`` it never answers."""

    def __init__(self, zone: dict[tuple[str, str], list[str]], silent: bool = False) -> None:
        self.zone = zone
        self.silent = silent
        self.queries: list[tuple[str, str]] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            query = dns.message.from_wire(data)
            question = query.question[0]
            name = question.name.to_text(omit_final_dot=True).lower()
            rdtype = dns.rdatatype.to_text(question.rdtype)
            self.queries.append((name, rdtype))
            if self.silent:
                continue
            response = dns.message.make_response(query)
            values = self.zone.get((name, rdtype))
            if values:
                response.answer.append(dns.rrset.from_text_list(
                    question.name, 300, "IN", rdtype, values))
            elif not any(n == name for n, _ in self.zone):
                response.set_rcode(dns.rcode.NXDOMAIN)
            self.sock.sendto(response.to_wire(), peer)

    def close(self) -> None:
        self.sock.close()


ZONE = {
    ("shop.test", "A"): ["203.0.113.10", "203.0.113.11"],
    ("shop.test", "AAAA"): ["2001:db8::10"],
    ("shop.test", "MX"): ["10 MX1.shop.test.", "20 mx2.shop.test."],
    ("shop.test", "TXT"): ['"v=spf1 include:_spf.mail.test ~all"'],
    ("shop.test", "NS"): ["ns1.dns.test."],
    ("www.shop.test", "CNAME"): ["shop.cdn.test."],
}


@pytest.fixture
def nameserver() -> Iterator[DnsServer]:
    server = DnsServer(ZONE)
    yield server
    server.close()


def test_dns_records_and_expected_answers(nameserver: DnsServer) -> None:
    at = f"resolver: '{nameserver.address}'"
    text = f"""
monitors:
  - {{name: a, kind: dns, host: shop.test, expected: [203.0.113.11, 203.0.113.10], {at}}}
  - {{name: aaaa, kind: dns, host: shop.test, record: AAAA, expected: "2001:DB8:0::10", {at}}}
  - {{name: mx, kind: dns, host: shop.test, record: mx, {at},
      expected: [mx1.shop.test, "20 mx2.shop.test."]}}
  - {{name: txt, kind: dns, host: shop.test, record: TXT, {at},
      expected: "v=spf1 include:_spf.mail.test ~all"}}
  - {{name: ns, kind: dns, host: shop.test, record: NS, expected: ns1.dns.test, {at}}}
  - {{name: cname, kind: dns, host: www.shop.test, record: CNAME, expected: SHOP.cdn.test., {at}}}
  - {{name: any, kind: dns, host: shop.test, {at}, expect: {{max_ms: 5000}}}}
"""
    results = {r.monitor: r for r in run_all(parse_monitors(text),
                                            Context(policy=UNRESTRICTED))}
    assert {n: r.ok for n, r in results.items()} == dict.fromkeys(results, True), \
        [r.as_dict() for r in results.values() if not r.ok]
    a = results["a"].steps[0]
    assert a.url == f"A shop.test @{nameserver.address}" and "dns_ms" in a.timings
    assert a.details["answers"] == ["203.0.113.10", "203.0.113.11"]
    assert a.details["ttl"] == 300 and a.details["nameserver"] == nameserver.address
    assert results["mx"].steps[0].details["answers"] == ["10 mx1.shop.test", "20 mx2.shop.test"]
    # The details reach the stored row (for the uptime page).
    row = row_of(results["a"], "local")
    assert row.steps is not None and row.steps[0]["details"]["answers"][0] == "203.0.113.10"
    assert row.dns_ms is not None


def test_dns_failures_say_what_is_wrong(nameserver: DnsServer) -> None:
    at = f"resolver: '{nameserver.address}'"
    text = f"""
monitors:
  - {{name: moved, kind: dns, host: shop.test, expected: 198.51.100.7, {at}}}
  - {{name: gone, kind: dns, host: old.shop.test, {at}}}
  - {{name: nomx, kind: dns, host: www.shop.test, record: MX, {at}}}
  - {{name: wrongmx, kind: dns, host: shop.test, record: MX, expected: "30 mx1.shop.test", {at}}}
"""
    results = {r.monitor: r for r in run_all(parse_monitors(text),
                                            Context(policy=UNRESTRICTED))}
    assert results["moved"].failure == ("'198.51.100.7' is not among the A answers "
                                        "(203.0.113.10, 203.0.113.11)")
    assert results["gone"].failure == "old.shop.test does not exist (NXDOMAIN)"
    assert results["nomx"].failure == "www.shop.test has no MX record"
    assert results["wrongmx"].failure is not None
    assert results["wrongmx"].failure.startswith("'30 mx1.shop.test' is not among")


def test_dns_timeout_and_the_address_policy(nameserver: DnsServer) -> None:
    silent = DnsServer({}, silent=True)
    try:
        result = run_monitor(one(f"{{name: s, kind: dns, host: shop.test, timeout: 300ms, "
                                 f"resolver: '{silent.address}'}}"), Context(policy=UNRESTRICTED))
    finally:
        silent.close()
    assert result.failure == "no answer within 0.3s"
    # The nameserver a monitor names is a target like any other: loopback is refused by
    # the server's default policy, and no query is sent.
    monitor = one(f"{{name: a, kind: dns, host: shop.test, resolver: '{nameserver.address}'}}")
    refused = run_monitor(monitor, Context(policy=AddressPolicy()))
    assert refused.failure is not None and "loopback" in refused.failure
    assert nameserver.queries == []
    allowed = run_monitor(monitor, Context(policy=AddressPolicy.parse(["127.0.0.0/8"])))
    assert allowed.ok and nameserver.queries == [("shop.test", "A")]


# --- tls ------------------------------------------------------------------------------


def make_certificate(directory: Path, *, not_before: dt.timedelta, not_after: dt.timedelta,
                     names: tuple[str, ...] = ("localhost", "shop.test"),
                     ips: tuple[str, ...] = ()) -> tuple[Path, Path]:
    """A self-signed certificate valid from now + ``not_before`` to now + ``not_after``;
    (certificate file, key file)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0]),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Shopwatch tests")])
    now = dt.datetime.now(dt.UTC)
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now + not_before).not_valid_after(now + not_after)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    stem = f"cert-{cert.serial_number:x}"
    cert_file, key_file = directory / f"{stem}.pem", directory / f"{stem}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


class TlsServer:
    """A TLS server on loopback presenting ``cert``: it completes handshakes and hangs up."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.handshakes = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.settimeout(5)
            try:
                with self.context.wrap_socket(conn, server_side=True):
                    self.handshakes += 1
            except (ssl.SSLError, OSError):
                pass  # the client refused our certificate
            finally:
                conn.close()

    def close(self) -> None:
        self.sock.close()


StartTls = Callable[..., TlsServer]


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[StartTls]:
    """Factory: ``tls_server(not_after=timedelta(days=5))`` serves a new certificate."""
    servers: list[TlsServer] = []

    def start(*, not_after: dt.timedelta,
              not_before: dt.timedelta = dt.timedelta(days=-30)) -> TlsServer:
        cert, key = make_certificate(tmp_path, not_before=not_before, not_after=not_after)
        server = TlsServer(cert, key)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def tls_monitor(port: int, extra: str = "", host: str = "127.0.0.1") -> Monitor:
    return one(f"{{name: cert, kind: tls, host: '{host}', port: {port}{extra}}}")


def test_tls_certificate_expiring_in_a_few_days_fails_with_days_left(tls_server: StartTls,
                                                                     ) -> None:
    server = tls_server(not_after=dt.timedelta(days=5, hours=1))
    result = run_monitor(tls_monitor(server.port, ", verify: false"),
                         Context(policy=UNRESTRICTED))
    assert result.failure == "certificate expires in 5 days (warn_days 14)"
    details = result.steps[0].details
    assert 5.0 < details["days_left"] < 5.05
    assert details["subject"] == "O=Shopwatch tests,CN=localhost"
    assert details["issuer"] == details["subject"]  # self-signed
    assert details["sans"] == ["localhost", "shop.test"]
    assert details["not_after"].startswith(
        (dt.datetime.now(dt.UTC) + dt.timedelta(days=5, hours=1)).date().isoformat())
    assert details["tls_version"].startswith("TLS")
    assert {"dns_ms", "connect_ms", "tls_ms"} <= set(result.steps[0].timings)
    # A lower threshold passes it; the stored row keeps days_left for the uptime page.
    relaxed = run_monitor(tls_monitor(server.port, ", verify: false, warn_days: 3"),
                          Context(policy=UNRESTRICTED))
    assert relaxed.ok, relaxed.as_dict()
    row = row_of(relaxed, "local")
    assert row.steps is not None and 5.0 < row.steps[0]["details"]["days_left"] < 5.05
    assert row.tls_ms is not None


def test_tls_expired_and_not_yet_valid_certificates_fail(tls_server: StartTls) -> None:
    expired = tls_server(not_after=dt.timedelta(days=-2))
    result = run_monitor(tls_monitor(expired.port, ", verify: false"),
                         Context(policy=UNRESTRICTED))
    assert result.failure is not None
    assert result.failure.startswith("certificate expired 2 days ago (")
    assert -2.01 < result.steps[0].details["days_left"] <= -2
    early = tls_server(not_before=dt.timedelta(days=3), not_after=dt.timedelta(days=400))
    result = run_monitor(tls_monitor(early.port, ", verify: false"), Context(policy=UNRESTRICTED))
    assert result.failure is not None
    assert result.failure.startswith("certificate is not valid before ")


def test_tls_self_signed_passes_unverified_and_fails_verified(tls_server: StartTls) -> None:
    server = tls_server(not_after=dt.timedelta(days=365))
    unverified = run_monitor(tls_monitor(server.port, ", verify: false"),
                             Context(policy=UNRESTRICTED))
    assert unverified.ok, unverified.as_dict()
    assert 364 < unverified.steps[0].details["days_left"] <= 365
    verified = run_monitor(tls_monitor(server.port), Context(policy=UNRESTRICTED))
    assert not verified.ok
    assert verified.failure is not None
    assert verified.failure.startswith("certificate not valid: self")  # "self-signed ..."
    assert verified.failure.endswith("(verify: false accepts it)")
    # What the certificate says is kept all the same.
    assert 364 < verified.steps[0].details["days_left"] <= 365


def test_tls_verified_chain_and_host_name(tls_server: StartTls, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """With the test certificate trusted (in place of the public CA bundle), a verified
    check passes for a name the certificate holds and fails for one it does not."""
    server = tls_server(not_after=dt.timedelta(days=90))
    trusted = ssl.create_default_context(cafile=next(tmp_path.glob("*.pem")))
    monkeypatch.setattr(tls_module, "ssl_context", lambda: trusted)
    context = Context(policy=UNRESTRICTED, resolver=resolving_to({"shop.test": ["127.0.0.1"]}))
    good = run_monitor(tls_monitor(server.port, host="shop.test"), context)
    assert good.ok, good.as_dict()
    mismatch = run_monitor(tls_monitor(server.port), context)  # 127.0.0.1: not in the SANs
    assert mismatch.failure is not None
    assert mismatch.failure.startswith("certificate not valid: IP address mismatch")


def test_tls_policy_and_unreachable_port(tls_server: StartTls) -> None:
    server = tls_server(not_after=dt.timedelta(days=90))
    refused = run_monitor(tls_monitor(server.port, ", verify: false"),
                          Context(policy=AddressPolicy()))
    assert refused.failure is not None and "loopback" in refused.failure
    assert server.handshakes == 0
    port = closed_port()
    down = run_monitor(tls_monitor(port, ", verify: false"), Context(policy=UNRESTRICTED))
    assert down.failure == f"connection refused by 127.0.0.1:{port}"
    plain = Listener()  # accepts and hangs up: no TLS there
    try:
        broken = run_monitor(tls_monitor(plain.port, ", verify: false"),
                             Context(policy=UNRESTRICTED))
    finally:
        plain.close()
    assert broken.failure is not None and broken.failure.startswith("TLS handshake failed")


# --- the gate, the registry, the format ------------------------------------------------


def test_every_kind_is_registered_and_the_gate_runs_them(listener: Listener,
                                                         tls_server: StartTls) -> None:
    assert set(KINDS) == set(KIND_NAMES)
    server = tls_server(not_after=dt.timedelta(days=90))
    text = f"""
monitors:
  - {{name: port, kind: tcp, host: 127.0.0.1, port: {listener.port}}}
  - {{name: cert, kind: tls, host: 127.0.0.1, port: {server.port}, verify: false}}
  - {{name: nightly export, kind: heartbeat, period: 1d, grace: 1h}}
"""
    skipped: list[tuple[str, str]] = []
    results = run_all(parse_monitors(text), Context(policy=UNRESTRICTED),
                      on_skip=lambda m, reason: skipped.append((m.name, reason)))
    assert [(r.monitor, r.kind, r.ok) for r in results] == [
        ("port", "tcp", True), ("cert", "tls", True)]
    # A heartbeat has nothing to probe: the gate skips it and says why.
    assert skipped == [("nightly export",
                        "a heartbeat is pinged by the shop's jobs; nothing to probe")]
    assert summary_lines(results[0])[1].startswith(f"      TCP 127.0.0.1:{listener.port} → —")


@pytest.mark.parametrize(("text", "error"), [
    ("{name: a, kind: tcp, host: db.shop.test}",
     "monitors[0].port: a tcp monitor with a host needs a port"),
    ("{name: a, kind: tcp}", "monitors[0].host: a tcp monitor needs a host (and port) or a url"),
    ("{name: a, kind: tcp, host: 'https://shop.test', port: 1}",
     "monitors[0].host: 'https://shop.test' is a host name or address, not a URL"),
    ("{name: a, kind: tcp, host: 'bad host', port: 1}",
     "monitors[0].host: 'bad host' is not a host name or IP address"),
    ("{name: a, kind: tcp, host: x.test, url: 'http://x.test'}",
     "monitors[0]: give host (and port) or url, not both"),
    ("{name: a, kind: tcp, url: 'redis://cache.test'}",
     "monitors[0].url: 'redis://cache.test' has no port"),
    ("{name: a, kind: tcp, host: x.test, port: 70000}", "monitors[0].port: expected int <= 65535"),
    ("{name: a, kind: tcp, host: x.test, port: 5, steps: [{name: s, url: /}]}",
     "monitors[0].steps: a tcp monitor has no steps"),
    ("{name: a, kind: tcp, host: x.test, port: 5, method: POST}",
     "monitors[0].method: a tcp monitor has no method"),
    ("{name: a, kind: tls, host: x.test, expect: {status: 200}}",
     "monitors[0].expect.status: only max_ms applies to a tls monitor"),
    ("{name: a, kind: tls, host: x.test, warn_days: -1}",
     "monitors[0].warn_days: expected int >= 0"),
    ("{name: a, kind: http, url: /, host: x.test}",
     "monitors[0].host: an http monitor has no host"),
    ("{name: a, kind: http, url: /, warn_days: 3}",
     "monitors[0].warn_days: an http monitor has no warn_days"),
    ("{name: a, kind: dns}", "monitors[0].host: a dns monitor needs the host name to look up"),
    ("{name: a, kind: dns, host: x.test, record: SRV}",
     "monitors[0].record: 'SRV' is not one of A, AAAA, CNAME, MX, TXT, NS"),
    ("{name: a, kind: dns, host: x.test, expected: [203.0.113.1, nope]}",
     "monitors[0].expected[1]: 'nope' is not an IP address"),
    ("{name: a, kind: dns, host: x.test, record: AAAA, expected: 203.0.113.1}",
     "monitors[0].expected: '203.0.113.1' is not an IPv6 address (AAAA record)"),
    ("{name: a, kind: dns, host: x.test, expected: []}",
     "monitors[0].expected: give at least one value"),
    ("{name: a, kind: dns, host: x.test, resolver: dns.google}",
     "monitors[0].resolver: 'dns.google' is not an IP address (optionally with :port)"),
    ("{name: a, kind: dns, host: x.test, resolver: '1.1.1.1:99999'}",
     "monitors[0].resolver: '1.1.1.1:99999': port 99999 is not 1-65535"),
    ("{name: a, kind: dns, host: x.test, port: 53}", "monitors[0].port: a dns monitor has no port"),
    ("{name: a, kind: heartbeat}", "monitors[0].period: a heartbeat monitor needs the period"),
    ("{name: a, kind: heartbeat, period: 5s}",
     "monitors[0].period: 5s must be at least 20s and at most 366d"),
    ("{name: a, kind: heartbeat, period: 5m, grace: soon}",
     "monitors[0].grace: 'soon' is not a duration"),
    ("{name: a, kind: heartbeat, period: 5m, retries: 2}",
     "monitors[0].retries: a heartbeat monitor has nothing to retry"),
    ("{name: a, kind: heartbeat, period: 5m, url: /}",
     "monitors[0].url: a heartbeat monitor has no url"),
    ("{name: a, kind: smtp}", "monitors[0].kind: invalid enum value 'smtp' (one of http, "
     "api_flow, browser_flow, tcp, dns, tls, heartbeat)"),
])
def test_new_fields_are_validated_with_their_place(text: str, error: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_monitors(f"monitors: [{text}]", "kinds.yml")
    assert str(caught.value).startswith(f"kinds.yml: {error}"), str(caught.value)


def test_valid_monitors_of_each_kind_and_their_targets() -> None:
    monitors = {m.name: m for m in parse_monitors("""
monitors:
  - {name: db, kind: tcp, host: db.shop.test, port: 5432}
  - {name: web, kind: tcp, url: "https://shop.test"}
  - {name: v6, kind: tls, host: "[2001:db8::1]", warn_days: 30}
  - {name: cert, kind: tls, url: /}
  - {name: mx, kind: dns, host: _dmarc.shop.test, record: TXT, resolver: "[2001:db8::53]:5353"}
  - {name: cron, kind: heartbeat, period: 1d, grace: 2h, interval: 5m}
""")}
    assert monitors["db"].target == "db.shop.test:5432"
    assert monitors["v6"].target == "[2001:db8::1]:443"
    assert monitors["web"].target == "https://shop.test"
    assert monitors["mx"].target == "TXT _dmarc.shop.test"
    assert monitors["cron"].target == "a ping every 1d (grace 2h)"
    assert monitors["cron"].period_s == 86400 and monitors["cron"].grace_s == 7200
    assert seconds("2d", "x") == 172800
