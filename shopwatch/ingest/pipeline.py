"""The ingest pipeline: decode → validate → scrub → enrich (time, then client network
and device), then hand rows to the writer.

Each step is a named function. A step may drop an event with a :class:`DropReason`;
the drop is reported to the client (index and ``"<field>: <reason>"``) and counted on
``/metrics``.

What survives is handed to the writer as JSON, not as Python rows: the event store
turns JSON into columns in C++ (off the GIL), which is several times cheaper than
building per-column lists here. The JSON is msgspec's re-encoding of exactly the
validated, scrubbed events — never the client's bytes — so no JSON quirk (a duplicate
key, say, where parsers disagree on which value wins) can slip unvalidated data past
the steps.

The pipeline is pure: no I/O, no clock (``now_us`` is passed in), no global state but
memos (valid event names, param keys, the networks of recent client addresses). The
GeoIP lookup it may be given (``country_of``) reads a database held in memory.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

import msgspec

from shopwatch import events as ev
from shopwatch import privacy, useragent
from shopwatch.errors import BadRequest, PayloadTooLarge
from shopwatch.store.base import EventBatch as RowBatch

KNOWN_PARAM_KEYS: Final = frozenset(ev.KnownParams.__struct_fields__)
_encode = msgspec.json.Encoder().encode
class DropReason(StrEnum):
    """Why an event was not stored (the ``reason`` label of the rejected counter)."""

    MALFORMED = "malformed"  # an NDJSON line that is not JSON
    INVALID_FIELD = "invalid_field"  # schema: unknown field, wrong type, over a limit
    INVALID_PARAMS = "invalid_params"  # a typed param (value, currency, items...) is wrong
    INVALID_TS = "invalid_ts"  # ts is not RFC 3339 with an offset nor epoch milliseconds


class Format(StrEnum):
    JSON = "json"
    NDJSON = "ndjson"


@dataclass(frozen=True)
class PipelineConfig:
    """What the steps need from the settings and the instance."""

    max_events: int = 1000
    max_future_skew_s: float = 300.0
    max_event_age_s: float = 7 * 86400.0
    query_allow: frozenset[str] = frozenset()
    pseudonym_key: bytes = b""
    network_prefix_v4: int = 24  # bits of a client address kept in net_prefix
    network_prefix_v6: int = 48
    # The country of a client address (GeoIP), when the admin configured a database.
    country_of: Callable[[str], str | None] | None = None


@dataclass
class Outcome:
    """What the pipeline made of one request."""

    rows: RowBatch
    rejected: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)
    drops: Counter[DropReason] = field(default_factory=Counter)


class Drop(Exception):
    """Raised inside a step to drop the current event."""

    def __init__(self, reason: DropReason, error: str) -> None:
        super().__init__(error)
        self.reason = reason
        self.error = error


@dataclass
class _Decoded:
    events: list[tuple[int, ev.Event]]
    failed: list[tuple[int, Drop]]


# --- step 1: decode --------------------------------------------------------------------


def decode(body: bytes, fmt: Format, max_events: int) -> _Decoded:
    """Decode a body into ``(index, event)`` pairs plus per-event decode failures.

    Raises :class:`BadRequest` when the body as a whole cannot be read (the message says
    what and where) and :class:`PayloadTooLarge` when it has more than ``max_events``.
    """
    if fmt is Format.NDJSON:
        return _decode_ndjson(body, max_events)
    stripped = body.lstrip()
    if not stripped:
        raise BadRequest('empty body: send {"events": [...]} or NDJSON, one event per line')
    is_array = stripped[:1] == b"["
    try:
        events = ev.array_decoder.decode(body) if is_array else ev.batch_decoder.decode(body).events
    except msgspec.ValidationError:  # before DecodeError: ValidationError is a subclass of it
        return _decode_one_by_one(body, is_array, max_events)
    except msgspec.DecodeError as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from None
    except RecursionError:
        raise BadRequest(_TOO_DEEP) from None
    except UnicodeDecodeError as exc:  # msgspec raises it for a string that is not UTF-8
        raise BadRequest(f"body is not valid UTF-8: {exc}") from None
    _check_count(len(events), max_events)
    return _Decoded(list(enumerate(events)), [])


_TOO_DEEP = "JSON is nested too deeply to read"


def _check_count(n: int, max_events: int) -> None:
    if n > max_events:
        raise PayloadTooLarge(
            f"{n} events in one request; the limit is {max_events} (max_events_per_request)"
        )


def _decode_one_by_one(body: bytes, is_array: bool, max_events: int) -> _Decoded:
    """Slow path: find which events are invalid, keep the others."""
    try:
        raws = ev.raw_array_decoder.decode(body) if is_array else ev.raw_batch_decoder.decode(
            body).events
    except msgspec.ValidationError as exc:
        expected = "a JSON array of events" if is_array else 'an object {"events": [...]}'
        raise BadRequest(f"body must be {expected}: {ev.describe_error(exc)}") from None
    except msgspec.DecodeError as exc:  # malformed after the first invalid event
        raise BadRequest(f"body is not valid JSON: {exc}") from None
    except RecursionError:
        raise BadRequest(_TOO_DEEP) from None
    _check_count(len(raws), max_events)
    good: list[tuple[int, ev.Event]] = []
    bad: list[tuple[int, Drop]] = []
    for index, raw in enumerate(raws):
        try:
            good.append((index, ev.event_decoder.decode(raw)))
        except msgspec.ValidationError as exc:
            bad.append((index, Drop(DropReason.INVALID_FIELD, ev.describe_error(exc))))
        except UnicodeDecodeError as exc:
            bad.append((index, Drop(DropReason.MALFORMED, f"event: not valid UTF-8: {exc}")))
    return _Decoded(good, bad)


def _decode_ndjson(body: bytes, max_events: int) -> _Decoded:
    """One event per line; blank lines are skipped. An event's index counts events
    (as in a JSON array); messages name the physical line."""
    numbered = [(n, line) for n, line in enumerate(body.split(b"\n"), 1) if line.strip()]
    if not numbered:
        raise BadRequest("empty body: send NDJSON, one event object per line")
    _check_count(len(numbered), max_events)
    good: list[tuple[int, ev.Event]] = []
    bad: list[tuple[int, Drop]] = []
    decode_one = ev.event_decoder.decode
    for index, (line_no, line) in enumerate(numbered):
        try:
            good.append((index, decode_one(line)))
        except msgspec.ValidationError as exc:  # a subclass of DecodeError: catch it first
            bad.append((index, Drop(DropReason.INVALID_FIELD, ev.describe_error(exc))))
        except msgspec.DecodeError as exc:
            bad.append((index, Drop(DropReason.MALFORMED,
                                    f"line {line_no}: not valid JSON: {exc}")))
        except RecursionError:
            bad.append((index, Drop(DropReason.MALFORMED, f"line {line_no}: {_TOO_DEEP}")))
        except UnicodeDecodeError as exc:
            bad.append((index, Drop(DropReason.MALFORMED,
                                    f"line {line_no}: not valid UTF-8: {exc}")))
    return _Decoded(good, bad)


# --- step 2: validate ----------------------------------------------------------------------
#
# Steps 2-4 each take the whole batch and loop over it: one Python call per step, not
# per event, and a cheap test first so the common event skips the careful code.

Item = tuple[int, ev.Event]
Drops = list[tuple[int, Drop]]


# Param keys already seen that are well-formed and name no secret (keys repeat: value,
# currency, items, item_id...); a subset test against it replaces the per-key regexes.
_PLAIN_KEYS: set[str] = set()


def _param_keys(params: dict[str, Any]) -> tuple[str | None, bool]:
    """``(error, names_a_secret)`` for the keys of params and of the objects in it."""
    secret = False
    for obj in _objects(params):
        if obj.keys() <= _PLAIN_KEYS:
            continue
        for key in obj:
            if key in _PLAIN_KEYS:
                continue
            if not ev.PARAM_KEY_RE.fullmatch(key):
                return (f"params: invalid key {key!r}: a key starts with a letter or _ and holds "
                        "letters, digits, _ and ."), False
            if privacy.SECRET_KEY_RE.search(key):
                secret = True
            elif len(_PLAIN_KEYS) < 10_000:
                _PLAIN_KEYS.add(key)
    return None, secret


def _objects(params: dict[str, Any]) -> list[dict[str, Any]]:
    objects = [params]
    for value in params.values():
        if type(value) is list:
            objects.extend(v for v in value if type(v) is dict)
        elif type(value) is dict:
            objects.append(value)
    return objects


def validate(items: list[Item], drops: Drops, secrets: set[int]) -> list[Item]:
    """Keep events whose name, country, param keys and typed params are right and that
    carry no field only Shopwatch sets; drop the others. Adds to ``secrets`` the events
    whose params hold a secret-named key."""
    kept: list[Item] = []
    names, countries, known = ev.VALID_NAMES, ev.VALID_COUNTRIES, KNOWN_PARAM_KEYS
    for item in items:
        event = item[1]
        device, params = event.device, event.params
        if params:
            error, secret = _param_keys(params)
            if error is not None:
                drops.append((item[0], Drop(DropReason.INVALID_PARAMS, error)))
                continue
            if secret:
                secrets.add(item[0])
        if (event.name in names
                and (device is None or device.country is None or device.country in countries)
                and (not params or known.isdisjoint(params))
                and event.net_prefix is None and event.net_hash is None):
            kept.append(item)
            continue
        error = ev.check_event(event)
        if error is not None:
            drops.append((item[0], Drop(DropReason.INVALID_FIELD, error)))
            continue
        if params and not known.isdisjoint(params):
            error = ev.check_params(params)
            if error is not None:
                drops.append((item[0], Drop(DropReason.INVALID_PARAMS, error)))
                continue
        kept.append(item)
    return kept


# --- step 3: scrub -------------------------------------------------------------------------


def scrub(items: list[Item], config: PipelineConfig, flags: dict[int, list[str]],
          has_at: bool, secrets: set[int], deep: bool = False) -> None:
    """Scrub PII in place (rules in :mod:`shopwatch.privacy`).

    ``has_at`` says the request body holds an ``@`` in some spelling (else no email can
    be in it); ``secrets`` are the events with secret-named param keys (from
    :func:`validate`); ``deep`` scrubs every string (used when a card number was spotted).
    """
    careful = has_at or deep
    max_url = ev.MAX_URL_LENGTH
    for index, event in items:
        page, referrer, params = event.page, event.referrer, event.params
        if careful or (page is not None and ("?" in page or "#" in page or len(page) > max_url)):
            if page is not None and "utm_" in page:
                _utm_from_page(event, page)
            _scrub_url(index, event, "page", config, flags)
        if careful or (referrer is not None and (
                "?" in referrer or "#" in referrer or len(referrer) > max_url)):
            _scrub_url(index, event, "referrer", config, flags)
        if has_at:
            for attr in ("user_id", "anonymous_id", "session_id"):
                value = getattr(event, attr)
                if value is not None and "@" in value:
                    setattr(event, attr, privacy.pseudonymize(value, config.pseudonym_key))
        if careful:
            for attr in _UTM_FIELDS:
                value = getattr(event, attr)
                if value is not None:
                    setattr(event, attr, privacy.scrub_text(value))
            if event.user_agent is not None:
                event.user_agent = privacy.scrub_text(event.user_agent)
        if params and (careful or index in secrets):
            event.params = privacy.scrub_params(params)


_UTM_FIELDS: Final = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")


def _utm_from_page(event: ev.Event, page: str) -> None:
    """Fill absent ``utm_*`` fields from the page URL's query (a campaign landing page)."""
    query = dict(parse_qsl(urlsplit(page).query))
    for name in _UTM_FIELDS:
        value = query.get(name)
        if value and getattr(event, name) is None:
            setattr(event, name, privacy.scrub_text(value[: ev.MAX_UTM_LENGTH]))


