"""Rollups give the raw result: the same KPIs, funnels and time series, read through the
rollup (``rollup=True``) and from raw events only (``rollup=False``), on randomised
events over several hours, for aligned and unaligned periods, before and after late
events arrive. Real DuckDB files; events go through the real ingest pipeline."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest

from shopwatch.analytics import rollup
from shopwatch.analytics.acquisition import acquisition
from shopwatch.analytics.carts import carts
from shopwatch.analytics.funnel import funnel
from shopwatch.analytics.kpis import kpis
from shopwatch.analytics.products import products
from shopwatch.analytics.timerange import TimeRange
from shopwatch.analytics.timeseries import timeseries
from shopwatch.ingest.pipeline import Format, PipelineConfig, process
from shopwatch.store.duckdb import DuckDBEventStore
from shopwatch.store.state import Project, StateStore

US = 1_000_000
T0 = int(datetime(2026, 3, 10, 21, tzinfo=UTC).timestamp()) * US  # 21:00 UTC, before midnight
HOURS = 6
NAMES = ["page_view"] * 6 + ["view_item"] * 4 + ["add_to_cart"] * 3 + [
    "remove_from_cart", "begin_checkout", "begin_checkout", "add_payment_info", "purchase",
    "purchase", "search", "refund", "login"]
CURRENCIES = ["EUR", "USD", None, "XTS", "GBP"]
RECEIVED_US = T0 + 10 * 3600 * US
CONFIG = PipelineConfig(max_event_age_s=400 * 86400, max_future_skew_s=400 * 86400,
                        pseudonym_key=b"k" * 32)


def item(rng: random.Random) -> dict[str, Any]:
    """A cart line: one of 6 products (name and category always the same for an id)."""
    k = rng.randrange(6)
    line: dict[str, Any] = {"item_id": f"i{k}", "item_name": f"Item {k}", "price": 2.5 * (k + 1)}
    if k % 3:
        line["item_category"] = f"c{k % 3}"
    if rng.random() < 0.7:
        line["quantity"] = rng.randint(1, 3)
    return line


def random_events(rng: random.Random, n_sessions: int, start_us: int,
                  span_s: int) -> list[dict[str, Any]]:
    """Sessions of 1-15 events; some without a session id (split by idle gaps), some
    without any visitor; some long enough, or interrupted, to span several hours."""
    events: list[dict[str, Any]] = []
    for s in range(n_sessions):
        t = start_us + rng.randrange(span_s) * US
        kind = rng.random()
        base: dict[str, Any] = {}
        if kind < 0.75:
            base = {"session_id": f"s{s}-{rng.randrange(10**6)}", "anonymous_id": f"a{s % 40}"}
        elif kind < 0.9:
            base = {"anonymous_id": f"a{s % 40}"}
        device = rng.choice([{"category": "mobile", "country": "FR", "browser": "Safari"},
                             {"category": "desktop", "country": "DE"}, {}])
        for _ in range(rng.randint(1, 15)):
            t += rng.choice([1, 5, 20, 90, 600, 2400]) * US  # 40 min: a new visit
            name = rng.choice(NAMES)
            event: dict[str, Any] = {"name": name, "ts": t // 1000, **base}
            if device:
                event["device"] = device
            if rng.random() < 0.3:
                event["page"] = rng.choice(["/", "/p/1", "/cart"])
            if rng.random() < 0.2:
                event["utm_source"] = rng.choice(["google", "newsletter"])
                event["utm_medium"] = rng.choice(["cpc", "email", None])
                event["utm_campaign"] = rng.choice(["spring", None])
            if rng.random() < 0.2:
                event["referrer"] = rng.choice(["https://www.Google.com/search", "https://t.co/x",
                                                "https://blog.example/post", "nonsense"])
            if name == "view_item" and rng.random() < 0.9:
                event["params"] = {"items": [item(rng)]}
            if name in ("add_to_cart", "remove_from_cart", "purchase", "refund"):
                params: dict[str, Any] = {"value": rng.choice([5, 12.5, 99.99, 0.1])}
                currency = rng.choice(CURRENCIES)
                if currency:
                    params["currency"] = currency
                if name in ("purchase", "refund"):
                    params["transaction_id"] = f"T{rng.randrange(n_sessions)}"
                if name in ("add_to_cart", "remove_from_cart", "purchase") and rng.random() < 0.8:
                    params["items"] = [item(rng) for _ in range(rng.randint(1, 2))]
                event["params"] = params
            events.append(event)
    rng.shuffle(events)  # arrival order is not event order
    return events


def ingest(store: DuckDBEventStore, project: Project, events: list[dict[str, Any]],
           received_us: int) -> None:
    for i in range(0, len(events), 500):
        outcome = process(msgspec.json.encode({"events": events[i:i + 500]}), Format.JSON,
                          project.id, received_us, CONFIG)
        assert not outcome.rejected, outcome.rejected
        store.write([outcome.rows])


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[
        tuple[DuckDBEventStore, Project, Project]]:
    tmp = tmp_path_factory.mktemp("rollup")
    state = StateStore(tmp / "state.sqlite")
    project = state.create_project("shop", "EUR", "UTC")
    other = state.create_project("other", "USD", "UTC")
    store = DuckDBEventStore(tmp / "events.duckdb")
    rng = random.Random(5)
    ingest(store, project, random_events(rng, 400, T0, HOURS * 3600), RECEIVED_US)
    ingest(store, other, random_events(rng, 100, T0, HOURS * 3600), RECEIVED_US)
    while store.refresh_rollups(10.0):
        pass
    yield store, project, other
    store.close()
    state.close()


def period(start_min: int, end_min: int) -> TimeRange:
    return TimeRange(T0 + start_min * 60 * US, T0 + end_min * 60 * US, 3600, "custom")


PERIODS = [
    (0, HOURS * 60 + 600),  # everything, hour-aligned
    (17, 303),  # partial first and last hours
    (60, 120),  # exactly one hour
    (65, 110),  # inside one hour: no rollup hour at all
    (180, 181),
    (-600, 200),  # starts before the first event
]


def same(a: Any, b: Any) -> None:
    """Equal, floats up to summation order (sums over hours add in another order)."""
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            same(a[key], b[key])
    elif isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            same(x, y)
    elif isinstance(a, float) and isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-9, abs=1e-6)
    else:
        assert a == b


@pytest.mark.parametrize(("start", "end"), PERIODS)
def test_kpis_equal_raw(shop: tuple[DuckDBEventStore, Project, Project], start: int,
                        end: int) -> None:
    store, project, other = shop
    for p in (project, other):
        rolled = kpis(store, p, period(start, end))
        same(rolled, kpis(store, p, period(start, end), rollup=False))
    assert rolled["sessions"] > 0 or end - start < 5


@pytest.mark.parametrize(("start", "end"), PERIODS)
@pytest.mark.parametrize("by", [None, "device", "country", "source", "landing_page"])
def test_funnels_equal_raw(shop: tuple[DuckDBEventStore, Project, Project], start: int,
                           end: int, by: str | None) -> None:
    store, project, _ = shop
    for steps in (["view_item", "add_to_cart", "begin_checkout", "add_payment_info",
                   "purchase"], ["add_to_cart", "view_item", "purchase"],
                  ["add_to_cart", "add_to_cart"]):
        same(funnel(store, project.id, period(start, end), steps, by=by),
             funnel(store, project.id, period(start, end), steps, by=by, rollup=False))


@pytest.mark.parametrize(("start", "end"), PERIODS)
def test_acquisition_equals_raw(shop: tuple[DuckDBEventStore, Project, Project], start: int,
                                end: int) -> None:
    store, project, other = shop
    for p in (project, other):
        for group in ("channel", "source", "medium", "campaign"):
            rolled = acquisition(store, p, period(start, end), group)
            same(rolled, acquisition(store, p, period(start, end), group, rollup=False))
    assert rolled["total"]["sessions"] > 0 or end - start < 5


@pytest.mark.parametrize(("start", "end"), PERIODS)
def test_carts_equal_raw(shop: tuple[DuckDBEventStore, Project, Project], start: int,
                         end: int) -> None:
    store, project, other = shop
    for p in (project, other):
        rolled = carts(store, p, period(start, end))
        same(rolled, carts(store, p, period(start, end), rollup=False))
    assert rolled["carts"] > 0 or end - start < 5


@pytest.mark.parametrize(("start", "end"), PERIODS)
def test_products_equal_raw(shop: tuple[DuckDBEventStore, Project, Project], start: int,
                            end: int) -> None:
    store, project, other = shop
    for p in (project, other):
        for by in ("product", "category"):
            rolled = products(store, p, period(start, end), by)
            same(rolled, products(store, p, period(start, end), by, rollup=False))
    assert rolled["rows"] or end - start < 5


@pytest.mark.parametrize("interval", ["hour", "day"])
def test_timeseries_equal_raw(shop: tuple[DuckDBEventStore, Project, Project],
                              interval: str) -> None:
    store, project, _ = shop
    for start, end in PERIODS[:3]:
        same(timeseries(store, project, period(start, end), interval),
             timeseries(store, project, period(start, end), interval, rollup=False))


def buckets(store: DuckDBEventStore, project: Project, start: int, end: int, bucket_h: int,
            shift_h: int, *, rolled: bool = True) -> list[tuple[Any, ...]]:
    """:func:`rollup.buckets_sql`'s rows for a period in minutes from T0, sorted."""
    rng = period(start, end)
    return sorted(store.query(
        rollup.buckets_sql(bucket_h * 3600 * US, shift_h * 3600 * US, rollup=rolled),
        rollup.buckets_params(project.id, rng.start_us, rng.end_us, rollup=rolled),
        prelude=rollup.prelude(project.id) if rolled else None))


