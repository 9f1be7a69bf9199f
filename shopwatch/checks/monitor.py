"""Monitors as code: the YAML format of ``docs/monitors.md`` and its validation.

A file holds ``monitors:``, a list of monitors; a directory holds such files (``*.yml``,
``*.yaml``, read in name order). The shape below is a contract (issue 7): fields may be
added, never renamed. Loading checks every monitor and reports each problem with its
place (``checkout.yml: monitors[1].steps[0].expect.status: expected int``), and refuses
the whole set when any monitor is wrong: half a set applied would be worse than none.

Durations are written ``500ms``, ``20s``, ``5m``, ``1h``, ``1d`` (or a number of
seconds). Relative URLs (``/cart``) join the base URL given to the command
(``--base-url``).
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Final, Literal
from urllib.parse import urlsplit

import msgspec
import yaml
from msgspec import Meta

from shopwatch.config_files import load_unique
from shopwatch.config_files import place as error_at
from shopwatch.errors import ConfigError

KINDS: Final = ("http", "api_flow", "browser_flow", "tcp", "dns", "tls",
                "heartbeat")  # one module each
MIN_INTERVAL_S: Final = 20.0
MAX_STEPS: Final = 50
DEFAULT_TIMEOUT_S: Final = 10.0
BROWSER_TIMEOUT_S: Final = 60.0  # a browser flow's default: the whole flow, launch included
DEVICES: Final = ("desktop", "mobile")
MAX_SCRIPT_BYTES: Final = 256 * 1024
SCRIPT_ONLY_FROM_FILES: Final = (
    "a browser script is Python that the server runs: it is applied only from files, by "
    "an operator (shopwatch monitors apply; see docs/monitors.md)")
MIN_PERIOD_S: Final = 20.0  # a heartbeat's period: no finer than it is judged (interval)
MAX_PERIOD_S: Final = 366 * 86400.0
DNS_RECORDS: Final = ("A", "AAAA", "CNAME", "MX", "TXT", "NS")
NAME_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.\-]{0,99}")
# Where checks run from: the server's own location (checks_location) or a probe's.
LOCATION_RE: Final = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?")
_DURATION_RE: Final = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*")
_UNITS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_LABEL: Final = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOST_RE: Final = re.compile(rf"(?=.{{1,253}}\.?$)(?:{_LABEL}\.)*{_LABEL}\.?")

Duration = str | int | float
Scalar = str | int | float | bool | None


def seconds(value: Duration, where: str) -> float:
    """A duration (``"20s"``, ``"500ms"``, ``90``) in seconds; ConfigError naming
    ``where`` otherwise."""
    if isinstance(value, bool):
        raise ConfigError(f"{where}: {value!r} is not a duration like 30s")
    if isinstance(value, int | float):
        return float(value)
    match = _DURATION_RE.fullmatch(value)
    if not match:
        raise ConfigError(f"{where}: {value!r} is not a duration like 500ms, 30s, 5m, 1h "
                          "or 1d")
    return float(match.group(1)) * _UNITS[match.group(2)]


def nameserver(text: str) -> tuple[str, int]:
    """``(address, port)`` of a ``dns`` monitor's ``resolver``: ``1.1.1.1``,
    ``127.0.0.1:5353``, ``2606:4700::1111`` or ``[::1]:5353`` (port 53 by default);
    ValueError when it is not an address (a name would need a resolver of its own)."""
    text = text.strip()
    port = 53
    if text.startswith("["):
        address, _, rest = text[1:].partition("]")
        if rest:
            if not rest.startswith(":") or not rest[1:].isdigit():
                raise ValueError(f"{text!r}: expected [address]:port")
            port = int(rest[1:])
    elif text.count(":") == 1:
        address, _, number = text.partition(":")
        if not number.isdigit():
            raise ValueError(f"{text!r}: expected address:port")
        port = int(number)
    else:
        address = text
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise ValueError(f"{text!r} is not an IP address (optionally with :port)") from None
    if not 1 <= port <= 65535:
        raise ValueError(f"{text!r}: port {port} is not 1-65535")
    return str(ip), port


class Expect(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """What a response must be. ``status``: one code or a list (default: any 2xx or
    3xx); ``contains``/``not_contains``: text in the body; ``regex``/``not_regex``: a
    pattern searched in the body; ``json``: JSON paths and the values they must have;
    ``max_ms``: the longest the whole request may take; ``headers``: header values that
    must be present (case-insensitive names, exact values).

    In a ``browser_flow`` step: ``status`` is the status of the page the step navigated
    to; ``contains``/``regex`` and their negations apply to the page's visible text;
    ``max_ms`` to the whole step; ``visible`` is a selector that must be visible and
    ``url_contains`` text the page's URL must contain."""

    status: int | list[int] | None = None
    contains: str | None = None
    not_contains: str | None = None
    regex: str | None = None
    not_regex: str | None = None
    json: dict[str, Scalar] | None = None
    max_ms: Annotated[float, Meta(gt=0)] | None = None
    headers: dict[str, str] | None = None
    visible: str | None = None
    url_contains: str | None = None


