"""``shopwatch check run``: the pre-release gate. Runs monitors once against a site (a
staging deploy, say), prints a per-step summary, writes JUnit XML for CI systems.

The gate runs with the operator's authority: it may target any address, private ones
included (staging sites often live on private networks). Exit status: 0 when every
monitor passed, 1 otherwise (the CLI's contract).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from shopwatch.checks.http import Context
from shopwatch.checks.kinds import run_monitor
from shopwatch.checks.monitor import Monitor
from shopwatch.checks.result import CheckResult


def run_all(monitors: Sequence[Monitor], context: Context,
            on_result: Callable[[CheckResult], None] | None = None,
            on_skip: Callable[[Monitor, str], None] | None = None) -> list[CheckResult]:
    """Each enabled monitor once (with its retries), in order. Heartbeats have nothing to
    probe (the shop's jobs call Shopwatch): they are skipped and told to ``on_skip``."""
    results = []
    for monitor in monitors:
        if not monitor.enabled:
            continue
        if monitor.kind == "heartbeat":
            if on_skip is not None:
                on_skip(monitor, "a heartbeat is pinged by the shop's jobs; nothing to probe")
            continue
        result = run_monitor(monitor, context)
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results


def summary_lines(result: CheckResult) -> list[str]:
    """A monitor's result as the terminal shows it: a line, then one per step of a flow."""
    mark = "PASS" if result.ok else "FAIL"
    retried = f", {result.attempts} attempts" if result.attempts > 1 else ""
    head = f"{mark}  {result.monitor} ({result.kind}) {result.duration_ms:.0f} ms{retried}"
    lines = [head]
    single = len(result.steps) == 1
    for step in result.steps:
        status = step.status if step.status is not None else "—"
        timing = " ".join(f"{k.removesuffix('_ms')} {v:.0f}" for k, v in step.timings.items())
        detail = f"{step.method} {step.url} → {status} in {step.duration_ms:.0f} ms"
        if timing:
            detail += f" ({timing} ms)"
        prefix = "      " if single else f"      {'ok ' if step.ok else 'ERR'} {step.name}: "
        lines.append(prefix + detail)
        for failure in step.failures:
            lines.append(f"        ✗ {failure}")
        lines.extend(_browser_lines(step.details))
    return lines


def _vitals(page: dict[str, Any]) -> str:
    parts = [f"{label} {page[key]:.0f} ms" for key, label in
             (("ttfb_ms", "TTFB"), ("fcp_ms", "FCP"), ("lcp_ms", "LCP"), ("inp_ms", "INP"))
             if page.get(key) is not None]
    if page.get("cls") is not None:
        parts.append(f"CLS {page['cls']:.3f}")
    return " · ".join(parts)


def _browser_lines(details: dict[str, Any]) -> list[str]:
    """A browser step's pages (with their Web Vitals), errors and failure artifacts."""
    lines = [f"        page {page.get('url')}: {_vitals(page)}"
             for page in details.get("pages", [])]
    for key, label in (("console_errors", "console error"), ("failed_requests",
                                                              "failed request")):
        items = details.get(key) or []
        lines.extend(f"        {label}: {item}" for item in items[:3])
        if len(items) > 3:
            lines.append(f"        … and {len(items) - 3} more {label}s")
    for key in ("screenshot", "html"):
        if details.get(key):
            lines.append(f"        {key}: {details[key]}")
    return lines


def junit(results: Sequence[CheckResult], name: str = "shopwatch checks") -> bytes:
    """JUnit XML: one test case per monitor, its failure with every step's failures."""
    failures = sum(1 for r in results if not r.ok)
    total = sum(r.duration_ms for r in results) / 1000
    suite = ET.Element("testsuite", name=name, tests=str(len(results)),
                       failures=str(failures), errors="0", time=f"{total:.3f}")
    for result in results:
        case = ET.SubElement(suite, "testcase", classname=f"monitors.{result.kind}",
                             name=result.monitor, time=f"{result.duration_ms / 1000:.3f}")
        if not result.ok:
            failure = ET.SubElement(case, "failure", message=result.failure or "failed",
                                    type="CheckFailed")
            failure.text = "\n".join(summary_lines(result))
        ET.SubElement(case, "system-out").text = "\n".join(summary_lines(result))
    suites = ET.Element("testsuites", tests=str(len(results)), failures=str(failures),
                        time=f"{total:.3f}")
    suites.append(suite)
    return bytes(ET.tostring(suites, encoding="utf-8", xml_declaration=True))


def write_junit(path: Path, results: Sequence[CheckResult]) -> None:
    path.write_bytes(junit(results))
