"""The event model and the ingest pipeline, property-based (hypothesis) and by example.

``pipeline.process`` is pure (no I/O, the clock is passed in), so these tests call it
directly on encoded bodies, exactly as the HTTP route does. Where a test checks what is
*stored*, it commits the outcome through the writer into a real DuckDB store (the
``sink`` fixture) and reads the columns back.
"""

from __future__ import annotations

import contextlib
import json
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shopwatch import events as ev
from shopwatch.errors import BadRequest, PayloadTooLarge
from shopwatch.ingest.pipeline import DropReason, Format, Outcome, PipelineConfig, process
from tests.conftest import Sink

NOW_US = 1_750_000_000_000_000  # 2025-06-15T15:06:40Z
NOW_MS = NOW_US // 1000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CONFIG = PipelineConfig(pseudonym_key=b"k" * 32)
SKEW_MS = int(CONFIG.max_future_skew_s * 1000)
AGE_MS = int(CONFIG.max_event_age_s * 1000)
# "<field>: <reason>", the field being a dotted path with optional [index] parts.
ERROR_RE = re.compile(r"^[A-Za-z_][\w.\[\]]*: \S")
# The same shape when the field may be a client's unknown key (any text).
ANY_FIELD_ERROR_RE = re.compile(r"^.+?: \S", re.DOTALL)
FIELDS = tuple(ev.Event.__struct_fields__)
SECRET_WORDS = ("pass", "secret", "token", "api", "card", "pan", "cvc", "cvv", "iban", "ssn")

hyp = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def encode(events: Any, fmt: Format = Format.JSON) -> bytes:
    if fmt is Format.NDJSON:
        return b"\n".join(json.dumps(e).encode() for e in events)
    return json.dumps({"events": events}).encode()


def run(events: Any, fmt: Format = Format.JSON, config: PipelineConfig = CONFIG) -> Outcome:
    return process(encode(events, fmt), fmt, 7, NOW_US, config)


def store(sink: Sink, events: Any,
          fmt: Format = Format.JSON) -> tuple[Outcome, list[dict[str, Any]]]:
    """Process, commit and read back; the rows are in the order of ``events``' ids when
    every event has an ``id``, else in time order."""
    outcome, rows = sink.ingest(encode(events, fmt), fmt, NOW_US, CONFIG)
    order = {e.get("id"): i for i, e in enumerate(events) if isinstance(e, dict)}
    if all(r["id"] in order for r in rows):
        rows.sort(key=lambda r: order[r["id"]])
    return outcome, rows


def store_one(sink: Sink, event: dict[str, Any]) -> tuple[Outcome, dict[str, Any]]:
    outcome, rows = store(sink, [event])
    assert outcome.rejected == [], outcome.rejected
    assert len(rows) == 1
    return outcome, rows[0]


def one(event: dict[str, Any]) -> Outcome:
    return run([event])


def rejected_error(event: dict[str, Any]) -> str:
    outcome = one(event)
    assert outcome.rows.n == 0, f"accepted: {event}"
    assert [r["index"] for r in outcome.rejected] == [0]
    error: str = outcome.rejected[0]["error"]
    assert ERROR_RE.match(error), error
    return error


# --- strategies ----------------------------------------------------------------------------

# Plain text that the privacy rules leave alone: no "@" (emails), no digits (card numbers).
plain = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="@0123456789"),
                max_size=40)
ident = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="@"),
                min_size=1, max_size=ev.MAX_ID_LENGTH)
name = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,63}", fullmatch=True) | st.sampled_from(
    sorted(ev.KNOWN_NAMES))
path = st.lists(st.from_regex(r"[a-z0-9\-_]{1,12}", fullmatch=True), max_size=5).map(
    lambda parts: "/" + "/".join(parts))
url = st.one_of(path, st.builds(lambda host, p: f"https://{host}.example{p}",
                                st.from_regex(r"[a-z]{1,10}", fullmatch=True), path))
short = st.text(st.characters(blacklist_categories=("Cs",)), max_size=ev.MAX_DEVICE_FIELD_LENGTH)
money = st.floats(-1e15, 1e15, allow_nan=False) | st.integers(-10**15, 10**15)
scalar = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(
    allow_nan=False, allow_infinity=False) | plain