class Exchange(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, kw_only=True):
    """The fields of one HTTP request but its URL (shared by requests and monitors)."""

    method: str = "GET"
    headers: dict[str, str] | None = None
    body: str | None = None
    json: Any = None
    form: dict[str, str] | None = None
    follow_redirects: bool = True
    expect: Expect | None = None


class Request(Exchange, kw_only=True):
    """An HTTP request; in flows, ``{name}`` in url, headers and bodies is replaced by
    the variable ``name`` extracted by an earlier step."""

    url: str


class Step(Exchange, kw_only=True):
    """One step of an ``api_flow`` or a ``browser_flow``.

    In an ``api_flow`` a step is a request (``url`` required). ``extract`` names
    variables: ``"$.cart.id"`` (a JSON path into the response body),
    ``"regex:<pattern>"`` (the first group, or the whole match), ``"header:<name>"`` or
    ``"cookie:<name>"``. Cookies carry over between steps.

    In a ``browser_flow`` a step acts on the page, in this order: ``url`` (go to it),
    ``fill`` (selector: text), ``select`` (selector: option value), ``check`` (a
    checkbox's selector), ``click`` (a selector), ``press`` (a key, e.g. ``Enter``, on
    the focused element), ``wait_for`` (a selector that must appear); then ``expect``.
    Selectors are Playwright's (CSS, ``text=Add to cart``, ``role=button[name=Pay]``)."""

    name: str
    url: str | None = None
    extract: dict[str, str] | None = None
    fill: dict[str, str] | None = None
    select: dict[str, str] | None = None
    check: str | None = None
    click: str | None = None
    press: str | None = None
    wait_for: str | None = None

    def request(self) -> Request:
        """The step's request (``api_flow``; ``url`` is set there)."""
        assert self.url is not None
        return Request(url=self.url, method=self.method, headers=self.headers, body=self.body,
                       json=self.json, form=self.form, follow_redirects=self.follow_redirects,
                       expect=self.expect)