@pytest.mark.parametrize(("start", "end"), PERIODS)
def test_buckets_equal_raw(shop: tuple[DuckDBEventStore, Project, Project], start: int,
                           end: int) -> None:
    """Per-bucket events, active sessions, sessions, conversions and carts (the
    overview's and time series' figures), for 1 h and 3 h buckets, shifted or not; they
    add up to the KPIs."""
    store, project, other = shop
    for p in (project, other):
        for bucket_h, shift_h in ((1, 0), (3, 0), (3, 5), (12, 24)):
            rows = buckets(store, p, start, end, bucket_h, shift_h)
            assert rows == buckets(store, p, start, end, bucket_h, shift_h, rolled=False)
        k = kpis(store, p, period(start, end))
        assert sum(r[1] for r in rows) == k["events"]
        assert sum(r[3] for r in rows) == k["sessions"]
        assert sum(r[4] for r in rows) == k["converted_sessions"]
        assert sum(r[5] for r in rows) == k["carts"]
        assert all(r[2] >= r[3] for r in rows)  # a session starting in a bucket is active there
    if end - start >= 60:
        assert sum(r[3] for r in rows) > 0


def test_rolled_buckets_need_whole_hours() -> None:
    assert rollup.hour_aligned(3 * 3600 * US, 24 * 3600 * US)
    assert not rollup.hour_aligned(1800 * US) and not rollup.hour_aligned(3600 * US, 60 * US)
    with pytest.raises(ValueError, match="whole hours"):
        rollup.buckets_sql(1800 * US)


