"""SLIs against hand-computed good and total counts, on events, RUM beacons and monitor
runs written into a real DuckDB file (docs/kpis.md, "SLIs"): each SLI, its filters, the
clamp, maintenance windows left out, a tier's burn rates and an objective's budget."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest

from shopwatch.alerts.objectives import Objective, parse_objectives, tier_named
from shopwatch.analytics import sli
from shopwatch.beacon import RumRow
from shopwatch.checks.record import CheckRow
from shopwatch.ingest.pipeline import Format, PipelineConfig, process
from shopwatch.store.base import EventBatch
from shopwatch.store.duckdb import DuckDBEventStore
from shopwatch.store.state import Project, StateStore

DAY = "2026-03-10"


def sec(hhmm: str, ss: int = 0) -> int:
    return int(datetime.fromisoformat(f"{DAY}T{hhmm}:{ss:02d}Z").timestamp())


START, END = sec("10:00"), sec("11:00")  # six buckets of 10 minutes
T = [START + 600 * i for i in range(6)]  # the buckets' starts
MAINTENANCE = [(float(sec("10:30")), float(sec("10:40")))]  # bucket 3
MOBILE, DESKTOP = {"category": "mobile"}, {"category": "desktop"}


def ev(name: str, hhmm: str, sid: str | None = None, device: dict[str, str] | None = None,
       **params: Any) -> dict[str, Any]:
    found: dict[str, Any] = {"name": name, "ts": f"{DAY}T{hhmm}:00Z"}
    if sid:
        found["session_id"] = sid
    if device:
        found["device"] = device
    if params:
        found["params"] = params
    return found


def pay(name: str, hhmm: str, sid: str | None, device: dict[str, str] | None, method: str,
        gateway: str, tx: str | None = None) -> dict[str, Any]:
    extra = {"transaction_id": tx, "value": 10, "currency": "EUR"} if tx else {}
    return ev(name, hhmm, sid, device, payment_method=method, gateway=gateway, **extra)


EVENTS = [
    # bucket 0: s1 begins twice (one checkout) and buys T1 (sent twice: one order); s2's
    # card is declined; a checkout without a session id counts on its own.
    ev("begin_checkout", "10:01", "s1", MOBILE), ev("begin_checkout", "10:02", "s1", MOBILE),
    ev("begin_checkout", "10:03", "s2", DESKTOP),
    pay("payment_declined", "10:04", "s2", DESKTOP, "card", "stripe"),
    pay("purchase", "10:04", "s1", MOBILE, "card", "stripe", "T1"),
    pay("purchase", "10:05", "s1", MOBILE, "card", "stripe", "T1"),
    ev("begin_checkout", "10:06"),
    # bucket 1: s3 pays with PayPal after a decline at adyen; s4 begins at 10:19 ...
    ev("begin_checkout", "10:12", "s3", MOBILE),
    pay("payment_declined", "10:13", "s3", MOBILE, "paypal", "adyen"),
    pay("purchase", "10:14", "s3", MOBILE, "paypal", "adyen", "T2"),
    ev("begin_checkout", "10:19", "s4", MOBILE),
    # bucket 2: ... and buys T4 here, beside T3 and s5's checkout: 2 orders, 1 checkout.
    pay("purchase", "10:21", None, DESKTOP, "card", "stripe", "T3"),
    pay("purchase", "10:22", "s4", MOBILE, "card", "stripe", "T4"),
    ev("begin_checkout", "10:25", "s5", DESKTOP),
    # bucket 3 (the maintenance window): s6 begins, two cards declined.
    ev("begin_checkout", "10:31", "s6", DESKTOP),
    pay("payment_declined", "10:32", "s6", DESKTOP, "card", "stripe"),
    pay("payment_declined", "10:33", "s6", DESKTOP, "card", "stripe"),
    # bucket 4: s7 buys T5.
    ev("begin_checkout", "10:41", "s7", DESKTOP),
    pay("purchase", "10:43", "s7", DESKTOP, "card", "stripe", "T5"),
    # Outside the range (its end is excluded).
    ev("begin_checkout", "09:59", "s0"), pay("purchase", "11:00", "s0", None, "card", "x", "T9"),
]


def view(t: int, vid: str, page: str, device: str | None = None, **m: float) -> list[RumRow]:
    rows = [RumRow(kind="view", ts=float(t), view_id=vid, page=page, device_category=device)]
    if m:
        rows.append(RumRow(kind="vitals", ts=float(t + 30), view_id=vid, page=page,
                           device_category=device, **m))
    return rows


RUM = [
    *view(sec("10:01"), "v1", "/product/red-shoe", "mobile", lcp_ms=1000, inp_ms=100),
    *view(sec("10:03"), "v2", "/product/blue-hat", "desktop", lcp_ms=3000, inp_ms=300),
    # v3: two vitals rows, its LCP the largest (2600: slow); its time its first row's.
    *view(sec("10:09"), "v3", "/product/red-shoe", "mobile", lcp_ms=2000),
    RumRow(kind="vitals", ts=float(sec("10:12")), view_id="v3", page="/product/red-shoe",
           lcp_ms=2600),
    *view(sec("10:22"), "v4", "/cart", "mobile", lcp_ms=500),  # another page
    *view(sec("10:23"), "v5", "/product/x", "mobile"),  # no LCP: not judged
    *view(sec("10:24"), "v6", "/product/y", "desktop", lcp_ms=2500),  # at the bound: good
    *view(sec("10:33"), "v7", "/product/z", "desktop", lcp_ms=9000),  # in maintenance
]


def run(t: int, monitor: str, location: str, ok: bool) -> CheckRow:
    return CheckRow(ts=float(t), monitor=monitor, kind="http", location=location, ok=ok,
                    attempts=1, duration_ms=10.0)


CHECKS = [
    run(sec("10:01"), "home", "local", True), run(sec("10:02"), "home", "eu", True),
    run(sec("10:05"), "home", "local", False), run(sec("10:03"), "checkout", "local", True),
    run(sec("10:21"), "home", "local", True), run(sec("10:22"), "home", "eu", False),
    run(sec("10:31"), "home", "local", False), run(sec("10:32"), "home", "local", False),
]


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory,
           ) -> Iterator[tuple[DuckDBEventStore, Project]]:
    tmp: Path = tmp_path_factory.mktemp("sli")
    state = StateStore(tmp / "state.sqlite")
    project, other = state.create_project("shop", "EUR", "UTC"), state.create_project("other")
    store = DuckDBEventStore(tmp / "events.duckdb")
    now_us = sec("12:00") * 1_000_000
    config = PipelineConfig(max_event_age_s=60 * 86400)
    for pid in (project.id, other.id):
        events = EVENTS if pid == project.id else EVENTS[:3]
        outcome = process(msgspec.json.encode({"events": events}), Format.JSON, pid, now_us,
                          config)
        assert not outcome.rejected, outcome.rejected
        store.write([outcome.rows])
        store.write([EventBatch(pid, now_us, b"[]", 0, [], rum=msgspec.json.encode(RUM),
                                n_rum=len(RUM), checks=msgspec.json.encode(CHECKS),
                                n_checks=len(CHECKS))])
    yield store, project
    store.close()
    state.close()


def objective(sli_name: str, target: str = "90%", **filter: Any) -> Objective:
    spec: dict[str, Any] = {"name": "x", "sli": sli_name, "target": target, "window": "1d"}
    if filter:
        spec["filter"] = filter
    (found,) = parse_objectives(msgspec.json.encode({"slos": [spec]}).decode())
    return found


def tens(stored: tuple[DuckDBEventStore, Project], o: Objective,
         maintenance: list[tuple[float, float]] | None = None) -> list[tuple[float, ...]]:
    store, project = stored
    return sli.buckets(store, project.id, o, START, END, 600, maintenance or [])


@pytest.mark.parametrize(("o", "expected"), [
    # Orders ÷ checkouts begun: b0 T1 of s1, s2 and the anonymous one; b1 T2 of s3, s4;
    # b2 T3 and T4 against s5 only: clamped to 1 of 1; b3 s6 bought nothing.
    (objective("checkout"), [(T[0], 1, 3), (T[1], 1, 2), (T[2], 1, 1), (T[3], 0, 1),
                             (T[4], 1, 1)]),
    # Mobile: b2 has T4 but no mobile checkout: no traffic, left out.
    (objective("checkout", device="mobile"), [(T[0], 1, 1), (T[1], 1, 2)]),
    # Orders ÷ (orders + declines), T1 once.
    (objective("payment"), [(T[0], 1, 2), (T[1], 1, 2), (T[2], 2, 2), (T[3], 0, 2),
                            (T[4], 1, 1)]),
    (objective("payment", payment_method="card"), [(T[0], 1, 2), (T[2], 2, 2), (T[3], 0, 2),
                                                   (T[4], 1, 1)]),
    (objective("payment", gateway="adyen"), [(T[1], 1, 2)]),
    # Runs that passed ÷ runs, every location's.
    (objective("availability", monitor="home"), [(T[0], 2, 3), (T[2], 1, 2), (T[3], 0, 2)]),
    (objective("availability", monitor=["home", "checkout"]),
     [(T[0], 3, 4), (T[2], 1, 2), (T[3], 0, 2)]),
    (objective("availability"), [(T[0], 3, 4), (T[2], 1, 2), (T[3], 0, 2)]),
    (objective("availability", monitor="home", location="eu"), [(T[0], 1, 1), (T[2], 0, 1)]),
    (objective("availability", monitor="search"), []),
    # Page views with LCP ≤ 2.5 s ÷ page views with an LCP: v1 good, v2 and v3 slow; v6
    # at the bound is good; v4 is another page, v5 has no LCP.
    (objective("latency", page="/product/*", threshold="2500ms"),
     [(T[0], 1, 3), (T[2], 1, 1), (T[3], 0, 1)]),
    (objective("latency", page="/product/red-shoe", threshold=2500),
     [(T[0], 1, 2)]),
    (objective("latency", page="/product/*", threshold="2.5s", device="desktop"),
     [(T[0], 0, 1), (T[2], 1, 1), (T[3], 0, 1)]),
    (objective("latency", page="/product/*", metric="inp", threshold="200ms"),
     [(T[0], 1, 2)]),
], ids=lambda v: "" if isinstance(v, list) else f"{v.sli}{v.filter or ''}")
def test_good_and_total_per_bucket(stored: tuple[DuckDBEventStore, Project], o: Objective,
                                   expected: list[tuple[int, int, int]]) -> None:
    assert tens(stored, o) == [(float(t), float(g), float(n)) for t, g, n in expected]


@pytest.mark.parametrize("o", [
    objective("checkout"), objective("payment"), objective("availability", monitor="home"),
    objective("latency", page="/product/*", threshold="2500ms")], ids=lambda o: o.sli)
def test_maintenance_windows_count_neither_good_nor_total(
        stored: tuple[DuckDBEventStore, Project], o: Objective) -> None:
    every = tens(stored, o)
    assert any(b[0] == T[3] for b in every)  # bucket 3 had traffic ...
    quiet = tens(stored, o, MAINTENANCE)
    assert quiet == [b for b in every if b[0] != T[3]]  # ... all of it in the window


def test_a_range_in_one_bucket_and_its_limits(stored: tuple[DuckDBEventStore, Project],
                                              ) -> None:
    store, project = stored
    # The hour at once: 5 orders (T1-T5) of 8 checkouts begun (s1-s7 and the anonymous).
    assert sli.buckets(store, project.id, objective("checkout"), START, END, 3600) == [
        (float(START), 5.0, 8.0)]
    assert sli.buckets(store, project.id, objective("checkout"), START, END, 3600,
                       MAINTENANCE) == [(float(START), 5.0, 7.0)]
    with pytest.raises(ValueError, match="range"):
        sli.buckets(store, project.id, objective("checkout"), END, START, 60)
    with pytest.raises(ValueError, match="bucket_s"):
        sli.buckets(store, project.id, objective("checkout"), START, END, 0)


def test_a_tier_reads_both_windows_at_now(stored: tuple[DuckDBEventStore, Project]) -> None:
    store, project = stored
    payments = objective("payment", target="90%")
    fast = tier_named("fast")
    # At 10:34, 1 h back: 8 payments, 4 declined: (4/8) / 0.1 = 5. The last 5 minutes
    # (10:29-10:34): 2 declined of 2: 1 / 0.1 = 10. The rule reads the lower: 5.
    state = sli.tier_state(store, project.id, payments, fast, sec("10:34"))
    assert (state.long_burn, state.short_burn, state.firing) == (5.0, 10.0, False)
    assert sli.reading(state) == 5.0
    # The maintenance window leaves out bucket 3: 2 of 6 declined, (2/6) / 0.1 = 3.33,
    # and nothing in the short window: nothing burns now, the reading is 0.
    quiet = sli.tier_state(store, project.id, payments, fast, sec("10:34"), MAINTENANCE)
    assert quiet.long_burn == pytest.approx(10 / 3) and quiet.short_burn is None
    assert sli.reading(quiet) == 0.0
    # Without traffic over the long window there is no reading at all.
    empty = sli.tier_state(store, project.id, payments, fast, sec("09:00"))
    assert (empty.long_burn, sli.reading(empty)) == (None, None)
    # A target at 50 %: the declines burn 2 over 5 minutes and 1 over the hour: both at
    # or above 1, not 14.4.
    half = sli.tier_state(store, project.id, objective("payment", target="50%"), fast,
                          sec("10:34"))
    assert (half.long_burn, half.short_burn) == (1.0, 2.0)


def test_status_budget_and_trend(stored: tuple[DuckDBEventStore, Project]) -> None:
    store, project = stored
    o = objective("payment", target="50%")  # window 1d: the fast and medium tiers
    now = sec("12:00")
    status = sli.status(store, project.id, o, now, MAINTENANCE)
    # Over the day: 6 orders (T1-T5, and T9 at 11:00) of 8 payments outside maintenance:
    # allowed 0.5 x 8 = 4 bad, 2 spent: 1 - 2/4 = half the budget left.
    assert (status.good, status.total, status.value) == (6.0, 8.0, 0.75)
    assert status.budget is not None
    assert (status.budget.allowed, status.budget.consumed, status.budget.remaining) == (
        4.0, 2.0, 0.5)
    assert [t.tier.name for t in status.tiers] == ["fast", "medium"]
    # Hourly points over the day (1d ÷ 120 rounds to 1 h): the windows ending before
    # 11:00 hold nothing; the one ending at 11:00 holds the hour of 10:00 (5 of 7: 1 -
    # 2/3.5 = 3/7 left), the one ending now (12:00) is the window's budget.
    assert status.step_s == 3600 and len(status.trend) == 24
    assert [p.at for p in status.trend] == [now - 23 * 3600 + 3600 * k for k in range(24)]
    assert [p.remaining for p in status.trend[:22]] == [None] * 22
    assert status.trend[22].remaining == pytest.approx(3 / 7)
    assert status.trend[23].budget == status.budget
    # Another project's events are not counted; without traffic there is no budget.
    other = sli.status(store, project.id + 1, objective("availability", monitor="nope"), now)
    assert (other.total, other.value, other.budget) == (0.0, None, None)


@pytest.mark.parametrize(("window_s", "step_s"), [
    (86400, 3600), (5 * 86400, 3600), (7 * 86400, 3600), (30 * 86400, 6 * 3600),
    (90 * 86400, 18 * 3600)])
def test_trend_steps(window_s: int, step_s: int) -> None:
    assert sli.trend_step(window_s) == step_s
    assert window_s // step_s <= 2 * sli.TREND_POINTS