class Monitor(Exchange, kw_only=True):
    """One monitor as written in YAML (the fields of every kind; each kind uses its own:
    an ``http`` monitor is one request, an ``api_flow`` a list of steps, ``tcp`` and
    ``tls`` a ``host`` and ``port`` (or a ``url``), ``dns`` a ``host``, ``record`` and
    ``expected`` answers, ``heartbeat`` a ``period`` and ``grace``, ``browser_flow`` a
    list of page steps, a ``device`` and extra ``headers``). ``timeout`` bounds one run:
    10 s by default, 60 s for a ``browser_flow`` (the whole flow, a hard limit)."""

    name: str
    kind: Literal["http", "api_flow", "browser_flow", "tcp", "dns", "tls", "heartbeat"]
    url: str | None = None
    steps: Annotated[list[Step], Meta(max_length=MAX_STEPS)] | None = None
    interval: Duration = "60s"
    timeout: Duration | None = None
    retries: Annotated[int, Meta(ge=0, le=10)] = 0
    locations: list[str] | None = None
    # down when at least this many of its locations' latest runs failed (docs/monitors.md)
    min_failed_locations: Annotated[int, Meta(ge=1)] = 1
    enabled: bool = True
    # tcp, tls, dns: what to reach (tcp and tls: or a url, whose host and port are taken)
    host: str | None = None
    port: Annotated[int, Meta(ge=1, le=65535)] | None = None
    # dns: the record type, the answers that must be among those given, the nameserver
    record: str | None = None
    expected: str | list[str] | None = None
    resolver: str | None = None
    # tls: verify the chain and host name; fail when fewer days than this are left
    verify: bool = True
    warn_days: Annotated[int, Meta(ge=0, le=365)] = 14
    # heartbeat: how often the shop's job pings, and how late a ping may be
    period: Duration | None = None
    grace: Duration = "1m"
    # browser_flow: the viewport and user agent of a desktop or a phone
    device: Literal["desktop", "mobile"] = "desktop"
    # browser_flow: a Playwright script (path relative to the YAML file) instead of steps;
    # its source is read when the file is loaded and kept with the monitor
    script: str | None = None
    script_source: str | None = None

    @property
    def interval_s(self) -> float:
        return seconds(self.interval, f"{self.name}: interval")

    @property
    def timeout_s(self) -> float:
        if self.timeout is None:
            return BROWSER_TIMEOUT_S if self.kind == "browser_flow" else DEFAULT_TIMEOUT_S
        return seconds(self.timeout, f"{self.name}: timeout")

    @property
    def period_s(self) -> float:
        assert self.period is not None
        return seconds(self.period, f"{self.name}: period")

    @property
    def grace_s(self) -> float:
        return seconds(self.grace, f"{self.name}: grace")

    @property
    def target(self) -> str:
        """What the monitor watches, in a few words (for lists and pages)."""
        if self.kind == "browser_flow" and self.script is not None:
            return f"script {self.script}"
        if self.kind in ("api_flow", "browser_flow"):
            return f"{len(self.steps or [])} steps"
        if self.kind == "dns":
            return f"{(self.record or 'A').upper()} {self.host}"
        if self.kind == "heartbeat":
            return f"a ping every {self.period} (grace {self.grace})"
        if self.kind in ("tcp", "tls") and self.host is not None:
            bare = self.host.strip().strip("[]")
            host = f"[{bare}]" if ":" in bare else bare
            return f"{host}:{self.port or 443}"
        return self.url or ""

    def request(self) -> Request:
        """The single request of an ``http`` monitor."""
        assert self.url is not None
        return Request(url=self.url, method=self.method, headers=self.headers, body=self.body,
                       json=self.json, form=self.form, follow_redirects=self.follow_redirects,
                       expect=self.expect)


class MonitorFile(msgspec.Struct, forbid_unknown_fields=True):
    monitors: list[Monitor] = msgspec.field(default_factory=list)
    # Alert rules live in the same files; shopwatch.alerts.rules reads and checks them.
    rules: list[Any] | None = None
    # So do SLOs; shopwatch.alerts.objectives reads and checks them.
    slos: list[Any] | None = None


# The fields each kind added by issue 7 uses (besides name, kind, interval, timeout,
# retries, locations, enabled); any other field set on such a monitor is an error.
_KIND_FIELDS: Final[dict[str, frozenset[str]]] = {
    "tcp": frozenset({"host", "port", "url", "expect"}),
    "dns": frozenset({"host", "record", "expected", "resolver", "expect"}),
    "tls": frozenset({"host", "port", "url", "verify", "warn_days", "expect"}),
    "heartbeat": frozenset({"period", "grace"}),
    "browser_flow": frozenset({"steps", "headers", "device", "script", "script_source"}),
}
_COMMON: Final = frozenset({"name", "kind", "interval", "timeout", "retries", "locations",
                            "min_failed_locations", "enabled"})
# What http and api_flow monitors may not set: the other kinds' own fields.
_NEW_FIELDS: Final = frozenset().union(*_KIND_FIELDS.values()) - {
    "url", "expect", "steps", "headers"}
_BROWSER_ACTIONS: Final = ("url", "fill", "select", "check", "click", "press", "wait_for")
_BROWSER_EXPECT: Final = frozenset({"status", "contains", "not_contains", "regex",
                                    "not_regex", "max_ms", "visible", "url_contains"})


def _a(kind: str) -> str:
    return f"an {kind}" if kind in ("http", "api_flow") else f"a {kind}"


def _set_fields(monitor: Monitor) -> list[str]:
    """The fields of ``monitor`` that differ from their defaults, in declaration order."""
    return [f.name for f in msgspec.structs.fields(Monitor)
            if f.default is not msgspec.NODEFAULT
            and getattr(monitor, f.name) != f.default]


