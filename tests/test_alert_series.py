"""The series alert rules read, against hand-computed values on a small hour of events,
RUM beacons and monitor runs written into a real DuckDB file (docs/alerts.md, "Series"),
and against the dashboard's own figures for the same range."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest

from shopwatch.alerts.rules import SERIES
from shopwatch.analytics.alert_series import COUNTS, buckets, value
from shopwatch.analytics.kpis import kpis
from shopwatch.analytics.timerange import parse_range
from shopwatch.analytics.vitals import vitals
from shopwatch.beacon import RumRow
from shopwatch.checks.record import CheckRow
from shopwatch.ingest.pipeline import Format, PipelineConfig, process
from shopwatch.store.base import EventBatch
from shopwatch.store.duckdb import DuckDBEventStore
from shopwatch.store.state import Project, StateStore

DAY = "2026-03-10"


def at(hhmm: str, ss: int = 0) -> str:
    return f"{DAY}T{hhmm}:{ss:02d}Z"


def us(hhmm: str) -> int:
    return int(datetime.fromisoformat(at(hhmm)).timestamp() * 1_000_000)


def sec(hhmm: str, ss: int = 0) -> float:
    return datetime.fromisoformat(at(hhmm, ss)).timestamp()


START, END = us("10:00"), us("11:00")  # the measured hour: six buckets of 10 minutes
MOBILE_DE = {"category": "mobile", "country": "DE"}
DESKTOP_FR = {"category": "desktop", "country": "FR"}


def ev(name: str, hhmm: str, sid: str | None = None, page: str | None = None,
       device: dict[str, str] | None = None, **params: Any) -> dict[str, Any]:
    found: dict[str, Any] = {"name": name, "ts": at(hhmm)}
    if sid:
        found["session_id"] = sid
    if page:
        found["page"] = page
    if device:
        found["device"] = device
    if params:
        found["params"] = params
    return found


EVENTS = [
    # bucket 0 (10:00-10:10): s1 buys with a card (T1, re-sent under another id); s2's
    # card is declined by stripe; a failed login.
    ev("page_view", "10:01", "s1", "https://shop.example/product/red-shoe", MOBILE_DE),
    ev("begin_checkout", "10:02", "s1", device=MOBILE_DE),
    ev("add_payment_info", "10:03", "s1", device=MOBILE_DE, payment_method="card"),
    ev("purchase", "10:04", "s1", device=MOBILE_DE, transaction_id="T1", value=50,
       currency="EUR", payment_method="card", gateway="stripe"),
    ev("purchase", "10:05", "s1", device=MOBILE_DE, transaction_id="T1", value=50,
       currency="EUR", payment_method="card", gateway="stripe"),
    ev("page_view", "10:02", "s2", "/cart", DESKTOP_FR),
    ev("begin_checkout", "10:03", "s2", device=DESKTOP_FR),
    ev("payment_declined", "10:04", "s2", device=DESKTOP_FR, payment_method="card",
       gateway="stripe"),
    ev("login_failed", "10:05"),
    # bucket 1: nothing. bucket 2: s3 pays 105.30 USD (100 EUR) with paypal after a
    # decline at adyen; two failed logins.
    ev("page_view", "10:21", "s3", "/", MOBILE_DE),
    ev("begin_checkout", "10:22", "s3", device=MOBILE_DE),
    ev("add_payment_info", "10:23", "s3", device=MOBILE_DE, payment_method="paypal"),
    ev("payment_declined", "10:24", "s3", device=MOBILE_DE, payment_method="paypal",
       gateway="adyen"),
    ev("purchase", "10:25", "s3", device=MOBILE_DE, transaction_id="T2", value=105.3,
       currency="USD", payment_method="paypal", gateway="adyen"),
    ev("login_failed", "10:26"),
    ev("login_failed", "10:27"),
    # bucket 3: 10 EUR of T1 refunded, T2 cancelled (worth its 100 EUR), a phone order
    # in the project's currency, s1 comes back.
    ev("refund", "10:31", transaction_id="T1", value=10, currency="EUR"),
    ev("order_cancelled", "10:32", transaction_id="T2"),
    ev("purchase", "10:33", transaction_id="T3", value=30, payment_method="card"),
    ev("page_view", "10:35", "s1", "/product/blue-hat", MOBILE_DE),
    # Outside the hour (the end is excluded).
    ev("page_view", "09:59", "s0", "/", MOBILE_DE),
    ev("purchase", "11:00", "s0", transaction_id="T9", value=1000),
]

RUM = [
    RumRow(kind="view", ts=sec("10:01"), view_id="v1", session_id="s1",
           page="/product/red-shoe", device_category="mobile"),
    RumRow(kind="vitals", ts=sec("10:02"), view_id="v1", page="/product/red-shoe",
           device_category="mobile", lcp_ms=1000, inp_ms=100),
    RumRow(kind="view", ts=sec("10:03"), view_id="v2", page="/product/blue-hat",
           device_category="desktop"),
    RumRow(kind="vitals", ts=sec("10:04"), view_id="v2", page="/product/blue-hat",
           device_category="desktop", lcp_ms=3000, inp_ms=300),
    RumRow(kind="error", ts=sec("10:04", 30), view_id="v2", page="/product/blue-hat",
           message="boom", fingerprint="0123456789abcdef"),
    RumRow(kind="view", ts=sec("10:22"), view_id="v3", page="/cart", device_category="mobile"),
    RumRow(kind="vitals", ts=sec("10:23"), view_id="v3", page="/cart",
           device_category="mobile", lcp_ms=2000),
    RumRow(kind="vitals", ts=sec("10:24"), view_id="v3", page="/cart",
           device_category="mobile", lcp_ms=5000),  # the page's largest: its LCP
    RumRow(kind="view", ts=sec("10:24"), view_id="v4", page="/cart", device_category="desktop"),
    RumRow(kind="error", ts=sec("10:25"), view_id="v4", page="/cart", message="a",
           fingerprint="0123456789abcdef"),
    RumRow(kind="error", ts=sec("10:26"), view_id="v4", page="/cart", message="a",
           fingerprint="0123456789abcdef"),
    # An error of a page view whose view row is outside the hour: no page view here.
    RumRow(kind="error", ts=sec("10:40"), view_id="v9", page="/cart", message="x",
           fingerprint="0123456789abcdef"),
]


def run(t: float, monitor: str, location: str, ok: bool) -> CheckRow:
    return CheckRow(ts=t, monitor=monitor, kind="http", location=location, ok=ok, attempts=1,
                    duration_ms=10.0)


CHECKS = [
    run(sec("10:01"), "home", "local", True), run(sec("10:04"), "home", "eu", True),
    run(sec("10:05"), "home", "local", False),  # bucket 0: home's local run fails last
    run(sec("10:03"), "checkout", "local", True),
    run(sec("10:21"), "home", "local", True), run(sec("10:22"), "home", "eu", False),
]


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory,
           ) -> Iterator[tuple[DuckDBEventStore, Project]]:
    tmp = tmp_path_factory.mktemp("alert_series")
    state = StateStore(tmp / "state.sqlite")
    project, other = state.create_project("shop", "EUR", "UTC"), state.create_project("other")
    store = DuckDBEventStore(tmp / "events.duckdb")
    now_us = us("12:00")
    config = PipelineConfig(max_event_age_s=60 * 86400)
    for pid, events in ((project.id, EVENTS), (other.id, EVENTS[:9])):
        outcome = process(msgspec.json.encode({"events": events}), Format.JSON, pid, now_us,
                          config)
        assert not outcome.rejected, outcome.rejected
        store.write([outcome.rows])
    for pid in (project.id, other.id):
        store.write([EventBatch(pid, now_us, b"[]", 0, [], rum=msgspec.json.encode(RUM),
                                n_rum=len(RUM), checks=msgspec.json.encode(CHECKS),
                                n_checks=len(CHECKS))])
    yield store, project
    store.close()
    state.close()


def hour(stored: tuple[DuckDBEventStore, Project], series: str,
         filter: dict[str, str] | None = None, **kw: Any) -> float | None:
    store, project = stored
    return value(store, project.id, series, filter, START, END, currency="EUR", **kw)


def tens(stored: tuple[DuckDBEventStore, Project], series: str,
         filter: dict[str, str] | None = None) -> list[tuple[float, float]]:
    store, project = stored
    return buckets(store, project.id, series, filter, START, END, 600, currency="EUR")


T = [START / 1e6 + 600 * i for i in range(6)]  # the buckets' starts


@pytest.mark.parametrize(("series", "filter", "expected"), [
    ("events", None, 20),
    ("events", {"name": "purchase"}, 4),  # T1 twice (two ids), T2, T3
    ("events", {"name": "page_view"}, 4),
    ("login_failures", None, 3),
    ("orders", None, 3),  # T1 once
    ("orders", {"payment_method": "card"}, 2),
    ("orders", {"payment_method": "paypal"}, 1),
    ("revenue", None, 50 + 100 + 30 - 10 - 100),
    ("revenue", {"payment_method": "card"}, 50 + 30 - 10),  # T1's refund is a card's
    ("revenue", {"payment_method": "paypal"}, 0),
    ("sessions", None, 3),
    ("sessions", {"device": "mobile"}, 2),
    ("sessions", {"country": "FR"}, 1),
    ("sessions", {"page": "/product/*"}, 1),  # s1, its page a full URL
    ("sessions", {"page": "/product/red-shoe"}, 1),
    ("sessions", {"page": "/"}, 1),
    ("sessions", {"page": "/nowhere"}, 0),
    ("conversion", None, 2 / 3),
    ("conversion", {"device": "desktop"}, 0.0),
    ("conversion", {"country": "DE"}, 1.0),
    ("checkout_conversion", None, 2 / 3),
    ("checkout_conversion", {"payment_method": "card"}, 1 / 2),  # s1 bought, s2 declined
    ("checkout_conversion", {"payment_method": "paypal"}, 1.0),
    ("checkout_conversion", {"device": "desktop"}, 0.0),
    ("declined_rate", None, 2 / 5),  # 2 declines, 3 orders
    ("declined_rate", {"payment_method": "card"}, 1 / 3),  # s2's; T1, T3
    ("declined_rate", {"gateway": "stripe"}, 1 / 2),  # s2's; T1 (T3 names no gateway)
    ("declined_rate", {"payment_method": "paypal", "gateway": "adyen"}, 1 / 2),
    ("error_rate", None, 2 / 4),  # v2 and v4 of v1..v4 (v9 is no page view of the hour)
    ("error_rate", {"page": "/cart"}, 1 / 2),
    ("error_rate", {"page": "/product/red-shoe"}, 0.0),
    ("lcp_p75", None, 4000.0),  # 1000, 3000, 5000: rank 1.5
    ("lcp_p75", {"page": "/product/*"}, 2500.0),
    ("lcp_p75", {"device": "mobile"}, 4000.0),  # 1000, 5000
    ("lcp_p75", {"page": "/cart", "device": "mobile"}, 5000.0),
    ("inp_p75", None, 250.0),  # 100, 300
    ("monitor", None, 1.0),  # home: eu's latest run failed
    ("monitor", {"monitor": "checkout"}, 0.0),
    ("monitor", {"location": "local"}, 0.0),
    ("monitor", {"location": "eu"}, 1.0),
    ("monitor", {"monitor": "home", "location": "eu"}, 1.0),
    ("failed_checks", None, 2),  # home at local (10:05) and at eu (10:22)
    ("failed_checks", {"monitor": "home"}, 2),
    ("failed_checks", {"monitor": "checkout"}, 0),
    ("failed_checks", {"location": "eu"}, 1),
    ("js_errors", None, 4),  # every error row, page view or not
    ("js_errors", {"page": "/cart"}, 3),
    ("js_errors", {"page": "/product/*"}, 1),
])
def test_values_over_the_hour(stored: tuple[DuckDBEventStore, Project], series: str,
                              filter: dict[str, str] | None, expected: float) -> None:
    assert hour(stored, series, filter) == pytest.approx(expected)


def test_every_series_is_covered() -> None:
    assert set(SERIES) == {"events", "login_failures", "orders", "revenue", "sessions",
                           "conversion", "checkout_conversion", "declined_rate",
                           "error_rate", "lcp_p75", "inp_p75", "monitor", "failed_checks",
                           "js_errors", "backend_errors", "backend_p95_ms"}


def test_monitor_down_needs_enough_failed_locations(
        stored: tuple[DuckDBEventStore, Project]) -> None:
    assert hour(stored, "monitor", min_failed={"home": 2}) == 0.0
    store, project = stored
    # 10:00-10:10: home's latest runs are local (failed) and eu (passed).
    assert value(store, project.id, "monitor", None, START, us("10:10")) == 1.0
    assert value(store, project.id, "monitor", None, START, us("10:10"),
                 min_failed={"home": 2}) == 0.0


def test_an_empty_window_counts_zero_and_judges_nothing(
        stored: tuple[DuckDBEventStore, Project]) -> None:
    store, project = stored
    quiet = {s: value(store, project.id, s, None, us("12:00"), us("13:00"), currency="EUR")
             for s in SERIES}
    assert {s: v for s, v in quiet.items() if s in COUNTS} == dict.fromkeys(COUNTS, 0.0)
    assert {s: v for s, v in quiet.items() if s not in COUNTS} == dict.fromkeys(
        set(SERIES) - COUNTS, None)
    # A window with sessions but none that checked out: no checkout conversion to judge.
    assert value(store, project.id, "checkout_conversion", None, us("10:30"),
                 us("10:40")) is None
    assert hour(stored, "lcp_p75", {"page": "/nowhere"}) is None


def test_count_buckets_list_every_bucket_with_zeros(
        stored: tuple[DuckDBEventStore, Project]) -> None:
    assert tens(stored, "orders") == list(zip(T, [1.0, 0, 1, 1, 0, 0], strict=True))
    assert tens(stored, "events") == list(zip(T, [9.0, 0, 7, 4, 0, 0], strict=True))
    assert tens(stored, "login_failures") == list(zip(T, [1.0, 0, 2, 0, 0, 0], strict=True))
    assert tens(stored, "events", {"name": "refund"}) == list(
        zip(T, [0.0, 0, 0, 1, 0, 0], strict=True))
    revenue = tens(stored, "revenue")
    assert [t for t, _ in revenue] == T
    assert [v for _, v in revenue] == pytest.approx([50, 0, 100, 30 - 10 - 100, 0, 0])
    # s1 is back in bucket 3: it counts there too.
    assert tens(stored, "sessions") == list(zip(T, [2.0, 0, 1, 1, 0, 0], strict=True))
    # Each bucket is the value of that bucket alone; counts add up (but sessions).
    store, project = stored
    for i, t in enumerate(T):
        lo = START + i * 600_000_000
        for series in ("orders", "events", "sessions"):
            assert dict(tens(stored, series))[t] == value(
                store, project.id, series, None, lo, lo + 600_000_000)
    assert sum(v for _, v in tens(stored, "orders")) == hour(stored, "orders")


def test_other_buckets_leave_out_what_cannot_be_judged(
        stored: tuple[DuckDBEventStore, Project]) -> None:
    assert tens(stored, "conversion") == [(T[0], 0.5), (T[2], 1.0), (T[3], 0.0)]
    assert tens(stored, "error_rate") == [(T[0], 0.5), (T[2], 0.5)]
    assert tens(stored, "lcp_p75") == [(T[0], 2500.0), (T[2], 5000.0)]
    assert tens(stored, "monitor") == [(T[0], 1.0), (T[2], 1.0)]
    assert tens(stored, "monitor", {"monitor": "checkout"}) == [(T[0], 0.0)]


def test_a_shorter_last_bucket_and_bad_arguments(
        stored: tuple[DuckDBEventStore, Project]) -> None:
    store, project = stored
    got = buckets(store, project.id, "orders", None, START, us("10:25"), 600)
    assert got == [(T[0], 1.0), (T[1], 0.0), (T[2], 0.0)]  # T2 at 10:25 is out
    with pytest.raises(ValueError, match="not filtered by page"):
        value(store, project.id, "orders", {"page": "/"}, START, END)
    with pytest.raises(ValueError, match="not one of"):
        value(store, project.id, "visits", None, START, END)
    with pytest.raises(ValueError, match="currency"):
        value(store, project.id, "revenue", None, START, END)
    with pytest.raises(ValueError, match="after start"):
        value(store, project.id, "orders", None, END, START)


def test_a_filter_value_is_a_parameter_not_sql(stored: tuple[DuckDBEventStore, Project]) -> None:
    assert hour(stored, "events", {"name": "x' OR '1'='1"}) == 0.0
    assert hour(stored, "sessions", {"page": "/' OR true --"}) == 0.0


def test_equal_to_the_dashboard(stored: tuple[DuckDBEventStore, Project]) -> None:
    store, project = stored
    for start, end in ((START, END), (START, us("10:10")), (us("10:20"), us("10:40")),
                       (us("09:00"), us("12:00"))):
        rng = parse_range("custom", datetime.fromtimestamp(start / 1e6, UTC).isoformat(),
                          datetime.fromtimestamp(end / 1e6, UTC).isoformat(), now_us=0)
        k = kpis(store, project, rng)
        v = vitals(store, project.id, rng)["total"]["metrics"]

        def read(series: str, s: int = start, e: int = end) -> float | None:
            return value(store, project.id, series, None, s, e, currency=project.currency)

        assert read("orders") == k["orders"]
        assert read("revenue") == pytest.approx(k["revenue"])
        assert read("sessions") == k["sessions"]
        assert read("conversion") == pytest.approx(k["conversion_rate"])
        if k["checkout_abandonment_rate"] is not None:
            assert read("checkout_conversion") == pytest.approx(
                1 - k["checkout_abandonment_rate"])
        lcp = read("lcp_p75")
        assert (None if lcp is None else round(lcp)) == v["lcp"]["p75"]
        inp = read("inp_p75")
        assert (None if inp is None else round(inp)) == v["inp"]["p75"]


def test_other_projects_never_count(tmp_path: Path) -> None:
    store = DuckDBEventStore(tmp_path / "e.duckdb")
    try:
        for series in SERIES:
            got = value(store, 1, series, None, START, END, currency="EUR")
            assert got == (0.0 if series in COUNTS else None)
    finally:
        store.close()
