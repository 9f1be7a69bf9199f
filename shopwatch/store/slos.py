"""Service level objectives in the state store (``slos`` table, migration 16).

Objectives are code, like rules: ``shopwatch monitors apply`` reads the ``slos:`` of the
same files as the monitors and makes the project's stored objectives match them
exactly (create, update, remove). Each objective's burn-rate rules
(:func:`shopwatch.alerts.objectives.burn_rules`) are derived from it, never stored:
:func:`slo_rules` makes them, and :func:`all_rules` is what the evaluator and the
Alerts page read. Their alerts stay as history when an objective changes or goes.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import msgspec
import sqlalchemy as sa

from shopwatch.alerts.objectives import Objective, burn_rules
from shopwatch.alerts.rules import Rule
from shopwatch.store.rules import list_rules
from shopwatch.store.state import StateStore, metadata

slos = sa.Table(
    "slos", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project_id", sa.Integer, sa.ForeignKey("projects.id"), nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("sli", sa.String(16), nullable=False),
    sa.Column("spec", sa.Text, nullable=False),  # the YAML objective as JSON
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.UniqueConstraint("project_id", "name"),
)

_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True)
class SloChange:
    """One line of an apply: create, update (with the fields that change), remove or keep."""

    action: Literal["create", "update", "remove", "keep"]
    name: str
    sli: str
    fields: tuple[str, ...] = ()


def list_slos(state: StateStore, project_id: int | None = None,
              ) -> list[tuple[int, Objective]]:
    """``(project id, objective)`` of one project's objectives (or all), by project and name."""
    query = sa.select(slos.c.project_id, slos.c.spec).order_by(slos.c.project_id, slos.c.name)
    if project_id is not None:
        query = query.where(slos.c.project_id == project_id)
    with state.engine.connect() as conn:
        return [(int(pid), msgspec.json.decode(spec, type=Objective))
                for pid, spec in conn.execute(query)]


def get_slo(state: StateStore, project_id: int, name: str) -> Objective | None:
    """The project's objective of that name, if any."""
    with state.engine.connect() as conn:
        spec = conn.execute(sa.select(slos.c.spec).where(
            (slos.c.project_id == project_id) & (slos.c.name == name))).scalar()
    return None if spec is None else msgspec.json.decode(spec, type=Objective)


def slo_rules(state: StateStore, project_id: int | None = None) -> list[tuple[int, Rule]]:
    """The burn-rate rules of one project's objectives (or all)."""
    return [(pid, rule) for pid, objective in list_slos(state, project_id)
            for rule in burn_rules(objective)]


def all_rules(state: StateStore, project_id: int | None = None) -> list[tuple[int, Rule]]:
    """The rules of the files and the objectives' burn-rate rules, by project and name:
    what the evaluator runs."""
    return sorted([*list_rules(state, project_id), *slo_rules(state, project_id)],
                  key=lambda pr: (pr[0], pr[1].name))


def _fields(old: Objective, new: Objective) -> tuple[str, ...]:
    a, b = msgspec.to_builtins(old), msgspec.to_builtins(new)
    return tuple(sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k)))


def apply_slos(state: StateStore, project_id: int, wanted: Sequence[Objective], *,
               dry_run: bool = False) -> list[SloChange]:
    """Make the project's objectives match ``wanted`` (unless ``dry_run``); the changes,
    in name order."""
    current = {o.name: o for _, o in list_slos(state, project_id)}
    changes: list[SloChange] = []
    for objective in sorted(wanted, key=lambda o: o.name):
        old = current.get(objective.name)
        if old is None:
            changes.append(SloChange("create", objective.name, objective.sli))
        else:
            fields = _fields(old, objective)
            changes.append(SloChange("update" if fields else "keep", objective.name,
                                     objective.sli, fields))
    names = {o.name for o in wanted}
    changes += [SloChange("remove", name, old.sli)
                for name, old in sorted(current.items()) if name not in names]
    if dry_run:
        return changes
    by_name = {o.name: o for o in wanted}
    now = time.time()
    with state.engine.begin() as conn:
        for change in changes:
            where = (slos.c.project_id == project_id) & (slos.c.name == change.name)
            if change.action == "create":
                conn.execute(slos.insert().values(
                    project_id=project_id, name=change.name, sli=change.sli,
                    spec=_encode(by_name[change.name]).decode(), updated_at=now))
            elif change.action == "update":
                conn.execute(slos.update().where(where).values(
                    sli=change.sli, spec=_encode(by_name[change.name]).decode(),
                    updated_at=now))
            elif change.action == "remove":
                conn.execute(slos.delete().where(where))
    return changes