def _scrub_url(index: int, event: ev.Event, attr: str, config: PipelineConfig,
               flags: dict[int, list[str]]) -> None:
    url = getattr(event, attr)
    if url is None:
        return
    new = privacy.scrub_url(url, config.query_allow)
    if len(new) > ev.MAX_URL_LENGTH:
        new = new[: ev.MAX_URL_LENGTH]
        event_flags = flags.setdefault(index, [])
        if "truncated" not in event_flags:
            event_flags.append("truncated")
    setattr(event, attr, new)


# --- step 4: enrich ------------------------------------------------------------------------


def enrich(items: list[Item], config: PipelineConfig, now_us: int, drops: Drops,
           flags: dict[int, list[str]], warnings: list[dict[str, Any]]) -> list[Item]:
    """Normalise ``ts`` to epoch *seconds* (a float) for the store; clamp implausible
    times to receive time (flag ``ts_clamped`` and a warning); drop unreadable ones. A
    ``support_contact`` without ``ts`` takes its ``queued_at`` (then clamped alike).

    Seconds, not the milliseconds clients send, so that no timestamp is a 13-digit run
    in the payload: any such run left is worth the card-number check.
    """
    now_ms = now_us / 1000
    low = now_ms - config.max_event_age_s * 1000
    high = now_ms + config.max_future_skew_s * 1000
    kept: list[Item] = []
    for item in items:
        event = item[1]
        ts = event.ts
        queued = ts is None and event.name == "support_contact" and bool(event.params)
        if queued:
            ts = event.ts = _queued_at_ms(event.params or {})
        if ts is None:
            kept.append(item)
            continue
        if not isinstance(ts, str) and low <= ts <= high:
            event.ts = ts / 1000
            kept.append(item)
            continue
        try:
            warning = enrich_ts(event, config, now_us)
        except Drop as drop:
            drops.append((item[0], drop))
            continue
        if warning is not None:
            if queued:  # say where the time came from: the sender sent no ts
                warning = "ts (from params.queued_at)" + warning.removeprefix("ts")
            flags.setdefault(item[0], []).append("ts_clamped")
            warnings.append({"index": item[0], "warning": warning})
        elif event.ts is not None:
            event.ts = float(event.ts) / 1000
        kept.append(item)
    return kept


