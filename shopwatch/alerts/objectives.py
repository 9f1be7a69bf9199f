"""Service level objectives as code: the ``slos:`` list of the YAML files that hold monitors.

Contract (docs/alerts.md, "SLOs"; fields may be added, never renamed):

```yaml
slos:
  - name: checkout success
    sli: checkout              # availability | checkout | payment | latency
    target: 99.5%              # or 0.995: strictly between 0 and 100 %
    window: 30d                # rolling, 1d to 90d, in whole hours
    filter: {device: mobile}   # which keys each SLI takes: SLIS
    severity: critical         # of the page tiers' alerts (critical | warning | info)
    channels: [ops]            # where burn-rate alerts notify, by name
```

- ``availability``: check runs that passed ÷ runs, of ``filter.monitor`` (one name or a
  list; every monitor without it) and ``filter.location``.
- ``checkout``: orders ÷ sessions that began a checkout (``filter.device``).
- ``payment``: payments accepted ÷ attempted, i.e. orders ÷ (orders + ``payment_declined``)
  (``filter.payment_method``, ``filter.gateway``).
- ``latency``: page views of ``filter.page`` (a path or a page group such as
  ``/product/*``; required) whose ``filter.metric`` (``lcp``, the default, ``inp``,
  ``fcp`` or ``ttfb``) is at or under ``filter.threshold`` (required: ``2500ms``,
  ``2.5s`` or a number of milliseconds; at most 60 s) ÷ page views with that metric
  (``filter.device``).

The counts are read by :mod:`shopwatch.analytics.sli`; the arithmetic is
:mod:`shopwatch.alerts.slo`'s. Each objective yields one internal alert rule per burn
tier (:func:`burn_rules`, kind ``slo_burn``), which the evaluator runs like any rule;
users cannot write that kind under ``rules:``. A tier whose long window is longer than
the objective's window is left out (a 1-day objective has no 3-day tier).

Limits: names of 1-80 characters (the tiers' rule names add up to 17 more), at most
:data:`MAX_SLOS` objectives across the files, unique names. Loading checks every
objective and names the place of each problem
(``alerts.yml: slos[0].target: 100% must be strictly between 0 and 100 %``).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Final, Literal

import msgspec
import yaml

from shopwatch.alerts.rules import Rule
from shopwatch.alerts.slo import BURN_TIERS, DAY, HOUR, BurnTier
from shopwatch.checks.monitor import NAME_RE, Duration, seconds
from shopwatch.config_files import load_unique, place
from shopwatch.errors import ConfigError

# Each SLI and the filter keys it takes (docs/alerts.md, "SLOs").
SLIS: Final[dict[str, frozenset[str]]] = {
    "availability": frozenset({"monitor", "location"}),
    "checkout": frozenset({"device"}),
    "payment": frozenset({"payment_method", "gateway"}),
    "latency": frozenset({"page", "metric", "threshold", "device"}),
}
METRICS: Final = ("lcp", "inp", "fcp", "ttfb")
MIN_WINDOW_S: Final = 1 * DAY
MAX_WINDOW_S: Final = 90 * DAY
MAX_SLOS: Final = 50
MAX_NAME: Final = 80
MAX_THRESHOLD_MS: Final = 60_000.0
RULE_PREFIX: Final = "SLO "

FilterValue = str | int | float | list[str]


class Objective(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, kw_only=True):
    """One objective as written in YAML (see the module docstring)."""

    name: str
    sli: Literal["availability", "checkout", "payment", "latency"]
    target: str | float
    window: Duration = "30d"
    filter: dict[str, FilterValue] | None = None
    severity: Literal["critical", "warning", "info"] = "critical"
    channels: list[str] | None = None
    enabled: bool = True

    @property
    def ratio(self) -> float:
        """The target as a fraction (``99.5%`` is 0.995); ConfigError when out of (0, 1)."""
        return parse_target(self.target, "target")

    @property
    def window_s(self) -> int:
        return int(seconds(self.window, f"{self.name}: window"))

    @property
    def monitors(self) -> list[str]:
        """An availability objective's monitors (empty: every monitor)."""
        found = (self.filter or {}).get("monitor")
        if found is None:
            return []
        return [str(m) for m in found] if isinstance(found, list) else [str(found)]

    def text(self, key: str) -> str | None:
        """A filter value that is a single string (``None`` when absent)."""
        value = (self.filter or {}).get(key)
        return None if value is None else str(value)

    @property
    def metric(self) -> str:
        """A latency objective's metric (``lcp`` by default)."""
        return self.text("metric") or "lcp"

    @property
    def threshold_ms(self) -> float:
        """A latency objective's bound in milliseconds."""
        value = (self.filter or {}).get("threshold")
        if value is None or isinstance(value, list):
            raise ConfigError("filter.threshold: a latency SLO needs a threshold like 2500ms")
        if isinstance(value, int | float):
            return float(value)
        return seconds(value, "filter.threshold") * 1000.0

    def tiers(self) -> list[BurnTier]:
        """The burn tiers that fit in the window (a tier's long window must too)."""
        return [t for t in BURN_TIERS if t.long_s <= self.window_s]


