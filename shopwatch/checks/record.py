"""A check's result as stored in the event store's ``check_results`` table: one row per
run of a monitor (per location), its steps as JSON."""

from __future__ import annotations

from typing import Any, Final

import msgspec

from shopwatch.checks.result import CheckResult

MAX_FAILURE: Final = 1024


class CheckRow(msgspec.Struct, omit_defaults=True, gc=False):
    """One stored result (``ts`` in epoch seconds: when the run started)."""

    ts: float
    monitor: str
    kind: str
    location: str
    ok: bool
    attempts: int
    duration_ms: float
    status: int | None = None
    dns_ms: float | None = None
    connect_ms: float | None = None
    tls_ms: float | None = None
    first_byte_ms: float | None = None
    transfer_ms: float | None = None
    failure: str | None = None
    steps: list[dict[str, Any]] | None = None


CHECK_COLUMNS: Final = ("project_id", "received_at", *CheckRow.__struct_fields__)


def row_of(result: CheckResult, location: str) -> CheckRow:
    """The row of a result; the timings are the first step's (a flow's steps are kept
    whole in ``steps``, and so is a single step with ``details``: a certificate's expiry,
    DNS answers, a heartbeat's last ping)."""
    first = result.steps[0] if result.steps else None
    timings = first.timings if first else {}
    failure = result.failure
    return CheckRow(
        ts=result.started_at, monitor=result.monitor, kind=result.kind, location=location,
        ok=result.ok, attempts=result.attempts, duration_ms=result.duration_ms,
        status=first.status if first else None, dns_ms=timings.get("dns_ms"),
        connect_ms=timings.get("connect_ms"), tls_ms=timings.get("tls_ms"),
        first_byte_ms=timings.get("first_byte_ms"), transfer_ms=timings.get("transfer_ms"),
        failure=failure[:MAX_FAILURE] if failure else None,
        steps=[s.as_dict() for s in result.steps]
        if len(result.steps) > 1 or any(s.details for s in result.steps) else None)