param_key = st.from_regex(r"[a-z_][a-z0-9_]{0,30}", fullmatch=True).filter(
    lambda k: k not in ev.KnownParams.__struct_fields__ and not any(w in k for w in SECRET_WORDS))
item = st.fixed_dictionaries({}, optional={
    "item_id": ident, "item_name": plain, "item_category": plain,
    "price": money, "quantity": st.integers(0, 1_000_000), "colour": plain,
})
params = st.fixed_dictionaries({}, optional={
    "value": money,
    "currency": st.from_regex(r"[A-Z]{3}", fullmatch=True),
    "transaction_id": ident,
    "payment_method": st.text(st.characters(blacklist_categories=("Cs",),
                                            blacklist_characters="@0123456789"), max_size=20),
    "items": st.lists(item, max_size=5),
}).flatmap(lambda known: st.dictionaries(param_key, scalar | st.lists(scalar, max_size=5),
                                         max_size=45 - len(known)).map(
    lambda custom: {**custom, **known}))
device = st.fixed_dictionaries({}, optional={
    "category": short, "browser": short, "os": short, "language": short,
    "country": st.from_regex(r"[A-Z]{2}", fullmatch=True),
    "screen_width": st.integers(0, 100_000), "screen_height": st.integers(0, 100_000),
})
offsets = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
# Timestamps inside the accepted window: (now - max age, now + future skew).
ts_ms = st.integers(NOW_MS - AGE_MS + 60_000, NOW_MS + SKEW_MS - 60_000)
ts_rfc3339 = st.builds(
    lambda ms, us, tz: (EPOCH + timedelta(milliseconds=ms, microseconds=us)).astimezone(tz)
    .isoformat(), ts_ms, st.integers(0, 999), offsets)
valid_event = st.fixed_dictionaries({"name": name}, optional={
    "id": ident, "ts": ts_ms | ts_rfc3339, "session_id": ident, "anonymous_id": ident,
    "user_id": ident, "page": url, "referrer": url,
    "utm_source": plain, "utm_medium": plain, "utm_campaign": plain, "utm_term": plain,
    "utm_content": plain, "device": device, "params": params,
})
json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12)


DEVICE_COLUMNS = (("category", "device_category"), ("browser", "browser"),
                  ("browser_version", "browser_version"), ("os", "os"),
                  ("os_version", "os_version"), ("language", "language"),
                  ("country", "country"), ("screen_width", "screen_width"),
                  ("screen_height", "screen_height"))


def expected_ts_us(ts: Any) -> int:
    if ts is None:
        return NOW_US
    if isinstance(ts, int):
        return ts * 1000
    return (datetime.fromisoformat(ts) - EPOCH) // timedelta(microseconds=1)


# --- properties ----------------------------------------------------------------------------


@hyp
@given(st.lists(valid_event, max_size=5))
def test_valid_events_are_accepted_and_round_trip_into_the_columns(
        sink: Sink, events: list[dict[str, Any]]) -> None:
    for i, event in enumerate(events):  # unique ids, so rows can be matched to events
        event["id"] = f"{i}:{event.get('id', '')}"[: ev.MAX_ID_LENGTH]
    outcome, rows = store(sink, events)
    assert outcome.rejected == []
    assert outcome.warnings == []
    assert outcome.rows.n == len(events)
    assert len(rows) == len(events)
    for event, row in zip(events, rows, strict=True):
        assert row["received_at_us"] == NOW_US
        assert row["ts_us"] == expected_ts_us(event.get("ts"))
        for key in ("id", "name", "session_id", "anonymous_id", "user_id", "page", "referrer",
                    "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content"):
            assert row[key] == event.get(key), key
        device = event.get("device", {})
        for key, col in DEVICE_COLUMNS:
            assert row[col] == device.get(key), key
        prm = event.get("params")
        assert (row["params"] or {}) == (prm or {})
        prm = prm or {}
        value = prm.get("value")
        assert row["value"] == (float(value) if value is not None else None)
        assert row["currency"] == prm.get("currency")
        assert row["transaction_id"] == prm.get("transaction_id")
        assert row["flags"] == []


