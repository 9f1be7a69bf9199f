"""The monitor kinds, one small class each, registered by name; and running one monitor
with its retries."""

from __future__ import annotations

from typing import Final, Protocol

from shopwatch.checks.api_flow import ApiFlowKind
from shopwatch.checks.browser_flow import BrowserFlowKind
from shopwatch.checks.dns import DnsKind
from shopwatch.checks.heartbeat import HeartbeatKind
from shopwatch.checks.http import Context, HttpKind
from shopwatch.checks.monitor import Monitor
from shopwatch.checks.result import CheckResult
from shopwatch.checks.tcp import TcpKind
from shopwatch.checks.tls import TlsKind


class Kind(Protocol):
    def run(self, monitor: Monitor, context: Context) -> CheckResult:
        """Run the monitor once; never raise for the target's failures."""
        ...


# heartbeat: the scheduler judges its pings (heartbeat.evaluate); run directly, as by
# the pre-release gate, it has nothing to probe and says so.
KINDS: Final[dict[str, Kind]] = {"http": HttpKind(), "api_flow": ApiFlowKind(),
                                 "browser_flow": BrowserFlowKind(),
                                 "tcp": TcpKind(), "dns": DnsKind(), "tls": TlsKind(),
                                 "heartbeat": HeartbeatKind()}


def run_monitor(monitor: Monitor, context: Context) -> CheckResult:
    """Run ``monitor``, again up to ``retries`` times while it fails; the last run is the
    result, with ``attempts`` saying how many there were."""
    attempts = 0
    while True:
        attempts += 1
        result = KINDS[monitor.kind].run(monitor, context)
        if result.ok or attempts > monitor.retries:
            result.attempts = attempts
            return result
