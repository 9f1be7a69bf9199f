"""Sending scheduled reports: what is due, once, and retried when the SMTP server fails.

Contract (docs/reports.md, "Schedules"):

- :meth:`Reporter.send_due` looks at every enabled schedule of every project. A schedule
  is due for at most one period at a time (:func:`shopwatch.reports.periods.due`): the
  latest one whose sending time has passed and that was neither sent nor given up. It is
  claimed (:func:`shopwatch.store.reports.claim`: one worker, one attempt), its report
  gathered, rendered (HTML body, PDF) and e-mailed, and recorded as sent.
- A failed attempt is retried after :data:`RETRY_AFTER_S` (5 min, 15 min, 1 h, 3 h); the
  period is given up after :data:`~shopwatch.store.reports.MAX_ATTEMPTS` attempts or at
  once when retrying cannot help (the SMTP server refused every recipient), with the
  reason in ``last_error``. A newer period replaces one still being retried.
- A crash between the SMTP server accepting the e-mail and the schedule being marked
  sent sends it again after the claim's lease (:data:`LEASE_S`): at least once, not
  exactly once (no mail protocol offers more).
- :meth:`Reporter.send_now` sends a schedule's latest period at once, without changing
  its bookkeeping (a test, or an extra copy).
- :class:`ReportLoop` runs :meth:`Reporter.send_due` every ``reports_interval`` seconds
  in a thread of its own in ``shopwatch serve``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Final
from zoneinfo import ZoneInfo

from shopwatch.alerts.channels.base import ChannelError, Environment
from shopwatch.periodic import Periodic
from shopwatch.reports import content, mail, render
from shopwatch.reports.periods import Period, due, latest
from shopwatch.store import reports as store
from shopwatch.store.base import EventStore
from shopwatch.store.state import StateStore

log = logging.getLogger(__name__)

RETRY_AFTER_S: Final = (300.0, 900.0, 3600.0, 3 * 3600.0)
LEASE_S: Final = 900.0  # longer than gathering, rendering and sending one report takes
US: Final = 1_000_000


@dataclass(frozen=True)
class Outcome:
    """What one schedule's turn did: ``sent``, or the ``error`` (``given_up`` when the
    period will not be tried again)."""

    schedule: str
    project_id: int
    period: str
    sent: bool
    error: str | None = None
    given_up: bool = False


class Reporter:
    """See the module docstring; ``clock`` is the seam tests move, ``draw`` makes the
    HTML and PDF (:func:`shopwatch.reports.render.render`)."""

    def __init__(self, events: EventStore, state: StateStore, env: Environment, *,
                 clock: Callable[[], float] = time.time,
                 draw: Callable[[dict[str, Any]], render.Rendered] = render.render) -> None:
        self.events = events
        self.state = state
        self.env = env
        self.clock = clock
        self.draw = draw  # render.render; tests that only count e-mails skip Chromium

    def deliver(self, schedule: store.Schedule, period: Period, now: float) -> None:
        """Gather, render and e-mail ``schedule``'s report of ``period``; ChannelError
        when it was not sent."""
        project = self.state.get_project(schedule.project_id)
        report = content.gather(self.events, self.state, project, schedule.audience, period,
                                now=now)
        rendered = self.draw(report)
        mail.send(self.env.smtp, self.env.timeout, report, rendered, schedule.recipients)

    def send_now(self, schedule: store.Schedule) -> Period:
        """E-mail the schedule's latest complete period now (its bookkeeping unchanged);
        the period sent. ChannelError when it was not sent."""
        now = self.clock()
        project = self.state.get_project(schedule.project_id)
        period = latest(schedule.period, ZoneInfo(project.timezone), int(now * US))
        self.deliver(schedule, period, now)
        return period

    def send_due(self, now: float | None = None) -> list[Outcome]:
        """Every due schedule's report, once (module docstring)."""
        at = self.clock() if now is None else now
        outcomes = []
        projects = {p.id: p for p in self.state.list_projects()}
        for schedule in store.list_schedules(self.state):
            project = projects.get(schedule.project_id)
            if project is None:
                continue
            outcome = self.send_if_due(schedule, project.timezone, at)
            if outcome is not None:
                outcomes.append(outcome)
        return outcomes

    def send_if_due(self, schedule: store.Schedule, timezone: str, now: float
                    ) -> Outcome | None:
        """Send ``schedule``'s due period, if any and if this worker wins the claim."""
        if not schedule.enabled:
            return None
        period = due(schedule.period, schedule.hour, ZoneInfo(timezone), int(now * US),
                     int(schedule.created_at * US), schedule.last_sent_for)
        if period is None:
            return None
        claimed = store.claim(self.state, schedule, now, LEASE_S)
        if claimed is None:
            return None  # another worker has it, or a failed attempt waits for its retry
        return self._attempt(claimed, period, now)

    def _attempt(self, claimed: store.Schedule, period: Period, now: float) -> Outcome:
        # A retry of an older period counts from zero for a newer one.
        attempts = claimed.attempts if claimed.last_error and claimed.last_error.startswith(
            f"{period.key}:") else 0
        try:
            self.deliver(claimed, period, now)
        except Exception as exc:  # a store, browser or SMTP failure: retried, then given up
            permanent = isinstance(exc, ChannelError) and exc.permanent
            reason = str(exc) if isinstance(exc, ChannelError) else (
                f"{type(exc).__name__}: {exc}")
            give_up = permanent or attempts + 1 >= store.MAX_ATTEMPTS
            retry_at = None if give_up else now + RETRY_AFTER_S[
                min(attempts, len(RETRY_AFTER_S) - 1)]
            store.finish(self.state, _with_attempts(claimed, attempts), period.key, now,
                         reason, retry_at)
            log.warning("report %r of project %d for %s not sent%s: %s", claimed.name,
                        claimed.project_id, period.key, " (given up)" if give_up else "",
                        reason)
            return Outcome(claimed.name, claimed.project_id, period.key, False, reason,
                           give_up)
        store.finish(self.state, claimed, period.key, now)
        return Outcome(claimed.name, claimed.project_id, period.key, True)


def _with_attempts(schedule: store.Schedule, attempts: int) -> store.Schedule:
    return replace(schedule, attempts=attempts)


class ReportLoop(Periodic):
    """Runs :meth:`Reporter.send_due` every ``interval`` seconds in a thread of its own
    (``shopwatch serve``), until :meth:`stop` (which waits up to 60 s for a report being
    rendered)."""

    def __init__(self, reporter: Reporter, interval: float) -> None:
        super().__init__(reporter.send_due, interval, name="shopwatch-reports",
                         what="sending scheduled reports")
        self.reporter = reporter

    def stop(self, timeout: float = 60.0) -> None:
        super().stop(timeout)