@hyp
@given(valid_event, st.sampled_from(FIELDS), json_value)
def test_any_json_in_any_field_is_accepted_or_rejected_naming_that_field(
        event: dict[str, Any], field: str, value: Any) -> None:
    event = {**event, field: value}
    outcome = one(event)  # must not raise
    if outcome.rows.n == 1:
        assert outcome.rejected == []
        return
    assert [r["index"] for r in outcome.rejected] == [0]
    error = outcome.rejected[0]["error"]
    assert ANY_FIELD_ERROR_RE.match(error), error
    assert error.startswith(field), (field, error)
    assert sum(outcome.drops.values()) == 1


@hyp
@given(st.lists(json_value, max_size=6))
def test_arbitrary_events_are_each_accepted_or_rejected_at_their_index(events: list[Any]) -> None:
    outcome = run(events)
    indexes = [r["index"] for r in outcome.rejected]
    assert indexes == sorted(set(indexes))
    assert all(0 <= i < len(events) for i in indexes)
    assert outcome.rows.n + len(indexes) == len(events)
    assert sum(outcome.drops.values()) == len(indexes)
    for r in outcome.rejected:
        assert ANY_FIELD_ERROR_RE.match(r["error"]), r["error"]


@hyp
@given(st.lists(json_value, max_size=6))
def test_whatever_is_accepted_can_be_committed(sink: Sink, events: list[Any]) -> None:
    """No accepted event can make the group commit fail (and so fail its neighbours)."""
    outcome, rows = sink.ingest(encode(events), Format.JSON, NOW_US, CONFIG)
    assert len(rows) == outcome.rows.n


@hyp
@given(json_value)
def test_an_arbitrary_body_is_an_outcome_or_a_bad_request(body: Any) -> None:
    encoded = json.dumps(body).encode()
    for fmt in Format:
        try:
            outcome = process(encoded, fmt, 1, NOW_US, CONFIG)
        except BadRequest as exc:
            assert fmt is Format.JSON, "NDJSON reports bad lines per event"
            assert not isinstance(body, list), "an array of events is a valid body"
            assert exc.message
        else:
            assert outcome.rows.n <= (len(body) if isinstance(body, list) else 1)


@hyp
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_raise_anything_but_bad_request(body: bytes) -> None:
    for fmt in Format:
        with contextlib.suppress(BadRequest):
            process(body, fmt, 1, NOW_US, CONFIG)


@hyp
@given(st.binary(max_size=40), st.sampled_from(["page", "id", "name", "ts", "utm_source"]))
def test_arbitrary_bytes_inside_a_string_never_raise_anything_but_bad_request(
        junk: bytes, field: str) -> None:
    event = b'{"name": "a", "' + field.encode() + b'": "' + junk + b'"}'
    line = event.replace(b"\n", b" ")  # one NDJSON line
    for body, fmt, count in ((b'{"events": [' + event + b"]}", Format.JSON, 1),
                             (b'[{"name": 1}, ' + event + b"]", Format.JSON, 2),
                             (line + b'\n{"name": "b"}', Format.NDJSON, 2)):
        try:
            outcome = process(body, fmt, 1, NOW_US, CONFIG)
        except BadRequest:
            assert fmt is Format.JSON  # NDJSON rejects the bad line alone
        else:
            assert outcome.rows.n + len(outcome.rejected) == count


@hyp
@given(st.lists(st.tuples(valid_event, st.booleans()), min_size=1, max_size=8), st.sampled_from(
    list(Format)))
def test_rejections_carry_the_index_of_the_bad_event(
        pairs: list[tuple[dict[str, Any], bool]], fmt: Format) -> None:
    events = []
    for event, bad in pairs:
        if bad:
            event = {**event, "params": {**event.get("params", {}), "value": "abc"}}
        events.append(event)
    outcome = run(events, fmt)
    bad_indexes = [i for i, (_, bad) in enumerate(pairs) if bad]
    assert [r["index"] for r in outcome.rejected] == bad_indexes
    assert all(r["error"].startswith("params.value: ") for r in outcome.rejected)
    assert outcome.rows.n == len(events) - len(bad_indexes)
    assert outcome.drops == ({DropReason.INVALID_PARAMS: len(bad_indexes)} if bad_indexes else {})


