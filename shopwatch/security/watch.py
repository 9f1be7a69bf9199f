"""Running the security detections: findings filed, then told through the channels.

Contract (docs/security.md, "Findings" and "Rules"):

- :meth:`Watch.run` runs, for every project, each detection kind once over
  ``[now - window, now)``: the project's own rules of that kind (``rules:`` in the
  monitors' files, :mod:`shopwatch.alerts.rules`) when it has any, else the kind's
  built-in rule (:func:`builtin_rules`: default parameters, window and severity; it
  notifies every channel of the project). A disabled rule turns its kind off.
- Each candidate is filed with :func:`shopwatch.store.findings.record` (a subject's
  finding is updated while the attack goes on, never duplicated).
- **Notifications**: an open finding not yet told (new, or whose severity rose) is told
  to its rule's channels at the end of the pass, one message per project and set of
  channels (a storm of findings is one message). A finding whose rule is silenced
  (:mod:`shopwatch.store.silences`, matched on the rule's name) waits and is told when
  the silence ends, if still open; findings older than :data:`TELL_WITHIN_S` are no
  longer told. Maintenance windows do not mute findings: an attack during maintenance
  matters as much.
- One failing detection is logged and skipped; the others go on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

from shopwatch.alerts.channels.base import Notification
from shopwatch.alerts.rules import SECURITY_KINDS, Rule
from shopwatch.periodic import Periodic
from shopwatch.security.detections import DEFAULT_SEVERITY, TITLES, detect
from shopwatch.store import channels as channel_store
from shopwatch.store import findings as store
from shopwatch.store.base import EventStore
from shopwatch.store.findings import Finding
from shopwatch.store.silences import silenced
from shopwatch.store.state import StateStore

log = logging.getLogger(__name__)

RuleSource = Callable[[], Iterable[tuple[int, Rule]]]
Enqueue = Callable[[Notification, list[int]], object]
TELL_WITHIN_S: Final = 86_400.0
_RANK: Final = {"info": 0, "warning": 1, "critical": 2}


def builtin_rules() -> list[Rule]:
    """The rule each kind runs with when a project has none of its own."""
    return [Rule(name=TITLES[kind].lower().replace(" pattern", ""), kind=kind,
                 severity=DEFAULT_SEVERITY[kind])  # type: ignore[arg-type]
            for kind in SECURITY_KINDS]


def effective_rules(own: Iterable[Rule]) -> list[Rule]:
    """The project's security rules: its own, and the built-in one of each kind it has
    none of."""
    mine = [r for r in own if r.security]
    kinds = {r.kind for r in mine}
    return mine + [r for r in builtin_rules() if r.kind not in kinds]


@dataclass(frozen=True)
class Outcome:
    """What one rule's run did (for logs and tests)."""

    project_id: int
    rule: str
    kind: str
    candidates: int
    created: int


