"""Alert rules as code: the ``rules:`` list of the YAML files that hold monitors.

Contract (docs/alerts.md, "Rules"; fields may be added, never renamed):

```yaml
rules:
  - name: checkout errors
    kind: threshold            # threshold | anomaly | no_data | monitor_down
    series: error_rate         # one of SERIES
    filter: {page: /checkout}  # narrows the series (which keys apply: SERIES)
    window: 10m                # each evaluation reads the series over this window
    op: ">"                    # threshold: > >= < <=
    threshold: 0.05
    clear: 0.04                # hysteresis: resolves only at or past this value
    for: 5m                    # must breach this long before firing
    resolve_after: 0s          # must read clear this long before resolving
    renotify: 2h               # while firing (0: never)
    severity: critical         # critical | warning | info
    channels: [ops-slack]      # notification channels by name
```

- ``anomaly`` compares the window's value with the same time of week over the last
  ``weeks`` weeks (``direction``: below, above or both; ``min_change``: the relative
  change that counts, 0.3 = 30 %).
- ``no_data`` fires when the series had no event for ``window`` (``series: events``,
  optionally filtered by event ``name``): often the first sign tracking or the shop broke.
- ``monitor_down`` follows a monitor's status (``filter: {monitor: checkout}``; all
  monitors without a filter).
- **Security detections** (docs/security.md): ``brute_force``, ``credential_stuffing``,
  ``card_testing``, ``account_takeover``, ``bot_traffic`` and ``signup_abuse`` read the
  security events over ``window`` (each kind has its own default) and open *findings*
  rather than alerts; ``params`` tunes them (``params: {failures: 20}``; the names and
  defaults are :data:`shopwatch.security.detections.DEFAULTS`). A project runs every
  kind with its defaults unless one of its rules has that kind.

Loading checks every rule and names the place of each problem
(``alerts.yml: rules[0].clear: 0.06 must be at or below the threshold 0.05``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Final, Literal

import msgspec
import yaml
from msgspec import Meta

from shopwatch.alerts.lifecycle import Condition, Timing
from shopwatch.checks.monitor import NAME_RE, Duration, seconds
from shopwatch.config_files import load_unique, place
from shopwatch.errors import ConfigError

# Each series and the filter keys it takes (docs/alerts.md lists their definitions).
SERIES: Final[dict[str, frozenset[str]]] = {
    "orders": frozenset({"payment_method"}),
    "revenue": frozenset({"payment_method"}),
    "sessions": frozenset({"page", "country", "device"}),
    "conversion": frozenset({"device", "country"}),
    "checkout_conversion": frozenset({"device", "payment_method"}),
    "declined_rate": frozenset({"payment_method", "gateway"}),
    "login_failures": frozenset(),
    "error_rate": frozenset({"page"}),
    "lcp_p75": frozenset({"page", "device"}),
    "inp_p75": frozenset({"page", "device"}),
    "events": frozenset({"name"}),
    "monitor": frozenset({"monitor", "location"}),
    "failed_checks": frozenset({"monitor", "location"}),
    "js_errors": frozenset({"page"}),
    "backend_errors": frozenset({"service", "route"}),
    "backend_p95_ms": frozenset({"service", "route"}),
}
SECURITY_KINDS: Final = ("brute_force", "credential_stuffing", "card_testing",
                         "account_takeover", "bot_traffic", "signup_abuse")
KINDS: Final = ("threshold", "anomaly", "no_data", "monitor_down", *SECURITY_KINDS)
MIN_WINDOW_S: Final = 60.0


class Rule(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, kw_only=True):
    """One rule as written in YAML (see the module docstring)."""

    name: str
    # slo_burn: internal, made from an SLO (shopwatch.alerts.objectives.burn_rules); a
    # file's rules: cannot use it.
    kind: Literal["threshold", "anomaly", "no_data", "monitor_down", "slo_burn",
                  "brute_force", "credential_stuffing", "card_testing", "account_takeover",
                  "bot_traffic", "signup_abuse"]
    series: str | None = None
    filter: dict[str, str] | None = None
    window: Duration | None = None  # default: 10m, or the security kind's own
    params: dict[str, float] | None = None  # security kinds' tunables
    op: Literal[">", ">=", "<", "<="] | None = None
    threshold: float | None = None
    clear: float | None = None
    direction: Literal["below", "above", "both"] = "below"
    min_change: Annotated[float, Meta(gt=0, le=10)] = 0.3
    weeks: Annotated[int, Meta(ge=2, le=12)] = 4
    for_: Duration = msgspec.field(default="0s", name="for")
    resolve_after: Duration = "0s"
    renotify: Duration = "0s"
    severity: Literal["critical", "warning", "info"] = "warning"
    channels: list[str] | None = None
    enabled: bool = True

    @property
    def window_text(self) -> str:
        """The window as written, or the kind's default."""
        if self.window is not None:
            return str(self.window)
        if self.kind in SECURITY_KINDS:
            from shopwatch.security.detections import DEFAULT_WINDOWS

            return DEFAULT_WINDOWS[self.kind]
        return "10m"

    @property
    def window_s(self) -> float:
        return seconds(self.window if self.window is not None else self.window_text,
                       f"{self.name}: window")

    @property
    def security(self) -> bool:
        """Whether the rule is a security detection (it opens findings, not alerts)."""
        return self.kind in SECURITY_KINDS

    def timing(self) -> Timing:
        """The lifecycle's durations."""
        return Timing(for_s=seconds(self.for_, f"{self.name}: for"),
                      resolve_after_s=seconds(self.resolve_after, f"{self.name}: resolve_after"),
                      renotify_s=seconds(self.renotify, f"{self.name}: renotify"))

    def condition(self) -> Condition:
        """When a reading breaches. ``threshold`` compares the series; ``no_data``
        breaches on a missing reading; ``monitor_down`` reads 1 for down, 0 for up;
        ``anomaly`` reads the relative change against the baseline (negative: below)."""
        if self.kind == "no_data":
            return Condition(">", 0.0, on_no_data="breach")
        if self.kind == "monitor_down":
            return Condition(">=", 1.0)
        if self.kind == "anomaly":
            # The evaluator reads |change| in the rule's direction; it breaches past
            # min_change and clears below half of it (hysteresis).
            return Condition(">=", self.min_change, clear=self.min_change / 2)
        assert self.op is not None and self.threshold is not None
        return Condition(self.op, self.threshold, clear=self.clear)