# --- bad input, by example -----------------------------------------------------------------


@pytest.mark.parametrize("value", ["abc", "12.5", "", True, [1], {"amount": 1}])
def test_value_must_be_a_number(value: Any) -> None:
    error = rejected_error({"name": "purchase", "params": {"value": value, "currency": "EUR"}})
    assert error.startswith("params.value: ")


def test_numbers_that_must_be_numbers_are_checked() -> None:
    assert rejected_error({"name": "purchase", "params": {"tax": "1"}}).startswith("params.tax: ")
    assert rejected_error({"name": "purchase", "params": {"items": [{"price": "x"}]}}) \
        .startswith("params.items[0].price: ")
    assert rejected_error({"name": "purchase", "params": {"items": [{}, {"quantity": "2"}]}}) \
        .startswith("params.items[1].quantity: ")
    assert rejected_error({"name": "purchase", "params": {"items": [{"quantity": -1}]}}) \
        .startswith("params.items[0].quantity: ")
    assert rejected_error({"name": "purchase", "params": {"value": 1e16}}) \
        .startswith("params.value: ")
    assert rejected_error({"name": "page_view", "device": {"screen_width": "1024"}}) \
        .startswith("device.screen_width: ")
    assert rejected_error({"name": "page_view", "ts": True}).startswith("ts: ")
    assert rejected_error({"name": "purchase", "params": {"currency": "euro"}}) \
        .startswith("params.currency: ")


def test_valid_typed_params_are_stored_in_their_columns(sink: Sink) -> None:
    params = {"value": 59.9, "currency": "EUR", "transaction_id": "T-1",
              "items": [{"item_id": "SKU-1", "price": 29.95, "quantity": 2}]}
    _, row = store_one(sink, {"name": "purchase", "params": params})
    assert row["value"] == 59.9
    assert row["currency"] == "EUR"
    assert row["transaction_id"] == "T-1"
    assert row["params"] == params


@pytest.mark.parametrize(("field", "limit"), [
    ("id", ev.MAX_ID_LENGTH), ("session_id", ev.MAX_ID_LENGTH), ("user_id", ev.MAX_ID_LENGTH),
    ("anonymous_id", ev.MAX_ID_LENGTH), ("utm_source", ev.MAX_UTM_LENGTH),
])
def test_over_long_ids_are_rejected(field: str, limit: int) -> None:
    assert one({"name": "page_view", field: "x" * limit}).rows.n == 1
    error = rejected_error({"name": "page_view", field: "x" * (limit + 1)})
    assert error.startswith(f"{field}: ")
    assert str(limit) in error


def test_names_over_long_or_malformed_are_rejected() -> None:
    assert one({"name": "a" * ev.MAX_NAME_LENGTH}).rows.n == 1
    for bad in ("a" * (ev.MAX_NAME_LENGTH + 1), "", "1abc", "add-to-cart", "page view"):
        assert rejected_error({"name": bad}).startswith("name: ")
    assert rejected_error({"page": "/"}).startswith("event: ")  # name is required
    assert "name" in rejected_error({"page": "/"})


def test_unknown_fields_are_rejected_by_name() -> None:
    assert rejected_error({"name": "a", "colour": "red"}).startswith("colour: unknown field")
    assert rejected_error({"name": "a", "device": {"gpu": "x"}}).startswith("device.gpu: ")


def test_custom_names_and_custom_params_are_kept(sink: Sink) -> None:
    params = {"list": "summer", "n": 3, "ok": True, "big": 2**62, "pi": 3.14159, "none": None}
    _, row = store_one(sink, {"name": "wishlist_add", "params": params})
    assert row["name"] == "wishlist_add"
    assert row["params"] == params


def test_more_than_50_params_are_rejected() -> None:
    fifty = {f"p{i}": i for i in range(ev.MAX_PARAMS)}
    assert one({"name": "a", "params": fifty}).rows.n == 1
    error = rejected_error({"name": "a", "params": {**fifty, "one_more": 1}})
    assert error.startswith("params: ")
    assert str(ev.MAX_PARAMS) in error


