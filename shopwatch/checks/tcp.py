"""The ``tcp`` monitor kind: a TCP connection opens within the timeout.

The connection goes through the address policy like every connection the server makes
(:func:`~shopwatch.checks.safety.vetted`: resolve, judge, connect to exactly the judged
address); nothing is sent on it, and it is closed at once. Timings: ``dns_ms`` and
``connect_ms``. :func:`endpoint` and :func:`open_connection` are shared with ``tls``.
"""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

import httpcore

from shopwatch.checks.http import Context, absolute
from shopwatch.checks.monitor import Monitor, check_host
from shopwatch.checks.result import CheckResult, StepResult
from shopwatch.checks.safety import TargetRefused, vetted
from shopwatch.errors import ConfigError

_SCHEME_PORTS = {"http": 80, "https": 443}


class Unreachable(Exception):
    """The target could not be reached; the message says why, for the result."""


def endpoint(monitor: Monitor, context: Context, default_port: int | None) -> tuple[str, int]:
    """``(host, port)`` of a tcp or tls monitor: its ``host`` and ``port`` (else
    ``default_port``), or its ``url``'s (joined to the base URL when relative; the port
    of the URL, else ``default_port``, else the scheme's). ValueError when there is none."""
    if monitor.host is not None:
        try:
            host = check_host(monitor.host, "host")
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        port = monitor.port or default_port
        if port is None:
            raise ValueError("no port")
        return host, port
    if monitor.url is None:
        raise ValueError("no host and no url")
    parts = urlsplit(absolute(monitor.url, context.base_url))
    if not parts.hostname:
        raise ValueError(f"{monitor.url!r} has no host")
    port = parts.port or default_port or _SCHEME_PORTS.get(parts.scheme)
    if port is None:
        raise ValueError(f"{monitor.url!r} has no port")
    return parts.hostname, port


def hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def open_connection(context: Context, host: str, port: int, timeout: float,
                    timings: dict[str, float]) -> socket.socket:
    """A TCP connection to ``host``'s first address the policy allows, its DNS and
    connect times written into ``timings``; :class:`Unreachable` saying why not."""
    def resolved(seconds: float) -> None:
        timings["dns_ms"] = round(seconds * 1000, 1)

    try:
        address = vetted(context.policy, context.resolver, host, port, resolved)
    except (TargetRefused, httpcore.ConnectError) as exc:
        raise Unreachable(str(exc)) from None
    shown = hostport(host, port) if host == address else f"{hostport(host, port)} ({address})"
    started = time.perf_counter()
    try:
        sock = socket.create_connection((address, port), timeout=timeout)
    except TimeoutError:
        raise Unreachable(f"timed out connecting to {shown} after {timeout:g}s") from None
    except ConnectionRefusedError:
        raise Unreachable(f"connection refused by {shown}") from None
    except OSError as exc:
        raise Unreachable(f"cannot connect to {shown}: {exc.strerror or exc}") from None
    timings["connect_ms"] = round((time.perf_counter() - started) * 1000, 1)
    return sock


def max_ms_failure(monitor: Monitor, duration_ms: float) -> str | None:
    """The ``expect.max_ms`` failure of the tcp, dns and tls kinds, if any."""
    limit = monitor.expect.max_ms if monitor.expect is not None else None
    if limit is not None and duration_ms > limit:
        return f"took {duration_ms:.0f} ms, more than max_ms {limit:g}"
    return None


class TcpKind:
    """``kind: tcp``: the connection opens (and ``expect.max_ms`` holds)."""

    def run(self, monitor: Monitor, context: Context) -> CheckResult:
        step = StepResult(name=monitor.name, method="TCP")
        started = time.perf_counter()
        try:
            host, port = endpoint(monitor, context, None)
            step.url = hostport(host, port)
            open_connection(context, host, port, monitor.timeout_s, step.timings).close()
        except (Unreachable, ValueError) as exc:
            step.fail(str(exc))
        step.duration_ms = round((time.perf_counter() - started) * 1000, 1)
        if step.ok:
            failure = max_ms_failure(monitor, step.duration_ms)
            if failure:
                step.fail(failure)
        return CheckResult.of(monitor, [step])