class RuleFile(msgspec.Struct):
    """The part of a monitors file the rules loader reads (monitors are the checks')."""

    rules: list[Rule] = msgspec.field(default_factory=list)


def _check(rule: Rule, where: str) -> None:
    if rule.kind not in KINDS:
        raise ConfigError(f"{where}.kind: {rule.kind!r} is not one of {', '.join(KINDS)} "
                          "(burn-rate rules are made from slos:, see docs/alerts.md)")
    if not NAME_RE.fullmatch(rule.name):
        raise ConfigError(f"{where}.name: {rule.name!r} must be 1-100 letters, digits, "
                          "spaces, _ . or -, starting with a letter or digit")
    for field, value in (("window", rule.window_text), ("for", rule.for_),
                         ("resolve_after", rule.resolve_after), ("renotify", rule.renotify)):
        if seconds(value, f"{where}.{field}") < 0:
            raise ConfigError(f"{where}.{field}: must not be negative")
    if rule.window_s < MIN_WINDOW_S:
        raise ConfigError(f"{where}.window: {rule.window_s:g}s is under the minimum of "
                          f"{MIN_WINDOW_S:g}s")
    if rule.security:
        _check_security(rule, where)
    else:
        _check_series(rule, where)
    for i, channel in enumerate(rule.channels or []):
        if not channel.strip():
            raise ConfigError(f"{where}.channels[{i}]: empty")


def _check_series(rule: Rule, where: str) -> None:
    if rule.params is not None:
        raise ConfigError(f"{where}.params: only security rules have params")
    series = rule.series
    if rule.kind == "monitor_down":
        series = series or "monitor"
        if series != "monitor":
            raise ConfigError(f"{where}.series: a monitor_down rule reads the monitor "
                              "series")
    elif series is None:
        raise ConfigError(f"{where}.series: {rule.kind} rules need a series (one of "
                          f"{', '.join(SERIES)})")
    if series not in SERIES:
        raise ConfigError(f"{where}.series: {series!r} is not one of {', '.join(SERIES)}")
    for key in rule.filter or {}:
        if key not in SERIES[series]:
            allowed = ", ".join(sorted(SERIES[series])) or "none"
            raise ConfigError(f"{where}.filter.{key}: the {series} series is not filtered by "
                              f"{key} (it takes: {allowed})")
    if rule.kind == "threshold":
        if rule.op is None or rule.threshold is None:
            raise ConfigError(f"{where}: a threshold rule needs op and threshold")
    else:
        for field in ("op", "threshold", "clear"):
            if getattr(rule, field) is not None:
                raise ConfigError(f"{where}.{field}: only threshold rules have {field}")
    try:
        rule.condition()
    except ValueError as exc:
        raise ConfigError(f"{where}.{exc}") from None


def _check_security(rule: Rule, where: str) -> None:
    from shopwatch.security.detections import DEFAULTS

    for field in ("series", "filter", "op", "threshold", "clear"):
        if getattr(rule, field) is not None:
            raise ConfigError(f"{where}.{field}: a {rule.kind} rule has no {field} (it is "
                              "tuned with params, see docs/security.md)")
    known = DEFAULTS[rule.kind]
    for key, value in (rule.params or {}).items():
        if key not in known:
            raise ConfigError(f"{where}.params.{key}: not a {rule.kind} parameter (it takes: "
                              f"{', '.join(sorted(known))})")
        if value < 0:
            raise ConfigError(f"{where}.params.{key}: must not be negative")


def parse_rules(text: str, source: str = "<text>") -> list[Rule]:
    """The rules of one YAML document (other keys, such as ``monitors``, are left to
    their own loaders); ConfigError naming ``source`` and the place."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(data, dict) or "rules" not in data:
        return []
    raw = data["rules"]
    if isinstance(raw, list):
        # A security rule's severity defaults to its kind's (card testing: critical).
        from shopwatch.security.detections import DEFAULT_SEVERITY

        raw = [{**r, "severity": DEFAULT_SEVERITY[r["kind"]]}
               if isinstance(r, dict) and r.get("kind") in SECURITY_KINDS
               and "severity" not in r else r for r in raw]
    try:
        parsed = msgspec.convert({"rules": raw}, RuleFile)
    except msgspec.ValidationError as exc:
        raise place(exc, source, "rules", "docs/alerts.md") from None
    names: set[str] = set()
    for i, rule in enumerate(parsed.rules):
        where = f"{source}: rules[{i}]"
        _check(rule, where)
        if rule.name in names:
            raise ConfigError(f"{where}.name: {rule.name!r} is used twice")
        names.add(rule.name)
    return parsed.rules


def load_rules(path: Path) -> list[Rule]:
    """The rules of a file, or of a directory's ``*.yml``/``*.yaml`` files (the same files
    as the monitors); names must be unique across them."""
    return load_unique(path, lambda f: parse_rules(f.read_text(), f.name), "rule")
