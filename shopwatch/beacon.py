"""The RUM beacon: what ``/rum.js`` sends to ``POST /api/v1/rum``, its limits, and how
it becomes stored rows.

A beacon is one JSON object (sent as ``text/plain`` so that browsers need no CORS
preflight) holding the page's context and a list of records::

    {"v": 1, "sid": "<session id>", "uid": "<user id>", "vw": 1280, "vh": 720,
     "ect": "4g", "r": [{"k": "view", "pv": "<page view id>", "t": <epoch ms>,
                         "url": "https://shop.example/p/1", ...}, ...]}

Record kinds (``k``), each a struct below: ``view`` (a page view or a single-page-app
route change, with navigation timings), ``vitals`` (FCP, LCP, CLS, INP and their
attribution, sent when the page is hidden; later ones for the same page view supersede
earlier ones), ``error`` (a JavaScript error or unhandled rejection), ``resource`` (a
failed or slow resource load), ``api`` (a same-origin fetch or XHR the snippet gave a
W3C ``traceparent``, sent only with ``data-traceparent="on"``) and ``event`` (a
commerce or custom event from ``shopwatch('event', ...)``, stored as an ordinary
event). A ``view`` may carry ``tp``: the description of the page's ``Server-Timing``
entry named ``traceparent``, whose trace id becomes the row's ``trace_id`` (the backend
trace that served the page).

Contract of :func:`parse`: a body that is not a beacon object raises
:class:`~shopwatch.errors.BadRequest` saying where; otherwise every record is either
kept or rejected with its index, field and reason, and the valid ones are kept. Unknown
fields are ignored (a cached older or newer snippet must not lose its data); wrong types
and values over a limit are not. A view's ``tp`` that is not a valid W3C traceparent
loses only that value, with a warning (it comes from the shop's server, not the
snippet, and must not cost the page view). Strings that are only informative (error
messages, stacks) are truncated rather than refused. Everything stored is scrubbed of personal
data (:mod:`shopwatch.privacy`): page URLs keep only their path and ``utm_*`` query
parameters, emails, card numbers and digit runs of 9 or more are replaced.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Annotated, Any, Final, Literal
from urllib.parse import urlsplit, urlunsplit

import msgspec
from msgspec import Meta

from shopwatch import events as ev
from shopwatch import privacy
from shopwatch.errors import BadRequest
from shopwatch.useragent import Agent

# --- limits (documented in docs/rum.md; change both together) -------------------------
MAX_RECORDS: Final = 200
MAX_MESSAGE_INPUT: Final = 8192  # rejected above this
MAX_MESSAGE: Final = 1024  # stored messages are truncated to this
MAX_STACK_INPUT: Final = 32768
MAX_STACK: Final = 4096
MAX_SELECTOR: Final = 256
MAX_MS: Final = 3_600_000.0  # one hour: any timing above it is a broken clock
MAX_CLS: Final = 100.0
LONG_NUMBER_RE: Final = re.compile(r"\d{9,}")

Ms = Annotated[float, Meta(ge=0, le=MAX_MS)]
# A W3C trace id: 32 lower-case hex digits, not all zeros (the spec's invalid id).
TraceId = Annotated[str, Meta(pattern="^(?!0{32}$)[0-9a-f]{32}$")]
# A traceparent of version 00: trace id, parent span id (neither all zeros), flags.
TRACEPARENT_RE: Final = re.compile(
    r"00-(?!0{32}-)([0-9a-f]{32})-(?!0{16}-)[0-9a-f]{16}-[0-9a-f]{2}")
MAX_TRACEPARENT: Final = 256
Selector = Annotated[str, Meta(max_length=MAX_SELECTOR)]


class Record(msgspec.Struct, tag_field="k", kw_only=True, gc=False):
    """What every record carries: its page view, time and page URL."""

    pv: ev.Ident | None = None  # page view id (random, made by the snippet)
    t: Annotated[float, Meta(ge=0, le=1e14)] | None = None  # epoch milliseconds
    url: ev.Url | None = None  # location.href when it happened


class View(Record, tag="view"):
    """A page view (``spa``: a route change without a page load) and its timings (ms
    from the navigation's start): DNS, TCP connect, TLS, first byte, DOM interactive,
    load event."""

    ref: ev.Url | None = None
    spa: bool = False
    dns: Ms | None = None
    tcp: Ms | None = None
    tls: Ms | None = None
    ttfb: Ms | None = None
    di: Ms | None = None
    load: Ms | None = None
    tp: Annotated[str, Meta(max_length=MAX_TRACEPARENT)] | None = None  # Server-Timing


class Vitals(Record, tag="vitals"):
    """Web Vitals of one page view so far, as web-vitals defines them; the selectors
    name the LCP element and the CLS and INP targets; ``vis`` is the visible time."""

    fcp: Ms | None = None
    lcp: Ms | None = None
    cls: Annotated[float, Meta(ge=0, le=MAX_CLS)] | None = None
    inp: Ms | None = None
    lcpEl: Selector | None = None  # the wire names are short: they are in the snippet
    clsEl: Selector | None = None
    inpEl: Selector | None = None
    vis: Ms | None = None


class JsError(Record, tag="error"):
    """An uncaught error (``type`` ``error``) or unhandled rejection (``rejection``)."""

    msg: Annotated[str, Meta(max_length=MAX_MESSAGE_INPUT)] = ""
    type: Literal["error", "rejection"] = "error"
    stack: Annotated[str, Meta(max_length=MAX_STACK_INPUT)] | None = None
    src: ev.Url | None = None
    line: Annotated[int, Meta(ge=0, le=10_000_000)] | None = None
    col: Annotated[int, Meta(ge=0, le=10_000_000)] | None = None


class Resource(Record, tag="resource"):
    """A resource that failed to load (``fail``) or loaded slowly, with its element or
    initiator type (``img``, ``script``, ``iframe``, ``link``, ``fetch``...)."""

    ru: ev.Url
    rt: ev.Short | None = None
    dur: Ms | None = None
    fail: bool = False


class Action(Record, tag="event"):
    """``shopwatch('event', n, p)``: a GA4 or custom event; ``p.event_id`` (or ``id``)
    is its dedup id, shared with the same event sent by the shop's server."""

    n: ev.Name
    p: ev.Params | None = None
    id: ev.Ident | None = None


class Api(Record, tag="api"):
    """A same-origin ``fetch`` or XHR (``rt``) the snippet sent with a ``traceparent``
    of trace ``tid``: its URL path ``ru``, HTTP status ``st`` (0: network error or
    aborted) and duration."""

    ru: ev.Url
    tid: TraceId
    rt: Literal["fetch", "xhr"] = "fetch"
    st: Annotated[int, Meta(ge=0, le=999)] | None = None
    dur: Ms | None = None


AnyRecord = View | Vitals | JsError | Resource | Action | Api


class Beacon(msgspec.Struct, gc=False):
    """The beacon object; records are decoded one by one (see :func:`parse`)."""

    r: Annotated[list[msgspec.Raw], Meta(max_length=MAX_RECORDS)]
    v: int = 1
    sid: ev.Ident | None = None
    uid: ev.Ident | None = None
    vw: ev.Pixels | None = None
    vh: ev.Pixels | None = None
    ect: ev.Short | None = None


class RumRow(msgspec.Struct, omit_defaults=True, gc=False):
    """One stored row of the ``rum`` table (``ts`` in epoch seconds)."""

    kind: str
    ts: float
    session_id: str | None = None
    view_id: str | None = None
    user_id: str | None = None
    page: str | None = None
    referrer: str | None = None
    spa: bool | None = None
    device_category: str | None = None
    browser: str | None = None
    browser_version: str | None = None
    os: str | None = None
    country: str | None = None
    viewport_width: int | None = None
    viewport_height: int | None = None
    connection: str | None = None
    dns_ms: float | None = None
    connect_ms: float | None = None
    tls_ms: float | None = None
    ttfb_ms: float | None = None
    dom_interactive_ms: float | None = None
    load_ms: float | None = None
    fcp_ms: float | None = None
    lcp_ms: float | None = None
    cls: float | None = None
    inp_ms: float | None = None
    lcp_target: str | None = None
    cls_target: str | None = None
    inp_target: str | None = None
    visible_ms: float | None = None
    error_type: str | None = None
    message: str | None = None
    stack: str | None = None
    source: str | None = None
    line: int | None = None
    col: int | None = None
    fingerprint: str | None = None
    resource_url: str | None = None
    resource_host: str | None = None
    resource_type: str | None = None
    duration_ms: float | None = None
    failed: bool | None = None
    trace_id: str | None = None  # views: the serving request's; api: the call's


RUM_COLUMNS: Final = ("project_id", "received_at", *RumRow.__struct_fields__)
_beacon_decoder: Final = msgspec.json.Decoder(Beacon)
_record_decoder: Final = msgspec.json.Decoder(AnyRecord)


@dataclass
class Parsed:
    """What :func:`parse` made of a beacon: rows for ``rum``, events for the pipeline
    (``(record index, event)``), the rejected records, the sampled-out count and warnings
about values dropped from kept records (``{"index", "warning"}``)."""

    rows: list[RumRow] = field(default_factory=list)
    events: list[tuple[int, ev.Event]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    sampled_out: int = 0
    warnings: list[dict[str, Any]] = field(default_factory=list)


def sample_point(session_id: str) -> float:
    """Where a session falls in [0, 1): FNV-1a (32 bits) of its id over 2**32. The
    snippet computes the same, so browser and server agree on which sessions are in
    a sample."""
    h = 0x811C9DC5
    for unit in session_id.encode("utf-16-le")[::2]:  # JS charCodeAt, low byte
        h = ((h ^ unit) * 0x01000193) & 0xFFFFFFFF
    return h / 2**32


def parse(body: bytes, *, now_ms: float, agent: Agent, country: str | None = None,
          sample_rate: float = 1.0,
          query_allow: frozenset[str] = frozenset()) -> Parsed:
    """Decode and check a beacon; see the module docstring.

    ``agent`` is the request's parsed user agent and ``country`` its GeoIP country.
    Records without ``t`` take ``now_ms``. With ``sample_rate`` below 1, the
    performance records (not ``event``) of sessions outside the sample are dropped and
    counted in ``sampled_out``.
    """
    if not body.strip():
        raise BadRequest('empty body: send a beacon object {"r": [...]}')
    try:
        beacon = _beacon_decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise BadRequest(ev.describe_error(exc, "beacon", whole="beacon")) from None
    except msgspec.DecodeError as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from None
    except RecursionError:
        raise BadRequest("JSON is nested too deeply to read") from None
    except UnicodeDecodeError as exc:
        raise BadRequest(f"body is not valid UTF-8: {exc}") from None
    out = Parsed()
    sampled = sample_rate >= 1.0 or (
        beacon.sid is not None and sample_point(beacon.sid) < sample_rate)
    base = RumRow(
        kind="", ts=0.0, session_id=_ident(beacon.sid), user_id=_ident(beacon.uid),
        device_category=agent.category, browser=agent.browser,
        browser_version=agent.browser_version, os=agent.os, country=country,
        viewport_width=beacon.vw, viewport_height=beacon.vh, connection=beacon.ect)
    device = ev.Device(category=agent.category, browser=agent.browser,
                       browser_version=agent.browser_version, os=agent.os,
                       os_version=agent.os_version, country=country)
    for index, raw in enumerate(beacon.r):
        try:
            record = _record_decoder.decode(raw)
        except msgspec.ValidationError as exc:
            out.rejected.append({"index": index,
                                 "error": ev.describe_error(exc, f"r[{index}]")})
            continue
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
            out.rejected.append({"index": index, "error": f"r[{index}]: unreadable: {exc}"})
            continue
        ts_ms = record.t if record.t is not None else now_ms
        if isinstance(record, Action):
            out.events.append((index, _event(record, beacon, device, ts_ms)))
            continue
        if not sampled:
            out.sampled_out += 1
            continue
        row = msgspec.structs.replace(base, ts=ts_ms / 1000, view_id=record.pv,
                                      page=_page(record.url, query_allow))
        _fill[type(record)](row, record, query_allow)
        if isinstance(record, View) and record.tp is not None and row.trace_id is None:
            out.warnings.append({"index": index, "warning": (
                f"r[{index}].tp: {record.tp[:64]!r} is not a W3C traceparent "
                "(00-<32 hex>-<16 hex>-<2 hex>, ids not all zeros); trace id not kept")})
        out.rows.append(row)
    return out


def _ident(value: str | None) -> str | None:
    # An id that is an email address is stored as a keyed pseudonym by the event
    # pipeline; here (no key at hand) it is simply not kept.
    return None if value is None or "@" in value else value


# Memoised: a beacon repeats its page URL in every record, and a shop's pages repeat.
@lru_cache(maxsize=8192)
def _page(url: str | None, query_allow: frozenset[str]) -> str | None:
    """The path (and kept query) of a page URL, scrubbed."""
    if url is None:
        return None
    parts = urlsplit(privacy.scrub_url(url, query_allow))
    path = urlunsplit(("", "", parts.path or "/", parts.query, ""))
    return _clip(LONG_NUMBER_RE.sub("[number]", path), ev.MAX_URL_LENGTH)


@lru_cache(maxsize=8192)
def _url(url: str | None) -> str | None:
    """An absolute URL (a referrer, a resource, a script) without query or fragment."""
    if url is None:
        return None
    parts = urlsplit(url)
    bare = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    return _clip(LONG_NUMBER_RE.sub("[number]", privacy.scrub_text(bare)), ev.MAX_URL_LENGTH)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit]


_QUERY_IN_TEXT_RE: Final = re.compile(r"(\w+://[^\s?#()]+)[?#][^\s():]*")


def _text(text: str, limit: int) -> str:
    """Free text (an error message, a stack) scrubbed: URLs lose their query strings,
    emails and card numbers go."""
    return _clip(privacy.scrub_text(_QUERY_IN_TEXT_RE.sub(r"\1", text)), limit)


_NUMBER_RE: Final = re.compile(r"\b0x[0-9a-fA-F]+\b|\d+")
_QUOTED_RE: Final = re.compile(r"'[^']*'|\"[^\"]*\"")
_FRAME_FILE_RE: Final = re.compile(r"(\w+://[^\s()]+?|/[^\s()]+?):\d+(?::\d+)?")


def fingerprint(error_type: str, message: str, stack: str | None, source: str | None) -> str:
    """The group of an error: its type, its message with numbers, quoted values and
    email addresses blanked, and the file of its top stack frame (or its source), without line or
    column (they move with every release). 16 hex digits."""
    text = privacy.EMAIL_RE.sub("[email]", message[:MAX_MESSAGE])
    normal = _QUOTED_RE.sub("'…'", _NUMBER_RE.sub("0", text))
    match = _FRAME_FILE_RE.search(stack or "")
    where = match.group(1) if match else (source or "")
    where = where.split("?", 1)[0].rsplit("/", 1)[-1]
    return hashlib.sha1(f"{error_type}\n{normal}\n{where}".encode()).hexdigest()[:16]


def _fill_view(row: RumRow, rec: View, query_allow: frozenset[str]) -> None:
    row.kind = "view"
    row.referrer = _url(rec.ref)
    row.spa = rec.spa
    row.dns_ms, row.connect_ms, row.tls_ms = rec.dns, rec.tcp, rec.tls
    row.ttfb_ms, row.dom_interactive_ms, row.load_ms = rec.ttfb, rec.di, rec.load
    # Only the trace id is kept: the parent span id names the server's span, already
    # stored with the trace, and the flags say nothing about the page.
    match = TRACEPARENT_RE.fullmatch(rec.tp.strip()) if rec.tp else None
    row.trace_id = match.group(1) if match else None


def _fill_vitals(row: RumRow, rec: Vitals, query_allow: frozenset[str]) -> None:
    row.kind = "vitals"
    row.fcp_ms, row.lcp_ms, row.cls, row.inp_ms = rec.fcp, rec.lcp, rec.cls, rec.inp
    row.lcp_target, row.cls_target, row.inp_target = rec.lcpEl, rec.clsEl, rec.inpEl
    row.visible_ms = rec.vis


def _fill_error(row: RumRow, rec: JsError, query_allow: frozenset[str]) -> None:
    row.kind = "error"
    row.error_type = rec.type
    row.message = _text(rec.msg, MAX_MESSAGE)
    row.stack = _text(rec.stack, MAX_STACK) if rec.stack else None
    row.source = _url(rec.src)
    row.line, row.col = rec.line, rec.col
    # From the message before scrubbing: a number that happens to pass the card check
    # must not split a group.
    row.fingerprint = fingerprint(rec.type, rec.msg, row.stack, row.source)


def _fill_resource(row: RumRow, rec: Resource, query_allow: frozenset[str]) -> None:
    row.kind = "resource"
    row.resource_url = _url(rec.ru)
    row.resource_host = (urlsplit(rec.ru).hostname or None) if "//" in rec.ru else None
    row.resource_type = rec.rt
    row.duration_ms = rec.dur
    row.failed = rec.fail


def _fill_api(row: RumRow, rec: Api, query_allow: frozenset[str]) -> None:
    row.kind = "api"
    # Scrubbed like a page: the snippet sends the path only, but a path can hold an
    # email address or an order number too.
    row.resource_url = _page(rec.ru, query_allow)
    row.resource_type = rec.rt
    row.duration_ms = rec.dur
    row.failed = rec.st is not None and (rec.st == 0 or rec.st >= 400)
    row.trace_id = rec.tid


_fill: Final[dict[type, Callable[[RumRow, Any, frozenset[str]], None]]] = {
    View: _fill_view, Vitals: _fill_vitals, JsError: _fill_error, Resource: _fill_resource,
    Api: _fill_api,
}


def _event(rec: Action, beacon: Beacon, device: ev.Device, ts_ms: float) -> ev.Event:
    """An ``event`` record as an :class:`~shopwatch.events.Event` for the pipeline."""
    params = dict(rec.p) if rec.p else None
    event_id = rec.id
    if params is not None and "event_id" in params:
        given = params.pop("event_id")
        if event_id is None and isinstance(given, str) and 0 < len(given) <= ev.MAX_ID_LENGTH:
            event_id = given
    page = urlsplit(rec.url) if rec.url else None
    path = urlunsplit(("", "", page.path or "/", page.query, "")) if page else None
    return ev.Event(name=rec.n, id=event_id, ts=ts_ms, session_id=beacon.sid,
                    user_id=beacon.uid, page=path, device=device, params=params or None)