def _queued_at_ms(params: dict[str, Any]) -> float | None:
    """A contact's ``queued_at`` in epoch ms: its time when the desk sends no ``ts`` (a
    record sent once answered, or a day's export, is still dated when the customer
    started waiting). Validation has read it already; ``None`` without one."""
    queued = params.get("queued_at")
    if queued is None or not isinstance(queued, int | float | str):
        return None
    try:
        return ev.contact_time_ms(queued)
    except ValueError:
        return None


def enrich_ts(event: ev.Event, config: PipelineConfig, now_us: int) -> str | None:
    """Resolve one event's ``ts`` to epoch milliseconds (:func:`enrich` then makes it
    seconds); clamp an implausible time.

    Returns a warning when the time was clamped (then ``ts`` is removed, meaning
    receive time), else ``None``. Raises :class:`Drop` for an unreadable time.
    """
    ts = event.ts
    if ts is None:
        return None
    if isinstance(ts, str):
        try:
            # RFC 3339 allows lower-case "t" and "z"; fromisoformat does not.
            parsed = datetime.fromisoformat(ts.upper())
        except ValueError:
            raise Drop(DropReason.INVALID_TS,
                       f"ts: {ts!r} is not an RFC 3339 timestamp nor epoch milliseconds") from None
        if parsed.tzinfo is None:
            raise Drop(DropReason.INVALID_TS,
                       f"ts: {ts!r} has no time zone offset (RFC 3339 needs one, e.g. Z)")
        ms: float = parsed.timestamp() * 1000
        event.ts = ms
    else:
        ms = ts
    now_ms = now_us / 1000
    if ms > now_ms + config.max_future_skew_s * 1000:
        event.ts = None
        return (f"ts: {ts!r} is more than {config.max_future_skew_s:g}s in the future; "
                "clamped to receive time")
    if ms < now_ms - config.max_event_age_s * 1000:
        hint = ""
        if not isinstance(ts, str) and 1e9 <= ts < 1e10:
            hint = " (it looks like seconds; ts takes milliseconds)"
        event.ts = None
        return (f"ts: {ts!r} is older than max_event_age "
                f"({config.max_event_age_s:g}s){hint}; clamped to receive time")
    return None


