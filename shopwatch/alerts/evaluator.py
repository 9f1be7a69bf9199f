"""Evaluating alert rules: read each rule's series, advance its alert, notify.

Contract (docs/alerts.md, "Lifecycle"):

- :meth:`Evaluator.evaluate` takes every enabled rule from its source, reads the rule's
  value over ``[now - window, now)`` through ``read`` (a seam: the server passes
  :mod:`shopwatch.analytics.alert_series`; ``None`` is no data, and so is a count of 0
  for a ``no_data`` rule), advances the rule's
  alert with :func:`shopwatch.alerts.lifecycle.advance`, stores it
  (:mod:`shopwatch.store.alerts`), and on ``firing``, ``renotify`` (sent as a
  ``reminder``) and ``resolved`` notifies the rule's channels (by name, in the rule's
  project) through the outbox, which delivers and retries.
- One alert per rule and project, so a storm of breaching evaluations of one rule is one
  notification: deduplication is the lifecycle's (``for``, hysteresis, ``renotify``).
- **Incidents** (:mod:`shopwatch.store.incidents`): a firing alert (not ``info``) opens
  an incident or joins the project's open one detected less than ``incident_window``
  before; when the incident's last alert resolves, the incident
  resolves and ``impact`` estimates what it cost (stored with it).
- **Grouping** (docs/alerts.md, "Grouping"): the notifications of one pass are grouped
  per project, event and channel into one message; an alert that fires into an incident
  notified less than ``group_interval`` ago is held and told with the others that joined
  at the first pass after the interval. The last ``resolved`` of an incident says how
  long it lasted and what it cost.
- A rule naming a channel the project does not have still alerts (the alert is stored
  and shown); the missing name is logged once per evaluation.
- **Maintenance windows and silences mute notifications** (:mod:`shopwatch.store.
  maintenance`, :mod:`shopwatch.store.silences`, the latter for matching rules only):
  while one of the project's windows is open, alerts are still evaluated and stored, but
  nothing is sent. An alert that fired during the window notifies ``firing`` at the
  first evaluation after it, if it is still firing; one that fired and resolved within
  the window is never told; a ``resolved`` is sent only for an alert whose firing was.
- A rule whose reading fails (a bad filter, the store busy) is skipped this turn and
  logged; the others go on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any, Final

from shopwatch.alerts.channels.base import Notification
from shopwatch.alerts.lifecycle import Reading, State, advance
from shopwatch.alerts.rules import Rule
from shopwatch.periodic import Periodic
from shopwatch.store import alerts as store
from shopwatch.store import channels as channel_store
from shopwatch.store import incidents
from shopwatch.store.incidents import Incident
from shopwatch.store.silences import silenced
from shopwatch.store.state import StateStore

log = logging.getLogger(__name__)

# (project id, rule, start us, end us) -> the rule's value, or None for no data.
Read = Callable[[int, Rule, int, int], float | None]
# The rules to evaluate: (project id, rule).
RuleSource = Callable[[], Iterable[tuple[int, Rule]]]
Enqueue = Callable[[Notification, list[int]], object]
_EVENTS = {"firing": "firing", "renotify": "reminder", "resolved": "resolved"}
_RANK: Final = {"info": 0, "warning": 1, "critical": 2}
GROUP_INTERVAL_S: Final = 300.0


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
        return f"no {rule.series} data for {rule.window_text}"
    if rule.kind == "monitor_down":
        return "a monitor is down" if value else "the monitors are up"
    if value is None:
        return "no data"
    if rule.kind == "anomaly":
        return f"{rule.series} {value:+.0%} against the same time of the last {rule.weeks} weeks"
    if rule.kind == "slo_burn":
        from shopwatch.alerts.objectives import describe_burn

        return describe_burn(rule, value)
    return f"{rule.series} is {value:g} ({rule.op} {rule.threshold:g} over {rule.window_text})"


@dataclass
class _Send:
    """One notification-worthy change of one rule, before grouping."""

    project_id: int
    rule: Rule
    event: str  # firing | renotify | resolved
    value: float | None
    stored: store.StoredAlert | None
    incident: Incident | None = None
    incident_resolved: bool = False


class Evaluator:
    """See the module docstring. ``link(project_id, rule)`` is the dashboard URL a
    notification points to, ``incident_link(project_id, incident_id)`` the URL of an
    incident; ``impact(incident, now)`` estimates an incident's business impact when it
    resolves (stored with it; ``None``: none estimated); ``group_interval`` is how long
    alerts joining a notified incident wait to be told together; ``incident_window`` how
    long after an incident was detected a firing alert still joins it."""

    def __init__(self, state: StateStore, rules: RuleSource, read: Read, enqueue: Enqueue,
                 *, clock: Callable[[], float] = time.time,
                 link: Callable[[int, str], str] = lambda project_id, rule: "",
                 incident_link: Callable[[int, int], str] | None = None,
                 impact: Callable[[Incident, float], dict[str, Any] | None] | None = None,
                 group_interval: float = GROUP_INTERVAL_S,
                 incident_window: float = incidents.JOIN_WINDOW_S) -> None:
        self.state = state
        self.rules = rules
        self.read = read
        self.enqueue = enqueue
        self.clock = clock
        self.link = link
        self.incident_link = incident_link
        self.impact = impact
        self.group_interval = group_interval
        self.incident_window = incident_window

    def evaluate(self, now: float | None = None) -> list[Outcome]:
        """Every enabled rule once, at ``now`` (the clock's time by default), then the
        notifications of this pass, grouped."""
        at = self.clock() if now is None else now
        outcomes = []
        sends: list[_Send] = []
        for project_id, rule in self.rules():
            if not rule.enabled or rule.security:  # security rules open findings instead
                continue
            try:
                outcome, send = self._one(project_id, rule, at)
            except Exception:  # one broken rule must not stop the others
                log.exception("rule %r of project %d could not be evaluated", rule.name,
                              project_id)
                continue
            outcomes.append(outcome)
            if send is not None:
                sends.append(send)
        self._dispatch(sends, at)
        return outcomes

    def _one(self, project_id: int, rule: Rule, now: float) -> tuple[Outcome, _Send | None]:
        end_us = int(now * 1_000_000)
        value = self.read(project_id, rule, end_us - int(rule.window_s * 1_000_000), end_us)
        if rule.kind == "no_data" and not value:
            value = None  # a count of 0 in the window is what "no data" means
        current = store.open_alert(self.state, project_id, rule.name)
        before = current.state() if current is not None else State()
        new, event = advance(before, Reading(now, value), rule.condition(), rule.timing())
        quiet = self.muted(project_id, now) or silenced(self.state, project_id, rule.name, now)
        # Alerts joining an incident told about moments ago wait, to be told together.
        held = not quiet and self._held(project_id, current, now)
        send = event
        if (quiet or held) and event in ("firing", "renotify"):
            send = None  # muted or held: a firing alert is told later
            if event == "firing":
                new = replace(new, notified_at=None)
        elif event == "resolved" and before.notified_at is None:
            send = None  # nobody was told it fired: no need to say it resolved
        elif (not quiet and not held and event is None and new.phase == "firing"
              and new.notified_at is None):
            send, new = "firing", replace(new, notified_at=now)  # muted or held until now
        stored = store.record(self.state, project_id, rule.name, rule.severity, new, event,
                              now, value)
        incident = None
        resolved_incident = None
        if stored is not None and stored.phase == "firing":
            incident, _ = incidents.attach(self.state, stored, now, self.incident_window)
        elif stored is not None and event == "resolved":
            resolved_incident = incidents.alert_resolved(self.state, stored, now)
            if resolved_incident is not None:
                resolved_incident = self._estimate(resolved_incident, now)
                if resolved_incident.notified_at is not None:
                    send = "resolved"  # the incident was told about: tell its end
            else:
                incident = incidents.incident_of(self.state, stored.id)
        outcome = Outcome(project_id, rule.name, value,
                          new.phase if event != "resolved" else "resolved", send)
        if send is None:
            return outcome, None
        return outcome, _Send(project_id, rule, send, value, stored,
                              resolved_incident or incident,
                              incident_resolved=resolved_incident is not None)

    def _held(self, project_id: int, current: store.StoredAlert | None, now: float) -> bool:
        """Whether a firing notification of this alert waits for the group interval: the
        project's open incident, which this alert is not yet part of, was notified less
        than ``group_interval`` ago."""
        if self.group_interval <= 0:
            return False
        incident = incidents.open_incident(self.state, project_id, now, self.incident_window)
        if incident is None or incident.notified_at is None:
            return False
        if current is not None and current.notified_at is not None:
            return False  # already told: reminders are not held
        return now - incident.notified_at < self.group_interval

    def _estimate(self, incident: Incident, now: float) -> Incident:
        if self.impact is None:
            return incident
        try:
            found = self.impact(incident, now)
        except Exception:  # an estimate must not stop the alerting
            log.exception("impact of incident %d could not be estimated", incident.id)
            return incident
        if found is None:
            return incident
        incidents.set_impact(self.state, incident.id, found, now)
        return incidents.get_incident(self.state, incident.project_id, incident.id)

    def muted(self, project_id: int, now: float) -> bool:
        """Whether one of the project's maintenance windows is open at ``now``."""
        from shopwatch.store.maintenance import list_windows, spans

        return any(a <= now < b for a, b in
                   spans(list_windows(self.state, project_id), now - 1, now + 1))

    def _dispatch(self, sends: list[_Send], now: float) -> None:
        """One notification per project, event and set of channels for this pass: a
        storm of rules firing together is one message listing them."""
        by_project: dict[int, list[_Send]] = {}
        for send in sends:
            by_project.setdefault(send.project_id, []).append(send)
        for project_id, items in by_project.items():
            # As stored after the whole pass: alerts that joined later change the title.
            fresh = {i.id: i for i in incidents.list_incidents(self.state, project_id,
                                                                since=now - 1)}
            for send in items:
                if send.incident is not None and send.incident.id in fresh:
                    send.incident = fresh[send.incident.id]
            known = {c.name: c.id for c in channel_store.list_channels(self.state, project_id)}
            per_channel: dict[tuple[str, int], list[_Send]] = {}
            for send in items:
                names = send.rule.channels or []
                missing = [n for n in names if n not in known]
                if missing:
                    log.warning("rule %r names channels the project does not have: %s",
                                send.rule.name, ", ".join(missing))
                for name in dict.fromkeys(names):
                    if name in known:
                        per_channel.setdefault((send.event, known[name]), []).append(send)
            # Channels that get the same alerts share one notification (one id).
            merged: dict[tuple[str, tuple[int, ...]], tuple[list[_Send], list[int]]] = {}
            for (event, channel_id), group in per_channel.items():
                key = (event, tuple(id(s) for s in group))
                merged.setdefault(key, (group, []))[1].append(channel_id)
            told: set[int] = set()
            for (event, _), (group, channel_ids) in merged.items():
                self.enqueue(self._notification(project_id, event, group), channel_ids)
                if event in ("firing", "renotify"):
                    told.update(s.incident.id for s in group if s.incident is not None)
            for incident_id in told:
                incidents.mark_notified(self.state, incident_id, now)

    def _notification(self, project_id: int, event: str, group: list[_Send]
                      ) -> Notification:
        verb = {"firing": "firing", "renotify": "still firing", "resolved": "resolved"}[event]
        first = group[0]
        ids = {s.incident.id for s in group if s.incident is not None}
        incident = first.incident if len(ids) == 1 else None
        lines = [describe(s.rule, s.value) if len(group) == 1
                 else f"- {s.rule.name}: {describe(s.rule, s.value)}" for s in group]
        if incident is not None:
            lines.append(self._incident_line(project_id, incident,
                                             any(s.incident_resolved for s in group)))
        url = (self.incident_link(project_id, incident.id)
               if incident is not None and self.incident_link is not None
               else self.link(project_id, first.rule.name))
        if len(group) == 1:
            rule, stored = first.rule, first.stored
            return Notification(
                project_id=project_id, event=_EVENTS[event], severity=rule.severity,
                title=f"[{verb}] {rule.name}", text="\n".join(lines), url=url,
                labels={"rule": rule.name, "kind": rule.kind, "series": rule.series or ""},
                alert=f"{rule.name}#{stored.id}" if stored is not None else rule.name,
                incident=incident.id if incident is not None else None)
        names = [s.rule.name for s in group]
        title = f"[{verb}] {len(group)} alerts: {', '.join(names)}"
        if len(title) > 150:
            title = title[:149] + "…"
        severity = max((s.rule.severity for s in group), key=lambda v: _RANK.get(v, 0))
        return Notification(
            project_id=project_id, event=_EVENTS[event], severity=severity, title=title,
            text="\n".join(lines), url=url, labels={"rules": ",".join(names)},
            incident=incident.id if incident is not None else None)

    def _incident_line(self, project_id: int, incident: Incident, resolved: bool) -> str:
        if not resolved:
            return f"Incident #{incident.id}: {incident.title}"
        text = (f"Incident #{incident.id} resolved after "
                f"{_duration(incident.mttr_s or 0.0)}")
        if incident.lost_orders is not None and incident.lost_revenue is not None:
            currency = self.state.get_project(project_id).currency
            text += (f"; estimated {incident.lost_orders:.0f} orders and "
                     f"{incident.lost_revenue:,.2f} {currency} of revenue lost")
            if incident.wasted_spend:
                text += f", {incident.wasted_spend:,.2f} {currency} of ad spend wasted"
        return text


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


class AlertLoop(Periodic):
    """Runs :meth:`Evaluator.evaluate` every ``interval`` seconds in a thread of its own
    (``shopwatch serve``), until :meth:`stop`."""

    def __init__(self, evaluator: Evaluator, interval: float) -> None:
        super().__init__(evaluator.evaluate, interval, name="shopwatch-alerts",
                         what="alert evaluation")
        self.evaluator = evaluator
