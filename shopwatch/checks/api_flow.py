"""The ``api_flow`` monitor kind: HTTP steps in order, sharing cookies and variables.

Each step is an :func:`~shopwatch.checks.http.exchange`; a failing step ends the flow
(later steps depend on it) and the steps not run are reported as skipped. Variables a
step extracts (``extract: {cart: "$.cart_id"}``) fill ``{cart}`` in later steps' URLs,
headers and bodies; cookies set by any answer are sent with the later requests.
"""

from __future__ import annotations

import json
import re

import httpx

from shopwatch.checks.http import Context, exchange
from shopwatch.checks.monitor import Monitor, Step, first_match
from shopwatch.checks.result import SKIPPED, CheckResult, StepResult


def extract(step: Step, response: httpx.Response) -> tuple[dict[str, str], list[str]]:
    """The step's variables from ``response``, and what could not be extracted."""
    found: dict[str, str] = {}
    missing: list[str] = []
    document: object = None
    for var, spec in (step.extract or {}).items():
        value: object = None
        if spec.startswith("$"):
            if document is None:
                try:
                    document = json.loads(response.text)
                except ValueError:
                    missing.append(f"extract {var}: body is not JSON")
                    continue
            _, value = first_match(spec, document)
        elif spec.startswith("regex:"):
            match = re.search(spec[6:], response.text)
            value = (match.group(1) if match.groups() else match.group(0)) if match else None
        elif spec.startswith("header:"):
            value = response.headers.get(spec[7:])
        elif spec.startswith("cookie:"):
            value = response.cookies.get(spec[7:])
        if value is None:
            missing.append(f"extract {var}: {spec} found nothing")
        else:
            found[var] = value if isinstance(value, str) else json.dumps(value)
    return found, missing


class ApiFlowKind:
    """``kind: api_flow``."""

    def run(self, monitor: Monitor, context: Context) -> CheckResult:
        assert monitor.steps is not None
        flow = Context(context.base_url, context.policy, context.resolver,
                       dict(context.variables))
        client, dns = flow.client(monitor.timeout_s)
        results: list[StepResult] = []
        with client:
            for i, step in enumerate(monitor.steps):
                result, response = exchange(client, dns, step.request(), step.name, flow)
                results.append(result)
                if result.ok and response is not None:
                    values, missing = extract(step, response)
                    flow.variables.update(values)
                    for reason in missing:
                        result.fail(reason)
                if not result.ok:
                    for later in monitor.steps[i + 1:]:
                        skipped = StepResult(name=later.name, url=later.url or "",
                                             method=later.method.upper(), ok=False)
                        skipped.failures.append(SKIPPED)
                        results.append(skipped)
                    break
        check = CheckResult.of(monitor, results)
        return check
