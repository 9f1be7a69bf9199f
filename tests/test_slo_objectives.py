"""SLOs as code: the ``slos:`` of the monitors' YAML files, their limits and the errors
that name file, place and field; the burn-rate rules each objective yields; applying
them to the state store (SQLite file) and through ``shopwatch monitors apply``."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from shopwatch.alerts.objectives import (
    MAX_SLOS,
    burn_condition,
    burn_rules,
    describe_burn,
    load_objectives,
    parse_objectives,
    parse_target,
)
from shopwatch.alerts.rules import parse_rules
from shopwatch.checks.monitor import parse_monitors
from shopwatch.cli import main
from shopwatch.errors import ConfigError
from shopwatch.store.slos import all_rules, apply_slos, get_slo, list_slos, slo_rules
from shopwatch.store.state import StateStore

GOOD = """
monitors:
  - {name: home, kind: http, url: "https://shop.example/"}
rules:
  - {name: tracking stopped, kind: no_data, series: events, window: 15m}
slos:
  - name: checkout success
    sli: checkout
    target: 99.5%
    window: 30d
    severity: critical
    channels: [ops]
  - {name: home up, sli: availability, target: 0.999, filter: {monitor: [home, search]}}
  - {name: cards, sli: payment, target: "95 %", window: 7d,
     filter: {payment_method: card, gateway: stripe}}
  - {name: fast products, sli: latency, target: 90%, window: 1d,
     filter: {page: /product/*, metric: inp, threshold: 200ms, device: mobile}}
"""


def test_a_file_with_monitors_rules_and_slos_loads_each() -> None:
    found = parse_objectives(GOOD, "alerts.yml")
    assert [o.name for o in found] == ["checkout success", "home up", "cards",
                                       "fast products"]
    checkout, home, cards, fast = found
    assert (checkout.ratio, checkout.window_s, checkout.severity, checkout.channels) == (
        0.995, 30 * 86400, "critical", ["ops"])
    assert (home.ratio, home.monitors, home.severity) == (0.999, ["home", "search"], "critical")
    assert (cards.ratio, cards.window_s, cards.text("gateway")) == (0.95, 7 * 86400, "stripe")
    assert (fast.metric, fast.threshold_ms, fast.text("page")) == ("inp", 200.0, "/product/*")
    # The other loaders read the same file and ignore the keys that are not theirs.
    assert [m.name for m in parse_monitors(GOOD, "alerts.yml")] == ["home"]
    assert [r.name for r in parse_rules(GOOD, "alerts.yml")] == ["tracking stopped"]
    assert parse_objectives("monitors: []", "m.yml") == []
    assert parse_objectives("slos:", "m.yml") == []


@pytest.mark.parametrize(("written", "expected"), [
    ("99.5%", 0.995), ("99.9%", 0.999), (" 99.95 % ", 0.9995), (0.995, 0.995), ("0.9", 0.9),
    ("50%", 0.5), (0.5, 0.5)])
def test_targets_are_read_as_written(written: str | float, expected: float) -> None:
    # Decimal reading: 99.9% is exactly 0.999, never 0.9990000000000001.
    assert parse_target(written, "target") == expected


@pytest.mark.parametrize(("written", "message"), [
    ("100%", "target: 100% must be strictly between 0 and 100 %"),
    ("0%", "target: 0% must be strictly between 0 and 100 %"),
    (1, "target: 1 must be strictly between 0 and 100 %"),
    (99.5, "target: 99.5 must be strictly between 0 and 100 % (write 99.5% or 0.995)"),
    ("-5%", "must be strictly between 0 and 100 %"),
    ("high", "target: 'high' is not a target like 99.5% or 0.995"),
    (".nan", "is not a target like 99.5% or 0.995"),
])
def test_a_target_outside_0_1_is_refused(written: str | float, message: str) -> None:
    text = f"slos:\n  - {{name: x, sli: checkout, target: {written}}}\n"
    with pytest.raises(ConfigError, match=r"alerts\.yml: slos\[0\]") as caught:
        parse_objectives(text, "alerts.yml")
    assert message in str(caught.value)


@pytest.mark.parametrize(("entry", "message"), [
    # Window: 1d to 90d, in whole hours.
    ("{name: x, sli: checkout, target: 90%, window: 23h}",
     "slos[0].window: 23h must be from 1d to 90d"),
    ("{name: x, sli: checkout, target: 90%, window: 91d}",
     "slos[0].window: 91d must be from 1d to 90d"),
    ("{name: x, sli: checkout, target: 90%, window: 25.5h}",
     "slos[0].window: 25.5h must be a whole number of hours"),
    ("{name: x, sli: checkout, target: 90%, window: soon}",
     "slos[0].window: 'soon' is not a duration"),
    # Names.
    ("{name: 'x' , sli: checkout, target: 90%, window: 90d}", None),
    (f"{{name: {'n' * 81}, sli: checkout, target: 90%}}", "slos[0].name: 'nnn"),
    ("{name: ':bad', sli: checkout, target: 90%}", "slos[0].name: ':bad' must be 1-80"),
    # Fields and SLIs.
    ("{name: x, sli: speed, target: 90%}",
     "slos[0].sli: invalid enum value 'speed' (one of availability, checkout, payment, "
     "latency)"),
    ("{name: x, target: 90%}", "slos[0]: object missing required field sli"),
    ("{name: x, sli: checkout, target: 90%, budget: 3}",
     "slos[0].budget: unknown field (see docs/alerts.md)"),
    ("{name: x, sli: checkout, target: 90%, severity: page}", "slos[0].severity: invalid enum"),
    # Filters: which keys each SLI takes, one value each (monitor may be a list).
    ("{name: x, sli: checkout, target: 90%, filter: {page: /checkout}}",
     "slos[0].filter.page: the checkout SLI is not filtered by page (it takes: device)"),
    ("{name: x, sli: payment, target: 90%, filter: {gateway: [a, b]}}",
     "slos[0].filter.gateway: one value, not a list"),
    ("{name: x, sli: availability, target: 90%, filter: {monitor: []}}",
     "slos[0].filter.monitor: an empty list"),
    ("{name: x, sli: availability, target: 90%, filter: {monitor: ' '}}",
     "slos[0].filter.monitor: empty"),
    ("{name: x, sli: payment, target: 90%, filter: {payment_method: 3}}",
     "slos[0].filter.payment_method: expected text, got 3"),
    # Latency: page and threshold required, a known metric, a bound up to 60 s.
    ("{name: x, sli: latency, target: 90%, filter: {threshold: 2500ms}}",
     "slos[0].filter.page: a latency SLO needs the page"),
    ("{name: x, sli: latency, target: 90%, filter: {page: /}}",
     "slos[0].filter.threshold: a latency SLO needs a threshold like 2500ms"),
    ("{name: x, sli: latency, target: 90%, filter: {page: /, metric: cls, threshold: 1}}",
     "slos[0].filter.metric: 'cls' is not one of lcp, inp, fcp, ttfb"),
    ("{name: x, sli: latency, target: 90%, filter: {page: /, threshold: 61s}}",
     "slos[0].filter.threshold: 61000 ms must be more than 0 and at most 60 s"),
    ("{name: x, sli: latency, target: 90%, filter: {page: /, threshold: 0}}",
     "slos[0].filter.threshold: 0 ms must be more than 0"),
    ("{name: x, sli: latency, target: 90%, filter: {page: /, threshold: fast}}",
     "slos[0].filter.threshold: 'fast' is not a duration"),
    ("{name: x, sli: checkout, target: 90%, channels: ['']}", "slos[0].channels[0]: empty"),
])
def test_a_bad_objective_is_refused_with_its_place(entry: str, message: str | None) -> None:
    text = f"slos:\n  - {entry}\n"
    if message is None:
        assert len(parse_objectives(text, "alerts.yml")) == 1
        return
    with pytest.raises(ConfigError) as caught:
        parse_objectives(text, "alerts.yml")
    assert str(caught.value).startswith("alerts.yml: "), caught.value
    assert message in str(caught.value), caught.value


def test_window_limits_are_inclusive() -> None:
    text = ("slos:\n  - {name: a, sli: checkout, target: 90%, window: 1d}\n"
            "  - {name: b, sli: checkout, target: 90%, window: 90d}\n"
            "  - {name: c, sli: checkout, target: 90%, window: 36h}\n")
    assert [o.window_s for o in parse_objectives(text)] == [86400, 90 * 86400, 36 * 3600]


def test_names_are_unique_within_and_across_files(tmp_path: Path) -> None:
    twice = ("slos:\n  - {name: a, sli: checkout, target: 90%}\n"
             "  - {name: a, sli: payment, target: 90%}\n")
    with pytest.raises(ConfigError, match=r"alerts.yml: slos\[1\].name: 'a' is used twice"):
        parse_objectives(twice, "alerts.yml")
    (tmp_path / "a.yml").write_text("slos:\n  - {name: a, sli: checkout, target: 90%}\n")
    (tmp_path / "b.yaml").write_text("slos:\n  - {name: a, sli: payment, target: 90%}\n")
    (tmp_path / "notes.txt").write_text("slos: [oops]")
    with pytest.raises(ConfigError, match=r"b\.yaml: SLO 'a' is also defined in a\.yml"):
        load_objectives(tmp_path)


def test_at_most_max_slos(tmp_path: Path) -> None:
    def many(n: int, prefix: str) -> str:
        return "slos:\n" + "".join(f"  - {{name: {prefix}{i}, sli: checkout, target: 90%}}\n"
                                   for i in range(n))

    assert len(parse_objectives(many(MAX_SLOS, "s"))) == MAX_SLOS
    with pytest.raises(ConfigError, match=f"m.yml: slos: 51 objectives, at most {MAX_SLOS}"):
        parse_objectives(many(MAX_SLOS + 1, "s"), "m.yml")
    (tmp_path / "a.yml").write_text(many(30, "a"))
    (tmp_path / "b.yml").write_text(many(21, "b"))
    with pytest.raises(ConfigError, match="51 SLOs across the files, at most 50"):
        load_objectives(tmp_path)


def test_users_cannot_write_burn_rate_rules() -> None:
    text = ("rules:\n  - {name: x, kind: slo_burn, series: slo, window: 1h, op: '>=', "
            "threshold: 1}\n")
    with pytest.raises(ConfigError, match=r"a.yml: rules\[0\].kind: 'slo_burn' is not one "
                                          "of threshold, anomaly, no_data, monitor_down"):
        parse_rules(text, "a.yml")


def test_each_objective_yields_a_rule_per_tier_that_fits_its_window() -> None:
    checkout, _, _, fast = parse_objectives(GOOD)
    rules = burn_rules(checkout)
    assert [(r.name, r.kind, r.window, r.op, r.threshold, r.severity, r.for_, r.channels)
            for r in rules] == [
        ("SLO checkout success: fast burn", "slo_burn", "1h", ">=", 14.4, "critical", "0s",
         ["ops"]),
        ("SLO checkout success: medium burn", "slo_burn", "6h", ">=", 6.0, "critical", "0s",
         ["ops"]),
        ("SLO checkout success: slow burn", "slo_burn", "3d", ">=", 1.0, "info", "0s",
         ["ops"]),
    ]
    assert rules[0].filter == {"slo": "checkout success", "tier": "fast"}
    # A 1-day objective has no 3-day tier.
    assert [r.name for r in burn_rules(fast)] == ["SLO fast products: fast burn",
                                                 "SLO fast products: medium burn"]
    assert burn_condition(rules[0]) == "burn rate ≥ 14.4x over 1h and 5m"
    assert burn_condition(rules[2]) == "burn rate ≥ 1x over 3d and 6h"
    assert describe_burn(rules[0], 20.0) == (
        "SLO checkout success: error budget burning at 20x (the lower of 1h and 5m; alerts "
        "at 14.4x)")
    assert describe_burn(rules[1], None) == "SLO checkout success: no traffic over 6h"
    # An info objective's ticket stays info; the longest name makes a 97-character rule.
    info = parse_objectives(f"slos:\n  - {{name: {'n' * 80}, sli: payment, target: 90%, "
                            "severity: info}\n")[0]
    assert [r.severity for r in burn_rules(info)] == ["info", "info", "info"]
    assert max(len(r.name) for r in burn_rules(info)) == 97


def test_apply_makes_the_stored_objectives_match_the_files(tmp_path: Path) -> None:
    state = StateStore(tmp_path / "state.sqlite")
    project = state.create_project("shop")
    other = state.create_project("other")
    first = parse_objectives(GOOD)
    changes = apply_slos(state, project.id, first, dry_run=True)
    assert [(c.action, c.name) for c in changes] == [
        ("create", "cards"), ("create", "checkout success"), ("create", "fast products"),
        ("create", "home up")]
    assert list_slos(state, project.id) == []  # a dry run changes nothing
    apply_slos(state, project.id, first)
    assert [o.name for _, o in list_slos(state, project.id)] == [
        "cards", "checkout success", "fast products", "home up"]
    stored = get_slo(state, project.id, "home up")
    assert stored is not None and stored.monitors == ["home", "search"]
    assert get_slo(state, other.id, "home up") is None
    second = parse_objectives("""
slos:
  - {name: checkout success, sli: checkout, target: 99%, window: 30d, channels: [ops]}
  - {name: cards, sli: payment, target: "95 %", window: 7d,
     filter: {payment_method: card, gateway: stripe}}
""")
    changes = apply_slos(state, project.id, second)
    assert [(c.action, c.name, c.fields) for c in changes] == [
        ("keep", "cards", ()), ("update", "checkout success", ("target",)),
        ("remove", "fast products", ()), ("remove", "home up", ())]
    assert [o.ratio for _, o in list_slos(state, project.id)] == [0.95, 0.99]
    # The evaluator's rules: the files' rules and each objective's tiers, by name.
    names = [r.name for _, r in all_rules(state, project.id)]
    assert names == ["SLO cards: fast burn", "SLO cards: medium burn", "SLO cards: slow burn",
                     "SLO checkout success: fast burn", "SLO checkout success: medium burn",
                     "SLO checkout success: slow burn"]
    assert len(slo_rules(state)) == 6 and slo_rules(state, other.id) == []
    state.close()


def test_monitors_apply_applies_the_slos_with_a_dry_run(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    state = StateStore(data / "state.sqlite")
    state.create_project("shop")
    state.close()
    file = tmp_path / "monitors.yml"
    file.write_text(GOOD)
    runner = CliRunner()
    dry = runner.invoke(main, ["monitors", "apply", str(file), "--data", str(data),
                               "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "+ slo checkout success (checkout)" in dry.output
    assert dry.output.rstrip().endswith(
        "slos: would create 4, would update 0, would remove 0 (dry run: nothing changed)")
    done = runner.invoke(main, ["monitors", "apply", str(file), "--data", str(data)])
    assert done.exit_code == 0, done.output
    assert done.output.rstrip().endswith("slos: create 4, update 0, remove 0")
    file.write_text(GOOD.replace("target: 99.5%", "target: 99%"))
    again = runner.invoke(main, ["monitors", "apply", str(file), "--data", str(data)])
    assert "~ slo checkout success (checkout) (target)" in again.output
    assert again.output.rstrip().endswith("slos: create 0, update 1, remove 0")
    file.write_text(GOOD.replace("target: 0.999", "target: 100%"))
    bad = runner.invoke(main, ["monitors", "apply", str(file), "--data", str(data)])
    assert bad.exit_code == 2
    assert "monitors.yml: slos[1].target: 100% must be strictly between 0 and 100 %" in (
        bad.output)