def test_the_rollup_is_read(shop: tuple[DuckDBEventStore, Project, Project]) -> None:
    """Not a raw path in disguise: a changed rollup row changes the rolled-up result
    (of whole hours only), and the tables hold every session-hour."""
    store, project, _ = shop
    rows = store.query("SELECT count(*), count(DISTINCT sk) FROM rollup_sessions "
                       "WHERE project_id = ?", [project.id])[0]
    assert rows[0] >= rows[1] > 100
    assert store.query("SELECT count(*) FROM rollup_pending")[0][0] == 0
    before = kpis(store, project, period(60, 120))
    events_before = sum(r[1] for r in buckets(store, project, 60, 120, 1, 0))
    hour = [project.id, T0 + 3600 * US]
    for table, where in (("rollup_hours", ""), ("rollup_sessions", "AND spans")):
        store._run(f"UPDATE {table} SET pages = pages + 1000, events = events + 1000 "
                   f"WHERE project_id = ? AND hour = make_timestamp(?::BIGINT) {where}", hour)
        try:
            assert kpis(store, project, period(60, 120))["pages_per_session"] > 10
            assert sum(r[1] for r in buckets(store, project, 60, 120, 1, 0)) > (
                events_before + 999)
            assert kpis(store, project, period(65, 110)) == kpis(
                store, project, period(65, 110), rollup=False)
        finally:
            store._run(f"UPDATE {table} SET pages = pages - 1000, events = events - 1000 "
                       f"WHERE project_id = ? AND hour = make_timestamp(?::BIGINT) {where}",
                       hour)
    assert kpis(store, project, period(60, 120)) == before


