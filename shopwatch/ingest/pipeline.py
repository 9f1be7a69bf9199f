"""The ingest pipeline: decode → validate → scrub → enrich, then hand rows to the writer.

Each step is a named function. A step may drop an event with a :class:`DropReason`;
the drop is reported to the client (index and ``"<field>: <reason>"``) and counted on
``/metrics``. What survives becomes a :class:`RowBatch`: one list per stored column
(:data:`shopwatch.store.base.EVENT_COLUMNS`), so the writer can hand it to the store
as one columnar insert.

The pipeline is pure: no I/O, no clock (``now_us`` is passed in), no global state.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

import msgspec

from shopwatch import events as ev
from shopwatch import privacy
from shopwatch.errors import BadRequest, PayloadTooLarge

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


@dataclass
class RowBatch:
    """Columns ready for the event store, all for one project."""

    project_id: int
    columns: dict[str, list[Any]]
    n: int


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


# --- step 1: decode --------------------------------------------------------------------


def decode(body: bytes, fmt: Format, max_events: int) -> tuple[list[tuple[int, ev.Event]],
                                                                 list[tuple[int, Drop]]]:
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
    except msgspec.DecodeError as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from None
    except msgspec.ValidationError:
        return _decode_one_by_one(body, is_array, max_events)
    _check_count(len(events), max_events)
    return list(enumerate(events)), []


def _check_count(n: int, max_events: int) -> None:
    if n > max_events:
        raise PayloadTooLarge(
            f"{n} events in one request; the limit is {max_events} (max_events_per_request)"
        )


def _decode_one_by_one(body: bytes, is_array: bool, max_events: int) -> tuple[
        list[tuple[int, ev.Event]], list[tuple[int, Drop]]]:
    """Slow path: find which events are invalid, keep the others."""
    try:
        raws = ev.raw_array_decoder.decode(body) if is_array else ev.raw_batch_decoder.decode(
            body).events
    except msgspec.ValidationError as exc:
        expected = "a JSON array of events" if is_array else 'an object {"events": [...]}'
        raise BadRequest(f"body must be {expected}: {ev.describe_error(exc)}") from None
    _check_count(len(raws), max_events)
    good: list[tuple[int, ev.Event]] = []
    bad: list[tuple[int, Drop]] = []
    for index, raw in enumerate(raws):
        try:
            good.append((index, ev.event_decoder.decode(raw)))
        except msgspec.ValidationError as exc:
            bad.append((index, Drop(DropReason.INVALID_FIELD, ev.describe_error(exc))))
    return good, bad


def _decode_ndjson(body: bytes, max_events: int) -> tuple[list[tuple[int, ev.Event]],
                                                           list[tuple[int, Drop]]]:
    lines = [line for line in body.split(b"\n") if line.strip()]
    _check_count(len(lines), max_events)
    good: list[tuple[int, ev.Event]] = []
    bad: list[tuple[int, Drop]] = []
    decode_one = ev.event_decoder.decode
    for index, line in enumerate(lines):
        try:
            good.append((index, decode_one(line)))
        except msgspec.DecodeError as exc:
            bad.append((index, Drop(DropReason.MALFORMED, f"line {index + 1}: not valid JSON: {exc}")))
        except msgspec.ValidationError as exc:
            bad.append((index, Drop(DropReason.INVALID_FIELD, ev.describe_error(exc))))
    return good, bad


# --- step 2: validate ----------------------------------------------------------------------


def validate(event: ev.Event) -> None:
    """Check what the decoder's types cannot: the typed params."""
    params = event.params
    if params and not KNOWN_PARAM_KEYS.isdisjoint(params):
        error = ev.check_params(params)
        if error is not None:
            raise Drop(DropReason.INVALID_PARAMS, error)


# --- step 3: scrub -------------------------------------------------------------------------


def scrub(event: ev.Event, config: PipelineConfig, flags: list[str]) -> bytes | None:
    """Scrub PII in place; return the params encoded as JSON (``None`` without params)."""
    if event.page is not None:
        event.page = _url(event.page, config.query_allow, flags)
    if event.referrer is not None:
        event.referrer = _url(event.referrer, config.query_allow, flags)
    for attr in ("user_id", "anonymous_id", "session_id"):
        value = getattr(event, attr)
        if value is not None and "@" in value:
            setattr(event, attr, privacy.pseudonymize(value, config.pseudonym_key))
    if not event.params:
        return None
    encoded = _encode(event.params)
    if privacy.needs_scrub(encoded):
        event.params = privacy.scrub_params(event.params)
        encoded = _encode(event.params)
    return encoded


def _url(url: str, allow: frozenset[str], flags: list[str]) -> str:
    url = privacy.scrub_url(url, allow)
    if len(url) > ev.MAX_URL_LENGTH:
        url = url[: ev.MAX_URL_LENGTH]
        if "truncated" not in flags:
            flags.append("truncated")
    return url


# --- step 4: enrich ------------------------------------------------------------------------