def parse_target(value: str | float, where: str) -> float:
    """``"99.5%"`` or ``0.995`` as a fraction; ConfigError unless strictly in (0, 1).

    A percentage is read as a decimal (``99.9%`` is exactly 0.999 as written), so the
    budget arithmetic's exact fractions see the target the user wrote.
    """
    if isinstance(value, bool):
        raise ConfigError(f"{where}: {value!r} is not a target like 99.5% or 0.995")
    try:
        if isinstance(value, str):
            text = value.strip()
            ratio = (Decimal(text[:-1].strip()) / 100 if text.endswith("%")
                     else Decimal(text))
        else:
            ratio = Decimal(str(value))
        if not ratio.is_finite():
            raise InvalidOperation
    except InvalidOperation:
        raise ConfigError(f"{where}: {value!r} is not a target like 99.5% or 0.995") from None
    if not 0 < ratio < 1:
        hint = " (write 99.5% or 0.995)" if 1 < ratio < 100 else ""
        shown = value if isinstance(value, str) else f"{value:g}"
        raise ConfigError(f"{where}: {shown} must be strictly between 0 and 100 %{hint}")
    return float(ratio)


def duration_text(s: float) -> str:
    """``3600`` as ``1h``, ``259200`` as ``3d``, ``300`` as ``5m`` (the largest whole unit)."""
    for unit, size in (("d", DAY), ("h", HOUR), ("m", 60)):
        if s % size == 0:
            return f"{int(s // size)}{unit}"
    return f"{s:g}s"


def rule_name(objective: str, tier: BurnTier) -> str:
    """The name of an objective's burn-rate rule: ``SLO checkout success: fast burn``."""
    return f"{RULE_PREFIX}{objective}: {tier.name} burn"


def tier_named(name: str) -> BurnTier:
    """The tier of :data:`BURN_TIERS` with this name (KeyError when none)."""
    for tier in BURN_TIERS:
        if tier.name == name:
            return tier
    raise KeyError(name)


def burn_rules(objective: Objective) -> list[Rule]:
    """The objective's alert rules, one per tier that fits its window.

    Each reads ``min(long burn, short burn)`` (:mod:`shopwatch.alerts.reader`) and fires
    at ``>= threshold`` (so both windows are at or above it) at once (``for: 0s``), and
    resolves at the first reading under it: the short window is what makes that quick.
    Page tiers alert at the objective's severity; the ticket tier at ``info``: a ticket
    for working hours, which opens no incident.
    """
    found = []
    for tier in objective.tiers():
        # A ticket is a note for working hours, not an incident (info alerts open none).
        severity = objective.severity if tier.severity == "page" else "info"
        found.append(Rule(
            name=rule_name(objective.name, tier), kind="slo_burn", series="slo",
            filter={"slo": objective.name, "tier": tier.name},
            window=duration_text(tier.long_s), op=">=", threshold=tier.threshold,
            severity=severity, channels=objective.channels, enabled=objective.enabled))
    return found


def burn_condition(rule: Rule) -> str:
    """A burn-rate rule's condition in words: ``burn rate ≥ 14.4x over 1h and 5m``."""
    tier = tier_named((rule.filter or {}).get("tier", ""))
    return (f"burn rate ≥ {tier.threshold:g}x over {duration_text(tier.long_s)} and "
            f"{duration_text(tier.short_s)}")


def describe_burn(rule: Rule, value: float | None) -> str:
    """A burn-rate reading in words, for notifications: ``SLO checkout success: error
    budget burning at 20x (the lower of 1h and 5m; alerts at 14.4x)``."""
    name = (rule.filter or {}).get("slo", "")
    tier = tier_named((rule.filter or {}).get("tier", ""))
    if value is None:
        return f"SLO {name}: no traffic over {duration_text(tier.long_s)}"
    return (f"SLO {name}: error budget burning at {value:.3g}x (the lower of "
            f"{duration_text(tier.long_s)} and {duration_text(tier.short_s)}; "
            f"alerts at {tier.threshold:g}x)")