def test_order_and_visitor_rollups_are_read(
        shop: tuple[DuckDBEventStore, Project, Project]) -> None:
    """The order KPIs read ``rollup_orders`` and the visitor KPIs ``rollup_visitors``
    and ``rollup_first_seen``: changing them changes the result."""
    store, project, _ = shop
    later = period(60, HOURS * 60)  # visitors seen in the first hour are not new here
    before = kpis(store, project, later)
    assert before["orders"] > 0 and before["visitors"] > before["new_visitors"] > 0
    changes = [
        ("UPDATE rollup_orders SET value = value + 1000 WHERE name = 'purchase'",
         "UPDATE rollup_orders SET value = value - 1000 WHERE name = 'purchase'",
         lambda k: k["gross_revenue"] > before["gross_revenue"] + 1000),
        ("UPDATE rollup_visitors SET vk = vk + epoch(hour)::UBIGINT",  # one per hour
         "UPDATE rollup_visitors SET vk = vk - epoch(hour)::UBIGINT",
         lambda k: k["visitors"] > before["visitors"]),
        ("UPDATE rollup_first_seen SET hour = hour + INTERVAL 100 DAY",
         "UPDATE rollup_first_seen SET hour = hour - INTERVAL 100 DAY",
         lambda k: k["new_visitors"] != before["new_visitors"]),
    ]
    for change, undo, changed in changes:
        store._run(change, [])
        try:
            assert changed(kpis(store, project, later))
        finally:
            store._run(undo, [])
    assert kpis(store, project, later) == before


def test_product_and_cart_rollups_are_read(
        shop: tuple[DuckDBEventStore, Project, Project]) -> None:
    """Products read ``rollup_items``, ``rollup_item_views`` and the order rows' item
    lines, carts ``rollup_cart_lines``: changing them changes the result."""
    store, project, _ = shop
    whole = period(60, HOURS * 60)

    def total(result: dict[str, Any], field: str) -> float:
        return float(sum(r[field] for r in result["rows"]))

    changes = [
        ("UPDATE rollup_items SET views = views + 1000",
         "UPDATE rollup_items SET views = views - 1000",
         lambda: total(products(store, project, whole), "views")),
        ("UPDATE rollup_item_views SET item_first = NOT item_first",
         "UPDATE rollup_item_views SET item_first = NOT item_first",
         lambda: total(products(store, project, whole), "viewed_sessions")),
        ("UPDATE rollup_orders SET lines = list_concat(lines, lines)",
         "UPDATE rollup_orders SET lines = lines[1:len(lines) // 2]",
         lambda: total(products(store, project, whole), "units")),
        ("UPDATE rollup_cart_lines SET units = units + 1000",
         "UPDATE rollup_cart_lines SET units = units - 1000",
         lambda: float(carts(store, project, whole)["avg_cart_units"])),
    ]
    for change, undo, figure in changes:
        before = figure()
        store._run(change, [])
        try:
            assert figure() != before, change
        finally:
            store._run(undo, [])
        assert figure() == before


def test_spans_and_hour_totals_are_consistent(
        shop: tuple[DuckDBEventStore, Project, Project]) -> None:
    """A row spans exactly when its session has rows in other hours, and each hour's
    totals are those of its rows that do not span."""
    assert_consistent(shop[0])


def assert_consistent(store: DuckDBEventStore) -> None:
    assert store.query("""
        SELECT count(*) FROM rollup_sessions r
        WHERE spans <> ((SELECT count(*) FROM rollup_sessions x
                         WHERE x.project_id = r.project_id AND x.sk = r.sk) > 1)""")[0][0] == 0
    assert store.query("SELECT count(*) FROM rollup_sessions WHERE spans")[0][0] > 10
    expected = store.query(f"""
        SELECT project_id, hour, {', '.join(t.agg for t in rollup.TOTALS)}
        FROM rollup_sessions WHERE NOT spans GROUP BY ALL ORDER BY 1, 2""")
    assert store.query("SELECT * FROM rollup_hours ORDER BY 1, 2") == expected
    for table in ("rollup_item_views", "rollup_cart_lines"):
        assert store.query(f"""
            SELECT count(*) FROM {table} v
            WHERE spans <> (SELECT bool_or(spans) FROM rollup_sessions s
                            WHERE s.project_id = v.project_id AND s.sk = v.sk)""")[0][0] == 0
        assert store.query(f"SELECT count(*) FROM {table} WHERE spans")[0][0] > 0
        assert store.query(f"SELECT count(*) FROM {table} WHERE NOT spans")[0][0] > 0


