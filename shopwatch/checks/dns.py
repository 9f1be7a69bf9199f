"""The ``dns`` monitor kind: a record of ``host`` resolves, with the ``expected`` values
among its answers.

The query goes to the monitor's ``resolver`` (an address, optionally with a port), or
to the system's nameservers (``/etc/resolv.conf``) when it has none. A resolver named in
a monitor is a target users choose, so it is judged by the address policy like any
other (:mod:`.safety`); the system's nameservers are the operator's own and are not.

Answers are compared in a normal form: addresses as ``ipaddress`` writes them, names
lower-case without the final dot, MX as ``"10 mx.shop.example"`` (or the bare exchange
name, which matches any preference), TXT as its strings joined (case kept).
"""

from __future__ import annotations

import ipaddress
import time
from typing import Any

import dns.exception
import dns.resolver

from shopwatch.checks.http import Context
from shopwatch.checks.monitor import Monitor, nameserver
from shopwatch.checks.result import CheckResult, StepResult
from shopwatch.checks.tcp import max_ms_failure


def answer_forms(record: str, rdata: Any) -> list[str]:
    """The normal forms of one answer that an expected value may match (the first is
    how the answer is shown)."""
    if record in ("A", "AAAA"):
        return [str(ipaddress.ip_address(rdata.address))]
    if record in ("CNAME", "NS"):
        return [rdata.target.to_text(omit_final_dot=True).lower()]
    if record == "MX":
        exchange = rdata.exchange.to_text(omit_final_dot=True).lower()
        return [f"{rdata.preference} {exchange}", exchange]
    return [b"".join(rdata.strings).decode("utf-8", "replace")]  # TXT


def normal(record: str, value: str) -> str:
    """An expected value in the form answers are compared in."""
    text = value.strip()
    if record in ("A", "AAAA"):
        return str(ipaddress.ip_address(text))
    if record == "TXT":
        return text
    return " ".join(text.lower().rstrip(".").split())


def _describe(exc: dns.exception.DNSException, host: str, record: str,
              timeout: float) -> str:
    if isinstance(exc, dns.resolver.NXDOMAIN):
        return f"{host} does not exist (NXDOMAIN)"
    if isinstance(exc, dns.resolver.NoAnswer):
        return f"{host} has no {record} record"
    if isinstance(exc, dns.exception.Timeout):
        return f"no answer within {timeout:g}s"
    if isinstance(exc, dns.resolver.NoNameservers):
        return f"no nameserver answered for {host}: {exc}"
    return f"{type(exc).__name__}: {exc}"


class DnsKind:
    """``kind: dns``: the record resolves, the ``expected`` values are among its answers
    (and ``expect.max_ms`` holds)."""

    def run(self, monitor: Monitor, context: Context) -> CheckResult:
        assert monitor.host is not None
        host = monitor.host.strip()
        record = (monitor.record or "A").upper()
        step = StepResult(name=monitor.name, method="DNS", url=f"{record} {host}")
        started = time.perf_counter()
        try:
            answers = self._query(monitor, context, host, record, step)
        except dns.exception.DNSException as exc:
            step.fail(_describe(exc, host, record, monitor.timeout_s))
            answers = None
        except _Refused as exc:
            step.fail(str(exc))
            answers = None
        step.duration_ms = round((time.perf_counter() - started) * 1000, 1)
        if answers is not None:
            step.details["answers"] = [forms[0] for forms in answers]
            found = {form for forms in answers for form in forms}
            expected = monitor.expected
            for value in [expected] if isinstance(expected, str) else (expected or []):
                if normal(record, value) not in found:
                    step.fail(f"{value.strip()!r} is not among the {record} answers "
                              f"({', '.join(step.details['answers'])})")
            failure = max_ms_failure(monitor, step.duration_ms)
            if failure:
                step.fail(failure)
        return CheckResult.of(monitor, [step])

    @staticmethod
    def _query(monitor: Monitor, context: Context, host: str, record: str,
               step: StepResult) -> list[list[str]]:
        if monitor.resolver is None:
            resolver = dns.resolver.Resolver()  # the system's nameservers
            step.details["nameserver"] = "system"
        else:
            address, port = nameserver(monitor.resolver)
            reason = context.policy.refusal(address, address)
            if reason is not None:
                raise _Refused(reason)
            resolver = dns.resolver.Resolver(configure=False)
            resolver.nameservers = [address]
            resolver.port = port
            step.details["nameserver"] = monitor.resolver.strip()
            step.url += f" @{monitor.resolver.strip()}"
        started = time.perf_counter()
        try:
            answer = resolver.resolve(host, record, lifetime=monitor.timeout_s, search=False)
        finally:
            step.timings["dns_ms"] = round((time.perf_counter() - started) * 1000, 1)
        if answer.rrset is not None:
            step.details["ttl"] = answer.rrset.ttl
        forms = [answer_forms(record, rdata) for rdata in answer]
        # In a stable order (an rrset has none): MX by preference, the others as text.
        return sorted(forms, key=lambda f: (int(f[0].split()[0]) if record == "MX" else 0,
                                            f[0]))


class _Refused(Exception):
    """The monitor's nameserver is outside the address policy."""