def _check(monitor: Monitor, where: str) -> None:
    """What types cannot say: names, durations, kind-specific fields, patterns."""
    if not NAME_RE.fullmatch(monitor.name):
        raise ConfigError(f"{where}.name: {monitor.name!r} must be 1-100 letters, digits, "
                          "spaces, _ . or -, starting with a letter or digit")
    interval = seconds(monitor.interval, f"{where}.interval")
    if interval < MIN_INTERVAL_S:
        raise ConfigError(f"{where}.interval: {interval:g}s is under the minimum of "
                          f"{MIN_INTERVAL_S:g}s")
    timeout = seconds(monitor.timeout, f"{where}.timeout") if monitor.timeout is not None \
        else monitor.timeout_s
    if not 0 < timeout <= 120:
        raise ConfigError(f"{where}.timeout: {timeout:g}s must be over 0 and at most 120s")
    _check_locations(monitor, where)
    kind = monitor.kind
    allowed = _KIND_FIELDS.get(kind)
    for name in _set_fields(monitor):
        if (name in _NEW_FIELDS if allowed is None
                else name not in allowed and name not in _COMMON):
            raise ConfigError(f"{where}.{name}: {_a(kind)} monitor has no {name} "
                              "(see docs/monitors.md)")
    if kind in ("http", "api_flow"):
        _check_http(monitor, where)
        return
    if kind == "browser_flow":
        _check_browser(monitor, where)
        return
    if kind in ("tcp", "dns", "tls") and monitor.expect is not None:
        extra = [f for f in _set_expect(monitor.expect) if f != "max_ms"]
        if extra:
            raise ConfigError(f"{where}.expect.{extra[0]}: only max_ms applies to "
                              f"{_a(kind)} monitor")
    if kind in ("tcp", "tls"):
        _check_endpoint(monitor, where, port_needed=kind == "tcp")
    elif kind == "dns":
        _check_dns(monitor, where)
    else:
        _check_heartbeat(monitor, where)


def check_location(name: str, where: str) -> str:
    """A location name: 1 to 32 lower-case letters, digits and dashes (``eu-west``)."""
    if not LOCATION_RE.fullmatch(name):
        raise ConfigError(f"{where}: {name!r} must be 1-32 lower-case letters, digits or -, "
                          "starting and ending with a letter or digit (e.g. eu-west)")
    return name


def _check_locations(monitor: Monitor, where: str) -> None:
    """``locations`` (unique names; none for a heartbeat) and ``min_failed_locations``
    (at most the number of locations; without ``locations``, the server's own one)."""
    locations = monitor.locations
    if locations is not None:
        if monitor.kind == "heartbeat":
            raise ConfigError(f"{where}.locations: a heartbeat monitor is pinged by the "
                              "shop's jobs; it has no locations to run from")
        if not locations:
            raise ConfigError(f"{where}.locations: give at least one location (or leave it "
                              "out: the server's own)")
        for i, name in enumerate(locations):
            check_location(name, f"{where}.locations[{i}]")
            if locations.index(name) != i:
                raise ConfigError(f"{where}.locations[{i}]: {name!r} is listed twice")
    count = len(locations) if locations else 1
    if monitor.min_failed_locations > count:
        what = (f"the {count} locations" if locations and count > 1 else
                "the 1 location" if locations else
                "the 1 location (without locations: the server's own)")
        raise ConfigError(f"{where}.min_failed_locations: {monitor.min_failed_locations} is "
                          f"more than {what}")


def _set_expect(expect: Expect) -> list[str]:
    return [name for name in expect.__struct_fields__ if getattr(expect, name) is not None]


def check_host(host: str, where: str) -> str:
    """A host name or IP address (IPv6 with or without brackets), without brackets."""
    text = host.strip()
    if "://" in text or "/" in text or not text:
        raise ConfigError(f"{where}: {host!r} is a host name or address, not a URL "
                          "(use url: for a URL)")
    bare = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    try:
        return str(ipaddress.ip_address(bare))
    except ValueError:
        pass
    if not _HOST_RE.fullmatch(text):
        raise ConfigError(f"{where}: {host!r} is not a host name or IP address")
    return text


