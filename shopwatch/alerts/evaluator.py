"""Evaluating alert rules: read each rule's series, advance its alert, notify.

Contract (docs/alerts.md, "Lifecycle"):

- :meth:`Evaluator.evaluate` takes every enabled rule from its source, reads the rule's
  value over ``[now - window, now)`` through ``read`` (a seam: the server passes
  :mod:`shopwatch.analytics.alert_series`; ``None`` is no data, and so is a count of 0
  for a ``no_data`` rule), advances the rule's
  alert with :func:`shopwatch.alerts.lifecycle.advance`, stores it
  (:mod:`shopwatch.store.alerts`), and on ``firing``, ``renotify`` (sent as a
  ``reminder``) and ``resolved`` enqueues one notification to each of the rule's
  channels (by name, in the rule's project) in the outbox, which delivers and retries.
- One alert per rule and project, so a storm of breaching evaluations is one
  notification: deduplication is the lifecycle's (``for``, hysteresis, ``renotify``).
- A rule naming a channel the project does not have still alerts (the alert is stored
  and shown); the missing name is logged once per evaluation.
- **Maintenance windows mute notifications** (:mod:`shopwatch.store.maintenance`): while
  one of the project's windows is open, alerts are still evaluated and stored, but
  nothing is sent. An alert that fired during the window notifies ``firing`` at the
  first evaluation after it, if it is still firing; one that fired and resolved within
  the window is never told; a ``resolved`` is sent only for an alert whose firing was.
- A rule whose reading fails (a bad filter, the store busy) is skipped this turn and
  logged; the others go on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from shopwatch.alerts.channels.base import Notification
from shopwatch.alerts.lifecycle import Reading, State, advance
from shopwatch.alerts.rules import Rule
from shopwatch.store import alerts as store
from shopwatch.store import channels as channel_store
from shopwatch.store.state import StateStore

log = logging.getLogger(__name__)

# (project id, rule, start us, end us) -> the rule's value, or None for no data.
Read = Callable[[int, Rule, int, int], float | None]
# The rules to evaluate: (project id, rule).
RuleSource = Callable[[], Iterable[tuple[int, Rule]]]
Enqueue = Callable[[Notification, list[int]], object]
_EVENTS = {"firing": "firing", "renotify": "reminder", "resolved": "resolved"}


@dataclass(frozen=True)
class Outcome:
    """What one rule's evaluation did (for logs and tests): ``event`` is the notification
    it sent (lifecycle names: firing, renotify, resolved), ``None`` when none (muted
    included)."""

    project_id: int
    rule: str
    value: float | None
    phase: str
    event: str | None


def describe(rule: Rule, value: float | None) -> str:
    """The reading in words, for a notification's text."""
    if rule.kind == "no_data":
        return f"no {rule.series} data for {rule.window}"
    if rule.kind == "monitor_down":
        return "a monitor is down" if value else "the monitors are up"
    if value is None:
        return "no data"
    if rule.kind == "anomaly":
        return f"{rule.series} {value:+.0%} against the same time of the last {rule.weeks} weeks"
    return f"{rule.series} is {value:g} ({rule.op} {rule.threshold:g} over {rule.window})"


class Evaluator:
    """See the module docstring. ``link(project_id, rule)`` is the dashboard URL a
    notification points to."""

    def __init__(self, state: StateStore, rules: RuleSource, read: Read, enqueue: Enqueue,
                 *, clock: Callable[[], float] = time.time,
                 link: Callable[[int, str], str] = lambda project_id, rule: "") -> None:
        self.state = state
        self.rules = rules
        self.read = read
        self.enqueue = enqueue
        self.clock = clock
        self.link = link

    def evaluate(self, now: float | None = None) -> list[Outcome]:
        """Every enabled rule once, at ``now`` (the clock's time by default)."""
        at = self.clock() if now is None else now
        outcomes = []
        for project_id, rule in self.rules():
            if not rule.enabled:
                continue
            try:
                outcomes.append(self._one(project_id, rule, at))
            except Exception:  # one broken rule must not stop the others
                log.exception("rule %r of project %d could not be evaluated", rule.name,
                              project_id)
        return outcomes

    def _one(self, project_id: int, rule: Rule, now: float) -> Outcome:
        end_us = int(now * 1_000_000)
        value = self.read(project_id, rule, end_us - int(rule.window_s * 1_000_000), end_us)
        if rule.kind == "no_data" and not value:
            value = None  # a count of 0 in the window is what "no data" means
        current = store.open_alert(self.state, project_id, rule.name)
        before = current.state() if current is not None else State()
        new, event = advance(before, Reading(now, value), rule.condition(), rule.timing())
        quiet = self.muted(project_id, now)
        send = event
        if quiet and event in ("firing", "renotify"):
            send = None  # muted: a firing alert waits for the window's end
            if event == "firing":
                new = replace(new, notified_at=None)
        elif event == "resolved" and before.notified_at is None:
            send = None  # nobody was told it fired: no need to say it resolved
        elif (not quiet and event is None and new.phase == "firing"
              and new.notified_at is None):
            send, new = "firing", replace(new, notified_at=now)  # fired while muted
        stored = store.record(self.state, project_id, rule.name, rule.severity, new, event,
                              now, value)
        if send is not None:
            self._notify(project_id, rule, send, value, stored)
        return Outcome(project_id, rule.name, value, new.phase if event != "resolved"
                       else "resolved", send)

    def muted(self, project_id: int, now: float) -> bool:
        """Whether one of the project's maintenance windows is open at ``now``."""
        from shopwatch.store.maintenance import list_windows, spans

        return any(a <= now < b for a, b in
                   spans(list_windows(self.state, project_id), now - 1, now + 1))

    def _notify(self, project_id: int, rule: Rule, event: str, value: float | None,
                stored: store.StoredAlert | None) -> None:
        names = rule.channels or []
        known = {c.name: c.id for c in channel_store.list_channels(self.state, project_id)}
        missing = [n for n in names if n not in known]
        if missing:
            log.warning("rule %r names channels the project does not have: %s", rule.name,
                        ", ".join(missing))
        ids = [known[n] for n in names if n in known]
        if not ids:
            return
        verb = {"firing": "firing", "renotify": "still firing", "resolved": "resolved"}[event]
        notification = Notification(
            project_id=project_id, event=_EVENTS[event], severity=rule.severity,
            title=f"[{verb}] {rule.name}", text=describe(rule, value),
            url=self.link(project_id, rule.name),
            labels={"rule": rule.name, "kind": rule.kind, "series": rule.series or ""},
            alert=f"{rule.name}#{stored.id}" if stored is not None else rule.name)
        self.enqueue(notification, ids)


class AlertLoop:
    """Runs :meth:`Evaluator.evaluate` every ``interval`` seconds in a thread of its own
    (``shopwatch serve``), until :meth:`stop`."""

    def __init__(self, evaluator: Evaluator, interval: float) -> None:
        self.evaluator = evaluator
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="shopwatch-alerts",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.evaluator.evaluate()
            except Exception:  # the next turn tries again
                log.exception("alert evaluation failed")