def test_param_limits() -> None:
    assert rejected_error({"name": "a", "params": {"k" * 41: 1}}).startswith("params: invalid key")
    assert rejected_error({"name": "a", "params": {"": 1}}).startswith("params: invalid key")
    assert rejected_error({"name": "a", "params": {"t": "x" * 1025}}).startswith("params")
    assert rejected_error({"name": "a", "params": {"l": list(range(201))}}).startswith("params")
    assert one({"name": "a", "params": {"t": "x" * 1024, "l": list(range(200))}}).rows.n == 1


@pytest.mark.parametrize("params", [
    {"bad key": 1}, {"1st": 1}, {"a-b": 1}, {"ok": {"bad key": 1}}, {"l": [{"bad-key": 1}]},
])
def test_param_keys_follow_the_documented_pattern(params: dict[str, Any]) -> None:
    """docs/events.md: a key starts with a letter or _, then letters, digits, _ or '.'."""
    assert rejected_error({"name": "a", "params": params}).startswith("params")


@pytest.mark.parametrize("params", [
    {"a": {"b": {"c": 1}}},
    {"a": [[1]]},
    {"items": [{"x": [{"y": 1}]}]},
    {"a": {"b": [{"c": 1}]}},
])
def test_too_deep_nesting_is_rejected(params: dict[str, Any]) -> None:
    assert rejected_error({"name": "a", "params": params}).startswith("params")


@pytest.mark.parametrize("params", [
    {"a": {"b": 1}}, {"a": [1, "x"]}, {"items": [{"item_id": "1", "tags": ["x", "y"]}]},
    {"a": {"b": [1, 2]}},
])
def test_allowed_nesting_is_kept(sink: Sink, params: dict[str, Any]) -> None:
    _, row = store_one(sink, {"name": "a", "params": params})
    assert row["params"] == params


def test_pathological_nesting_is_a_bad_request_not_a_crash() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    for body in (f'{{"events":[{{"name":"a","params":{{"a":{deep}}}}}]}}',
                 f'{{"events":[{deep}]}}', f"[{deep}]"):
        with pytest.raises(BadRequest, match="nested too deeply"):
            process(body.encode(), Format.JSON, 1, NOW_US, CONFIG)
    outcome = process(f'{{"name":"a"}}\n{deep}\n'.encode(), Format.NDJSON, 1, NOW_US, CONFIG)
    assert outcome.rows.n == 1
    assert [r["index"] for r in outcome.rejected] == [1]


def test_too_many_events_is_payload_too_large() -> None:
    config = PipelineConfig(max_events=3, pseudonym_key=b"k")
    assert run([{"name": "a"}] * 3, config=config).rows.n == 3
    for fmt in Format:
        with pytest.raises(PayloadTooLarge, match="max_events_per_request"):
            run([{"name": "a"}] * 4, fmt, config=config)


@pytest.mark.parametrize("body", [b"3", b'"events"', b"null", b"{}", b'{"events": 5}',
                                  b'{"events": {"name": "a"}}', b"", b"   "])
def test_a_body_that_is_not_a_batch_is_a_bad_request(body: bytes) -> None:
    with pytest.raises(BadRequest) as info:
        process(body, Format.JSON, 1, NOW_US, CONFIG)
    assert info.value.status == 400


def test_malformed_json_names_the_byte() -> None:
    body = b'{"events": [{"name": "a"},, {"name": "b"}]}'
    with pytest.raises(BadRequest) as info:
        process(body, Format.JSON, 1, NOW_US, CONFIG)
    assert "not valid JSON" in info.value.message
    assert f"byte {body.index(b',,') + 1}" in info.value.message


def test_malformed_json_after_an_invalid_event_is_a_bad_request() -> None:
    with pytest.raises(BadRequest, match="not valid JSON"):
        process(b'{"events": [{"name": 1}, {oops', Format.JSON, 1, NOW_US, CONFIG)


def test_invalid_utf8_is_a_bad_request_or_a_rejection() -> None:
    with pytest.raises(BadRequest, match="UTF-8"):
        process(b'{"events": [{"name": "a", "page": "/\xff"}]}', Format.JSON, 1, NOW_US, CONFIG)
    outcome = process(b'{"name": "a", "page": "/\xc3"}\n{"name": "b"}', Format.NDJSON, 1,
                      NOW_US, CONFIG)
    assert outcome.rows.n == 1
    assert outcome.rejected[0]["index"] == 0
    assert "UTF-8" in outcome.rejected[0]["error"]