def _check_endpoint(monitor: Monitor, where: str, port_needed: bool) -> None:
    """tcp and tls: a host (with a port for tcp), or a url that gives them."""
    if monitor.host is not None and monitor.url is not None:
        raise ConfigError(f"{where}: give host (and port) or url, not both")
    if monitor.host is not None:
        check_host(monitor.host, f"{where}.host")
        if port_needed and monitor.port is None:
            raise ConfigError(f"{where}.port: a {monitor.kind} monitor with a host needs a "
                              "port")
        return
    if monitor.url is None:
        raise ConfigError(f"{where}.host: {_a(monitor.kind)} monitor needs a host (and port) "
                          "or a url")
    if monitor.port is not None:
        raise ConfigError(f"{where}.port: with a url, the port is the url's (or its "
                          "scheme's)")
    parts = urlsplit(monitor.url)
    if parts.scheme:  # relative URLs join the base URL when the monitor runs
        try:
            port = parts.port
        except ValueError:
            raise ConfigError(f"{where}.url: {monitor.url!r} has an invalid port") from None
        if not parts.hostname:
            raise ConfigError(f"{where}.url: {monitor.url!r} has no host")
        if port_needed and port is None and parts.scheme not in ("http", "https"):
            raise ConfigError(f"{where}.url: {monitor.url!r} has no port (and its scheme "
                              "has no default one)")


def _check_dns(monitor: Monitor, where: str) -> None:
    if monitor.host is None:
        raise ConfigError(f"{where}.host: a dns monitor needs the host name to look up")
    check_host(monitor.host, f"{where}.host")
    record = (monitor.record or "A").upper()
    if record not in DNS_RECORDS:
        raise ConfigError(f"{where}.record: {monitor.record!r} is not one of "
                          f"{', '.join(DNS_RECORDS)}")
    expected = monitor.expected
    values = [expected] if isinstance(expected, str) else (expected or [])
    if expected is not None and not values:
        raise ConfigError(f"{where}.expected: give at least one value (or leave it out)")
    for i, value in enumerate(values):
        place = f"{where}.expected" + (f"[{i}]" if isinstance(expected, list) else "")
        if not value.strip():
            raise ConfigError(f"{place}: an empty value")
        if record in ("A", "AAAA"):
            try:
                ip = ipaddress.ip_address(value.strip())
            except ValueError:
                raise ConfigError(f"{place}: {value!r} is not an IP address") from None
            if ip.version != (4 if record == "A" else 6):
                raise ConfigError(f"{place}: {value!r} is not an IPv{4 if record == 'A' else 6}"
                                  f" address ({record} record)")
    if monitor.resolver is not None:
        try:
            nameserver(monitor.resolver)
        except ValueError as exc:
            raise ConfigError(f"{where}.resolver: {exc}") from None


def _check_heartbeat(monitor: Monitor, where: str) -> None:
    if monitor.period is None:
        raise ConfigError(f"{where}.period: a heartbeat monitor needs the period of its "
                          "pings (e.g. 5m, 1h, 1d)")
    period = seconds(monitor.period, f"{where}.period")
    if not MIN_PERIOD_S <= period <= MAX_PERIOD_S:
        raise ConfigError(f"{where}.period: {period:g}s must be at least {MIN_PERIOD_S:g}s "
                          "and at most 366d")
    grace = seconds(monitor.grace, f"{where}.grace")
    if not 0 <= grace <= MAX_PERIOD_S:
        raise ConfigError(f"{where}.grace: {grace:g}s must be at least 0 and at most 366d")
    if monitor.retries:
        raise ConfigError(f"{where}.retries: a heartbeat monitor has nothing to retry")


def _step_fields(step: Step) -> list[str]:
    """The fields of ``step`` that differ from their defaults."""
    return [f.name for f in msgspec.structs.fields(Step)
            if f.default is not msgspec.NODEFAULT and getattr(step, f.name) != f.default]


