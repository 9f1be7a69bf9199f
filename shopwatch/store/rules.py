"""Alert rules in the state store (``rules`` table, migration 13).

Rules are code: ``shopwatch monitors apply`` reads the ``rules:`` of the same files as
the monitors and makes the project's stored rules match them exactly (create, update,
remove). Their alerts stay when a rule changes or goes (the history is kept).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import msgspec
import sqlalchemy as sa

from shopwatch.alerts.rules import Rule
from shopwatch.store.state import StateStore, rules

_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True)
class RuleChange:
    """One line of an apply: create, update (with the fields that change), remove or keep."""

    action: Literal["create", "update", "remove", "keep"]
    name: str
    kind: str
    fields: tuple[str, ...] = ()


def list_rules(state: StateStore, project_id: int | None = None) -> list[tuple[int, Rule]]:
    """``(project id, rule)`` of one project's stored rules (or all), by project and name."""
    query = sa.select(rules.c.project_id, rules.c.spec).order_by(rules.c.project_id,
                                                                  rules.c.name)
    if project_id is not None:
        query = query.where(rules.c.project_id == project_id)
    with state.engine.connect() as conn:
        return [(int(pid), msgspec.json.decode(spec, type=Rule)) for pid, spec in
                conn.execute(query)]


def _fields(old: Rule, new: Rule) -> tuple[str, ...]:
    a, b = msgspec.to_builtins(old), msgspec.to_builtins(new)
    return tuple(sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k)))


def apply_rules(state: StateStore, project_id: int, wanted: Sequence[Rule], *,
                dry_run: bool = False) -> list[RuleChange]:
    """Make the project's rules match ``wanted`` (unless ``dry_run``); the changes, in
    name order."""
    current = {rule.name: rule for _, rule in list_rules(state, project_id)}
    changes: list[RuleChange] = []
    for rule in sorted(wanted, key=lambda r: r.name):
        old = current.get(rule.name)
        if old is None:
            changes.append(RuleChange("create", rule.name, rule.kind))
        else:
            fields = _fields(old, rule)
            changes.append(RuleChange("update" if fields else "keep", rule.name, rule.kind,
                                      fields))
    names = {r.name for r in wanted}
    changes += [RuleChange("remove", name, old.kind)
                for name, old in sorted(current.items()) if name not in names]
    if dry_run:
        return changes
    by_name = {r.name: r for r in wanted}
    now = time.time()
    with state.engine.begin() as conn:
        for change in changes:
            where = (rules.c.project_id == project_id) & (rules.c.name == change.name)
            if change.action == "create":
                conn.execute(rules.insert().values(
                    project_id=project_id, name=change.name, kind=change.kind,
                    spec=_encode(by_name[change.name]).decode(), updated_at=now))
            elif change.action == "update":
                conn.execute(rules.update().where(where).values(
                    kind=change.kind, spec=_encode(by_name[change.name]).decode(),
                    updated_at=now))
            elif change.action == "remove":
                conn.execute(rules.delete().where(where))
    return changes
