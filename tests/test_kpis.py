"""Commerce KPIs against hand-computed values on a small fixture, written through the
real ingest pipeline into a real DuckDB file (docs/kpis.md has the definitions)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest

from shopwatch.analytics.kpis import kpis
from shopwatch.analytics.timerange import parse_range
from shopwatch.ingest.pipeline import Format, PipelineConfig, process
from shopwatch.ingest.writer import Writer
from shopwatch.store.duckdb import DuckDBEventStore
from shopwatch.store.state import Project, StateStore

DAY = ("2026-03-10T00:00", "2026-03-11T00:00")  # the measured period (UTC)


def at(hhmm: str, day: str = "2026-03-10") -> str:
    return f"{day}T{hhmm}:00Z"


def item(price: float, quantity: int | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {"item_id": f"sku-{price}", "price": price}
    if quantity is not None:
        found["quantity"] = quantity
    return found


S1 = [  # sent newest first: arrival order must not matter
    {"id": "s1-6", "name": "purchase", "ts": at("10:06"), "session_id": "s1",
     "anonymous_id": "a1", "params": {"transaction_id": "T1", "value": 25, "currency": "EUR",
                                      "items": [item(10, 2), item(5)]}},
    {"id": "s1-5", "name": "begin_checkout", "ts": at("10:05"), "session_id": "s1",
     "anonymous_id": "a1"},
    {"id": "s1-4", "name": "add_to_cart", "ts": at("10:02"), "session_id": "s1",
     "anonymous_id": "a1", "params": {"value": 20, "currency": "EUR"}},
    {"id": "s1-3", "name": "view_item", "ts": at("10:01"), "session_id": "s1",
     "anonymous_id": "a1"},
    {"id": "s1-2", "name": "page_view", "ts": at("10:01"), "session_id": "s1",
     "anonymous_id": "a1", "page": "/p/x"},
    {"id": "s1-1", "name": "page_view", "ts": at("10:00"), "session_id": "s1",
     "anonymous_id": "a1", "page": "/"},
]
EVENTS: list[dict[str, Any]] = [
    *S1,
    # a1 was here before: a returning visitor.
    {"id": "a1-old", "name": "page_view", "ts": at("09:00", "2026-03-01"), "anonymous_id": "a1"},
    # The same purchase event again (same id), and T1 re-sent under another id.
    {"id": "s1-6", "name": "purchase", "ts": at("10:06"), "session_id": "s1",
     "anonymous_id": "a1", "params": {"transaction_id": "T1", "value": 25, "currency": "EUR"}},
    {"id": "s1-6b", "name": "purchase", "ts": at("10:07"), "session_id": "s1",
     "anonymous_id": "a1", "params": {"transaction_id": "T1", "value": 25, "currency": "EUR"}},
    # S2 spans midnight: only its events before midnight are in the period.
    {"name": "page_view", "ts": at("23:50"), "session_id": "s2", "anonymous_id": "a2"},
    {"name": "add_to_cart", "ts": at("23:55"), "session_id": "s2", "anonymous_id": "a2",
     "params": {"value": 10, "currency": "EUR"}},
    {"name": "page_view", "ts": at("00:10", "2026-03-11"), "session_id": "s2",
     "anonymous_id": "a2"},
    # S3: one page, nothing else: a bounce.
    {"name": "page_view", "ts": at("12:00"), "session_id": "s3", "anonymous_id": "a3"},
    # a4 has no session id: 13:00 and 13:10 are one visit, 14:00 (50 min later) another.
    {"name": "page_view", "ts": at("13:00"), "anonymous_id": "a4"},
    {"name": "page_view", "ts": at("13:10"), "anonymous_id": "a4"},
    {"name": "page_view", "ts": at("14:00"), "anonymous_id": "a4"},
    # S5 pays in dollars: 105.30 USD is 100 EUR at the documented rate (1.053).
    {"name": "add_to_cart", "ts": at("15:00"), "session_id": "s5", "anonymous_id": "a5",
     "params": {"value": 5, "currency": "USD"}},
    {"name": "begin_checkout", "ts": at("15:01"), "session_id": "s5", "anonymous_id": "a5"},
    {"name": "purchase", "ts": at("15:02"), "session_id": "s5", "anonymous_id": "a5",
     "params": {"transaction_id": "T2", "value": 105.3, "currency": "USD", "items": []}},
    # A purchase with no session (a phone order), in pounds.
    {"name": "purchase", "ts": at("16:00"),
     "params": {"transaction_id": "T3", "value": 50, "currency": "GBP"}},
    # A currency without a documented rate: counted as an order, revenue kept apart.
    {"name": "purchase", "ts": at("16:30"),
     "params": {"transaction_id": "T4", "value": 7, "currency": "XTS"}},
    # A partial refund of T1, and T2 cancelled (no value: the whole order).
    {"name": "refund", "ts": at("17:00"),
     "params": {"transaction_id": "T1", "value": 5, "currency": "EUR"}},
    {"name": "order_cancelled", "ts": at("18:00"), "params": {"transaction_id": "T2"}},
]


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DuckDBEventStore, Project]]:
    tmp = tmp_path_factory.mktemp("kpis")
    state = StateStore(tmp / "state.sqlite")
    project = state.create_project("shop", "EUR", "UTC")
    store = DuckDBEventStore(tmp / "events.duckdb")
    writer = Writer(store)
    writer.start()
    now_us = int(datetime(2026, 3, 12, tzinfo=UTC).timestamp() * 1e6)
    config = PipelineConfig(max_event_age_s=60 * 86400, pseudonym_key=b"k" * 32)
    # Two requests, so the duplicate id arrives in a later commit, as a retry would.
    for chunk in (EVENTS[:7], EVENTS[7:]):
        outcome = process(msgspec.json.encode({"events": chunk}), Format.JSON, project.id,
                          now_us, config)
        assert not outcome.rejected, outcome.rejected
        writer.submit(outcome.rows).result(timeout=30)
    yield store, project
    writer.stop()
    store.close()
    state.close()


@pytest.fixture(scope="module")
def day(stored: tuple[DuckDBEventStore, Project]) -> dict[str, Any]:
    store, project = stored
    return kpis(store, project, parse_range("custom", *DAY, now_us=0))


def test_sessions_and_visitors(day: dict[str, Any]) -> None:
    # s1, s2, s3, a4's two visits, s5; the orders without a session are in none.
    assert day["sessions"] == 6
    # S1 6 events, S2 2 (midnight cut), S3 1, a4 3, S5 3, T3, T4, refund, cancellation,
    # and T1's re-send under a new id; the duplicate id is stored once.
    assert day["events"] == 6 + 2 + 1 + 3 + 3 + 1 + 1 + 1 + 1 + 1
    assert (day["visitors"], day["new_visitors"], day["returning_visitors"]) == (5, 4, 1)
    assert day["bounce_rate"] == pytest.approx(2 / 6)  # s3 and a4's second visit
    assert day["pages_per_session"] == pytest.approx(7 / 6)
    # s1 10:00-10:07 (the re-sent T1), s2 5 min, s3 0, a4 10 min and 0, s5 2 min.
    assert day["avg_session_duration_s"] == pytest.approx((420 + 300 + 0 + 600 + 0 + 120) / 6)
    assert day["avg_time_on_page_s"] == pytest.approx((60 + 600) / 2)


def test_orders_and_revenue(day: dict[str, Any]) -> None:
    gbp = 50 / 0.8342
    assert day["currency"] == "EUR"
    assert day["orders"] == 4  # T1 once, T2, T3, T4
    assert day["items_per_order"] == pytest.approx(3 / 4)
    assert day["gross_revenue"] == pytest.approx(25 + 100 + gbp)
    assert day["refunds"] == pytest.approx(5) and day["refund_count"] == 1
    assert day["cancellations"] == pytest.approx(100) and day["cancellation_count"] == 1
    assert day["revenue"] == pytest.approx(25 + 100 + gbp - 5 - 100)
    assert day["aov"] == pytest.approx((25 + 100 + gbp) / 3)  # T4 has no rate
    assert day["unconverted"] == {"XTS": 7}


def test_conversion_and_carts(day: dict[str, Any]) -> None:
    assert day["conversion_rate"] == pytest.approx(2 / 6)
    assert (day["carts"], day["abandoned_carts"]) == (3, 1)
    assert day["cart_abandonment_rate"] == pytest.approx(1 / 3)
    assert day["abandoned_cart_value"] == pytest.approx(10)
    assert day["checkouts"] == 2 and day["checkout_abandonment_rate"] == 0


def test_an_empty_period_has_zeros_and_no_rates(stored: tuple[DuckDBEventStore, Project]) -> None:
    store, project = stored
    empty = kpis(store, project, parse_range("custom", "2025-01-01T00:00", "2025-01-02T00:00",
                                             now_us=0))
    assert (empty["sessions"], empty["orders"], empty["revenue"]) == (0, 0, 0)
    assert empty["conversion_rate"] is None and empty["aov"] is None
    assert empty["cart_abandonment_rate"] is None


def test_other_projects_never_count(tmp_path: Path) -> None:
    state = StateStore(tmp_path / "s.sqlite")
    mine, other = state.create_project("a"), state.create_project("b")
    store = DuckDBEventStore(tmp_path / "e.duckdb")
    now_us = int(datetime(2026, 3, 12, tzinfo=UTC).timestamp() * 1e6)
    config = PipelineConfig(max_event_age_s=60 * 86400)
    body = msgspec.json.encode({"events": EVENTS})
    store.write([process(body, Format.JSON, other.id, now_us, config).rows])
    result = kpis(store, mine, parse_range("custom", *DAY, now_us=0))
    assert (result["events"], result["sessions"], result["orders"]) == (0, 0, 0)
    store.close()
