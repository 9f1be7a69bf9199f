"""The ``http`` monitor kind, and the one HTTP exchange every HTTP-based kind is made of.

:func:`exchange` sends one request through a guarded client (:mod:`.safety`), times its
phases — DNS, TCP connect, TLS, time to first byte, transfer — from httpcore's trace
events, and checks the response against the request's ``expect``. A check opens fresh
connections every time, as a shopper arriving would: its connect and TLS times are real.
"""

from __future__ import annotations

import json as jsonlib
import re
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Final
from urllib.parse import urljoin

import httpx

from shopwatch.checks.monitor import Expect, Monitor, Request, first_match
from shopwatch.checks.result import CheckResult, StepResult
from shopwatch.checks.safety import (
    AddressPolicy,
    Guard,
    GuardedTransport,
    Resolver,
    TargetRefused,
    system_resolver,
)

USER_AGENT: Final = "Shopwatch-Check/1 (+https://github.com/shopwatch)"
# Sent with every check request, so the shop can leave synthetic traffic out of its
# analytics (docs/monitors.md); a monitor's own headers may override them.
CHECK_HEADERS: Final = {"User-Agent": USER_AGENT, "X-Shopwatch-Check": "1"}
_VAR_RE: Final = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
MAX_BODY_BYTES: Final = 5 * 1024 * 1024  # read at most this much of a response


@lru_cache(maxsize=1)
def ssl_context() -> ssl.SSLContext:
    """One verifying context for every check (loading the CA store costs milliseconds)."""
    return httpx.create_ssl_context()


@dataclass
class Context:
    """What a check runs with: the base URL relative URLs join, the address policy and
    resolver, the variables a flow has extracted so far, and the directory where a
    browser flow keeps the screenshot and HTML of a failure (``None``: not kept)."""

    base_url: str | None = None
    policy: AddressPolicy = field(default_factory=AddressPolicy)
    resolver: Resolver = system_resolver
    variables: dict[str, str] = field(default_factory=dict)
    artifacts: Path | None = None

    def client(self, timeout: float) -> tuple[httpx.Client, dict[str, float]]:
        """A fresh client and the dict its DNS time is written into."""
        timings: dict[str, float] = {}

        def resolved(seconds: float) -> None:
            timings["dns_ms"] = timings.get("dns_ms", 0.0) + seconds * 1000

        guard = Guard(self.policy, resolver=self.resolver, on_resolved=resolved)
        client = httpx.Client(transport=GuardedTransport(guard, verify=ssl_context()),
                              timeout=timeout, headers=CHECK_HEADERS)
        return client, timings


def absolute(url: str, base_url: str | None) -> str:
    """``url`` joined to ``base_url`` when relative; ValueError when it cannot be."""
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", url):
        return url
    if not base_url:
        raise ValueError(f"{url!r} is relative: give --base-url (or the project's base URL)")
    return urljoin(base_url.rstrip("/") + "/", url.lstrip("/"))


def substitute(text: str, variables: Mapping[str, str], strict: bool) -> str:
    """``{name}`` replaced by the variable's value; with ``strict``, an unknown name is a
    ValueError (a URL that still holds ``{cart}`` was surely meant to be filled)."""
    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in variables:
            return variables[name]
        if strict:
            raise ValueError(f"{{{name}}} is not a variable extracted by an earlier step")
        return match.group(0)
    return _VAR_RE.sub(one, text)


def _fill(value: Any, variables: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return substitute(value, variables, strict=False)
    if isinstance(value, list):
        return [_fill(v, variables) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, variables) for k, v in value.items()}
    return value


def exchange(client: httpx.Client, dns: dict[str, float], req: Request, name: str,
             context: Context) -> tuple[StepResult, httpx.Response | None]:
    """Send ``req`` and judge the answer; never raises for the target's failures."""
    phases: dict[str, float] = {}

    def trace(event: str, info: Mapping[str, Any]) -> None:
        phases[event] = time.perf_counter()

    started = time.perf_counter()
    dns.clear()
    result = StepResult(name=name, url=req.url, method=req.method.upper())
    try:
        url = absolute(substitute(req.url, context.variables, strict=True), context.base_url)
        result.url = url
        headers = {k: substitute(v, context.variables, strict=True)
                   for k, v in (req.headers or {}).items()}
        content = substitute(req.body, context.variables, strict=False) if req.body else None
        payload = _fill(req.json, context.variables) if req.json is not None else None
        request = client.build_request(
            req.method.upper(), url, headers=headers, content=content, json=payload,
            data=_fill(req.form, context.variables) if req.form else None,
            extensions={"trace": trace})
        response = client.send(request, follow_redirects=req.follow_redirects, stream=True)
        try:
            body = b""
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_BODY_BYTES:
                    break
        finally:
            response.close()
        response._content = body  # the part read, for .text and .json() below
    except TargetRefused as exc:
        result.fail(str(exc))
        return _finish(result, started, phases, dns), None
    except (httpx.HTTPError, ValueError) as exc:
        result.fail(_describe(exc))
        return _finish(result, started, phases, dns), None
    result.status = response.status_code
    _finish(result, started, phases, dns)
    for failure in judge(req.expect, response, result.duration_ms):
        result.fail(failure)
    return result, response