def enrich_ts(event: ev.Event, config: PipelineConfig, now_us: int) -> tuple[int, str | None]:
    """Resolve ``ts`` to epoch microseconds; clamp implausible times to receive time.

    Returns ``(ts_us, warning)``; the warning is ``None`` unless the time was clamped.
    """
    ts = event.ts
    if ts is None:
        return now_us, None
    if isinstance(ts, str):
        try:
            parsed = datetime.fromisoformat(ts)
        except ValueError:
            raise Drop(DropReason.INVALID_TS,
                       f"ts: {ts!r} is not an RFC 3339 timestamp nor epoch milliseconds") from None
        if parsed.tzinfo is None:
            raise Drop(DropReason.INVALID_TS,
                       f"ts: {ts!r} has no time zone offset (RFC 3339 needs one, e.g. Z)")
        ts_us = int(parsed.timestamp() * 1_000_000)
    else:
        ts_us = int(ts * 1000)
    if ts_us > now_us + config.max_future_skew_s * 1_000_000:
        return now_us, (f"ts: {ts!r} is more than {config.max_future_skew_s:g}s in the future; "
                        "clamped to receive time")
    if ts_us < now_us - config.max_event_age_s * 1_000_000:
        hint = ""
        if not isinstance(ts, str) and 1e9 <= ts < 1e10:
            hint = " (it looks like seconds; ts takes milliseconds)"
        return now_us, (f"ts: {ts!r} is older than max_event_age "
                        f"({config.max_event_age_s:g}s){hint}; clamped to receive time")
    return ts_us, None


# --- the whole pipeline --------------------------------------------------------------------


def process(body: bytes, fmt: Format, project_id: int, now_us: int,
            config: PipelineConfig) -> Outcome:
    """Run every step over one request body; see the module docstring."""
    decoded, failed = decode(body, fmt, config.max_events)
    outcome = Outcome(rows=RowBatch(project_id, {}, 0))
    for index, drop in failed:
        outcome.rejected.append({"index": index, "error": drop.error})
        outcome.drops[drop.reason] += 1

    kept: list[ev.Event] = []
    ts_col: list[int] = []
    params_col: list[str | None] = []
    flags_col: list[list[str]] = []
    for index, event in decoded:
        flags: list[str] = []
        try:
            validate(event)
            encoded = scrub(event, config, flags)
            ts_us, warning = enrich_ts(event, config, now_us)
        except Drop as drop:
            outcome.rejected.append({"index": index, "error": drop.error})
            outcome.drops[drop.reason] += 1
            continue
        if warning is not None:
            flags.append("ts_clamped")
            outcome.warnings.append({"index": index, "warning": warning})
        if "truncated" in flags:
            outcome.warnings.append(
                {"index": index, "warning": f"page/referrer: truncated to {ev.MAX_URL_LENGTH} chars"})
        kept.append(event)
        ts_col.append(ts_us)
        params_col.append(encoded.decode() if encoded is not None else None)
        flags_col.append(flags)
    if failed:
        outcome.rejected.sort(key=lambda r: r["index"])
    outcome.rows = RowBatch(project_id, to_columns(kept, project_id, ts_col, params_col,
                                                   flags_col, now_us), len(kept))
    return outcome


def to_columns(kept: list[ev.Event], project_id: int, ts_col: list[int],
               params_col: list[str | None], flags_col: list[list[str]],
               now_us: int) -> dict[str, list[Any]]:
    """Lay kept events out as one list per stored column."""
    n = len(kept)
    devices = [e.device for e in kept]
    params = [e.params for e in kept]

    def dev(attr: str) -> list[Any]:
        return [getattr(d, attr) if d is not None else None for d in devices]

    def param(key: str) -> list[Any]:
        return [p.get(key) if p else None for p in params]

    values = param("value")
    return {
        "project_id": [project_id] * n,
        "id": [e.id for e in kept],
        "name": [e.name for e in kept],
        "ts": ts_col,
        "received_at": [now_us] * n,
        "session_id": [e.session_id for e in kept],
        "anonymous_id": [e.anonymous_id for e in kept],
        "user_id": [e.user_id for e in kept],
        "page": [e.page for e in kept],
        "referrer": [e.referrer for e in kept],
        "utm_source": [e.utm_source for e in kept],
        "utm_medium": [e.utm_medium for e in kept],
        "utm_campaign": [e.utm_campaign for e in kept],
        "utm_term": [e.utm_term for e in kept],
        "utm_content": [e.utm_content for e in kept],
        "device_category": dev("category"),
        "browser": dev("browser"),
        "browser_version": dev("browser_version"),
        "os": dev("os"),
        "os_version": dev("os_version"),
        "language": dev("language"),
        "country": dev("country"),
        "screen_width": dev("screen_width"),
        "screen_height": dev("screen_height"),
        "value": [float(v) if v is not None else None for v in values],
        "currency": param("currency"),
        "transaction_id": param("transaction_id"),
        "params": params_col,
        "flags": flags_col,
    }