def test_a_bare_array_is_a_batch() -> None:
    outcome = process(b'[{"name": "a"}, {"name": "b", "params": {"value": "x"}}]', Format.JSON,
                      1, NOW_US, CONFIG)
    assert outcome.rows.n == 1
    assert [r["index"] for r in outcome.rejected] == [1]


def test_ndjson_malformed_line_is_rejected_at_its_index(sink: Sink) -> None:
    body = b'{"name": "a", "id": "1"}\n{"name": "b"\n\n{"name": "c", "id": "2"}\n'
    outcome, rows = sink.ingest(body, Format.NDJSON, NOW_US, CONFIG)
    assert sorted(r["name"] for r in rows) == ["a", "c"]
    assert [r["index"] for r in outcome.rejected] == [1]
    assert outcome.rejected[0]["error"].startswith("line 2: not valid JSON")
    assert outcome.drops == {DropReason.MALFORMED: 1}


def test_ndjson_invalid_event_is_an_invalid_field_not_malformed() -> None:
    outcome = process(b'{"name": "a", "ts": true}\n{"name": "b"}', Format.NDJSON, 1, NOW_US,
                      CONFIG)
    assert outcome.rejected == [{"index": 0, "error": outcome.rejected[0]["error"]}]
    assert outcome.rejected[0]["error"].startswith("ts: ")
    assert outcome.drops == {DropReason.INVALID_FIELD: 1}


# --- timestamps ----------------------------------------------------------------------------


@pytest.mark.parametrize(("ts", "expected_us"), [
    (NOW_MS - 1000, NOW_US - 1_000_000),
    (float(NOW_MS - 1000) + 0.5, NOW_US - 999_500),
    ("2025-06-15T15:00:00Z", 1_749_999_600_000_000),
    ("2025-06-15T17:00:00.250+02:00", 1_749_999_600_250_000),
    ("2025-06-15T15:00:00.000001+00:00", 1_749_999_600_000_001),
    (None, NOW_US),
])
def test_ts_rfc3339_and_epoch_ms(sink: Sink, ts: Any, expected_us: int) -> None:
    event = {"name": "a"} if ts is None else {"name": "a", "ts": ts}
    outcome, row = store_one(sink, event)
    assert row["ts_us"] == expected_us
    assert row["flags"] == []
    assert outcome.warnings == []


@pytest.mark.parametrize(("ts", "word"), [
    (NOW_MS + SKEW_MS + 60_000, "future"),
    ((datetime.fromtimestamp(NOW_MS / 1000, UTC) + timedelta(days=1)).isoformat(), "future"),
    (NOW_MS - AGE_MS - 60_000, "older"),
    ("2001-01-01T00:00:00Z", "older"),
    (0, "older"),
    (-5, "older"),
    (1e308, "future"),
    (-1e308, "older"),
    (10**30, "future"),
])
def test_implausible_ts_is_clamped_to_receive_time_and_flagged(
        sink: Sink, ts: Any, word: str) -> None:
    outcome, row = store_one(sink, {"name": "a", "ts": ts})
    assert row["ts_us"] == NOW_US
    assert row["flags"] == ["ts_clamped"]
    assert len(outcome.warnings) == 1
    assert outcome.warnings[0]["index"] == 0
    assert outcome.warnings[0]["warning"].startswith("ts: ")
    assert word in outcome.warnings[0]["warning"]