def _describe(exc: Exception) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out ({type(exc).__name__})"
    if isinstance(exc, httpx.TooManyRedirects):
        return "too many redirects"
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, ValueError) else f"{type(exc).__name__}: {text}"


def _finish(result: StepResult, started: float, phases: Mapping[str, float],
            dns: Mapping[str, float]) -> StepResult:
    end = time.perf_counter()
    result.duration_ms = round((end - started) * 1000, 1)

    def span(a: str, b: str) -> float | None:
        if a in phases and b in phases:
            return round((phases[b] - phases[a]) * 1000, 1)
        return None

    timings = {"dns_ms": round(dns["dns_ms"], 1)} if "dns_ms" in dns else {}
    connect = span("connection.connect_tcp.started", "connection.connect_tcp.complete")
    if connect is not None:
        timings["connect_ms"] = round(max(0.0, connect - timings.get("dns_ms", 0.0)), 1)
    tls = span("connection.start_tls.started", "connection.start_tls.complete")
    if tls is not None:
        timings["tls_ms"] = tls
    first = span("http11.send_request_headers.started",
                 "http11.receive_response_headers.complete")
    if first is not None:
        timings["first_byte_ms"] = first
    transfer = span("http11.receive_response_body.started",
                    "http11.receive_response_body.complete")
    if transfer is not None:
        timings["transfer_ms"] = transfer
    result.timings = timings
    return result


def judge(expect: Expect | None, response: httpx.Response, duration_ms: float) -> list[str]:
    """What is wrong with ``response`` under ``expect`` (empty when nothing is)."""
    failures: list[str] = []
    status = response.status_code
    wanted = None if expect is None else expect.status
    if wanted is None:
        if not 200 <= status < 400:
            failures.append(f"status {status}, expected 2xx or 3xx")
    elif status not in (wanted if isinstance(wanted, list) else [wanted]):
        failures.append(f"status {status}, expected {wanted}")
    if expect is None:
        return failures
    text = response.text
    if expect.contains is not None and expect.contains not in text:
        failures.append(f"body does not contain {expect.contains!r}")
    if expect.not_contains is not None and expect.not_contains in text:
        failures.append(f"body contains {expect.not_contains!r}")
    if expect.regex is not None and not re.search(expect.regex, text):
        failures.append(f"body does not match /{expect.regex}/")
    if expect.not_regex is not None and re.search(expect.not_regex, text):
        failures.append(f"body matches /{expect.not_regex}/")
    for name, value in (expect.headers or {}).items():
        got = response.headers.get(name)
        if got != value:
            failures.append(f"header {name}: {got!r}, expected {value!r}")
    if expect.json:
        failures.extend(_judge_json(expect.json, text))
    if expect.max_ms is not None and duration_ms > expect.max_ms:
        failures.append(f"took {duration_ms:.0f} ms, more than max_ms {expect.max_ms:g}")
    return failures


def _judge_json(paths: Mapping[str, Any], text: str) -> list[str]:
    try:
        document = jsonlib.loads(text)
    except ValueError:
        return ["body is not JSON"]
    failures = []
    for path, value in paths.items():
        found, got = first_match(path, document)
        if not found:
            failures.append(f"{path}: not found")
        elif got != value:
            failures.append(f"{path}: {got!r}, expected {value!r}")
    return failures


class HttpKind:
    """``kind: http``: one request, judged."""

    def run(self, monitor: Monitor, context: Context) -> CheckResult:
        client, dns = context.client(monitor.timeout_s)
        with client:
            step, _ = exchange(client, dns, monitor.request(), monitor.name, context)
        return CheckResult.of(monitor, [step])
