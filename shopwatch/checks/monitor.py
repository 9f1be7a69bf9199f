"""Monitors as code: the YAML format of ``docs/monitors.md`` and its validation.

A file holds ``monitors:``, a list of monitors; a directory holds such files (``*.yml``,
``*.yaml``, read in name order). The shape below is a contract (issue 7): fields may be
added, never renamed. Loading checks every monitor and reports each problem with its
place (``checkout.yml: monitors[1].steps[0].expect.status: expected int``), and refuses
the whole set when any monitor is wrong: half a set applied would be worse than none.

Durations are written ``500ms``, ``20s``, ``5m``, ``1h`` (or a number of seconds).
Relative URLs (``/cart``) join the base URL given to the command (``--base-url``).
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import msgspec
import yaml
from msgspec import Meta

from shopwatch.errors import ConfigError

KINDS: Final = ("http", "api_flow")  # more kinds arrive one module each (issue 7)
MIN_INTERVAL_S: Final = 20.0
MAX_STEPS: Final = 50
NAME_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.\-]{0,99}")
_DURATION_RE: Final = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*")
_UNITS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}

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
        raise ConfigError(f"{where}: {value!r} is not a duration like 500ms, 30s, 5m or 1h")
    return float(match.group(1)) * _UNITS[match.group(2)]


class Expect(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """What a response must be. ``status``: one code or a list (default: any 2xx or
    3xx); ``contains``/``not_contains``: text in the body; ``regex``/``not_regex``: a
    pattern searched in the body; ``json``: JSON paths and the values they must have;
    ``max_ms``: the longest the whole request may take; ``headers``: header values that
    must be present (case-insensitive names, exact values)."""

    status: int | list[int] | None = None
    contains: str | None = None
    not_contains: str | None = None
    regex: str | None = None
    not_regex: str | None = None
    json: dict[str, Scalar] | None = None
    max_ms: Annotated[float, Meta(gt=0)] | None = None
    headers: dict[str, str] | None = None


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


class Step(Request, kw_only=True):
    """One step of an ``api_flow``. ``extract`` names variables: ``"$.cart.id"`` (a JSON
    path into the response body), ``"regex:<pattern>"`` (the first group, or the whole
    match), ``"header:<name>"`` or ``"cookie:<name>"``. Cookies carry over between steps."""

    name: str
    extract: dict[str, str] | None = None


class Monitor(Exchange, kw_only=True):
    """One monitor as written in YAML (the fields of every kind; each kind uses its own:
    an ``http`` monitor is one request, an ``api_flow`` a list of steps)."""

    name: str
    kind: Literal["http", "api_flow"]
    url: str | None = None
    steps: Annotated[list[Step], Meta(max_length=MAX_STEPS)] | None = None
    interval: Duration = "60s"
    timeout: Duration = "10s"
    retries: Annotated[int, Meta(ge=0, le=10)] = 0
    locations: list[str] | None = None
    enabled: bool = True

    @property
    def interval_s(self) -> float:
        return seconds(self.interval, f"{self.name}: interval")

    @property
    def timeout_s(self) -> float:
        return seconds(self.timeout, f"{self.name}: timeout")

    def request(self) -> Request:
        """The single request of an ``http`` monitor."""
        assert self.url is not None
        return Request(url=self.url, method=self.method, headers=self.headers, body=self.body,
                       json=self.json, form=self.form, follow_redirects=self.follow_redirects,
                       expect=self.expect)


class MonitorFile(msgspec.Struct, forbid_unknown_fields=True):
    monitors: list[Monitor]


def _check(monitor: Monitor, where: str) -> None:
    """What types cannot say: names, durations, kind-specific fields, patterns."""
    if not NAME_RE.fullmatch(monitor.name):
        raise ConfigError(f"{where}.name: {monitor.name!r} must be 1-100 letters, digits, "
                          "spaces, _ . or -, starting with a letter or digit")
    interval = seconds(monitor.interval, f"{where}.interval")
    if interval < MIN_INTERVAL_S:
        raise ConfigError(f"{where}.interval: {interval:g}s is under the minimum of "
                          f"{MIN_INTERVAL_S:g}s")
    timeout = seconds(monitor.timeout, f"{where}.timeout")
    if not 0 < timeout <= 120:
        raise ConfigError(f"{where}.timeout: {timeout:g}s must be over 0 and at most 120s")
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
            requests.append((f"{where}.steps[{i}]", step))
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
            for attr in ("regex", "not_regex"):
                pattern = getattr(expect, attr)
                if pattern is not None:
                    try:
                        re.compile(pattern)
                    except re.error as exc:
                        raise ConfigError(f"{place}.expect.{attr}: {exc}") from None
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


def parse_monitors(text: str, source: str = "<text>") -> list[Monitor]:
    """The monitors of one YAML document; ConfigError naming ``source`` and the place."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from None
    if data is None:
        return []
    try:
        parsed = msgspec.convert(data, MonitorFile)
    except msgspec.ValidationError as exc:
        message = str(exc).replace("`", "")
        text_, _, path = message.partition(" - at $")
        path = path.lstrip(".")
        if text_.startswith("Object contains unknown field "):
            field = text_.removeprefix("Object contains unknown field ")
            path = f"{path}.{field}" if path else field
            text_ = "unknown field (see docs/monitors.md)"
        raise ConfigError(f"{source}: {path or 'file'}: {text_[:1].lower()}{text_[1:]}") from None
    for i, monitor in enumerate(parsed.monitors):
        _check(monitor, f"{source}: monitors[{i}]")
    return parsed.monitors


def load_monitors(path: Path) -> list[Monitor]:
    """Every monitor of a file or of a directory's ``*.yml``/``*.yaml`` files; names must
    be unique across them."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".yml", ".yaml"))
        if not files:
            raise ConfigError(f"{path}: no .yml or .yaml files in this directory")
    elif path.is_file():
        files = [path]
    else:
        raise ConfigError(f"{path}: no such file or directory")
    monitors: list[Monitor] = []
    seen: dict[str, str] = {}
    for file in files:
        for monitor in parse_monitors(file.read_text(), file.name):
            if monitor.name in seen:
                raise ConfigError(f"{file.name}: monitor {monitor.name!r} is also defined in "
                                  f"{seen[monitor.name]}")
            seen[monitor.name] = file.name
            monitors.append(monitor)
    return monitors
