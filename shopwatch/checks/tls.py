"""The ``tls`` monitor kind: the certificate a TLS server presents is valid and not
about to expire.

The connection goes through the address policy (:func:`.tcp.open_connection`), then a
TLS handshake with the host name as SNI. With ``verify`` (the default) the chain must
lead to a trusted CA (the same CA bundle as ``http`` checks) and the certificate must
name the host; ``verify: false`` accepts any certificate (a self-signed one on an
internal service) and still judges its dates. It fails when the certificate is invalid,
not yet valid, expired, or when fewer than ``warn_days`` days are left.

The certificate's dates, issuer, subject and names are kept in the result's
``details`` (``days_left`` among them), also when verification fails: a second,
unverified handshake reads them, so the uptime page can show what is wrong.
"""

from __future__ import annotations

import ipaddress
import math
import ssl
import time
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from cryptography import x509

from shopwatch.checks.http import Context, ssl_context
from shopwatch.checks.monitor import Monitor
from shopwatch.checks.result import CheckResult, StepResult
from shopwatch.checks.tcp import Unreachable, endpoint, hostport, max_ms_failure, open_connection

DAY_S = 86400.0


@lru_cache(maxsize=1)
def unverified_context() -> ssl.SSLContext:
    """A client context that accepts any certificate (``verify: false``)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _handshake(context: Context, host: str, port: int, timeout: float, verify: bool,
               timings: dict[str, float]) -> tuple[bytes, str]:
    """The server's certificate (DER) and the TLS version, after a handshake; raises
    :class:`Unreachable`, ``ssl.SSLError`` or ``OSError``."""
    sock = open_connection(context, host, port, timeout, timings)
    started = time.perf_counter()
    tls_context = ssl_context() if verify else unverified_context()
    try:
        with tls_context.wrap_socket(sock, server_hostname=host) as tls:
            timings["tls_ms"] = round((time.perf_counter() - started) * 1000, 1)
            der = tls.getpeercert(binary_form=True)
            version = tls.version() or ""
    finally:
        sock.close()
    if not der:
        raise ssl.SSLError("the server sent no certificate")
    return der, version


def certificate_details(der: bytes) -> dict[str, Any]:
    """What the uptime page shows of a certificate (dates in ISO 8601, UTC)."""
    cert = x509.load_der_x509_certificate(der)
    names: list[str] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [*san.get_values_for_type(x509.DNSName),
                 *(str(ip) for ip in san.get_values_for_type(x509.IPAddress))]
    except x509.ExtensionNotFound:
        pass
    return {"subject": cert.subject.rfc4514_string(), "issuer": cert.issuer.rfc4514_string(),
            "sans": names, "serial": format(cert.serial_number, "x"),
            "not_before": cert.not_valid_before_utc.isoformat(),
            "not_after": cert.not_valid_after_utc.isoformat()}


def span_days(days: float) -> str:
    """``5 days``, ``1 day``, ``7 hours``: how long ``days`` is, rounded down."""
    if days >= 1:
        whole = math.floor(days)
        return f"{whole} day{'s' if whole != 1 else ''}"
    hours = math.floor(days * 24)
    return f"{hours} hour{'s' if hours != 1 else ''}"


def judge_dates(details: dict[str, Any], warn_days: int, now: datetime) -> list[str]:
    """What is wrong with the certificate's dates; sets ``details["days_left"]``."""
    not_before = datetime.fromisoformat(details["not_before"])
    not_after = datetime.fromisoformat(details["not_after"])
    left = (not_after - now).total_seconds() / DAY_S
    details["days_left"] = round(left, 2)
    failures = []
    if not_before > now:
        failures.append(f"certificate is not valid before {not_before:%Y-%m-%d %H:%M} UTC")
    if left < 0:
        failures.append(f"certificate expired {span_days(-left)} ago "
                        f"({not_after:%Y-%m-%d %H:%M} UTC)")
    elif left < warn_days:
        failures.append(f"certificate expires in {span_days(left)} (warn_days {warn_days})")
    return failures


def _verify_failure(exc: ssl.SSLCertVerificationError) -> str:
    reason = exc.verify_message or exc.reason or str(exc)
    text = f"certificate not valid: {reason}"
    if exc.verify_code in (18, 19):  # self-signed, or a self-signed CA in the chain
        text += " (verify: false accepts it)"
    return text


class TlsKind:
    """``kind: tls``: see the module docstring."""

    def run(self, monitor: Monitor, context: Context) -> CheckResult:
        step = StepResult(name=monitor.name, method="TLS")
        started = time.perf_counter()
        try:
            host, port = endpoint(monitor, context, 443)
        except ValueError as exc:
            step.fail(str(exc))
            return CheckResult.of(monitor, [step])
        step.url = hostport(host, port)
        if ":" in host:
            host = str(ipaddress.ip_address(host))
        der: bytes | None = None
        unverified = False
        try:
            der, version = _handshake(context, host, port, monitor.timeout_s, monitor.verify,
                                      step.timings)
            step.details["tls_version"] = version
        except ssl.SSLCertVerificationError as exc:
            step.fail(_verify_failure(exc))
            unverified = True
        except Unreachable as exc:
            step.fail(str(exc))
        except TimeoutError:
            step.fail(f"timed out during the TLS handshake after {monitor.timeout_s:g}s")
        except ssl.SSLError as exc:
            step.fail(f"TLS handshake failed: {exc.reason or exc}")
        except OSError as exc:
            step.fail(f"TLS handshake failed: {exc.strerror or exc}")
        step.duration_ms = round((time.perf_counter() - started) * 1000, 1)
        if unverified:  # read what the certificate says all the same (details only)
            try:
                der, _ = _handshake(context, host, port, monitor.timeout_s, False, {})
            except (Unreachable, OSError):
                der = None
        if der is not None:
            try:
                step.details.update(certificate_details(der))
            except ValueError as exc:
                step.fail(f"cannot read the certificate: {exc}")
            else:
                dated = judge_dates(step.details, monitor.warn_days, datetime.now(UTC))
                if step.ok:  # a verification failure already says what is wrong
                    for reason in dated:
                        step.fail(reason)
        if step.ok:
            slow = max_ms_failure(monitor, step.duration_ms)
            if slow:
                step.fail(slow)
        return CheckResult.of(monitor, [step])