class ObjectiveFile(msgspec.Struct):
    """The part of a monitors file this loader reads."""

    slos: list[Objective] = msgspec.field(default_factory=list)


def _check(o: Objective, where: str) -> None:
    if not NAME_RE.fullmatch(o.name) or len(o.name) > MAX_NAME:
        raise ConfigError(f"{where}.name: {o.name!r} must be 1-{MAX_NAME} letters, digits, "
                          "spaces, _ . or -, starting with a letter or digit")
    parse_target(o.target, f"{where}.target")
    window = seconds(o.window, f"{where}.window")
    if not MIN_WINDOW_S <= window <= MAX_WINDOW_S:
        raise ConfigError(f"{where}.window: {o.window} must be from 1d to 90d")
    if window % HOUR:
        raise ConfigError(f"{where}.window: {o.window} must be a whole number of hours")
    f = o.filter or {}
    for key, value in f.items():
        if key not in SLIS[o.sli]:
            allowed = ", ".join(sorted(SLIS[o.sli]))
            raise ConfigError(f"{where}.filter.{key}: the {o.sli} SLI is not filtered by "
                              f"{key} (it takes: {allowed})")
        if isinstance(value, list) and key != "monitor":
            raise ConfigError(f"{where}.filter.{key}: one value, not a list")
        if key not in ("threshold",) and not isinstance(value, str | list):
            raise ConfigError(f"{where}.filter.{key}: expected text, got {value!r}")
        if isinstance(value, list) and not value:
            raise ConfigError(f"{where}.filter.{key}: an empty list (leave monitor out to "
                              "count every monitor)")
        if isinstance(value, list | str) and any(
                not str(v).strip() for v in (value if isinstance(value, list) else [value])):
            raise ConfigError(f"{where}.filter.{key}: empty")
    if o.sli == "latency":
        if "page" not in f:
            raise ConfigError(f"{where}.filter.page: a latency SLO needs the page (a path "
                              "like /checkout or a group like /product/*)")
        if o.metric not in METRICS:
            raise ConfigError(f"{where}.filter.metric: {o.metric!r} is not one of "
                              f"{', '.join(METRICS)}")
        if "threshold" not in f:
            raise ConfigError(f"{where}.filter.threshold: a latency SLO needs a threshold "
                              "like 2500ms")
        try:
            bound = o.threshold_ms
        except ConfigError as exc:
            raise ConfigError(f"{where}.{exc}") from None
        if not 0 < bound <= MAX_THRESHOLD_MS:
            raise ConfigError(f"{where}.filter.threshold: {bound:g} ms must be more than 0 "
                              f"and at most {MAX_THRESHOLD_MS / 1000:g} s")
    for i, channel in enumerate(o.channels or []):
        if not channel.strip():
            raise ConfigError(f"{where}.channels[{i}]: empty")


def parse_objectives(text: str, source: str = "<text>") -> list[Objective]:
    """The objectives of one YAML document (other keys are left to their loaders);
    ConfigError naming ``source`` and the place."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(data, dict) or data.get("slos") is None:
        return []
    try:
        parsed = msgspec.convert({"slos": data["slos"]}, ObjectiveFile)
    except msgspec.ValidationError as exc:
        raise place(exc, source, "slos", "docs/alerts.md", {"sli": SLIS}) from None
    names: set[str] = set()
    for i, objective in enumerate(parsed.slos):
        where = f"{source}: slos[{i}]"
        _check(objective, where)
        if objective.name in names:
            raise ConfigError(f"{where}.name: {objective.name!r} is used twice")
        names.add(objective.name)
    if len(parsed.slos) > MAX_SLOS:
        raise ConfigError(f"{source}: slos: {len(parsed.slos)} objectives, at most {MAX_SLOS}")
    return parsed.slos


def load_objectives(path: Path) -> list[Objective]:
    """The objectives of a file, or of a directory's ``*.yml``/``*.yaml`` files (the same
    files as the monitors); names must be unique across them, :data:`MAX_SLOS` in all."""
    found = load_unique(path, lambda f: parse_objectives(f.read_text(), f.name), "SLO")
    if len(found) > MAX_SLOS:
        raise ConfigError(f"{path}: {len(found)} SLOs across the files, at most {MAX_SLOS}")
    return found
