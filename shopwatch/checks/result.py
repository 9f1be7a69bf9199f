"""What a check found: one :class:`StepResult` per request (or browser step), gathered in
a :class:`CheckResult`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from shopwatch.checks.monitor import Monitor

# The one failure of a flow's step that did not run because an earlier one failed.
SKIPPED: Final = "skipped: an earlier step failed"


@dataclass
class StepResult:
    """One request: where it went, its status, timings (ms) and what failed; ``details``
    holds what a kind found besides (a certificate's expiry, DNS answers, a heartbeat's
    last ping)."""

    name: str
    url: str = ""
    method: str = "GET"
    ok: bool = True
    status: int | None = None
    duration_ms: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def fail(self, reason: str) -> None:
        self.ok = False
        self.failures.append(reason)

    def as_dict(self) -> dict[str, Any]:
        out = {"name": self.name, "url": self.url, "method": self.method, "ok": self.ok,
               "status": self.status, "duration_ms": self.duration_ms,
               "timings": self.timings, "failures": self.failures}
        if self.details:
            out["details"] = self.details
        return out


@dataclass
class CheckResult:
    """A monitor's run: ok when every step is; ``attempts`` counts retries included."""

    monitor: str
    kind: str
    ok: bool
    duration_ms: float
    steps: list[StepResult]
    started_at: float = field(default_factory=time.time)
    attempts: int = 1

    @classmethod
    def of(cls, monitor: Monitor, steps: list[StepResult]) -> CheckResult:
        return cls(monitor.name, monitor.kind, all(s.ok for s in steps),
                   round(sum(s.duration_ms for s in steps), 1), steps)

    @property
    def failure(self) -> str | None:
        """The first failure, prefixed with its step when the check has several."""
        for step in self.steps:
            if not step.ok:
                reason = "; ".join(step.failures)
                return reason if len(self.steps) == 1 else f"step {step.name}: {reason}"
        return None

    def as_dict(self) -> dict[str, Any]:
        return {"monitor": self.monitor, "kind": self.kind, "ok": self.ok,
                "duration_ms": self.duration_ms, "attempts": self.attempts,
                "failure": self.failure, "steps": [s.as_dict() for s in self.steps]}
