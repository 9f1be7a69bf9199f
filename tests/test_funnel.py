"""Funnels against hand-computed values, through the real pipeline into real DuckDB."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from shopwatch.analytics.funnel import dropped_sessions, funnel, parse_steps, session_events
from shopwatch.analytics.timerange import parse_range
from shopwatch.errors import BadRequest
from shopwatch.ingest.pipeline import Format, PipelineConfig, process
from shopwatch.store.duckdb import DuckDBEventStore

STEPS = ["view_item", "add_to_cart", "begin_checkout", "purchase"]
DAY = parse_range("custom", "2026-03-10T00:00", "2026-03-11T00:00", now_us=0)


def ev(session: str, name: str, hhmm: str, device: str = "desktop",
       **extra: Any) -> dict[str, Any]:
    return {"name": name, "ts": f"2026-03-10T{hhmm}:00Z", "session_id": session,
            "device": {"category": device}, **extra}


EVENTS = [
    ev("f1", "view_item", "10:00", "mobile", referrer="https://www.google.com/x"),
    ev("f1", "add_to_cart", "10:01", "mobile"), ev("f1", "begin_checkout", "10:03", "mobile"),
    ev("f1", "purchase", "10:07", "mobile"),
    ev("f2", "view_item", "11:00"), ev("f2", "add_to_cart", "11:02"),
    ev("f2", "begin_checkout", "11:04"),
    ev("f3", "view_item", "12:00", utm_source="newsletter"), ev("f3", "add_to_cart", "12:05"),
    # f4 added to the cart before viewing: out of order for this funnel.
    ev("f4", "add_to_cart", "13:00", "mobile"), ev("f4", "view_item", "13:01", "mobile"),
    ev("f5", "view_item", "14:00", "mobile"),
    ev("f6", "purchase", "15:00"),
    # One visitor over two sessions two hours apart (for window mode).
    {"name": "view_item", "ts": "2026-03-10T09:00:00Z", "session_id": "g1",
     "anonymous_id": "v1"},
    {"name": "add_to_cart", "ts": "2026-03-10T11:00:00Z", "session_id": "g2",
     "anonymous_id": "v1"},
]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DuckDBEventStore]:
    opened = DuckDBEventStore(tmp_path_factory.mktemp("funnel") / "events.duckdb")
    shuffled = EVENTS[:]
    random.Random(3).shuffle(shuffled)  # arrival order must not matter
    now_us = int(datetime(2026, 3, 12, tzinfo=UTC).timestamp() * 1e6)
    outcome = process(msgspec.json.encode({"events": shuffled}), Format.JSON, 1, now_us,
                      PipelineConfig(max_event_age_s=60 * 86400))
    assert not outcome.rejected
    opened.write([outcome.rows])
    yield opened
    opened.close()


def test_counts_conversion_drop_off_and_times(store: DuckDBEventStore) -> None:
    result = funnel(store, 1, DAY, STEPS)
    steps = result["steps"]
    assert [s["name"] for s in steps] == STEPS
    # g1 views too (session mode): f1-f5 and g1 reach step 1.
    assert [s["count"] for s in steps] == [6, 3, 2, 1]
    assert [s["conversion"] for s in steps] == pytest.approx([1, 3 / 6, 2 / 6, 1 / 6])
    assert [s["dropped"] for s in steps] == [0, 3, 1, 1]
    assert [s["drop_off"] for s in steps] == pytest.approx([0, 0.5, 1 / 3, 0.5])
    # From view to cart: f1 60 s, f2 120 s, f3 300 s; then 120 and 120; then 240.
    assert [s["median_seconds"] for s in steps] == [None, 120, 120, 240]
    assert [s["count"] for s in result["previous"]] == [0, 0, 0, 0]
    assert result["within"] == "session"


def test_breakdown_by_device_and_source(store: DuckDBEventStore) -> None:
    by_device = funnel(store, 1, DAY, STEPS, by="device", compare=False)["breakdown"]
    rows = {r["value"]: [s["count"] for s in r["steps"]] for r in by_device["rows"]}
    assert rows == {"mobile": [3, 1, 1, 1], "desktop": [2, 2, 1, 0], "(none)": [1, 0, 0, 0]}
    by_source = funnel(store, 1, DAY, STEPS, by="source", compare=False)["breakdown"]
    sources = {r["value"]: r["steps"][0]["count"] for r in by_source["rows"]}
    assert sources == {"www.google.com": 1, "newsletter": 1, "(direct)": 4}


def test_a_window_follows_the_visitor_across_sessions(store: DuckDBEventStore) -> None:
    steps = ["view_item", "add_to_cart"]
    session = funnel(store, 1, DAY, steps, compare=False)["steps"]
    three_hours = funnel(store, 1, DAY, steps, window_s=3 * 3600, compare=False)["steps"]
    one_hour = funnel(store, 1, DAY, steps, window_s=3600, compare=False)["steps"]
    assert [s["count"] for s in session] == [6, 3]
    assert [s["count"] for s in three_hours] == [6, 4]  # v1 carted 2 h after viewing
    assert [s["count"] for s in one_hour] == [6, 3]


def test_dropped_sessions_can_be_listed_and_opened(store: DuckDBEventStore) -> None:
    dropped = dropped_sessions(store, 1, DAY, STEPS, 1)
    assert [d["session"] for d in dropped] == ["s:f5", "s:f4", "s:g1"]
    assert dropped[0]["device"] == "mobile"
    events = session_events(store, 1, DAY, "s:f1")
    assert [e["name"] for e in events] == STEPS
    with pytest.raises(BadRequest, match="step:"):
        dropped_sessions(store, 1, DAY, STEPS, 4)


@pytest.mark.parametrize(("raw", "message"), [("a", "steps:"), ("a,b c", "steps:"),
                                               (",".join("abcdefghijk"), "steps:")])
def test_bad_steps_are_refused(raw: str, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        parse_steps(raw)
    assert parse_steps(None)[0] == "view_item"