def test_ts_in_seconds_gets_a_hint(sink: Sink) -> None:
    outcome, row = store_one(sink, {"name": "a", "ts": NOW_MS // 1000})
    assert row["flags"] == ["ts_clamped"]
    assert "seconds" in outcome.warnings[0]["warning"]


@pytest.mark.parametrize("ts", ["2025-06-15T15:00:00", "2025-06-15", "2025-06-15 15:00:00"])
def test_naive_rfc3339_is_rejected(ts: str) -> None:
    outcome = one({"name": "a", "ts": ts})
    assert outcome.rows.n == 0
    assert outcome.rejected[0]["error"].startswith("ts: ")
    assert "time zone" in outcome.rejected[0]["error"]
    assert outcome.drops == {DropReason.INVALID_TS: 1}


@pytest.mark.parametrize("ts", ["yesterday", "", "1750000000000", "2025-13-01T00:00:00Z"])
def test_unreadable_ts_is_rejected(ts: str) -> None:
    outcome = one({"name": "a", "ts": ts})
    assert outcome.rows.n == 0
    assert outcome.rejected[0]["error"].startswith("ts: ")
    assert outcome.drops == {DropReason.INVALID_TS: 1}


def test_long_urls_are_truncated_and_flagged_and_huge_ones_rejected(sink: Sink) -> None:
    long_page = "/" + "p" * 3000
    outcome, row = store_one(sink, {"name": "page_view", "page": long_page})
    assert row["page"] == long_page[: ev.MAX_URL_LENGTH]
    assert row["flags"] == ["truncated"]
    assert "truncated" in outcome.warnings[0]["warning"]
    error = rejected_error({"name": "page_view", "page": "/" + "p" * ev.MAX_URL_INPUT_LENGTH})
    assert error.startswith("page: ")


def test_event_encoding_round_trip_through_msgspec() -> None:
    """The schema published for the request body matches what the decoder accepts."""
    event = {"name": "purchase", "id": "e1", "ts": NOW_MS, "device": {"country": "DE"},
             "params": {"value": 1.5, "items": [{"item_id": "x", "quantity": 1}]}}
    decoded = ev.event_decoder.decode(msgspec.json.encode(event))
    assert decoded.name == "purchase"
    assert decoded.device is not None and decoded.device.country == "DE"
    assert "events" in msgspec.json.schema(ev.Batch)["$defs"]["Batch"]["properties"]


@pytest.mark.parametrize("ts", ["2025-06-15t15:00:00z", "2025-06-15T15:00:00z"])
def test_lower_case_rfc3339_letters_are_accepted(sink: Sink, ts: str) -> None:
    _, row = store_one(sink, {"name": "a", "ts": ts})
    assert row["ts_us"] == 1_749_999_600_000_000


def test_utm_fields_are_filled_from_the_landing_page(sink: Sink) -> None:
    _, row = store_one(sink, {"name": "page_view",
                              "page": "/?utm_source=news&utm_campaign=bf&ref=x"})
    assert (row["utm_source"], row["utm_campaign"], row["page"]) == (
        "news", "bf", "/?utm_source=news&utm_campaign=bf")
    _, row = store_one(sink, {"name": "page_view", "utm_source": "own",
                              "page": "/?utm_source=news"})
    assert row["utm_source"] == "own"  # what the event says wins over the URL


def test_ndjson_messages_name_the_physical_line_and_empty_bodies_are_refused() -> None:
    outcome = process(b'{"name": "a"}\n\n\n{"name": \n{"name": "c"}\n', Format.NDJSON, 1, NOW_US,
                      CONFIG)
    assert outcome.rows.n == 2
    [rejected] = outcome.rejected
    assert rejected["index"] == 1  # the second event...
    assert rejected["error"].startswith("line 4: not valid JSON")  # ...on the fourth line
    with pytest.raises(BadRequest):
        process(b"\n \n", Format.NDJSON, 1, NOW_US, CONFIG)


@pytest.mark.parametrize("text", ["card:4111111111111111", "x,4111111111111111",
                                  "v.4111111111111111", "[4111111111111111]"])
def test_card_numbers_after_punctuation_are_scrubbed(sink: Sink, text: str) -> None:
    _, row = store_one(sink, {"name": "a", "params": {"note": text, "list": [text]}})
    assert "4111111111111111" not in json.dumps(row["params"])


def test_identifiers_keep_their_digits_when_a_card_is_scrubbed(sink: Sink) -> None:
    _, row = store_one(sink, {"name": "purchase", "params": {
        "transaction_id": "4111111111111111", "note": "4111111111111111",
        "items": [{"item_id": "4111111111111111", "codes": ["4111111111111111"]}]}})
    assert row["transaction_id"] == "4111111111111111"
    assert row["params"]["items"][0] == {"item_id": "4111111111111111", "codes": ["[card]"]}
    assert row["params"]["note"] == "[card]"