def _check_browser(monitor: Monitor, where: str) -> None:
    """A browser_flow: page steps (actions and expectations) only."""
    if monitor.url:
        raise ConfigError(f"{where}.url: a browser_flow monitor has a url per step")
    if monitor.expect is not None:
        raise ConfigError(f"{where}.expect: a browser_flow monitor has an expect per step")
    if monitor.script is not None or monitor.script_source is not None:
        if monitor.steps:
            raise ConfigError(f"{where}.steps: give steps or a script, not both")
        if monitor.script is None or monitor.script_source is None:
            raise ConfigError(f"{where}.script: {SCRIPT_ONLY_FROM_FILES}")
        check_script(monitor.script_source, monitor.script, f"{where}.script")
        return
    if not monitor.steps:
        raise ConfigError(f"{where}.steps: a browser_flow monitor needs at least one step "
                          "(or a script)")
    names = [s.name for s in monitor.steps]
    for i, step in enumerate(monitor.steps):
        place = f"{where}.steps[{i}]"
        if step.name in names[:i]:
            raise ConfigError(f"{place}.name: {step.name!r} is used twice")
        for name in _step_fields(step):
            if name not in _BROWSER_ACTIONS and name not in ("name", "expect"):
                raise ConfigError(f"{place}.{name}: a browser step has no {name} (it acts "
                                  f"with {', '.join(_BROWSER_ACTIONS)}; see docs/monitors.md)")
        if not any(getattr(step, a) is not None for a in _BROWSER_ACTIONS) \
                and step.expect is None:
            raise ConfigError(f"{place}: a browser step needs an action "
                              f"({', '.join(_BROWSER_ACTIONS)}) or an expect")
        for attr in ("check", "click", "press", "wait_for"):
            value = getattr(step, attr)
            if value is not None and not value.strip():
                raise ConfigError(f"{place}.{attr}: empty")
        for attr in ("fill", "select"):
            for selector in (getattr(step, attr) or {}):
                if not selector.strip():
                    raise ConfigError(f"{place}.{attr}: an empty selector")
        if step.expect is not None:
            for name in _set_expect(step.expect):
                if name not in _BROWSER_EXPECT:
                    raise ConfigError(f"{place}.expect.{name}: not for a browser step (it "
                                      f"checks {', '.join(sorted(_BROWSER_EXPECT))})")
            _check_patterns(step.expect, f"{place}.expect")


def check_script(source: str, name: str, where: str) -> None:
    """A browser script must compile and define ``async def flow(page, step)`` at its top
    level; ConfigError naming the script's line otherwise."""
    import ast

    if len(source.encode()) > MAX_SCRIPT_BYTES:
        raise ConfigError(f"{where}: {name} is larger than {MAX_SCRIPT_BYTES // 1024} KiB")
    try:
        tree = ast.parse(source, filename=name)
    except SyntaxError as exc:
        raise ConfigError(f"{where}: {name}:{exc.lineno}: {exc.msg}") from None
    if not any(isinstance(node, ast.AsyncFunctionDef) and node.name == "flow"
               for node in tree.body):
        raise ConfigError(f"{where}: {name} defines no `async def flow(page, step)` (see "
                          "docs/monitors.md)")


def _read_scripts(data: Any, base_dir: Path | None, source: str) -> None:
    """Fill ``script_source`` of the browser flows in ``data`` (the YAML's list) from the
    files their ``script`` names, relative to ``base_dir``; refuse scripts (and sources)
    without one: only files applied by an operator may carry code."""
    if not isinstance(data, dict) or not isinstance(data.get("monitors"), list):
        return
    for i, item in enumerate(data["monitors"]):
        if not isinstance(item, dict):
            continue
        where = f"{source}: monitors[{i}]"
        if "script_source" in item:
            raise ConfigError(f"{where}.script_source: set by Shopwatch from script; give "
                              "script: (a file name) instead")
        script = item.get("script")
        if script is None:
            continue
        if base_dir is None:
            raise ConfigError(f"{where}.script: {SCRIPT_ONLY_FROM_FILES}")
        if not isinstance(script, str) or not script.endswith(".py"):
            raise ConfigError(f"{where}.script: {script!r} must name a .py file, relative "
                              "to this YAML file")
        path = base_dir / script
        try:
            item["script_source"] = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{where}.script: cannot read {path}: "
                              f"{getattr(exc, 'strerror', None) or exc}") from None


def _check_patterns(expect: Expect, where: str) -> None:
    for attr in ("regex", "not_regex"):
        pattern = getattr(expect, attr)
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ConfigError(f"{where}.{attr}: {exc}") from None


