"""Acquisition channels, sources and campaigns against hand-computed values."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest

from shopwatch.analytics.acquisition import acquisition
from shopwatch.analytics.timerange import parse_range
from shopwatch.errors import BadRequest
from shopwatch.ingest.pipeline import Format, PipelineConfig, process
from shopwatch.store.duckdb import DuckDBEventStore
from shopwatch.store.state import Project, StateStore

DAY = parse_range("custom", "2026-03-10T00:00", "2026-03-11T00:00", now_us=0)


def ev(session: str, hhmm: str, name: str = "page_view", **extra: Any) -> dict[str, Any]:
    return {"name": name, "ts": f"2026-03-10T{hhmm}:00Z", "session_id": session, **extra}


def buy(session: str, hhmm: str, tx: str, value: float, currency: str) -> dict[str, Any]:
    return ev(session, hhmm, "purchase",
              params={"transaction_id": tx, "value": value, "currency": currency})


EVENTS = [
    ev("a", "10:00", utm_source="google", utm_medium="cpc", utm_campaign="winter"),
    buy("a", "10:05", "T1", 30, "EUR"),
    ev("b", "11:00", referrer="https://www.google.com/search?q=tea"),
    ev("c", "12:00", referrer="https://l.facebook.com/"), buy("c", "12:03", "T2", 10, "USD"),
    ev("d", "13:00", utm_source="newsletter", utm_medium="email", utm_campaign="weekly"),
    ev("e", "14:00", referrer="https://blog.example.org/post"),
    ev("f", "15:00"), buy("f", "15:01", "T3", 5, "EUR"), buy("f", "15:02", "T3", 5, "EUR"),
    # g's campaign link comes second: the session's source is its first event's.
    ev("g", "16:00"), ev("g", "16:01", utm_source="google", utm_medium="cpc"),
]


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DuckDBEventStore, Project]]:
    tmp: Path = tmp_path_factory.mktemp("acq")
    project = StateStore(tmp / "s.sqlite").create_project("shop", "EUR")
    store = DuckDBEventStore(tmp / "e.duckdb")
    now_us = int(datetime(2026, 3, 12, tzinfo=UTC).timestamp() * 1e6)
    outcome = process(msgspec.json.encode({"events": EVENTS}), Format.JSON, project.id, now_us,
                      PipelineConfig(max_event_age_s=60 * 86400))
    assert not outcome.rejected
    store.write([outcome.rows])
    yield store, project
    store.close()


def test_channels(stored: tuple[DuckDBEventStore, Project]) -> None:
    result = acquisition(*stored, DAY)
    rows = [(r["channel"], r["sessions"], r["converted_sessions"], r["orders"],
             round(r["revenue"], 4)) for r in result["rows"]]
    assert rows == [("direct", 2, 1, 1, 5), ("email", 1, 0, 0, 0), ("paid", 1, 1, 1, 30),
                    ("referral", 1, 0, 0, 0), ("search", 1, 0, 0, 0),
                    ("social", 1, 1, 1, round(10 / 1.053, 4))]
    total = result["total"]
    assert (total["sessions"], total["orders"]) == (7, 3)
    assert total["conversion_rate"] == pytest.approx(3 / 7)
    assert total["revenue"] == pytest.approx(35 + 10 / 1.053)


def test_sources_and_campaigns(stored: tuple[DuckDBEventStore, Project]) -> None:
    sources = {r["source"]: r["sessions"] for r in acquisition(*stored, DAY, "source")["rows"]}
    assert sources == {"(direct)": 2, "google": 1, "www.google.com": 1, "l.facebook.com": 1,
                       "newsletter": 1, "blog.example.org": 1}
    campaigns = {r["campaign"]: r["orders"]
                 for r in acquisition(*stored, DAY, "campaign")["rows"]}
    assert campaigns == {"(none)": 2, "winter": 1, "weekly": 0}
    with pytest.raises(BadRequest, match="by:"):
        acquisition(*stored, DAY, "planet")


def test_products_and_categories(tmp_path: Path) -> None:
    from shopwatch.analytics.products import products

    project = StateStore(tmp_path / "s.sqlite").create_project("shop", "EUR")
    store = DuckDBEventStore(tmp_path / "e.duckdb")
    tea = {"item_id": "tea", "item_name": "Green tea", "item_category": "tea", "price": 4}
    mug = {"item_id": "mug", "item_name": "Mug", "item_category": "gear", "price": 10}
    events = [
        ev("a", "10:00", "view_item", params={"items": [tea]}),
        ev("a", "10:01", "view_item", params={"items": [mug]}),
        ev("a", "10:02", "add_to_cart", params={"items": [{**tea, "quantity": 3}]}),
        ev("a", "10:03", "purchase", params={"transaction_id": "P1", "currency": "EUR",
                                             "value": 12, "items": [{**tea, "quantity": 3}]}),
        # The same order sent again: counted once.
        ev("a", "10:04", "purchase", params={"transaction_id": "P1", "currency": "EUR",
                                             "value": 12, "items": [{**tea, "quantity": 3}]}),
        ev("b", "11:00", "view_item", params={"items": [tea]}),
        ev("b", "11:01", "purchase", params={"transaction_id": "P2", "currency": "USD",
                                             "value": 10.53, "items": [{**mug, "price": 10.53}]}),
    ]
    now_us = int(datetime(2026, 3, 12, tzinfo=UTC).timestamp() * 1e6)
    outcome = process(msgspec.json.encode({"events": events}), Format.JSON, project.id, now_us,
                      PipelineConfig(max_event_age_s=60 * 86400))
    store.write([outcome.rows])
    by_product = {r["product"]: r for r in products(store, project, DAY)["rows"]}
    assert (by_product["tea"]["views"], by_product["tea"]["adds"], by_product["tea"]["units"],
            by_product["tea"]["revenue"]) == (2, 3, 3, 12)
    assert by_product["tea"]["view_to_purchase"] == pytest.approx(1 / 2)
    assert by_product["tea"]["name"] == "Green tea" and by_product["tea"]["category"] == "tea"
    assert by_product["mug"]["units"] == 1 and by_product["mug"]["revenue"] == pytest.approx(10)
    assert by_product["mug"]["view_to_purchase"] == pytest.approx(0)  # bought unseen in b
    categories = {r["category"]: r["revenue"] for r in products(store, project, DAY,
                                                                 "category")["rows"]}
    assert categories == pytest.approx({"tea": 12, "gear": 10})
    store.close()


def test_carts_composition_and_exits(tmp_path: Path) -> None:
    from shopwatch.analytics.carts import carts

    project = StateStore(tmp_path / "s.sqlite").create_project("shop", "EUR")
    store = DuckDBEventStore(tmp_path / "e.duckdb")
    tea = {"item_id": "tea", "item_name": "Tea", "item_category": "tea", "price": 4}
    mug = {"item_id": "mug", "item_name": "Mug", "item_category": "gear", "price": 10}
    events = [
        # a: tea x2 and a mug, removes the mug, leaves at checkout.
        ev("a", "10:00", "add_to_cart", page="/p/tea", params={"items": [{**tea, "quantity": 2}]}),
        ev("a", "10:01", "add_to_cart", page="/p/mug", params={"items": [mug]}),
        ev("a", "10:02", "remove_from_cart", page="/cart", params={"items": [mug]}),
        ev("a", "10:03", "begin_checkout", page="/checkout"),
        # b: a mug, buys.
        ev("b", "11:00", "add_to_cart", page="/p/mug", params={"items": [mug]}),
        ev("b", "11:01", "purchase", page="/order", params={"transaction_id": "Q1",
                                                             "items": [mug]}),
        # c: tea x1, leaves on the product page.
        ev("c", "12:00", "add_to_cart", page="/p/tea", params={"items": [tea]}),
    ]
    now_us = int(datetime(2026, 3, 12, tzinfo=UTC).timestamp() * 1e6)
    outcome = process(msgspec.json.encode({"events": events}), Format.JSON, project.id, now_us,
                      PipelineConfig(max_event_age_s=60 * 86400))
    store.write([outcome.rows])
    result = carts(store, project, DAY)
    assert (result["carts"], result["abandoned_carts"]) == (3, 2)
    assert result["avg_cart_units"] == pytest.approx((2 + 1 + 1) / 3)
    assert result["avg_cart_value"] == pytest.approx((8 + 10 + 4) / 3)
    assert result["abandoned_cart_value"] == pytest.approx(8 + 4)
    assert [(i["item_id"], i["carts"], i["units"]) for i in result["abandoned_items"]] == [
        ("tea", 2, 3)]
    assert result["abandoned_categories"] == [{"category": "tea", "units": 3, "value": 12}]
    assert {s["step"]: s["carts"] for s in result["last_steps"]} == {
        "begin_checkout": 1, "add_to_cart": 1}
    assert {p["page"]: p["carts"] for p in result["last_pages"]} == {"/checkout": 1, "/p/tea": 1}
    store.close()


def test_time_series_with_previous_period_and_last_week(tmp_path: Path) -> None:
    from shopwatch.analytics.timeseries import timeseries

    project = StateStore(tmp_path / "s.sqlite").create_project("shop", "EUR")
    store = DuckDBEventStore(tmp_path / "e.duckdb")

    def at(day: str, hhmm: str, session: str, name: str, **params: Any) -> dict[str, Any]:
        event: dict[str, Any] = {"name": name, "ts": f"2026-03-{day}T{hhmm}:00Z",
                                 "session_id": session}
        if params:
            event["params"] = params
        return event

    events = [
        at("10", "10:00", "a", "page_view"),
        at("10", "10:05", "a", "purchase", transaction_id="T1", value=30, currency="EUR"),
        at("10", "11:30", "b", "add_to_cart"),
        at("09", "10:15", "p", "page_view"),  # the previous day
        at("03", "09:00", "w", "purchase", transaction_id="T0", value=20, currency="EUR"),
    ]
    now_us = int(datetime(2026, 3, 12, tzinfo=UTC).timestamp() * 1e6)
    outcome = process(msgspec.json.encode({"events": events}), Format.JSON, project.id, now_us,
                      PipelineConfig(max_event_age_s=60 * 86400))
    store.write([outcome.rows])
    result = timeseries(store, project, DAY, "hour")
    assert len(result["buckets"]) == 24 and result["buckets"][10] == "2026-03-10T10:00:00Z"
    ten, eleven = result["current"][10], result["current"][11]
    assert (ten["events"], ten["sessions"], ten["orders"], ten["revenue"]) == (2, 1, 1, 30)
    assert ten["conversion_rate"] == 1 and ten["aov"] == 30
    assert (eleven["events"], eleven["sessions"], eleven["carts"], eleven["orders"]) == (
        1, 1, 1, 0)
    assert sum(r["events"] for r in result["current"]) == 3
    assert result["previous"][10]["events"] == 1
    assert sum(r["events"] for r in result["previous"]) == 1
    assert result["last_week"][9]["revenue"] == 20 and result["last_week"][9]["orders"] == 1
    with pytest.raises(BadRequest, match="interval:"):
        timeseries(store, project, parse_range("30d", None, None, now_us), "minute")
    store.close()