def test_late_events_stay_exact(tmp_path: Path) -> None:
    """Events arriving late for hours already rolled up are counted at once (their
    hours read raw until recomputed), and after the refresh too."""
    state = StateStore(tmp_path / "state.sqlite")
    project = state.create_project("shop", "EUR", "UTC")
    store = DuckDBEventStore(tmp_path / "events.duckdb")
    try:
        ingest(store, project, random_events(random.Random(9), 150, T0, HOURS * 3600),
               RECEIVED_US)
        while store.refresh_rollups(10.0):
            pass
        whole = period(0, HOURS * 60)
        first = kpis(store, project, whole)
        # Late: the same sessions again (events without ids are never deduplicated):
        # their rolled-up hours are stale until recomputed.
        late = random_events(random.Random(9), 150, T0, HOURS * 3600)
        ingest(store, project, late, RECEIVED_US)
        after = kpis(store, project, whole)
        same(after, kpis(store, project, whole, rollup=False))
        same(acquisition(store, project, whole, "source"),
             acquisition(store, project, whole, "source", rollup=False))
        assert after["events"] == 2 * first["events"]
        assert after["sessions"] == first["sessions"]
        while store.refresh_rollups(10.0):
            pass
        same(kpis(store, project, whole), after)
        assert_consistent(store)
        assert store.query("SELECT sum(events) FROM rollup_sessions")[0][0] == store.query(
            "SELECT count(*) FROM events WHERE session_id IS NOT NULL")[0][0]

        # A session rolled up whole in its one hour gets a late event hours later: until
        # that hour is rolled up, its row is taken out of its hour's totals and merged.
        sid = store.query("""
            SELECT session_id FROM events WHERE project_id = ? AND session_id IS NOT NULL
            GROUP BY 1 HAVING count(DISTINCT date_trunc('hour', ts)) = 1
               AND min(ts) >= make_timestamp(?::BIGINT) ORDER BY 1 LIMIT 1""",
                          [project.id, T0 + 3600 * US])[0][0]
        ingest(store, project, [{"name": "purchase", "session_id": sid,
                                 "ts": (T0 + 5 * 3600 * US + 60 * US) // 1000}], RECEIVED_US)
        for start, end in ((0, HOURS * 60), (60, 5 * 60 + 30)):
            same(kpis(store, project, period(start, end)),
                 kpis(store, project, period(start, end), rollup=False))
            same(acquisition(store, project, period(start, end)),
                 acquisition(store, project, period(start, end), rollup=False))
            same(carts(store, project, period(start, end)),
                 carts(store, project, period(start, end), rollup=False))
            same(products(store, project, period(start, end)),
                 products(store, project, period(start, end), rollup=False))
            same(timeseries(store, project, period(start, end), "hour"),
                 timeseries(store, project, period(start, end), "hour", rollup=False))
            for bucket_h, shift_h in ((1, 0), (3, 3)):
                assert buckets(store, project, start, end, bucket_h, shift_h) == buckets(
                    store, project, start, end, bucket_h, shift_h, rolled=False)
    finally:
        store.close()
        state.close()


def test_a_new_definition_rebuilds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = StateStore(tmp_path / "state.sqlite")
    project = state.create_project("shop", "EUR", "UTC")
    store = DuckDBEventStore(tmp_path / "events.duckdb")
    ingest(store, project, random_events(random.Random(1), 50, T0, 3 * 3600), RECEIVED_US)
    while store.refresh_rollups(10.0):
        pass
    expected = kpis(store, project, period(0, 180))
    store.close()
    monkeypatch.setattr(rollup, "VERSION", rollup.VERSION + 1)
    store = DuckDBEventStore(tmp_path / "events.duckdb")
    try:
        assert store.query("SELECT count(*) FROM rollup_sessions")[0][0] == 0
        assert store.refresh_rollups(10.0) == 0
        assert store.query("SELECT count(*) FROM rollup_sessions")[0][0] > 0
        same(kpis(store, project, period(0, 180)), expected)
    finally:
        store.close()
        state.close()