def _check_http(monitor: Monitor, where: str) -> None:
    """The http and api_flow kinds (unchanged since issue 7's first kinds)."""
    requests: list[tuple[str, Request]] = []
    if monitor.kind == "http":
        if not monitor.url:
            raise ConfigError(f"{where}.url: an http monitor needs a url")
        if monitor.steps:
            raise ConfigError(f"{where}.steps: only an api_flow monitor has steps")
        requests.append((where, monitor.request()))
    else:
        if not monitor.steps:
            raise ConfigError(f"{where}.steps: an api_flow monitor needs at least one step")
        if monitor.url:
            raise ConfigError(f"{where}.url: an api_flow monitor has a url per step")
        names = [s.name for s in monitor.steps]
        for i, step in enumerate(monitor.steps):
            if names.count(step.name) > 1:
                raise ConfigError(f"{where}.steps[{i}].name: {step.name!r} is used twice")
            if step.url is None:
                raise ConfigError(f"{where}.steps[{i}].url: an api_flow step needs a url")
            extra = [f for f in _step_fields(step) if f in _BROWSER_ACTIONS and f != "url"]
            if extra:
                raise ConfigError(f"{where}.steps[{i}].{extra[0]}: only a browser_flow "
                                  "step acts on a page")
            requests.append((f"{where}.steps[{i}]", step.request()))
            for var, spec in (step.extract or {}).items():
                if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", var):
                    raise ConfigError(f"{where}.steps[{i}].extract: {var!r} is not a "
                                      "variable name (letters, digits, _)")
                _check_extract(spec, f"{where}.steps[{i}].extract.{var}")
    for place, req in requests:
        if req.body is not None and req.json is not None:
            raise ConfigError(f"{place}: give body or json, not both")
        if req.method.upper() not in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE",
                                      "OPTIONS"):
            raise ConfigError(f"{place}.method: {req.method!r} is not an HTTP method")
        expect = req.expect
        if expect is not None:
            for attr in ("visible", "url_contains"):
                if getattr(expect, attr) is not None:
                    raise ConfigError(f"{place}.expect.{attr}: only a browser_flow step "
                                      "has a page")
            _check_patterns(expect, f"{place}.expect")
            for path in (expect.json or {}):
                _check_path(path, f"{place}.expect.json")


@lru_cache(maxsize=1024)
def json_path(path: str) -> Any:
    """A compiled JSON path (jsonpath-ng's extended syntax: ``$.items[0].id``,
    ``$.items[?price > 10].id``); raises for a malformed one."""
    from jsonpath_ng.ext.parser import parse as parse_path

    return parse_path(path)


def first_match(path: str, document: Any) -> tuple[bool, Any]:
    """``(found, value)`` of the first match of ``path`` in ``document``."""
    matches = json_path(path).find(document)
    return (True, matches[0].value) if matches else (False, None)


def _check_path(path: str, where: str) -> None:
    try:
        json_path(path)
    except Exception as exc:  # jsonpath-ng raises several kinds for a bad path
        raise ConfigError(f"{where}: {path!r} is not a JSON path like $.cart.id ({exc})") from None


def _check_extract(spec: str, where: str) -> None:
    if spec.startswith("$"):
        _check_path(spec, where)
    elif spec.startswith("regex:"):
        try:
            re.compile(spec[6:])
        except re.error as exc:
            raise ConfigError(f"{where}: {exc}") from None
    elif not spec.startswith(("header:", "cookie:")):
        raise ConfigError(f"{where}: {spec!r} must be a JSON path ($.x), regex:..., "
                          "header:<name> or cookie:<name>")


def parse_monitors(text: str, source: str = "<text>",
                   base_dir: Path | None = None) -> list[Monitor]:
    """The monitors of one YAML document; ConfigError naming ``source`` and the place.
    ``base_dir`` is the directory of the file, where browser ``script`` files are read
    from; without it (the API, the dashboard's form) a script is refused."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from None
    if data is None:
        return []
    _read_scripts(data, base_dir, source)
    try:
        parsed = msgspec.convert(data, MonitorFile)
    except msgspec.ValidationError as exc:
        raise error_at(exc, source, "file", "docs/monitors.md",
                    {"kind": KINDS, "device": DEVICES}) from None
    for i, monitor in enumerate(parsed.monitors):
        _check(monitor, f"{source}: monitors[{i}]")
    return parsed.monitors


def load_monitors(path: Path) -> list[Monitor]:
    """Every monitor of a file or of a directory's ``*.yml``/``*.yaml`` files; names must
    be unique across them."""
    return load_unique(path, lambda f: parse_monitors(f.read_text(), f.name, f.parent),
                       "monitor")
