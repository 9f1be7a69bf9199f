"""Alert rules as code: the format, its validation with places, and each kind's
condition and timing."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from shopwatch.alerts.lifecycle import Condition, Timing
from shopwatch.alerts.rules import parse_rules
from shopwatch.checks.monitor import parse_monitors
from shopwatch.errors import ConfigError
from shopwatch.store.rules import list_rules
from shopwatch.store.state import StateStore
from tests.conftest import SHOPWATCH
from tests.test_monitor_store import clean_env

FILE = """
monitors:
  - {name: home, kind: http, url: /}
rules:
  - name: checkout errors
    kind: threshold
    series: error_rate
    filter: {page: /checkout}
    window: 10m
    op: ">"
    threshold: 0.05
    clear: 0.04
    for: 5m
    renotify: 2h
    severity: critical
    channels: [ops]
  - {name: orders drop, kind: anomaly, series: orders, window: 30m, min_change: 0.4}
  - {name: tracking stopped, kind: no_data, series: events, window: 15m}
  - {name: checkout down, kind: monitor_down, filter: {monitor: checkout}}
"""


def test_rules_sit_next_to_monitors_and_give_their_conditions() -> None:
    errors, orders, stopped, down = parse_rules(FILE, "alerts.yml")
    assert [m.name for m in parse_monitors(FILE)] == ["home"]  # monitors ignore rules
    assert errors.condition() == Condition(">", 0.05, clear=0.04)
    assert errors.timing() == Timing(for_s=300, resolve_after_s=0, renotify_s=7200)
    assert errors.window_s == 600 and errors.severity == "critical"
    assert orders.condition() == Condition(">=", 0.4, clear=0.2)
    assert orders.direction == "below" and orders.weeks == 4
    assert stopped.condition().judge(None) == "breach"
    assert stopped.condition().judge(12) == "clear"
    assert down.condition().judge(1) == "breach" and down.condition().judge(0) == "clear"
    assert parse_rules("monitors: []") == []


@pytest.mark.parametrize(("rule", "error"), [
    ("{name: r, kind: threshold, series: orders, op: '<'}",
     "rules[0]: a threshold rule needs op and threshold"),
    ("{name: r, kind: threshold, series: orders, op: '>', threshold: 5, clear: 6}",
     "rules[0].clear: 6 must be at or below the threshold 5 (the healthy side of >)"),
    ("{name: r, kind: threshold, series: visits, op: '>', threshold: 5}",
     "rules[0].series: 'visits' is not one of orders, revenue"),
    ("{name: r, kind: threshold, series: orders, filter: {page: /}, op: '>', threshold: 1}",
     "rules[0].filter.page: the orders series is not filtered by page (it takes: "
     "payment_method)"),
    ("{name: r, kind: anomaly, series: orders, threshold: 3}",
     "rules[0].threshold: only threshold rules have threshold"),
    ("{name: r, kind: no_data, series: events, window: 30s}",
     "rules[0].window: 30s is under the minimum of 60s"),
    ("{name: r, kind: anomaly}", "rules[0].series: anomaly rules need a series"),
    ("{name: r, kind: monitor_down, series: orders}",
     "rules[0].series: a monitor_down rule reads the monitor series"),
    ("{name: r, kind: threshold, series: orders, op: '>', threshold: 1, wait: 5m}",
     "rules[0].wait: unknown field (see docs/alerts.md)"),
    ("{name: r, kind: page}", "rules[0].kind: invalid enum value 'page'"),
])
def test_bad_rules_are_refused_with_their_place(rule: str, error: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_rules(f"rules: [{rule}]", "alerts.yml")
    assert f"alerts.yml: {error}" in str(info.value)


def test_rule_names_are_unique() -> None:
    with pytest.raises(ConfigError, match=r"rules\[1\].name: 'a' is used twice"):
        parse_rules("rules: [{name: a, kind: no_data, series: events}, "
                    "{name: a, kind: no_data, series: events}]", "alerts.yml")


def test_monitors_apply_applies_the_rules_of_the_same_files(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = clean_env()
    subprocess.run([str(SHOPWATCH), "project", "create", "shop", "--data", str(data)],
                   check=True, capture_output=True, env=env)
    file = tmp_path / "alerts.yml"
    file.write_text(FILE)

    def apply(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(SHOPWATCH), "monitors", "apply", str(file), *args,
                               "--data", str(data)], capture_output=True, text=True,
                              env=env, timeout=60)

    dry = apply("--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "+ rule checkout errors (threshold)" in dry.stdout
    assert "rules: would create 4, would update 0, would remove 0" in dry.stdout
    done = apply()
    assert "rules: create 4, update 0, remove 0" in done.stdout
    file.write_text(FILE.replace("threshold: 0.05", "threshold: 0.06").replace(
        "  - {name: tracking stopped, kind: no_data, series: events, window: 15m}\n", ""))
    again = apply()
    assert "~ rule checkout errors (threshold) (threshold)" in again.stdout
    assert "- rule tracking stopped (no_data)" in again.stdout
    state = StateStore(data / "state.sqlite")
    try:
        stored = {rule.name: rule for _, rule in list_rules(state, 1)}
    finally:
        state.close()
    assert sorted(stored) == ["checkout down", "checkout errors", "orders drop"]
    assert stored["checkout errors"].threshold == 0.06
    file.write_text("rules: [{name: r, kind: anomaly}]")
    bad = apply()
    assert bad.returncode == 2
    assert "alerts.yml: rules[0].series: anomaly rules need a series" in bad.stderr