# --- step 4, continued: the shopper's network and device ---------------------------------


def enrich_network(items: list[Item], config: PipelineConfig, drops: Drops) -> list[Item]:
    """The shopper's network and device, for events that carry ``ip`` or ``user_agent``
    (events a shop's server sends on a shopper's behalf).

    ``ip`` becomes ``net_prefix`` (its network, cut to ``network_prefix_v4`` or
    ``network_prefix_v6`` bits; an IPv4-mapped IPv6 address counts as IPv4) and
    ``net_hash`` (:func:`privacy.hash_address`), and gives ``device.country`` when the
    event has none and ``country_of`` is set; then ``ip`` is removed, so the address is
    never stored. An ``ip`` that is not an address drops the event. ``user_agent`` is
    kept cut to :data:`useragent.MAX_LENGTH` and fills the device's category, browser and
    OS when the event names no device category, without replacing a field it has.
    """
    # Most events (browser ones, RUM) have neither: one comprehension finds the others.
    carrying = [item for item in items
                if item[1].ip is not None or item[1].user_agent is not None]
    if not carrying:
        return items
    dropped: set[int] = set()
    for index, event in carrying:
        ip, agent = event.ip, event.user_agent
        if ip is not None:
            network = _network(ip, config.pseudonym_key, config.network_prefix_v4,
                               config.network_prefix_v6)
            if network is None:
                drops.append((index, Drop(
                    DropReason.INVALID_FIELD,
                    f"ip: {ip!r} is not an IPv4 or IPv6 address")))
                dropped.add(index)
                continue
            event.net_prefix, event.net_hash, address = network
            event.ip = None
            device = event.device
            if config.country_of is not None and (device is None or device.country is None):
                country = config.country_of(address)
                if country is not None:
                    if device is None:
                        device = event.device = ev.Device()
                    device.country = country
        if agent is not None:
            agent = agent.strip()[: useragent.MAX_LENGTH] or None
            event.user_agent = agent
            if agent is not None and (event.device is None or event.device.category is None):
                _device_from_agent(event, agent)
    if dropped:
        return [item for item in items if item[0] not in dropped]
    return items