class Watch:
    """See the module docstring. ``link(project_id, finding_id)`` is the dashboard URL a
    notification points to."""

    def __init__(self, state: StateStore, events: EventStore, rules: RuleSource,
                 enqueue: Enqueue, *, clock: Callable[[], float] = time.time,
                 link: Callable[[int, int], str] = lambda project_id, finding_id: "") -> None:
        self.state = state
        self.events = events
        self.rules = rules
        self.enqueue = enqueue
        self.clock = clock
        self.link = link

    def run(self, now: float | None = None) -> list[Outcome]:
        at = self.clock() if now is None else now
        own: dict[int, list[Rule]] = {}
        for project_id, rule in self.rules():
            own.setdefault(project_id, []).append(rule)
        outcomes = []
        for project in self.state.list_projects():
            rules = effective_rules(own.get(project.id, []))
            for rule in rules:
                if not rule.enabled:
                    continue
                try:
                    outcomes.append(self._one(project.id, rule, at))
                except Exception:  # one broken detection must not stop the others
                    log.exception("security rule %r of project %d failed", rule.name,
                                  project.id)
            try:
                self._tell(project.id, rules, at)
            except Exception:
                log.exception("findings of project %d could not be told", project.id)
        return outcomes

    def _one(self, project_id: int, rule: Rule, now: float) -> Outcome:
        end_us = int(now * 1_000_000)
        start_us = end_us - int(rule.window_s * 1_000_000)
        candidates = detect(self.events, project_id, rule.kind, start_us, end_us,
                            params=rule.params, severity=rule.severity)
        created = 0
        for c in candidates:
            _, new = store.record(self.state, project_id, kind=c.kind, subject=c.subject,
                                  rule=rule.name, severity=c.severity, title=c.title,
                                  first_seen=c.first_ts, last_seen=c.last_ts,
                                  evidence=c.evidence, now=now)
            created += new
        return Outcome(project_id, rule.name, rule.kind, len(candidates), created)

    def _tell(self, project_id: int, rules: list[Rule], now: float) -> None:
        """Tell the project's open findings not yet told, grouped per set of channels."""
        waiting = [f for f in store.list_findings(self.state, project_id, status="open",
                                                  since=now - TELL_WITHIN_S)
                   if f.notified_at is None and f.severity != "info"]
        if not waiting:
            return
        by_name = {r.name: r for r in rules}
        known = {c.name: c.id for c in channel_store.list_channels(self.state, project_id)}
        groups: dict[tuple[int, ...], list[Finding]] = {}
        for finding in waiting:
            rule = by_name.get(finding.rule)
            if rule is not None and silenced(self.state, project_id, rule.name, now):
                continue
            names = (rule.channels if rule is not None and rule.channels is not None
                     else list(known))
            ids = tuple(sorted({known[n] for n in names if n in known}))
            if ids:
                groups.setdefault(ids, []).append(finding)
        for ids, group in groups.items():
            self.enqueue(self._notification(project_id, group), list(ids))
            for finding in group:
                store.mark_notified(self.state, finding.id, now)

    def _notification(self, project_id: int, group: list[Finding]) -> Notification:
        group = sorted(group, key=lambda f: (-_RANK.get(f.severity, 0), f.id))
        first = group[0]
        if len(group) == 1:
            title = f"[security] {first.title}"
            text = _describe(first)
            url = self.link(project_id, first.id)
        else:
            title = f"[security] {len(group)} findings: " + "; ".join(
                TITLES.get(f.kind, f.kind) for f in group[:5])
            text = "\n".join(f"- #{f.id} {f.title}" for f in group)
            url = self.link(project_id, 0)
        if len(title) > 150:
            title = title[:149] + "…"
        return Notification(
            project_id=project_id, event="firing", severity=first.severity, title=title,
            text=text, url=url,
            labels={"findings": ",".join(str(f.id) for f in group), "kind": first.kind,
                    "subject": first.subject if len(group) == 1 else ""},
            alert=f"finding#{first.id}" if len(group) == 1 else None)


def _describe(finding: Finding) -> str:
    ev = finding.evidence
    lines = [f"Finding #{finding.id} ({finding.severity}): {finding.title}"]
    for key, label in (("networks", "Networks"), ("accounts", "Accounts"),
                       ("user_agents", "User agents")):
        values = ev.get(key) or []
        if values:
            more = f" and {len(values) - 3} more" if len(values) > 3 else ""
            lines.append(f"{label}: {', '.join(values[:3])}{more}")
    counts = ev.get("counts") or {}
    if counts:
        lines.append("Events: " + ", ".join(f"{n} {name}" for name, n in counts.items()))
    return "\n".join(lines)


class SecurityLoop(Periodic):
    """Runs :meth:`Watch.run` every ``interval`` seconds in a thread of its own
    (``shopwatch serve``), until :meth:`stop`."""

    def __init__(self, watch: Watch, interval: float) -> None:
        super().__init__(watch.run, interval, name="shopwatch-security",
                         what="security detection")
        self.watch = watch
