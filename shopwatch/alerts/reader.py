"""What each rule reads, from the event store: the evaluator's ``read`` in the server.

- ``threshold`` and ``no_data`` rules read their series over the window
  (:func:`shopwatch.analytics.alert_series.value`, in the project's currency).
- ``monitor_down`` reads the ``monitor`` series: 1 when a monitor (the filtered one, or
  any) is down at its ``min_failed_locations``, 0 when up, ``None`` without runs.
- ``anomaly`` compares the window's value with the same time of week over the last
  ``weeks`` weeks (:mod:`shopwatch.alerts.anomaly`, its median and MAD): the reading is
  the size of the relative change when it goes the rule's ``direction`` and lies outside
  3 times the spread of past weeks, else 0; ``None`` without enough history.
- ``slo_burn`` (an SLO's burn tier, :func:`shopwatch.alerts.objectives.burn_rules`) reads
  ``min(long burn, short burn)`` of its objective at ``now`` (in whole seconds), with the
  project's maintenance windows left out (:func:`shopwatch.analytics.sli.reading`);
  ``None`` when the objective is gone or had no traffic over the long window.
"""

from __future__ import annotations

from collections.abc import Callable

from shopwatch.alerts import anomaly
from shopwatch.alerts.objectives import tier_named
from shopwatch.alerts.rules import Rule
from shopwatch.analytics import alert_series, sli
from shopwatch.store.base import EventStore
from shopwatch.store.maintenance import list_windows, spans
from shopwatch.store.monitors import list_monitors
from shopwatch.store.slos import get_slo
from shopwatch.store.state import StateStore

MAD_K = 3.0


def series_reader(events: EventStore, state: StateStore
                  ) -> Callable[[int, Rule, int, int], float | None]:
    """The evaluator's ``read`` over the server's stores."""
    def read(project_id: int, rule: Rule, start_us: int, end_us: int) -> float | None:
        if rule.kind == "slo_burn":
            return slo_burn(events, state, project_id, rule, end_us)
        project = state.get_project(project_id)
        series = rule.series or "monitor"
        if rule.kind == "monitor_down":
            min_failed = {s.monitor.name: s.monitor.min_failed_locations
                          for s in list_monitors(state, project_id)}
            return alert_series.value(events, project_id, "monitor", rule.filter, start_us,
                                      end_us, min_failed=min_failed)
        if rule.kind != "anomaly":
            return alert_series.value(events, project_id, series, rule.filter, start_us,
                                      end_us, currency=project.currency)
        window_s = (end_us - start_us) / 1e6
        points = alert_series.seasonal_buckets(events, project_id, series, rule.filter,
                                               start_us, end_us, window_s, rule.weeks,
                                               currency=project.currency)
        at = end_us / 1e6
        base = anomaly.baseline(points, at, window_s, rule.weeks)
        if base is None:
            return None
        observed = anomaly.window_value(points, at - window_s, at)
        if observed is None:
            return None
        judged = anomaly.judge(observed, base, rule.direction, min_change=0.0, mad_k=MAD_K)
        if not judged.anomalous or judged.change is None:
            return 0.0
        return abs(judged.change)
    return read


def slo_burn(events: EventStore, state: StateStore, project_id: int, rule: Rule,
             end_us: int) -> float | None:
    """An ``slo_burn`` rule's reading at ``end_us`` (see the module docstring)."""
    f = rule.filter or {}
    objective = get_slo(state, project_id, f.get("slo", ""))
    if objective is None:
        return None
    tier = tier_named(f.get("tier", ""))
    now = end_us // 1_000_000
    quiet = spans(list_windows(state, project_id), now - tier.long_s, now)
    return sli.reading(sli.tier_state(events, project_id, objective, tier, now, quiet))