@lru_cache(maxsize=16384)
def _network(ip: str, key: bytes, v4_bits: int, v6_bits: int) -> tuple[str, str, str] | None:
    """``(net_prefix, net_hash, canonical address)`` of a client address; ``None`` when it
    is not one. Memoised: parsing and hashing cost ~10-20 µs, and a shopper's address
    repeats across their events (the memo lives in memory only, like GeoIP's)."""
    address = privacy.parse_address(ip)
    if address is None:
        return None
    return (privacy.network_prefix(address, v4_bits, v6_bits),
            privacy.hash_address(address, key), str(address))


_AGENT_FIELDS: Final = ("category", "browser", "browser_version", "os", "os_version")


def _device_from_agent(event: ev.Event, agent: str) -> None:
    parsed = useragent.parse_agent(agent)
    device = event.device
    if device is None:
        device = event.device = ev.Device()
    for name in _AGENT_FIELDS:
        value = getattr(parsed, name)
        if value is not None and getattr(device, name) is None:
            setattr(device, name, value[: ev.MAX_DEVICE_FIELD_LENGTH])


# --- the whole pipeline --------------------------------------------------------------------


def process(body: bytes, fmt: Format, project_id: int, now_us: int,
            config: PipelineConfig) -> Outcome:
    """Run every step over one request body; see the module docstring."""
    decoded = decode(body, fmt, config.max_events)
    # No "@" in any spelling (raw, percent-encoded, JSON-escaped): no email anywhere.
    has_at = b"@" in body or b"%40" in body or b"\\u0040" in body
    return process_events(decoded.events, decoded.failed, project_id, now_us, config,
                          has_at=has_at)


def process_events(events: list[Item], failed: Drops, project_id: int, now_us: int,
                   config: PipelineConfig, *, has_at: bool = True) -> Outcome:
    """Steps 2-4 and the encoding, for events already decoded (by :func:`decode`, or
    from a RUM beacon); ``failed`` are decode failures to report with them. ``has_at``
    may be False only when no string of the events can hold an ``@``."""
    outcome = Outcome(rows=RowBatch(project_id, now_us, b"[]", 0, []))
    drops: Drops = list(failed)
    flags: dict[int, list[str]] = {}
    secrets: set[int] = set()
    items = validate(events, drops, secrets)
    scrub(items, config, flags, has_at, secrets)
    items = enrich(items, config, now_us, drops, flags, outcome.warnings)
    items = enrich_network(items, config, drops)
    for index, event_flags in flags.items():
        if "truncated" in event_flags:
            outcome.warnings.append({
                "index": index,
                "warning": f"page/referrer: truncated to {ev.MAX_URL_LENGTH} chars"})
    if drops:
        drops.sort(key=lambda d: d[0])
        for index, drop in drops:
            outcome.rejected.append({"index": index, "error": drop.error})
            outcome.drops[drop.reason] += 1
    if outcome.warnings:
        outcome.warnings.sort(key=lambda w: int(w["index"]))
    if not items:
        return outcome
    payload = _encode_payload(items, flags)
    if privacy.payload_has_card(payload):
        # Rare: scrub every string of every event, then encode again.
        scrub(items, config, flags, has_at, secrets, deep=True)
        payload = _encode_payload(items, flags)
    ids = [event.id for _, event in items if event.id is not None]
    outcome.rows = RowBatch(project_id, now_us, payload, len(items), ids)
    return outcome


def _encode_payload(items: list[Item], flags: dict[int, list[str]]) -> bytes:
    """One JSON array: plain events in one msgspec call, flagged ones with their flags."""
    if not flags:
        return _encode([event for _, event in items])
    plain = [event for index, event in items if index not in flags]
    flagged = [_encode_flagged(event, flags[index]) for index, event in items if index in flags]
    if not flagged:
        return _encode(plain)
    head = _encode(plain)[:-1]
    return head + (b"," if plain else b"") + b",".join(flagged) + b"]"


def _encode_flagged(event: ev.Event, flags: list[str]) -> bytes:
    data = msgspec.to_builtins(event)
    data["flags"] = flags
    return _encode(data)
